"""What does one supernet step cost, next to the stand-alone network it trains?

    python bench/step_cost.py [--space darts|nb201|all] [--reps N] [--warmup N]
                              [--threads N] [--quick] [--json [PATH]]

Per setting (the DARTS space at the paper's search size: 16 channels, 8 cells,
batch 64, 32x32 inputs; NAS-Bench-201: 16 channels, 5 cells per stage, batch
64), it times four training steps side by side, on the same sampled
architectures and the same synthetic batches:

  standalone   space.build_network(arch) of the step's architecture (DARTS:
               no auxiliary head, drop-path 0): forward, cross-entropy,
               backward, gradient-norm clip, SGD step (the search's recipe)
  ce           the supernet's single-path step: Search.train_step with the
               `ce` loss (sample, zero_grad, forward of the path, backward,
               clip, SGD step), on a Search built as `nsas search` builds
               it; only its strategy is swapped for one that hands out the
               benchmark's architectures
  nsas         Search.train_step with the `nsas` loss, archive of M = 8
               members pre-filled with 8 sampled architectures (1 + 8 passes)
  nsas-replay  the same with `nsas-replay`, r = 1 (1 + 1 passes)

The variants run interleaved (round k: standalone, ce, nsas, nsas-replay, all
on architecture k and batch k), warm-up rounds first; the medians over the
timed rounds and their ratios are reported. The machine may be shared: the
ratios, not the absolute times, are the result.

Peak memory: the last warm-up round runs each variant's step under
torch.profiler with profile_memory=True. Every allocation and free of the
CPU tensor allocator is recorded; the peak of their running sum is the most
tensor memory the step held above what was allocated when it started (the
CPU analogue of torch.cuda.max_memory_allocated). It counts tensor bytes
only (not the Python heap or allocator slack) and is deterministic for a
given architecture and batch, unlike peak RSS. The nsas step's peak is also
compared with the largest single forward + backward of the architectures it
trained (its current one and its 8 members, each alone): accumulating
gradients member by member should keep it close to that.

Inputs are synthetic (torch.randn / randint): the data path is measured by
bench/data_throughput.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime as dt
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


from nsas.objectives import path_loss
from nsas.search import Search, SearchConfig
from nsas.spaces import get_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.strategies import Sample

VARIANTS = ("standalone", "ce", "nsas", "nsas-replay")
ARCHIVE_SIZE = 8  # M
REPLAY = 1  # r
# The search's optimizer recipe (docs/METHOD.md §8), used by every variant.
LR, MOMENTUM, WEIGHT_DECAY, GRAD_CLIP = 0.025, 0.9, 3e-4, 5.0


@dataclasses.dataclass
class Setting:
    """One benchmark setting: a space at one size."""

    space: str
    channels: int
    cells: int
    batch: int
    image: int
    reps: int  # timed rounds (default)


SETTINGS = {
    "darts": Setting("darts", channels=16, cells=8, batch=64, image=32, reps=3),
    "nb201": Setting("nb201", channels=16, cells=5, batch=64, image=32, reps=5),
}
QUICK = {
    "darts": Setting("darts", channels=4, cells=3, batch=8, image=16, reps=2),
    "nb201": Setting("nb201", channels=4, cells=1, batch=8, image=16, reps=2),
}


class FixedStrategy:
    """Hands Search.train_step the benchmark's architecture of the current round."""

    name = "fixed"

    def __init__(self) -> None:
        self.arch: Architecture | None = None

    def sample(self) -> Sample:
        return Sample(path=self.arch, arch=self.arch)


