"""Parallel few-shot splits (nsas/few_shot_parallel.py): the sequential run bit for bit, shared work, resume,
refusals, a worker's failure and a killed run.

Every test here runs at one thread per process (tests/conftest.py sets one thread, and the run shares it
out: one each), where the parallel run must equal the sequential one exactly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import nsas.data
import nsas.few_shot_parallel
from nsas.errors import NsasError, TrainingError
from nsas.few_shot_parallel import assign
from nsas.search import Search, SearchConfig, search
from test_search import _cut_after_an_epoch_and_resume, _final_state, assert_same_run
from tiny import fake_dataset, tiny_search_config

EDGE = 3


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def _config(**overrides):
    values = dict(few_shot_edge=EDGE, epochs=3, steps_per_epoch=10, few_shot_warmup=1 / 3, archive_size=2)
    return tiny_search_config("nb201", **{**values, **overrides})


def _count_local_steps(monkeypatch) -> dict[str, int]:
    """Count the split steps this process runs itself (the workers' run in their own processes)."""
    counts = {"n": 0}
    original = nsas.few_shot_parallel.supernet_step

    def counted(*args, **kwargs):
        counts["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(nsas.few_shot_parallel, "supernet_step", counted)
    return counts


@pytest.mark.parametrize("loss", ["nsas", "ce"])
def test_two_processes_train_the_splits_bit_identically_to_one(tmp_path, monkeypatch, loss):
    # 3 epochs: one warm-up epoch as one supernet, then 2 split epochs of 10 steps shared by 2 processes
    search(_config(loss=loss), tmp_path / "one", progress=False)
    local = _count_local_steps(monkeypatch)
    search(_config(loss=loss, few_shot_workers=2), tmp_path / "two", progress=False)
    assert 0 < local["n"] < 20  # the worker process ran the other split steps
    assert_same_run(tmp_path / "one", tmp_path / "two")  # weights, archives, selection, every metrics record
    one, two = _final_state(tmp_path / "one"), _final_state(tmp_path / "two")
    assert one["split_objectives"] == two["split_objectives"] and one["passes"] == two["passes"]
    for key, buf in one["optimizer"]["state"].items():  # momentum of every copy came back from its process
        assert torch.equal(buf["momentum_buffer"], two["optimizer"]["state"][key]["momentum_buffer"])


def test_a_parallel_run_cut_after_a_split_epoch_resumes_as_the_sequential_run(tmp_path, monkeypatch):
    cfg = _config(epochs=2, few_shot_warmup=0.0, steps_per_epoch=6)  # split from the start: both epochs parallel
    search(replace_workers(cfg, 1), tmp_path / "straight", progress=False)
    _cut_after_an_epoch_and_resume(replace_workers(cfg, 2), tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_a_one_process_checkpoint_from_mid_split_epoch_resumes_in_two_processes_exactly(tmp_path, monkeypatch):
    cfg = _config(epochs=2, few_shot_warmup=0.0, steps_per_epoch=6, checkpoint_every=4)  # split from the start
    search(cfg, tmp_path / "straight", progress=False)
    original = Search.train_step

    def stop_at_step_5(self, *args):
        if self.global_step == 5:  # mid-epoch 1, one process; the checkpoint of step 4 stands
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Search, "train_step", stop_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, tmp_path / "cut", progress=False)
    assert _final_state(tmp_path / "cut")["global_step"] == 4
    monkeypatch.setattr(Search, "train_step", original)
    local = _count_local_steps(monkeypatch)
    search(replace_workers(cfg, 2), tmp_path / "cut", resume=True, progress=False)  # steps 5-12 in two processes
    assert 0 < local["n"] < 8
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_checkpoint_every_acts_in_the_warm_up_and_split_epochs_checkpoint_at_their_end(tmp_path, monkeypatch):
    saved = []
    original = Search.save

    def save(self):
        saved.append((self.epoch, self.step))
        original(self)

    monkeypatch.setattr(Search, "save", save)
    search(_config(epochs=2, few_shot_warmup=0.5, steps_per_epoch=6, checkpoint_every=4, few_shot_workers=2),
           tmp_path, progress=False)
    # steps 1-6 warm up (saved after step 4 and at the epoch's end); steps 7-12 are split, in parallel: a
    # sequential run would save after step 8 and 12, the parallel one at the epoch's end only
    assert saved == [(0, 4), (1, 0), (2, 0)]
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if r["kind"] == "step"] == list(range(1, 13))
    assert "checkpoint_every act in the warm-up only" in (tmp_path / "log.txt").read_text()


def replace_workers(cfg: SearchConfig, workers: int) -> SearchConfig:
    return replace(cfg, few_shot_workers=workers)


def test_copies_go_to_the_least_loaded_process_most_steps_first():
    assert assign([4, 1, 3, 2, 0], 2) == [0, 0, 1, 1, 0]  # 4 -> p0; 3 -> p1; 2 -> p1 (3 < 4); 1 -> p0; 0 -> p0 (tie)
    assert sorted(assign([5, 5, 5, 5, 5], 2)).count(0) == 3  # 5 copies on 2 processes: 3 and 2
    assert assign([7, 0, 0], 1) == [0, 0, 0]


def test_parallel_splits_refuse_what_couples_the_copies(tmp_path):
    with pytest.raises(NsasError, match="set few_shot_edge"):
        SearchConfig(space="nb201", few_shot_workers=2)
    with pytest.raises(NsasError, match="few_shot_archive split"):
        Search(_config(few_shot_archive="shared", few_shot_workers=2), tmp_path, progress=False)
    with pytest.raises(NsasError, match="the wpl loss keeps state over the whole supernet"):
        Search(_config(loss="wpl", few_shot_workers=2), tmp_path, progress=False)
    with pytest.raises(NsasError, match="one parameter group"):
        Search(_config(few_shot_workers=2), tmp_path, progress=False,
               optimizer=lambda params: torch.optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1))
    with pytest.raises(NsasError, match=r"few_shot_workers must be in \[1, inf\)"):
        SearchConfig(space="nb201", few_shot_edge=0, few_shot_workers=0)


