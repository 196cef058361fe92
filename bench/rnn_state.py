"""Carried vs zero hidden state in darts-rnn supernet training: what each ranks.

    OMP_NUM_THREADS=1 python bench/rnn_state.py --data-dir ../shared/data          # ~15 min on one core
    OMP_NUM_THREADS=1 python bench/rnn_state.py --data-dir ../shared/data --quick  # smoke run, ~2 min
    flags: --steps N (supernet steps)  --archs K  --truth-steps N  --hidden H  --batch-size B
           --eval-windows E  --valid-lines L  --seed N  --json PATH

Two RandomNAS supernets (``ce`` loss) are trained on the same PTB windows with
the same sampled architectures, one with ``--no-carry-state`` (every step
starts from zeros) and one with ``--carry-state`` (every step starts from the
state the previous step, another architecture, ended with; as the RandomNAS
and DARTS code do). A fixed probe of K architectures is then scored with each
supernet's inherited weights on the first E validation windows (10 columns,
each architecture carrying its own state), and, for comparison, from a zero
state in every window. The ground truth is the same K architectures trained
stand-alone briefly (``nsas train --recipe proxy`` at the supernet's size,
``truth-steps`` windows), scored by validation perplexity. Reported: mean
inherited-weight perplexity of the probe per supernet, and Kendall tau
(tau-b, with a 95% bootstrap interval over architectures) between each
supernet's scores and the ground truth.

The validation text is a prefix of ``ptb.valid.txt`` (``--valid-lines``
lines), the same for scores and ground truth, so evaluation stays cheap; the
training text and the 10,000-word vocabulary are PTB's own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

from nsas.rankstats import bootstrap_ci, kendall_tau
from nsas.evaluate import evaluate_path
from nsas.search import SearchConfig, fixed_batches, load_search_run, search
from nsas.spaces import get_space
from nsas.train import recipe_config, train

SPACE = get_space("darts-rnn")


def ptb_subset(data_dir: Path, out: Path, valid_lines: int) -> Path:
    """A data folder with PTB's training text and the first ``valid_lines`` lines of its valid/test text."""
    (out / "ptb").mkdir(parents=True)
    src = data_dir / "ptb"
    shutil.copy(src / "ptb.train.txt", out / "ptb" / "ptb.train.txt")
    for split in ("valid", "test"):
        lines = (src / f"ptb.{split}.txt").read_text().splitlines(keepends=True)[:valid_lines]
        (out / "ptb" / f"ptb.{split}.txt").write_text("".join(lines))
    return out


def train_supernet(args: argparse.Namespace, data: Path, probe: list[str], run: Path, carry: bool) -> float:
    """One supernet run; returns its wall time in seconds."""
    cfg = SearchConfig(space="darts-rnn", strategy="random", loss="ce", dataset="ptb", data_dir=str(data),
                       epochs=1, steps_per_epoch=args.steps, batch_size=args.batch_size, hidden=args.hidden,
                       bptt=35, lr=20.0, lr_min=20.0, momentum=0.0, weight_decay=5e-7, grad_clip=0.25,
                       augment=False, seed=args.seed, device="cpu", eval_batches=args.eval_windows,
                       eval_batch_size=10, select_rounds=1, select_samples=1, probe=probe, log_every=50,
                       checkpoint_every=0, carry_state=carry)
    start = time.perf_counter()
    search(cfg, run, progress=False)
    return time.perf_counter() - start


def supernet_scores(run: Path, archs: list[str]) -> dict[str, list[float]]:
    """Inherited-weight validation loss of each architecture, carried state and zero state."""
    cfg, supernet, data, _ = load_search_run(run)
    windows = fixed_batches(data.score, cfg.eval_batches)
    out: dict[str, list[float]] = {"carried": [], "zero": []}
    for arch in archs:
        a = SPACE.parse(arch)
        out["carried"].append(evaluate_path(supernet, a, windows)["loss"])
        out["zero"].append(evaluate_path(supernet, a, windows, carry_state=False)["loss"])
    return out


def ground_truth(args: argparse.Namespace, data: Path, archs: list[str], root: Path) -> list[float]:
    """Validation loss of each architecture trained stand-alone for about ``truth_steps`` windows."""
    tokens = 887_521 + 42_068  # PTB train words + <eos>
    fraction = min(1.0, args.truth_steps * args.batch_size * 35 / tokens)
    losses = []
    for i, arch in enumerate(archs):
        cfg = recipe_config("darts-rnn", "proxy", data_dir=str(data), hidden=args.hidden,
                            batch_size=args.batch_size, epochs=1, train_fraction=fraction, eval_batch_size=10,
                            test_batch_size=10, seed=args.seed, device="cpu", log_every=0)
        result = train(cfg, arch, root / f"truth-{i}", progress=False)
        losses.append(result["valid_loss"])
    return losses