class StandaloneStep:
    """forward + CE + backward + clip + SGD step of one stand-alone network per architecture."""

    def __init__(self, space: SearchSpace, setting: Setting, archs: list[Architecture]) -> None:
        options: dict[str, Any] = dict(channels=setting.channels, cells=setting.cells, num_classes=10)
        if setting.space.startswith("darts"):
            options.update(auxiliary=False, drop_path=0.0)
        self.nets, self.optimizers = [], []
        for arch in archs:
            net = space.build_network(arch, **options)
            self.nets.append(net)
            self.optimizers.append(torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM,
                                                   weight_decay=WEIGHT_DECAY))
        self.params = sum(p.numel() for p in self.nets[0].parameters())

    def step(self, round_: int, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        net, opt = self.nets[round_], self.optimizers[round_]
        x, y = batch
        net.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
        opt.step()
        loss.item()
        return 1


class SupernetStep:
    """The library's own step, Search.train_step, on a Search built as `nsas search` builds it.

    The Search loads the small embedded cifar10-mini set (only to be
    constructed; every timed step gets the benchmark's synthetic batch) and
    writes its log to a temporary run directory. Its strategy is replaced by
    one that hands out the benchmark's architectures.
    """

    def __init__(self, space: SearchSpace, setting: Setting, loss: str, prefill: list[Architecture],
                 seed: int, run_dir: Path) -> None:
        cfg = SearchConfig(space=setting.space, strategy="random", loss=loss, dataset="cifar10-mini",
                           batch_size=setting.batch, channels=setting.channels, cells=setting.cells,
                           lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, grad_clip=GRAD_CLIP,
                           archive_size=ARCHIVE_SIZE, replay=REPLAY, seed=seed, device="cpu",
                           eval_batches=1)
        (run_dir / loss).mkdir(parents=True, exist_ok=True)
        self.search = Search(cfg, run_dir / loss, progress=False)  # seeds torch: every supernet starts equal
        self.search.strategy = FixedStrategy()
        for arch in prefill:  # archive (and recent pool) full before the first timed step
            self.search.objective.observe(arch)
        self.params = sum(p.numel() for p in self.search.supernet.parameters())

    def step(self, round_: int, batch: tuple[torch.Tensor, torch.Tensor], arch: Architecture) -> int:
        self.search.strategy.arch = arch
        before = self.search.passes
        self.search.train_step(batch, None)
        self.search.global_step += 1
        return self.search.passes - before


@contextlib.contextmanager
def quiet_stderr_fd():
    """Silence the profiler's C++ start/stop lines (written to file descriptor 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_tensor_bytes(fn) -> tuple[Any, int]:
    """Run ``fn()`` under the profiler; the peak of allocated-minus-freed CPU tensor bytes above the start."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    with quiet_stderr_fd(), torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        out = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return out, peak


def one_path_peaks(step: SupernetStep, current: Architecture, batch: tuple[torch.Tensor, torch.Tensor]
                   ) -> list[int]:
    """Peak tensor bytes of one forward + backward of each architecture the nsas step just trained.

    The step's current architecture and its constraint members (the archive
    after the step's update) each run alone on a copy of the supernet, with no
    gradients allocated beforehand, as a step starts. If the nsas step holds
    one path's activations at a time, its peak is close to the largest of these.
    """
    archs = [current] + list(step.search.objective.archive.members)
    peaks = []
    for arch in archs:
        net = copy.deepcopy(step.search.supernet)
        net.train()
        for p in net.parameters():
            p.grad = None
        gc.collect()
        _, peak = peak_tensor_bytes(lambda net=net, arch=arch: path_loss(net, arch, batch).backward())
        peaks.append(peak)
        del net
    return peaks


def run_setting(setting: Setting, reps: int, warmup: int, seed: int, run_dir: Path, log,
                variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    space = get_space(setting.space)
    rounds = warmup + reps
    rng = random.Random(f"step-cost-{setting.space}-{seed}")
    archs = [space.sample(rng) for _ in range(rounds)]
    prefill = [space.sample(rng) for _ in range(ARCHIVE_SIZE)]
    gen = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(setting.batch, 3, setting.image, setting.image, generator=gen),
                torch.randint(0, 10, (setting.batch,), generator=gen)) for _ in range(rounds)]

    log(f"[{setting.space}] building networks ({rounds} rounds: {warmup} warm-up, {reps} timed)")
    standalone = StandaloneStep(space, setting, archs)
    supernets = {loss: SupernetStep(space, setting, loss, prefill, seed, run_dir)
                 for loss in variants if loss != "standalone"}

    def step_fn(variant: str, k: int):
        if variant == "standalone":
            return lambda: standalone.step(k, batches[k])
        return lambda: supernets[variant].step(k, batches[k], archs[k])

    times: dict[str, list[float]] = {v: [] for v in variants}
    passes: dict[str, list[int]] = {v: [] for v in variants}
    peaks: dict[str, int] = {}
    one_path: list[int] = []
    for k in range(rounds):
        timed = k >= warmup
        for variant in variants:
            gc.collect()
            if not timed and k == warmup - 1:  # last warm-up round: memory
                n, peak = peak_tensor_bytes(step_fn(variant, k))
                peaks[variant] = peak
                log(f"[{setting.space}] warm-up {k + 1}/{warmup} {variant:<12} peak {peak / 2**20:8.1f} MiB "
                    f"({n} passes)")
                if variant == "nsas":
                    one_path[:] = one_path_peaks(supernets["nsas"], archs[k], batches[k])
                    log(f"[{setting.space}] warm-up {k + 1}/{warmup} largest single pass of the nsas step's "
                        f"{len(one_path)} architectures: {max(one_path) / 2**20:8.1f} MiB")
                continue
            t0 = time.perf_counter()
            n = step_fn(variant, k)()
            seconds = time.perf_counter() - t0
            if timed:
                times[variant].append(seconds)
                passes[variant].append(n)
            log(f"[{setting.space}] {'round' if timed else 'warm-up'} "
                f"{k - warmup + 1 if timed else k + 1}/{reps if timed else warmup} "
                f"{variant:<12} {seconds:8.3f} s ({n} passes)")

    def per_round(v: str, ref: str) -> float:
        """Median over the rounds of this round's time of ``v`` over that of ``ref`` (adjacent runs)."""
        return statistics.median(a / b for a, b in zip(times[v], times[ref]))

    rows = []
    for v in variants:
        mean_passes = statistics.mean(passes[v])
        rows.append({
            "variant": v,
            "median_s": statistics.median(times[v]),
            "min_s": min(times[v]),
            "max_s": max(times[v]),
            "passes": mean_passes,
            "vs_standalone": per_round(v, "standalone"),
            "vs_ce": per_round(v, "ce"),
            "vs_ce_per_pass": per_round(v, "ce") / mean_passes,
            "peak_mib": peaks[v] / 2**20,
            "peak_vs_ce": peaks[v] / peaks["ce"],
            "times_s": times[v],
        })
    by = {r["variant"]: r for r in rows}
    memory: dict[str, Any] = {}
    targets = {"ce step <= 1.10x stand-alone step (time)": by["ce"]["vs_standalone"] <= 1.10}
    if "nsas" in variants:
        memory = {
            "nsas_one_path_peaks_mib": [b / 2**20 for b in one_path],
            "nsas_peak_vs_largest_single_pass": peaks["nsas"] / max(one_path),
        }
        targets["nsas peak <= 1.2x ce peak (memory)"] = by["nsas"]["peak_vs_ce"] <= 1.2
        targets["nsas peak <= 1.2x its largest single pass (memory, one path at a time)"] = (
            memory["nsas_peak_vs_largest_single_pass"] <= 1.2)
    return {
        "setting": dataclasses.asdict(setting) | {"reps": reps, "warmup": warmup, "variants": list(variants)},
        "params": {"standalone (first arch)": standalone.params,
                   "supernet": supernets["ce"].params},
        "archs": [str(a) for a in archs],
        "rows": rows,
        "memory": memory,
        "targets": targets,
    }