def test_an_unpicklable_criterion_is_refused_before_training(tmp_path):
    with pytest.raises(NsasError, match="cannot be pickled.*few_shot_workers 1"):
        Search(_config(few_shot_workers=2), tmp_path, progress=False, criterion=lambda out, y: F.cross_entropy(out, y))


def nan_in_workers(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, NaN in a child process: only the worker's steps fail."""
    loss = F.cross_entropy(logits, targets)
    return loss * float("nan") if multiprocessing.parent_process() is not None else loss


def test_a_nan_loss_in_a_worker_stops_the_run_with_the_last_checkpoint_intact(tmp_path):
    cfg = _config(epochs=2, few_shot_warmup=0.5, few_shot_workers=2)  # epoch 1 sequential, epoch 2 split
    with pytest.raises(TrainingError, match="loss became nan at epoch 2"):
        search(cfg, tmp_path, progress=False, criterion=nan_in_workers)
    state = _final_state(tmp_path)
    assert state["epoch"] == 1 and not bool(state["supernet"]["is_split"])
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())


def test_a_worker_that_dies_stops_the_run_with_a_clear_error(tmp_path, monkeypatch):
    original = nsas.few_shot_parallel.SplitWorkers.send

    def send(self, worker, message):
        original(self, worker, message)
        if message[0] == "step" and self.procs[worker - 1].is_alive():
            self.procs[worker - 1].kill()  # as if the system had killed it (out of memory, say)
            self.procs[worker - 1].join()

    monkeypatch.setattr(nsas.few_shot_parallel.SplitWorkers, "send", send)
    with pytest.raises(NsasError, match="worker nsas-few-shot-1 ended before the epoch did.*checkpoint is intact"):
        search(_config(epochs=2, few_shot_warmup=0.5, few_shot_workers=2), tmp_path, progress=False)
    assert _final_state(tmp_path)["epoch"] == 1


def test_a_killed_run_leaves_no_worker_behind(tmp_path):
    script = (
        "import sys, time\n"
        "from nsas.search import Search, SearchConfig\n"
        "cfg = SearchConfig(space='nb201', dataset='cifar10-mini', loss='ce', channels=4, cells=1, epochs=2,\n"
        f"                  few_shot_edge={EDGE}, few_shot_workers=2, steps_per_epoch=2)\n"
        "run = Search(cfg, sys.argv[1], progress=False)\n"
        "run.split_workers.start()\n"
        "print(*[p.pid for p in run.split_workers.procs], flush=True)\n"
        "time.sleep(120)\n")
    (tmp_path / "run").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 1
    proc.send_signal(signal.SIGKILL)  # no cleanup runs in the main process
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pids[0]):
        time.sleep(0.2)
    assert not _alive(pids[0]), "the worker outlived its killed main process"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped by init) counts as ended
        return f.read().split(")")[-1].split()[0] != "Z"
