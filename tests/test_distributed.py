"""Data parallelism with 2 CPU processes (gloo): DDP gradients, rank agreement, equality with
one process, resume with another process count, a sharded study, and a failing rank.

The 2-rank work runs once, in one group of forked processes (forking keeps the
imported torch: on 2 shared cores each fresh interpreter costs seconds); its
results are checked by the tests below. The failing-rank test goes through
the real launcher (``python -m torch.distributed.run``) and the CLI.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch

import nsas.data
from nsas import distributed
from nsas.checkpoint import load_checkpoint
from nsas.cli import main
from nsas.errors import NsasError
from nsas.objectives import build_objective
from nsas.search import Search, search
from nsas.spaces import get_space
from tiny import TINY, fake_dataset, tiny_batch, tiny_search_config

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
WORLD = 2
# micro_batches fixed at 2: 1 process runs 2 micro-batches, each of 2 processes runs 1.
CONFIGS = {
    "random": dict(strategy="random", epochs=2, steps_per_epoch=3, archive_size=3, micro_batches=2,
                   consistency_every=1, batch_size=8),
    "gdas": dict(strategy="gdas", epochs=2, steps_per_epoch=3, archive_size=3, micro_batches=2,
                 consistency_every=1, batch_size=8),
    # the archive chosen by loss rise (a rebuild at step 4): the ranks' losses are averaged
    "forgetting": dict(strategy="random", epochs=2, steps_per_epoch=3, archive_size=2, archive_forgetting=2,
                       micro_batches=2, consistency_every=1, batch_size=8),
    # few-shot: split after epoch 1 into 5 copies (one archive each), each rank routing every path alike
    "few-shot": dict(strategy="random", epochs=2, steps_per_epoch=3, archive_size=2, few_shot_edge=3,
                     micro_batches=2, consistency_every=1, batch_size=8),
}
STUDY = dict(space="nb201", dataset="fake-images", methods=["random:nsas"], seeds=2, archs=3, search_epochs=1,
             score_batches=1, device="cpu",
             search=dict(steps_per_epoch=2, batch_size=8, channels=4, cells=1, eval_batches=1, select_rounds=1,
                         select_samples=2, archive_size=2, pool_size=4, probe_count=2, checkpoint_every=0),
             train=dict(epochs=1, channels=4, cells=1, batch_size=16, eval_batch_size=20, log_every=0))
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
POOL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"
SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
RNN_ARCH = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
            "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")


def train_cfg():
    from nsas.train import recipe_config

    return recipe_config("nb201", "proxy", dataset="fake-images", epochs=2, channels=4, cells=1, batch_size=16,
                         eval_batch_size=20, log_every=1, device="cpu")


def rnn_train_cfg():
    from nsas.train import recipe_config

    return recipe_config("darts-rnn", "proxy", dataset="fake-text", hidden=8, batch_size=4, bptt=5, eval_batch_size=4,
                         epochs=3, asgd_nonmono=1, device="cpu")


def cfg_of(name: str):
    return tiny_search_config("nb201", **CONFIGS[name])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Interrupt(Exception):
    """Stands for the run being stopped after its first epoch."""


def stop_after_first_epoch():
    original = Search.end_epoch

    def end_epoch(self):
        original(self)
        if self.epoch == 1:
            raise Interrupt

    Search.end_epoch = end_epoch
    return original


# ---- what each of the 2 ranks does -------------------------------------------
def gradient_check(rank: int) -> dict[str, Any]:
    """One NSAS step's 1 + M passes on DDP vs the mean of the ranks' local accumulated gradients.

    Current architecture: skip connections only; archive: [all-conv, all-pool]. The
    conv weights are used only by the first archive member's pass (under no_sync),
    not by the last, synchronising pass.
    """
    from nsas.search import SearchConfig  # noqa: F401  (same imports as a run)

    space = get_space("nb201")
    torch.manual_seed(0)
    plain = space.build_supernet(**TINY["nb201"])
    reference = space.build_supernet(**TINY["nb201"])
    reference.load_state_dict(plain.state_dict())
    ddp = distributed.wrap(plain, torch.device("cpu"))
    assert ddp is not plain
    objective = build_objective("nsas", space, archive_size=2)
    for arch in (CONV, POOL):
        objective.observe(space.parse(arch))
    x, y = tiny_batch("nb201", seed=7)  # the global batch of 6
    local = distributed.shard((x, y), rank, WORLD)
    objective.backward(ddp, space.parse(SKIP), local)
    objective.backward(reference, space.parse(SKIP), local, chunks=1)  # no DDP: this rank's own gradient
    synced = {n: p.grad.clone() for n, p in plain.named_parameters() if p.grad is not None}
    own = {n: p.grad.clone() for n, p in reference.named_parameters() if p.grad is not None}
    return {"synced": synced, "local": own}


def rank_work(rank: int, root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"grad": gradient_check(rank)}
    for name in CONFIGS:
        search(cfg_of(name), root / f"ddp-{name}", progress=False)
        state = load_checkpoint(root / f"ddp-{name}" / "checkpoint.pt", kind="search") if rank == 0 else None
        s = Search(cfg_of(name), root / f"ddp-{name}", progress=False)
        s.load(root / f"ddp-{name}" / "checkpoint.pt")  # every rank reads it; compare ranks' final states
        out[name] = {"supernet": s.supernet.state_dict(), "objective": s.objective.state_dict(),
                     "strategy": s.strategy.state_dict(), "rank0_saved": state is not None}
    # resume 2 -> 1: interrupted here, resumed by one process in the test
    original = stop_after_first_epoch()
    try:
        search(cfg_of("random"), root / "cut-2to1", progress=False)
    except Interrupt:
        pass
    finally:
        Search.end_epoch = original
    # resume 1 -> 2: the one-process run interrupted by the test before this group started
    search(cfg_of("random"), root / "cut-1to2", resume=True, progress=False)
    # stand-alone training on 2 ranks, stopped after epoch 1 (the test resumes it in 1 process)
    import nsas.train

    trainer_end = nsas.train.Trainer.end_epoch

    def end_epoch(self):
        trainer_end(self)
        out.setdefault("train_weights", []).append({n: p.detach().clone() for n, p in self.model.named_parameters()})
        raise Interrupt

    nsas.train.Trainer.end_epoch = end_epoch
    try:
        nsas.train.train(train_cfg(), SKIP, root / "train-2to1", progress=False)
    except Interrupt:
        pass
    finally:
        nsas.train.Trainer.end_epoch = trainer_end
    # a rank whose weights differ is named by the consistency check
    s = Search(cfg_of("random"), root / "ddp-random", progress=False)
    if rank == 1:
        with torch.no_grad():
            next(s.supernet.parameters()).add_(1e-3)
    try:
        s.check_consistency("x")
        out["mismatch"] = None
    except NsasError as err:
        out["mismatch"] = str(err)
    # data preparation: local rank 0 loads first, the other rank after it (a barrier, not luck)
    from nsas.search import build_search_data

    prep_log = root / "prep.log"

    def recording_load(*args, **kwargs):
        with open(prep_log, "a") as f:
            f.write(f"start {rank}\n")
        if rank == 0:
            time.sleep(0.5)  # widens the window in which rank 1 would start too without the barrier
        with open(prep_log, "a") as f:
            f.write(f"end {rank}\n")
        return fake_dataset(*args, **kwargs)

    loader, nsas.data.load_dataset = nsas.data.load_dataset, recording_load
    try:
        build_search_data(cfg_of("random"), torch.device("cpu"))
    finally:
        nsas.data.load_dataset = loader
    # text training: rank 1's validation loss rises every epoch, rank 0's falls; rank 0 alone decides ASGD
    switch = nsas.train.Trainer._maybe_switch_to_asgd
    decided: list[str] = []

    def own_loss(self, loss):
        switch(self, 10.0 - self.epoch if rank == 0 else float(self.epoch))
        decided.append(self.optimizer_name)

    nsas.train.Trainer._maybe_switch_to_asgd = own_loss
    try:
        nsas.train.train(rnn_train_cfg(), RNN_ARCH, root / "asgd", progress=False)
    finally:
        nsas.train.Trainer._maybe_switch_to_asgd = switch
    out["asgd_decisions"] = decided
    (root / "train-mismatch").mkdir(exist_ok=True)
    t = nsas.train.Trainer(train_cfg(), get_space("nb201").parse(SKIP), root / "train-mismatch", progress=False)
    # a rank whose weights differ is named by stand-alone training's check before a checkpoint
    if rank == 1:
        with torch.no_grad():
            next(t.model.parameters()).add_(1e-3)
    try:
        t.write_checkpoint()
        out["train_mismatch"] = None
    except NsasError as err:
        out["train_mismatch"] = str(err)
    # a sharded study through the CLI (its session leaves the group at the end: keep it last)
    trained: list[str] = []
    real = nsas.train.train

    def counting(cfg, arch, out_dir, **kw):
        trained.append(Path(out_dir).name)
        return real(cfg, arch, out_dir, **kw)

    nsas.train.train = counting
    (root / "study.yaml").write_text(json.dumps(STUDY))
    out["study_code"] = main(["study", "--config", str(root / "study.yaml"), "--out", str(root / "study"),
                              "--quiet"])
    out["trained"] = trained
    return out


def _child(rank: int, port: int, root: Path) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NSAS_DIST_TIMEOUT="60")
    torch.set_num_threads(1)
    code = 0
    try:
        distributed.init()
        result = rank_work(rank, root)
        with open(root / f"rank{rank}.pkl", "wb") as f:
            pickle.dump(result, f)
    except BaseException:  # noqa: BLE001 - reported to the test through a file
        (root / f"rank{rank}.err").write_text(traceback.format_exc())
        code = 1
    finally:
        distributed.shutdown(failed=code != 0)
        os._exit(code)  # no pytest teardown in the forked child


@pytest.fixture(scope="module")
def group(tmp_path_factory) -> dict[str, Any]:
    """Runs the one-process references and the 2-rank group; returns everything the tests compare."""
    root = tmp_path_factory.mktemp("dist")
    patch = pytest.MonkeyPatch()
    patch.setattr(nsas.data, "load_dataset", fake_dataset)
    try:
        # 1 process: interrupted after epoch 1 (the 2-rank group resumes it)
        original = stop_after_first_epoch()
        with pytest.raises(Interrupt):
            search(cfg_of("random"), root / "cut-1to2", progress=False)
        Search.end_epoch = original
        ctx = multiprocessing.get_context("fork")
        port = free_port()
        procs = [ctx.Process(target=_child, args=(r, port, root)) for r in range(WORLD)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=240)
        for p in procs:
            if p.is_alive():
                p.kill()
        errors = [(root / f"rank{r}.err").read_text() for r in range(WORLD) if (root / f"rank{r}.err").exists()]
        assert not errors, "\n".join(errors)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        ranks = [pickle.loads((root / f"rank{r}.pkl").read_bytes()) for r in range(WORLD)]
        # the same runs in 1 process (micro_batches=2), and the 2 -> 1 resume
        for name in CONFIGS:
            search(cfg_of(name), root / f"one-{name}", progress=False)
        search(cfg_of("random"), root / "cut-2to1", resume=True, progress=False)
        from nsas.train import train

        train(train_cfg(), SKIP, root / "train-2to1", resume=True, progress=False)
    finally:
        patch.undo()
    return {"root": root, "ranks": ranks}


def final(run: Path) -> dict[str, Any]:
    return load_checkpoint(run / "checkpoint.pt", kind="search")


def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_close_runs(a: Path, b: Path) -> None:
    """Same steps, archive and selection; weights and logged losses equal up to summation order."""
    sa, sb = final(a), final(b)
    assert (sa["epoch"], sa["global_step"], sa["passes"]) == (sb["epoch"], sb["global_step"], sb["passes"])
    for k, v in sa["supernet"].items():
        assert torch.allclose(v, sb["supernet"][k], rtol=1e-4, atol=1e-5), k
    # archive members and recent pool (strings); the forgetting variant's recorded losses (floats)
    oa, ob = dict(sa["objective"]), dict(sb["objective"])
    for key in ("trained", "seen"):
        assert oa.pop(key, {}) == pytest.approx(ob.pop(key, {}), rel=1e-4)
    assert oa == ob
    assert json.loads((a / "archive.json").read_text()) == json.loads((b / "archive.json").read_text())
    sel_a, sel_b = json.loads((a / "selected.json").read_text()), json.loads((b / "selected.json").read_text())
    assert [r["arch"] for r in sel_a] == [r["arch"] for r in sel_b]
    steps_a = [r for r in metrics(a) if r["kind"] == "step"]
    steps_b = [r for r in metrics(b) if r["kind"] == "step"]
    assert [r["arch"] for r in steps_a] == [r["arch"] for r in steps_b]
    for ra, rb in zip(steps_a, steps_b, strict=True):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-4)
        assert ra["total_loss"] == pytest.approx(rb["total_loss"], rel=1e-4)


# ---- the tests -----------------------------------------------------------------
def test_synchronised_gradient_is_the_mean_of_local_accumulated_gradients(group):
    r0, r1 = (r["grad"] for r in group["ranks"])
    assert set(r0["synced"]) == set(r0["local"]) == set(r1["synced"])
    # parameters that only the first archive member (a no_sync pass) used: the convolutions
    only_member = set(r0["local"]) - _used_by(SKIP) - _used_by(POOL)
    assert len(only_member) >= 6, only_member
    for name, g in r0["local"].items():
        mean = (g + r1["local"][name]) / 2
        assert not torch.allclose(g, r1["local"][name]), name  # the ranks saw different data
        assert torch.allclose(r0["synced"][name], mean, atol=1e-7), name
        assert torch.equal(r0["synced"][name], r1["synced"][name]), name


def _used_by(arch: str) -> set[str]:
    """Names of the nb201 tiny supernet's parameters that get a gradient from ``arch``'s pass."""
    torch.manual_seed(0)
    net = get_space("nb201").build_supernet(**TINY["nb201"])
    x, y = tiny_batch("nb201")
    torch.nn.functional.cross_entropy(net(x, get_space("nb201").parse(arch)), y).backward()
    return {n for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_ranks_hold_identical_weights_archive_and_alphas(group, name):
    r0, r1 = (r[name] for r in group["ranks"])
    assert r0["rank0_saved"] and not r1["rank0_saved"]
    for k, v in r0["supernet"].items():
        assert torch.equal(v, r1["supernet"][k]), k
    assert r0["objective"] == r1["objective"]
    if name == "gdas":
        for a, b in zip(r0["strategy"]["alphas"], r1["strategy"]["alphas"], strict=True):
            assert torch.equal(a, b)
        assert r0["strategy"]["generator"].equal(r1["strategy"]["generator"])
    else:
        assert r0["strategy"]["rng"] == r1["strategy"]["rng"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_equal_one_process_with_two_micro_batches(group, name):
    root = group["root"]
    assert_close_runs(root / f"one-{name}", root / f"ddp-{name}")
    if name == "gdas":
        alphas_1 = final(root / "one-gdas")["strategy"]["alphas"]
        alphas_2 = final(root / "ddp-gdas")["strategy"]["alphas"]
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(alphas_1, alphas_2, strict=True))


def test_micro_batches_change_the_computation_with_batch_statistics(group, tmp_path, monkeypatch):
    """The equality above is not trivial: one undivided batch gives other weights."""
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    search(tiny_search_config("nb201", **{**CONFIGS["random"], "micro_batches": 1}), tmp_path, progress=False)
    whole, split = final(tmp_path)["supernet"], final(group["root"] / "one-random")["supernet"]
    assert any(not torch.allclose(v, split[k], rtol=1e-4, atol=1e-5) for k, v in whole.items())


def test_resume_with_another_number_of_processes_continues_the_run(group):
    root = group["root"]
    for cut in ("cut-2to1", "cut-1to2"):
        assert_close_runs(root / "one-random", root / cut)


def test_stand_alone_training_on_two_ranks_resumes_in_one_process(group):
    root = group["root"]
    w0, w1 = (r["train_weights"][0] for r in group["ranks"])
    assert w0 and all(torch.equal(v, w1[k]) for k, v in w0.items())
    result = json.loads((root / "train-2to1" / "result.json").read_text())
    assert result["steps"] == 2 * 6  # 96 images in global batches of 16, 2 epochs
    epochs = [r for r in metrics(root / "train-2to1") if r["kind"] == "epoch"]
    steps = [r["step"] for r in metrics(root / "train-2to1") if r["kind"] == "step"]
    assert [r["epoch"] for r in epochs] == [1, 2] and steps == list(range(1, 13))
    assert 0 <= epochs[0]["train_acc"] <= 100 and epochs[0]["train_loss"] > 0


def test_consistency_check_names_the_rank_that_differs(group):
    messages = [r["mismatch"] for r in group["ranks"]]
    assert all(m and "rank(s) 1 differ from rank 0" in m for m in messages), messages


def test_train_checks_the_ranks_agree_before_a_checkpoint(group):
    messages = [r["train_mismatch"] for r in group["ranks"]]
    assert all(m and "rank(s) 1 differ from rank 0" in m for m in messages), messages


def test_rank_zero_alone_decides_the_switch_to_asgd(group):
    # rank 0's validation loss falls (no switch); rank 1's rises (its own rule would switch after epoch 3)
    decisions = [r["asgd_decisions"] for r in group["ranks"]]
    assert decisions == [["sgd", "sgd", "sgd"], ["sgd", "sgd", "sgd"]]


def test_data_is_prepared_by_local_rank_zero_before_the_others(group):
    assert (group["root"] / "prep.log").read_text().splitlines() == ["start 0", "end 0", "start 1", "end 1"]


def test_sharded_study_writes_one_report(group):
    root = group["root"]
    r0, r1 = group["ranks"]
    assert r0["study_code"] == 0 and r1["study_code"] == 0
    assert sorted(r0["trained"]) == ["000", "002"] and r1["trained"] == ["001"]  # truth i -> rank i mod 2
    report = json.loads((root / "study" / "report.json").read_text())
    assert len(report["truth"]) == 3 and len(report["runs"]) == 2
    assert {r["run"] for r in report["runs"]} == {"random-nsas-s0", "random-nsas-s1"}
    assert (root / "study" / "report.md").exists()


FAIL_SCRIPT = """
import os, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import torch
torch.set_num_threads(1)
import nsas.data
from tiny import fake_dataset
nsas.data.load_dataset = fake_dataset
from nsas.search import Search
original = Search.train_step
def train_step(self, *args):
    if self.rank == 1 and self.global_step == 2:
        raise RuntimeError("injected failure on rank 1")
    return original(self, *args)
Search.train_step = train_step
from nsas.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_a_failing_rank_stops_the_run_with_a_clear_error(tmp_path):
    script = tmp_path / "entry.py"
    script.write_text(FAIL_SCRIPT.format(repo=str(REPO), tests=str(TESTS)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), str(script), "search", "--space", "nb201", "--dataset",
           "fake-images", "--epochs", "1", "--steps-per-epoch", "5", "--channels", "4", "--cells", "1",
           "--batch-size", "8", "--archive-size", "2", "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet"]
    env = {**os.environ, "NSAS_DIST_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "injected failure on rank 1" in output and "rank 1/2 failed" in output, output[-3000:]
    assert not (tmp_path / "run" / "summary.json").exists()