def fmt_table(result: dict[str, Any]) -> str:
    s = result["setting"]
    head = (f"### {s['space']}: {s['channels']} channels, {s['cells']} cells"
            f"{' per stage' if s['space'] == 'nb201' else ''}, batch {s['batch']}, "
            f"{s['image']}x{s['image']} inputs; {s['warmup']} warm-up + {s['reps']} timed rounds\n\n")
    lines = ["| variant | passes | median s | min-max s | x standalone | x ce | x ce per pass | peak MiB | peak x ce |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        peak, peak_x = f"{r['peak_mib']:.1f}", f"{r['peak_vs_ce']:.2f}"
        lines.append(f"| {r['variant']} | {r['passes']:g} | {r['median_s']:.3f} | {r['min_s']:.3f}-{r['max_s']:.3f} "
                     f"| {r['vs_standalone']:.2f} | {r['vs_ce']:.2f} | {r['vs_ce_per_pass']:.2f} | {peak} | {peak_x} |")
    p = result["params"]
    m = result["memory"]
    tail = ["\nRatios are medians over the rounds of per-round ratios (variants of one round run back to back); "
            "x ce per pass = x ce / passes."]
    if m:
        tail.append(f"Memory: the nsas step's {len(m['nsas_one_path_peaks_mib'])} architectures alone (forward + "
                    f"backward each): {', '.join(f'{b:.1f}' for b in m['nsas_one_path_peaks_mib'])} MiB; "
                    f"nsas peak = {m['nsas_peak_vs_largest_single_pass']:.2f}x the largest.")
    tail += [f"Parameters: stand-alone network {p['standalone (first arch)']:,} (first architecture), "
            f"supernet {p['supernet']:,}.", "Targets:"]
    tail += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in result["targets"].items()]
    return head + "\n".join(lines) + "\n" + "\n".join(tail)


