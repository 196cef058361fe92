"""Supernet training end to end: every combination, exact resume, checkpoints, NaN."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nsas.data
import nsas.objectives
import nsas.passes
from nsas.checkpoint import load_checkpoint
from nsas.cli import main
from nsas.errors import CheckpointError, NsasError, TrainingError
from nsas.objectives import LOSSES
from nsas.search import Search, search
from nsas.spaces import get_space, space_names
from nsas.strategies import STRATEGIES
from tiny import fake_dataset, tiny_search_config

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


@pytest.mark.parametrize("space,strategy,loss", list(itertools.product(space_names(), STRATEGIES, LOSSES)))
def test_every_combination_trains_and_selects(tmp_path, space, strategy, loss):
    cfg = tiny_search_config(space, strategy=strategy, loss=loss)
    selected = search(cfg, tmp_path, progress=False).selected
    sp = get_space(space)
    assert selected and all(sp.parse(row["arch"]) for row in selected)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2]
    expected_passes = 1 + (2 if loss in ("nsas", "nsas-random") else 1 if loss == "nsas-replay" else 0)
    expected_passes += strategy == "gdas"  # the architecture step on the validation half
    # step 1: the archive holds only a_1; from step 2 it holds up to M = 2 members.
    assert steps[1]["passes"] - steps[0]["passes"] == expected_passes
    assert any(r["kind"] == "probe" for r in records)
    if strategy == "gdas":
        assert "tau" in steps[0] and "arch_loss" in steps[0]
    archive = json.loads((tmp_path / "archive.json").read_text())
    assert len(archive["members"]) == (2 if loss.startswith("nsas") else 0)


def _interrupt_after_first_epoch(monkeypatch):
    original = Search.end_epoch

    def end_epoch(self):
        original(self)
        if self.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Search, "end_epoch", end_epoch)


def _final_state(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoint.pt", kind="search")


def assert_same_run(a: Path, b: Path) -> None:
    sa, sb = _final_state(a), _final_state(b)
    assert sa["global_step"] == sb["global_step"]
    for k, v in sa["supernet"].items():
        assert torch.equal(v, sb["supernet"][k]), k
    assert json.loads((a / "archive.json").read_text()) == json.loads((b / "archive.json").read_text())
    assert (a / "selected.json").read_text() == (b / "selected.json").read_text()
    strip = lambda p: [{k: v for k, v in json.loads(line).items() if not k.endswith("_per_s")}  # noqa: E731
                       for line in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(a) == strip(b)


def _cut_after_an_epoch_and_resume(cfg, tmp_path: Path, monkeypatch) -> None:
    """Run ``cfg`` into tmp_path/cut, interrupted after epoch 1 (checked), then resume it to the end."""
    _interrupt_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, tmp_path / "cut", progress=False)
    assert _final_state(tmp_path / "cut")["epoch"] == 1
    monkeypatch.undo()
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    search(cfg, tmp_path / "cut", resume=True, progress=False)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resume_after_an_epoch_is_bit_identical(tmp_path, monkeypatch, strategy):
    cfg = tiny_search_config("nb201", strategy=strategy, epochs=2, steps_per_epoch=3, archive_size=3)
    search(cfg, tmp_path / "straight", progress=False)
    _cut_after_an_epoch_and_resume(cfg, tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_function_sampling_with_a_shared_batch_costs_one_pass_a_step_and_resumes_exactly(tmp_path, monkeypatch):
    cfg = tiny_search_config("nb201", sampling="functions", shared_batch=True, epochs=2, steps_per_epoch=3,
                             archive_size=3)
    search(cfg, tmp_path / "straight", progress=False)
    steps = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["passes"] for r in steps if r["kind"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert all(r["archive_loss"] is not None for r in steps if r["kind"] == "step" and r["step"] > 1)
    _cut_after_an_epoch_and_resume(cfg, tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_forgetting_archive_rebuilds_cost_their_passes_and_resume_exactly(tmp_path, monkeypatch):
    # rebuild every 2 steps with 3 members + 3 recent candidates; the checkpoint after epoch 1 sits between two
    cfg = tiny_search_config("nb201", loss="nsas", archive_forgetting=2, epochs=2, steps_per_epoch=5,
                             archive_size=3, pool_size=6, constraint_slices=True, normalize_loss=True)
    search(cfg, tmp_path / "straight", progress=False)
    steps = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    passes = [r["passes"] for r in steps if r["kind"] == "step"]
    costs = [b - a for a, b in zip([0] + passes, passes)]
    # 2 passes a step (current + slices); rebuilds on even steps once the archive is full: step 2 has no
    # recent non-member to consider (skipped), step 4 one (3 + 1 evaluations), then three (3 + 3)
    assert costs == [2, 2, 2, 2, 6, 2, 8, 2, 8, 2]
    _cut_after_an_epoch_and_resume(cfg, tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_wpl_resumes_bit_identically_mid_window(tmp_path, monkeypatch):
    # window 2, 3 steps per epoch: the checkpoint after epoch 1 falls inside a window
    cfg = tiny_search_config("nb201", loss="wpl", epochs=2, steps_per_epoch=3, wpl_window=2, wpl_strength=50.0)
    search(cfg, tmp_path / "straight", progress=False)
    _cut_after_an_epoch_and_resume(cfg, tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_wpl_run_differs_from_ce_run(tmp_path):
    # Regression: an anchor taken after every step made wpl train exactly like ce.
    runs = {}
    for loss in ("ce", "wpl"):
        cfg = tiny_search_config("nb201", loss=loss, epochs=2, steps_per_epoch=3, wpl_strength=50.0)
        search(cfg, tmp_path / loss, progress=False)
        runs[loss] = _final_state(tmp_path / loss)["supernet"]
    assert any(not torch.equal(runs["ce"][k], runs["wpl"][k]) for k in runs["ce"])
    # ... and the default window is one epoch: the objective in the checkpoint refreshed at epoch ends
    state = _final_state(tmp_path / "wpl")["objective"]
    assert state["steps"] == 0 and state["anchor"]


KILL_SCRIPT = """
import os, signal, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import torch
torch.set_num_threads(1)
import nsas.data
from tiny import fake_dataset, tiny_search_config
nsas.data.load_dataset = fake_dataset
from nsas.search import Search, search
original = Search.train_step
def train_step(self, *args):
    if self.global_step == 7:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch 2; last checkpoint at step 6
    return original(self, *args)
