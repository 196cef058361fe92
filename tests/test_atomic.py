"""The one atomic writer: a SIGKILL mid-write, a failing write and permissions leave no damage."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nsas.atomic import atomic_write, write_text_atomic
from nsas.checkpoint import load_checkpoint, save_checkpoint
from nsas.rundir import write_json

# Rewrites PATH forever with version i = 0, 1, 2, ...; every version is self-consistent.
_WRITER = """
import itertools, sys, torch
from nsas.checkpoint import save_checkpoint
from nsas.rundir import write_json
path, what = sys.argv[1], sys.argv[2]
for i in itertools.count():
    if what == "checkpoint":
        save_checkpoint(path, {"i": i, "w": torch.full((1 << 20,), float(i))}, kind="search")
    else:
        write_json(path, {"i": i, "w": [i] * 300000})
"""


def _partial(path: Path) -> list[Path]:
    """Temporary files of ``path`` that hold some bytes (renamed ones vanish between glob and stat)."""
    found = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if tmp.stat().st_size > 0:
                found.append(tmp)
        except FileNotFoundError:
            pass
    return found


def _kill_mid_write(path: Path, what: str) -> list[Path]:
    """Start the writer, SIGKILL it while a temporary file is being filled; the temporaries left."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), what], env=env)
    deadline = time.monotonic() + 120  # a hang guard, not a measurement
    try:
        while not _partial(path):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the writer never started a write")
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return _partial(path)


def test_sigkill_inside_torch_save_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"i": -1, "w": torch.full((1 << 20,), -1.0)}, kind="search")
    left = _kill_mid_write(path, "checkpoint")
    assert left, "the kill did not land inside a write"
    state = load_checkpoint(path, kind="search")  # the previous (or a complete newer) version
    assert torch.equal(state["w"], torch.full((1 << 20,), float(state["i"])))


def test_sigkill_inside_the_json_write_leaves_a_whole_file(tmp_path):
    path = tmp_path / "selected.json"
    write_json(path, {"i": -1, "w": [-1] * 300000})
    left = _kill_mid_write(path, "json")
    assert left, "the kill did not land inside a write"
    data = json.loads(path.read_text())
    assert data["w"] == [data["i"]] * 300000


def test_a_failing_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "scores.csv"
    write_text_atomic(path, "old\n")
    with pytest.raises(ZeroDivisionError), atomic_write(path, "w") as f:
        f.write("half of the new")
        raise ZeroDivisionError  # stands for a full disk or a crash in the serializer
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
    with pytest.raises(Exception):  # torch cannot pickle a lambda: nothing may be left either
        save_checkpoint(tmp_path / "checkpoint.pt", {"f": lambda: 0}, kind="search")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


def test_written_files_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "checkpoint.pt", {"x": torch.zeros(2)}, kind="search")
        write_json(tmp_path / "report.json", {"a": 1})
        write_text_atomic(tmp_path / "scores.csv", "arch,acc\n")
    finally:
        os.umask(old)
    for name in ("checkpoint.pt", "report.json", "scores.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
