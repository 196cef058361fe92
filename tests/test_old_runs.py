"""Run directories written by earlier versions still load, score and resume (issue 21).

``tests/data/old-runs/<commit>/`` were written by that commit's own ``nsas search`` and ``nsas rank``
(``scripts/make_old_runs.py``; ``VERSION`` says which): a finished run with that version's scores of six
sampled cells, and the same search cut after its first epoch.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from nsas.checkpoint import load_checkpoint
from nsas.cli import main
from nsas.search import SearchConfig, load_search_run

OLD = Path(__file__).resolve().parent / "data" / "old-runs"
VERSIONS = sorted(p.name for p in OLD.iterdir() if p.is_dir())


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_there_are_old_runs_to_test():
    assert len(VERSIONS) >= 2, VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_an_old_finished_run_loads_and_scores_as_it_did(version, tmp_path, capsys):
    run = tmp_path / "finished"
    shutil.copytree(OLD / version / "finished", run)
    cfg, supernet, _, state = load_search_run(run, "cpu")
    assert isinstance(cfg, SearchConfig) and cfg.loss == "nsas" and cfg.channels == 4
    assert cfg.constraint_cap == 0.0 and cfg.archive_by == "none"  # keys added since: their defaults
    assert state["global_step"] == 6
    assert main(["rank", str(run), "--sample", "6", "--seed", "1", "--out", str(tmp_path / "now.csv"), "--quiet"]) == 0
    then, now = _rows(OLD / version / "finished-scores.csv"), _rows(tmp_path / "now.csv")
    assert [r["arch"] for r in now] == [r["arch"] for r in then]
    for a, b in zip(now, then):
        assert float(a["acc"]) == pytest.approx(float(b["acc"]), abs=1e-9)
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-6)


@pytest.mark.parametrize("version", VERSIONS)
def test_an_old_cut_run_resumes_and_ends_where_the_old_version_ended(version, tmp_path, capsys):
    run = tmp_path / "cut"
    shutil.copytree(OLD / version / "cut", run)
    assert load_checkpoint(run / "checkpoint.pt", kind="search")["global_step"] == 3
    assert main(["search", "--resume", "--out", str(run), "--quiet"]) == 0
    resumed = load_checkpoint(run / "checkpoint.pt", kind="search")
    finished = load_checkpoint(OLD / version / "finished" / "checkpoint.pt", kind="search")
    assert resumed["global_step"] == finished["global_step"] == 6
    for name, value in finished["supernet"].items():  # the old version's own uninterrupted run, to the bit
        assert torch.equal(resumed["supernet"][name], value), name
    assert (run / "selected.json").read_text() == (OLD / version / "finished" / "selected.json").read_text()