Search.train_step = train_step
search(tiny_search_config("nb201", epochs=2, steps_per_epoch=5, checkpoint_every=3, archive_size=3),
       {run!r}, progress=False)
"""


def test_resume_after_kill_9_mid_epoch_is_bit_identical(tmp_path):
    cfg = tiny_search_config("nb201", epochs=2, steps_per_epoch=5, checkpoint_every=3, archive_size=3)
    search(cfg, tmp_path / "straight", progress=False)
    run = tmp_path / "killed"
    script = KILL_SCRIPT.format(repo=str(REPO), tests=str(TESTS), run=str(run))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = _final_state(run)
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 1, 6)
    search(cfg, run, resume=True, progress=False)
    assert_same_run(tmp_path / "straight", run)


def _make_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    search(tiny_search_config("nb201"), run, progress=False)
    return run


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _corrupt(kind: str, path: Path, marker: Path) -> None:
    good = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "garbage":
        path.write_bytes(random.Random(7).randbytes(2048))
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif kind == "malicious-zip":
        torch.save({"format": "nsas-checkpoint", "payload": _Evil(marker)}, path)
    elif kind == "malicious-pickle":
        path.write_bytes(pickle.dumps(_Evil(marker)))
    elif kind == "empty":
        path.write_bytes(b"")


def test_random_bytes_are_always_refused_as_a_checkpoint(tmp_path):
    # Random bytes reach different corners of the unpickler (IndexError, TypeError, ... once escaped).
    rng = random.Random(0)
    path = tmp_path / "checkpoint.pt"
    for i in range(300):
        head = b"\x80\x02" if i % 2 else b""  # half of them look like a pickle stream
        path.write_bytes(head + rng.randbytes(rng.randrange(1, 4096)))
        with pytest.raises(CheckpointError):
            load_checkpoint(path, kind="search")


@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign", "malicious-zip", "malicious-pickle", "empty"])
def test_bad_checkpoints_are_refused_in_one_line_and_run_nothing(tmp_path, kind, capsys):
    run = _make_run(tmp_path)
    marker = tmp_path / "pwned"
    _corrupt(kind, run / "checkpoint.pt", marker)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(run / "checkpoint.pt", kind="search")
    assert str(run / "checkpoint.pt") in str(err.value)
    capsys.readouterr()
    assert main(["search", "--resume", "--out", str(run), "--quiet"]) == 2
    out = capsys.readouterr()
    assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err
    assert "checkpoint" in out.err
    assert not marker.exists()


def test_checkpoint_of_another_config_is_refused(tmp_path):
    run = _make_run(tmp_path)
    other = tiny_search_config("nb201", seed=5)
    with pytest.raises(CheckpointError, match="another config"):
        Search(other, run, progress=False).load(run / "checkpoint.pt")


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_search_config("nb201", epochs=2, steps_per_epoch=2)
    calls = {"n": 0}
    original = nsas.passes.path_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 6 else loss  # epoch 1 (2 steps x 3 passes) is clean

    monkeypatch.setattr(nsas.passes, "path_loss", poisoned)
    with pytest.raises(TrainingError, match="loss became nan.*epoch 2, step 1"):
        search(cfg, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt", kind="search")
    assert state["epoch"] == 1 and state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())


def test_cli_reports_nan_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nsas.passes, "path_loss",
                        lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    code = main(["search", "--space", "nb201", "--dataset", "fake-images", "--epochs", "1", "--channels", "4",
                 "--cells", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--out", str(tmp_path / "r"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "loss became nan" in err and len(err.strip().splitlines()) == 1


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    run = _make_run(tmp_path)
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["search", "--dataset", "fake-images", "--out", str(run), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_yaml_config_and_flags(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("space: nb201\ndataset: fake-images\nepochs: 1\nsteps_per_epoch: 1\nchannels: 4\n"
                        "cells: 1\nbatch_size: 8\nloss: ce\nselect_rounds: 1\nselect_samples: 1\neval_batches: 1\n")
    assert main(["search", "--config", str(cfg_file), "--loss", "nsas-replay", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    import yaml

    resolved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert resolved["loss"] == "nsas-replay" and resolved["channels"] == 4 and resolved["epochs"] == 1
    cfg_file.write_text("space: nb201\nchanels: 4\n")
    assert main(["search", "--config", str(cfg_file), "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert "chanels" in capsys.readouterr().err


def test_bn_recalibration_changes_scores_but_not_training(tmp_path):
    # One candidate per round: both runs select the same 3 architectures (same seed, same training).
    common = dict(epochs=2, archive_size=3, select_rounds=3, select_samples=1)
    plain = search(tiny_search_config("nb201", **common), tmp_path / "batch", progress=False).selected
    recal = search(tiny_search_config("nb201", **common, bn="recalibrate", recalibrate_batches=2),
                   tmp_path / "recal", progress=False).selected
    a, b = _final_state(tmp_path / "batch"), _final_state(tmp_path / "recal")
    for k, v in a["supernet"].items():  # scoring with recalibration leaves training untouched
        assert torch.equal(v, b["supernet"][k]), k
    by_arch = {r["arch"]: r for r in plain}
    assert len(by_arch) == 3 and set(by_arch) == {r["arch"] for r in recal}
    for row in recal:  # every architecture's score moves, not just one of them
        assert row["loss"] != by_arch[row["arch"]]["loss"], row["arch"]


def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys):
    run = _make_run(tmp_path)
    assert main(["search", "--resume", "--out", str(run), "--epochs", "9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--epochs" in err and len(err.strip().splitlines()) == 1


def test_new_flags_reach_the_config():
    import argparse

    from nsas.search import configure, resolve

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--space", "nb201", "--wpl-window", "3", "--select-from", "c.txt", "--probe-from",
                              "t.csv", "--probe-count", "7", "--probe-key", "test_acc", "--eval-batches", "5"])
    cfg = resolve(args)
    assert (cfg.wpl_window, cfg.select_from, cfg.probe_from, cfg.probe_count, cfg.probe_key, cfg.eval_batches) == (
        3, "c.txt", "t.csv", 7, "test_acc", 5)
    assert resolve(parser.parse_args(["--space", "nb201", "--preset", "paper"])).eval_batches == 80
    assert resolve(parser.parse_args(["--space", "nb201"])).eval_batches == 39  # the quick preset stays
    cfg = resolve(parser.parse_args(["--space", "darts-rnn", "--eval-batch-size", "4", "--carry-state"]))
    assert (cfg.eval_batch_size, cfg.carry_state) == (4, True)


def _step_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "step"]


def test_carry_state_continues_from_the_previous_step_and_resumes_exactly(tmp_path, monkeypatch):
    common = dict(loss="nsas", epochs=2, steps_per_epoch=4, checkpoint_every=2)
    search(tiny_search_config("darts-rnn", **common), tmp_path / "zero", progress=False)
    cfg = tiny_search_config("darts-rnn", carry_state=True, **common)
    search(cfg, tmp_path / "straight", progress=False)
    zero, carried = _step_losses(tmp_path / "zero"), _step_losses(tmp_path / "straight")
    # Same architectures and batches: the first step starts from zeros in both runs, the later ones not.
    assert carried[0] == zero[0]
    assert all(c != z for c, z in zip(carried[1:], zero[1:]))

    original = Search.train_step

    def stop_at_step_3(self, *args):
        if self.global_step == 3:  # mid-epoch 1; the checkpoint of step 2 holds the carried state
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Search, "train_step", stop_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, tmp_path / "cut", progress=False)
    state = _final_state(tmp_path / "cut")
    assert state["global_step"] == 2 and state["hidden"].shape == (cfg.batch_size, cfg.hidden)
    monkeypatch.setattr(Search, "train_step", original)
    search(cfg, tmp_path / "cut", resume=True, progress=False)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_text_scores_run_in_eval_batch_size_columns(tmp_path):
    for size in (10, 4):
        (tmp_path / str(size)).mkdir()
        run = Search(tiny_search_config("darts-rnn", eval_batch_size=size, eval_batches=3), tmp_path / str(size),
                     progress=False)
        assert [tuple(x.shape) for x, _ in run.eval_set] == [(5, size)] * 3
        rows = torch.cat([x for x, _ in run.eval_set])  # consecutive windows of the same columns
        assert torch.equal(rows, run.data.score.data[:15])


def test_carry_state_with_constraint_slices_gives_each_slice_its_columns_state(tmp_path, monkeypatch):
    seen = []
    original = nsas.passes.carried_path_loss

    def spy(supernet, path, batch, edge_weights, hidden, *rest):
        seen.append((batch[0].size(1), tuple(hidden.shape)))
        return original(supernet, path, batch, edge_weights, hidden, *rest)

    monkeypatch.setattr(nsas.passes, "carried_path_loss", spy)
    cfg = tiny_search_config("darts-rnn", carry_state=True, constraint_slices=True, steps_per_epoch=3)
    search(cfg, tmp_path, progress=False)
    assert seen and all(shape == (columns, cfg.hidden) for columns, shape in seen)
    assert {columns for columns, _ in seen} == {cfg.batch_size, cfg.batch_size // cfg.archive_size}


def test_constraint_after_adds_the_constraints_only_in_the_late_epochs_and_resumes_exactly(tmp_path, monkeypatch):
    from nsas.search_config import passes_per_step

    cfg = tiny_search_config("nb201", loss="nsas", constraint_after=0.5, epochs=2, steps_per_epoch=3, archive_size=2)
    search(cfg, tmp_path / "straight", progress=False)
    steps = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in steps if r["kind"] == "step"]
    passes = [r["passes"] for r in records]
    costs = [b - a for a, b in zip([0] + passes, passes)]
    assert costs == [1, 1, 1, 3, 3, 3]  # epoch 1 plain CE (the archive fills all the same), epoch 2 1 + M
    assert all(r["archive_loss"] is None for r in records[:3]) and all(r["archive_loss"] is not None for r in records[3:])
    assert passes_per_step({"loss": "nsas", "archive_size": 2, "constraint_after": 0.5, "epochs": 2}) == 2.0
    _cut_after_an_epoch_and_resume(cfg, tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")
    with pytest.raises(NsasError, match="constraint_after"):
        tiny_search_config("nb201", loss="ce", constraint_after=0.5)


def test_archive_by_size_keeps_one_archive_per_live_size_and_constrains_with_same_size_cells(tmp_path, monkeypatch):
    from nsas.searcher import Search

    cfg = tiny_search_config("nb201", loss="nsas", archive_by="size", epochs=2, steps_per_epoch=4, archive_size=2)
    seen: list[tuple[int, int]] = []
    original = Search.objective_for

    def spy(self, arch):
        objective = original(self, arch)
        size = self.space.parameter_count(self.space.live_arch(arch))
        seen.append((size, id(objective)))
        return objective

    monkeypatch.setattr(Search, "objective_for", spy)
    search(cfg, tmp_path / "straight", progress=False)
    record = json.loads((tmp_path / "straight" / "archive.json").read_text())
    space = get_space("nb201")
    assert record["sizes"], "no size class got an archive"
    for group in record["sizes"]:  # every member of a class's archive has that class's live size
        assert group["members"]
        assert {space.parameter_count(space.live_arch(space.parse(a))) for a in group["members"]} == {group["params"]}
    by_size: dict[int, set[int]] = {}
    for size, objective in seen:
        by_size.setdefault(size, set()).add(objective)
    assert all(len(ids) == 1 for ids in by_size.values())  # one objective per size, the same each time
    assert len({i for ids in by_size.values() for i in ids}) == len(by_size)  # and a different one per size
    monkeypatch.setattr(Search, "objective_for", original)
    _cut_after_an_epoch_and_resume(cfg, tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")
    with pytest.raises(NsasError, match="archive_by"):
        tiny_search_config("nb201", loss="ce", archive_by="size")
    with pytest.raises(NsasError, match="archive_by"):
        tiny_search_config("nb201", loss="nsas", archive_by="size", few_shot_edge=3)
    with pytest.raises(NsasError, match="constraint_cap"):
        tiny_search_config("nb201", loss="wpl", constraint_cap=1.0)