def tau_with_ci(score: list[float], truth: list[float], seed: int) -> dict[str, float]:
    """Kendall tau-b of (lower loss = better) scores against the truth, and its 95% bootstrap interval."""
    ci = bootstrap_ci(kendall_tau, score, truth, seed=seed)
    return {"tau": kendall_tau(score, truth), "low": ci.low, "high": ci.high}


def report(res: dict) -> str:
    lines = [
        f"- command: `{res['command']}`",
        f"- machine: {res['machine']}; torch {res['torch']}, 1 thread; wall time {res['wall_s'] / 60:.1f} min "
        f"(supernets {res['supernet_s'][0]:.0f} s + {res['supernet_s'][1]:.0f} s, ground truth {res['truth_s']:.0f} s)",
        f"- supernets: hidden {res['hidden']}, batch {res['batch_size']}, bptt 35, {res['steps']} RandomNAS `ce` "
        f"steps, SGD lr 20; scores on {res['eval_windows']} validation windows of 10 columns "
        f"({res['eval_windows'] * 350:,} tokens); ground truth: {len(res['archs'])} architectures, "
        f"`--recipe proxy` for {res['truth_steps']} windows at the same size",
        "",
        "| supernet trained with | probe ppl, carried-state score | probe ppl, zero-state score "
        "| Kendall tau (carried-state score) [95% CI] | Kendall tau (zero-state score) |",
        "|---|---|---|---|---|",
    ]
    for mode in ("zero", "carry"):
        s = res["scores"][mode]
        t, z = res["tau"][mode]["carried"], res["tau"][mode]["zero"]
        lines.append(f"| {'carried state' if mode == 'carry' else 'zero state'} "
                     f"| {math.exp(sum(s['carried']) / len(s['carried'])):.1f} "
                     f"| {math.exp(sum(s['zero']) / len(s['zero'])):.1f} "
                     f"| {t['tau']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}] | {z['tau']:+.2f} |")
    lines += ["", "Per architecture (validation ppl): ground truth, then the carried-state score of each supernet:", ""]
    for i, arch in enumerate(res["archs"]):
        lines.append(f"    {math.exp(res['truth'][i]):8.1f} {math.exp(res['scores']['zero']['carried'][i]):8.1f} "
                     f"{math.exp(res['scores']['carry']['carried'][i]):8.1f}  {arch}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding ptb/ptb.{train,valid,test}.txt")
    parser.add_argument("--steps", type=int, default=300, help="supernet training steps")
    parser.add_argument("--archs", type=int, default=8, help="probe and ground-truth architectures")
    parser.add_argument("--truth-steps", type=int, default=100, help="stand-alone training windows per architecture")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-windows", type=int, default=30)
    parser.add_argument("--valid-lines", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run (tiny budgets)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.archs, args.truth_steps, args.eval_windows = 20, 3, 10, 5
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    rng = random.Random(f"rnn-state-{args.seed}")
    archs = [str(SPACE.sample(rng)) for _ in range(args.archs)]
    res: dict = {"command": "OMP_NUM_THREADS=1 python bench/rnn_state.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("json", "quick", "data_dir")),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}", "torch": torch.__version__,
        "archs": archs, "scores": {}, "tau": {}, "supernet_s": [], **{k: v for k, v in vars(args).items()
                                                                      if k in ("steps", "hidden", "batch_size",
                                                                               "eval_windows", "truth_steps")}}
    with tempfile.TemporaryDirectory() as tmp:
        data = ptb_subset(args.data_dir, Path(tmp) / "data", args.valid_lines)
        for mode in ("zero", "carry"):
            with contextlib.redirect_stdout(io.StringIO()):
                res["supernet_s"].append(train_supernet(args, data, archs, Path(tmp) / mode, mode == "carry"))
            res["scores"][mode] = supernet_scores(Path(tmp) / mode, archs)
            print(f"supernet ({mode} state): {res['supernet_s'][-1]:.0f} s", flush=True)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            res["truth"] = ground_truth(args, data, archs, Path(tmp))
        res["truth_s"] = time.perf_counter() - t0
    for mode in ("zero", "carry"):
        res["tau"][mode] = {kind: tau_with_ci(res["scores"][mode][kind], res["truth"], args.seed)
                            for kind in ("carried", "zero")}
    res["wall_s"] = time.perf_counter() - start
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