def machine() -> dict[str, Any]:
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", choices=("darts", "nb201", "all"), default="all")
    parser.add_argument("--reps", type=int, default=None,
                        help="timed rounds per setting (default: darts 3, nb201 5; --quick 2)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="warm-up rounds (the last one measures peak memory; default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared 2-core machine, 2 threads "
                             "under contention ran several times slower and far noisier)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of " + ", ".join(VARIANTS) + " (standalone and ce are "
                             "always run: they are the references; e.g. standalone,ce for many cheap rounds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a few seconds")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="also write the results as JSON to PATH (stdout with no PATH)")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (its last round measures memory)")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    asked = {v.strip() for v in args.variants.split(",") if v.strip()}
    if asked - set(VARIANTS):
        parser.error(f"unknown variant(s) {', '.join(sorted(asked - set(VARIANTS)))}; choose from {', '.join(VARIANTS)}")
    variants = tuple(v for v in VARIANTS if v in asked | {"standalone", "ce"})
    torch.set_num_threads(args.threads)
    table = QUICK if args.quick else SETTINGS
    names = ["darts", "nb201"] if args.space == "all" else [args.space]
    to_stdout = args.json == "-"

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    info = machine()
    log(f"step_cost: torch {info['torch']}, {info['threads']} thread(s), nproc {info['nproc']}, "
        f"load average {info['loadavg_start'][0]:.2f}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="step_cost-") as tmp:
        results = [run_setting(table[n], args.reps or table[n].reps, args.warmup, args.seed, Path(tmp) / n, log,
                               variants) for n in names]
    info["wall_s"] = time.perf_counter() - start
    info["loadavg_end"] = os.getloadavg()
    report = {"machine": info, "results": results}

    text = [f"step_cost on {info['date']}: nproc {info['nproc']}, torch {info['torch']}, "
            f"{info['threads']} thread(s), load average {info['loadavg_start'][0]:.2f} -> "
            f"{info['loadavg_end'][0]:.2f}, {info['wall_s']:.0f} s in all", ""]
    for r in results:
        text += [fmt_table(r), ""]
    print("\n".join(text), file=sys.stderr if to_stdout else sys.stdout)
    if args.json:
        blob = json.dumps(report, indent=2)
        if to_stdout:
            print(blob)
        else:
            Path(args.json).write_text(blob + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
