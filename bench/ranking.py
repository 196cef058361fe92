"""Ranking benchmark: how well does a CPU-sized nb201 supernet rank architectures?

Ground truth is NAS-Bench-201's CIFAR-10 test accuracy for half of the space
(a CSV ``arch,test_acc``; see the README's data section). Every search runs on
CIFAR-10 (50/50 split of the training set), then its inherited weights score

- a fixed probe of ``--probe`` architectures from the *held-out* half of the
  truth table, stratified by accuracy (one random architecture from each of
  ``--probe`` equal-count accuracy strata, so the probe has the space's own
  accuracy distribution), and
- ``--candidates`` more random held-out architectures: the selected
  architecture is the best-scored of probe + candidates, and its true
  accuracy is reported.

Each cell is scored with BatchNorm statistics of its own, recalibrated on 10
training batches (``bn: recalibrate``), and ranked by its validation loss
(``rank_by: loss``): the ``nb201-cpu`` preset's scorer since round 7. Rounds
1-6 used each scoring batch's own statistics and ranked by accuracy
(``--set bn=batch rank_by=acc``); a report judges each job by the
``rank_by`` its config names and shows both taus.

The truth table is split into two halves by a seeded hash of the architecture
string: ``tune`` (what variants may be tuned on) and ``holdout`` (what the
reported numbers use). ``--split tune`` runs the same benchmark on the tune
half.

Budgets: ``--budget P`` single-path passes (whole-batch equivalents, the
cost measure ``nsas search`` logs). At *equal compute* every method trains
for P passes (steps = P / its passes per step); at *equal steps* every method
trains for the steps NSAS (M = 8, 9 passes a step) gets from P. Each run's
cosine schedule spans its own steps (10 epochs of steps/10).

``--set KEY=VALUE`` overrides search settings for every method of a run
or curve (e.g. ``lr=0.1``, ``cells=3``): the benchmark's supernet is
``SUPERNET`` below plus the overrides. A job whose steps need more batches
than one pass over the 25,000-image weights half gets more epochs than 10
(epochs of at most 390 steps).

Each (method, budget, seed) job runs in its own single-threaded process
(``--jobs`` at a time) and writes ``jobs/<name>.json``; a finished job is not
run again, so an interrupted benchmark resumes; ``command.txt`` collects
every invocation that wrote to ``--out``. ``report`` aggregates them
into ``report.md``/``report.json`` and ``tau.png``, and pairs every method
with ``ce-functions`` (or ``ce``) on the seeds both have: per-seed tau
differences and a bootstrap interval of their mean over the probe's cells.

    python bench/ranking.py run --out results/ranking/holdout-7800 --budget 7800 --seeds 0 1 2 --jobs 2
    python bench/ranking.py report --out results/ranking/holdout-7800
    python bench/ranking.py curve --out results/ranking/curve --methods ce-lr0.1 --budget 5400 --points 0 1 2 4 10
    python bench/ranking.py run --out results/ranking/holdout-1350 --budget 1350 --methods ce nsas --set lr=0.025
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
TRUTH = REPO.parent / "shared" / "data" / "nb201" / "cifar10-test-acc.public.csv"
DATASET = "imagefolder:" + str(REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")

# Methods: (strategy, loss, extra SearchConfig keys). Passes per step decide equal-compute steps.
METHODS: dict[str, dict[str, Any]] = {
    "ce": dict(strategy="random", loss="ce"),
    "nsas": dict(strategy="random", loss="nsas"),
    "nsas-replay": dict(strategy="random", loss="nsas-replay"),
    "nsas-random": dict(strategy="random", loss="nsas-random"),
    "wpl": dict(strategy="random", loss="wpl"),
    "nsas-slice": dict(strategy="random", loss="nsas", constraint_slices=True, archive_max_age=50),
    "nsas-slice-fixed": dict(strategy="random", loss="nsas", constraint_slices=True),
    "nsas-every4": dict(strategy="random", loss="nsas", constraint_every=4, archive_max_age=50),
    "nsas-norm": dict(strategy="random", loss="nsas", normalize_loss=True),
    "ce-lr0.1": dict(strategy="random", loss="ce", lr=0.1),
    "nsas-lr0.1": dict(strategy="random", loss="nsas", lr=0.1),
    "nsas-slice-lr0.1": dict(strategy="random", loss="nsas", constraint_slices=True, archive_max_age=50, lr=0.1),
    "ce-functions": dict(strategy="random", loss="ce", sampling="functions"),
    "nsas-shared-functions": dict(strategy="random", loss="nsas", shared_batch=True, archive_max_age=50,
                                  sampling="functions"),
    "nsas-slice-functions": dict(strategy="random", loss="nsas", constraint_slices=True, archive_max_age=50,
                                 sampling="functions"),
    "nsas-slice-norm-functions": dict(strategy="random", loss="nsas", constraint_slices=True, archive_max_age=50,
                                      normalize_loss=True, sampling="functions"),
    "nsas-every8-functions": dict(strategy="random", loss="nsas", constraint_every=8, archive_max_age=50,
                                  sampling="functions"),
    "nsas-forget-norm-functions": dict(strategy="random", loss="nsas", constraint_slices=True, archive_forgetting=50,
                                       normalize_loss=True, sampling="functions"),
    # round 9: few-shot supernets split on edge 3 (3<-0) after half the epochs; the edge is the tune half's
    # (its op explains the largest share of the tune cells' accuracy variance: results/ranking/round9/)
    "ce-functions-fewshot": dict(strategy="random", loss="ce", sampling="functions", few_shot_edge=3,
                                 few_shot_warmup=0.5),
    "nsas-forget-norm-functions-fewshot": dict(strategy="random", loss="nsas", constraint_slices=True,
                                               archive_forgetting=50, normalize_loss=True, sampling="functions",
                                               few_shot_edge=3, few_shot_warmup=0.5),
    # round 11: the split edge measured on the tune half instead (one supernet per edge, seed 10: edge 2 (2<-1)
    # ranked best by loss and fused; results/ranking/split-edges/measured.md)
    "ce-functions-fewshot-e2": dict(strategy="random", loss="ce", sampling="functions", few_shot_edge=2,
                                    few_shot_warmup=0.5),
    # round 9 (issue 20 section 4): the forgetting variant's constraints only in the second half (low lr)
    "nsas-forget-norm-functions-late": dict(strategy="random", loss="nsas", constraint_slices=True,
                                            archive_forgetting=50, normalize_loss=True, sampling="functions",
                                            constraint_after=0.5),
    # round 10 (issue 20 section 4): one archive per live size class (the constraints are cells the count
    # cannot order against the current one), and a cap on each constraint at the current cell's loss
    "nsas-forget-norm-functions-size": dict(strategy="random", loss="nsas", constraint_slices=True,
                                            archive_forgetting=50, normalize_loss=True, sampling="functions",
                                            archive_by="size"),
    "nsas-forget-norm-functions-cap": dict(strategy="random", loss="nsas", constraint_slices=True,
                                           archive_forgetting=50, normalize_loss=True, sampling="functions",
                                           constraint_cap=1.0),
    "nsas-shared": dict(strategy="random", loss="nsas", shared_batch=True, archive_max_age=50),
    "nsas-random-shared": dict(strategy="random", loss="nsas-random", shared_batch=True),
    "nsas-replay-shared": dict(strategy="random", loss="nsas-replay", shared_batch=True, archive_max_age=50),
    "gdas-ce": dict(strategy="gdas", loss="ce"),
    "gdas-nsas": dict(strategy="gdas", loss="nsas"),
}
# The supernet: `nsas search --preset nb201-cpu` (its size and optimizer; the budget is set per job).
SUPERNET = dict(space="nb201", channels=8, cells=1, batch_size=64, lr=0.1, lr_min=0.001, bn="recalibrate",
                rank_by="loss")
SCORE_BATCH = 256
SCORE_IMAGES = 1024  # the preset's eval_batches x score_batch_size: `nsas rank RUN` gives the same scores
STEPS_PER_EPOCH = 390  # batches of 64 in the 25,000-image weights half


def passes_per_step(cfg: dict[str, Any]) -> float:
    """Average whole-batch passes one step of a method costs (after the archive fills)."""
    from nsas.search_config import passes_per_step as config_passes

    return config_passes(cfg)


# ---------------------------------------------------------------- truth and probe
def read_truth(path: Path) -> dict[str, float]:
    import csv
    with open(path, newline="") as f:
        return {row["arch"]: float(row["test_acc"]) for row in csv.DictReader(f)}


def half_of(arch: str) -> str:
    """``tune`` or ``holdout``: a fixed split of the truth table by a hash of the string."""
    return "tune" if hashlib.sha256(arch.encode()).digest()[0] % 2 == 0 else "holdout"


def probe_and_candidates(truth: dict[str, float], split: str, probe: int, candidates: int,
                         seed: int = 0) -> tuple[list[str], list[str]]:
    """Stratified probe (one per equal-count accuracy stratum) and extra random candidates."""
    pool = sorted((a for a in truth if half_of(a) == split), key=lambda a: (truth[a], a))
    rng = random.Random(f"probe-{seed}")
    chosen = stratified(pool, probe, rng)
    rest = sorted(set(pool) - set(chosen))
    return chosen, rng.sample(rest, candidates)


def fresh_probe(truth: dict[str, float], split: str, probe: int, generation: int = 1) -> list[str]:
    """A further stratified probe of ``split`` that shares no cell with the benchmark's probe (seed 0) or any
    earlier fresh probe.

    Every result before round 7 was read on the benchmark's probe, so a configuration chosen there is
    checked on generation 1's cells; generation 2 (round 8) is drawn from the cells neither touched, to be
    scored once, at the end, under rules committed before (results/ranking/round8/PREREGISTRATION.md).
    """
    seen = set(probe_and_candidates(truth, split, probe, 0)[0])
    for earlier in range(1, generation):
        seen |= set(fresh_probe(truth, split, probe, earlier))
    pool = sorted((a for a in truth if half_of(a) == split and a not in seen), key=lambda a: (truth[a], a))
    name = f"fresh-probe-{split}" if generation == 1 else f"fresh-probe-{generation}-{split}"
    return stratified(pool, probe, random.Random(name))


def stratified(pool: list[str], count: int, rng: random.Random) -> list[str]:
    """One random cell from each of ``count`` equal-size strata of ``pool`` (sorted by true accuracy)."""
    return [pool[int(rng.choice(list(s)))] for s in np.array_split(np.arange(len(pool)), count)]


# ---------------------------------------------------------------- one job
@dataclasses.dataclass
class Job:
    method: str
    budget: str  # "compute" or "steps"
    seed: int
    steps: int

    @property
    def name(self) -> str:
        return f"{self.method}-{self.budget}-s{self.seed}"


def make_jobs(methods: list[str], seeds: list[int], budget: int, equal_steps: bool,
              overrides: dict[str, Any] | None = None, untrained: bool = True) -> list[Job]:
    """Seed by seed: the equal-compute jobs, the equal-steps ones, and the untrained-supernet baseline."""
    def steps(method: str) -> int:
        return round(budget / passes_per_step({**METHODS[method], **(overrides or {})}))

    nsas_steps = steps("nsas")
    jobs = []
    for seed in seeds:
        for m in methods:
            jobs.append(Job(m, "compute", seed, steps(m)))
        if equal_steps:
            jobs += [Job(m, "steps", seed, nsas_steps) for m in methods if steps(m) != nsas_steps]
        if untrained:  # no training at all: what the probe's ranking owes to the architectures alone
            jobs.append(Job("ce", "untrained", seed, 0))
    return jobs


def job_config(method: str, seed: int, epochs: int, steps_per_epoch: int,
               overrides: dict[str, Any] | None = None, score_images: int = SCORE_IMAGES) -> Any:
    """The SearchConfig of one job: ``SUPERNET``, the method, ``overrides`` (``--set KEY=VALUE``), the budget.

    Its scoring settings (``eval_batches`` x ``score_batch_size``) are the benchmark's, so ``nsas rank RUN``
    at its defaults scores a job's run on the same batches as the benchmark.
    """
    from nsas.search import SearchConfig
    return SearchConfig(**{**SUPERNET, "device": "cpu", **METHODS[method], **(overrides or {})}, dataset=DATASET,
                        seed=seed, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        eval_batches=score_images // SCORE_BATCH, score_batch_size=SCORE_BATCH, probe_count=1,
                        select_rounds=1, select_samples=1, checkpoint_every=0, log_every=50)


def _search(method: str, seed: int, epochs: int, steps_per_epoch: int, run_dir: Path,
            overrides: dict[str, Any] | None = None, score_images: int = SCORE_IMAGES) -> tuple[Any, Any]:
    """A single-threaded search of ``method`` (not yet trained) and its config, with a run directory."""
    import torch
    torch.set_num_threads(1)
    from nsas.config import config_to_dict, write_yaml
    from nsas.search import Search
    cfg = job_config(method, seed, epochs, steps_per_epoch, overrides, score_images)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(run_dir / "config.yaml", config_to_dict(cfg))  # so that `nsas rank RUN` can load the run
    return cfg, Search(cfg, run_dir, progress=False)  # its metrics.jsonl opens on the first record


def job_epochs(steps: int) -> int:
    """Epochs of a job of ``steps`` steps: 10, or more when an epoch would need more batches than the data has."""
    return 1 if steps < 10 else max(10, math.ceil(steps / STEPS_PER_EPOCH))


def run_job(job: Job, out: Path, archs: list[str], score_images: int,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    epochs = job_epochs(job.steps)
    cfg, search = _search(job.method, job.seed, epochs, max(1, job.steps // epochs), out / "runs" / job.name,
                          overrides, score_images)
    t0 = time.perf_counter()
    if job.steps:
        search.train()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = search.score([search.space.parse(a) for a in archs])  # the run's own scorer: what `nsas rank RUN` gives
    score_s = time.perf_counter() - t0
    archive = search.objective.archive
    result = {
        "job": dataclasses.asdict(job), "config": dataclasses.asdict(cfg), "passes": search.passes,
        "steps": search.global_step, "train_s": train_s, "score_s": score_s,
        "archive": [str(a) for a in archive.members] if archive else [],
        "scores": {r["arch"]: [r["acc"], r["loss"]] for r in rows},
    }
    tmp = out / "jobs" / f".{job.name}.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(out / "jobs" / f"{job.name}.json")
    return result


def run_curve(method: str, seed: int, budget: int, points: list[int], out: Path, archs: list[str],
              score_images: int, epochs: int = 10, overrides: dict[str, Any] | None = None, tag: str = "") -> None:
    """One search of ``budget`` passes whose probe is scored at the end of the epochs in ``points``.

    The cosine schedule spans the whole run, so the intermediate points are
    snapshots of one long run (not separate shorter runs). Each point is
    appended to ``curve-<method>-s<seed>.jsonl`` as soon as it is scored.
    """
    name = f"{method}{tag}"
    steps = round(budget / passes_per_step({**METHODS[method], **(overrides or {})}))
    if steps > epochs * STEPS_PER_EPOCH:  # a search caps an epoch at one pass over the data
        raise SystemExit(f"curve: {steps} steps do not fit in {epochs} epochs of at most {STEPS_PER_EPOCH} "
                         f"batches; use --epochs {math.ceil(steps / STEPS_PER_EPOCH)} or more")
    cfg, search = _search(method, seed, epochs, steps // epochs, out / "runs" / f"curve-{name}-s{seed}", overrides,
                          score_images)
    parsed = [search.space.parse(a) for a in archs]
    for epoch in points:
        if epoch:
            search.train(until_epoch=epoch)  # a snapshot of the one run: the schedule spans all its epochs
        rows = search.score(parsed)
        with open(out / f"curve-{name}-s{seed}.jsonl", "a") as f:
            f.write(json.dumps({"method": name, "overrides": overrides or {}, "seed": seed, "epoch": epoch, "passes": search.passes,
                                "steps": search.global_step, "train_s": search.elapsed,
                                "scores": {r["arch"]: [r["acc"], r["loss"]] for r in rows}}) + "\n")


def _worker(args: tuple[Job, Path, list[str], int, dict[str, Any]]) -> str:
    job, out, archs, images, overrides = args
    if (out / "jobs" / f"{job.name}.json").exists():  # done by another runner meanwhile
        return f"{job.name} already done"
    started = time.time()
    run_job(job, out, archs, images, overrides)
    return f"{job.name} done in {time.time() - started:.0f}s"


# ---------------------------------------------------------------- report
def score_vector(scores: dict[str, list[float]], cells: list[str], rank_by: str = "acc") -> np.ndarray:
    """Each cell's score, higher is better: the inherited accuracy with ties broken by the lower loss, or
    (``rank_by="loss"``, a run's ``rank_by``) minus the validation loss."""
    if rank_by == "loss":
        return np.array([-scores[a][1] for a in cells])
    return np.array([scores[a][0] - 1e-6 * scores[a][1] for a in cells])


def metrics(scores: dict[str, list[float]], truth: dict[str, float], probe: list[str],
            candidates: list[str], rank_by: str = "acc") -> dict[str, Any]:
    """Tau (by ``rank_by``, also by accuracy and by loss alone), CI, within-size, Spearman, P@10%, the pick."""
    from nsas.rankstats import bootstrap_ci, kendall_tau, live_parameters, precision_at_k, spearman_rho, within_groups_tau
    s = score_vector(scores, probe, rank_by)
    t = np.array([truth[a] for a in probe])
    within = within_groups_tau(s, t, live_parameters(probe, "nb201"))  # among cells of the same size
    k = max(1, len(probe) // 10)
    ci = bootstrap_ci(kendall_tau, s, t, resamples=500)
    pool = probe + candidates
    best = pool[int(np.argmax(score_vector(scores, pool, rank_by)))]
    by_acc, by_loss = (kendall_tau(score_vector(scores, probe, by), t) for by in ("acc", "loss"))
    return {"tau": kendall_tau(s, t), "tau_ci": [ci.low, ci.high], "rank_by": rank_by, "tau_acc": by_acc,
            "tau_loss": by_loss, "tau_within_size": within,
            "spearman": spearman_rho(s, t),
            "p_at_10": precision_at_k(s, t, k), "selected": best, "selected_acc": truth[best]}


OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def baseline_metrics(truth: dict[str, float], probe: list[str], candidates: list[str]) -> dict[str, Any]:
    """:func:`metrics` of the training-free baseline: each cell's live parameter count as its score."""
    from nsas.rankstats import live_parameters
    pool = probe + candidates
    return metrics(dict(zip(pool, ([p, 0.0] for p in live_parameters(pool, "nb201")))), truth, probe, candidates)


PAIRED_WITH = ("ce-functions", "ce")  # the report pairs every method with the first of these that it has


def paired_difference(runs: list[dict[str, list[float]]], seeds: list[int], reference: list[dict[str, list[float]]],
                      reference_seeds: list[int], truth: dict[str, float], probe: list[str],
                      resamples: int = 500, rank_by: tuple[str, str] = ("acc", "acc")) -> dict[str, Any]:
    """Tau of ``runs`` minus tau of ``reference`` on the seeds both have, and a bootstrap CI of the mean.

    Each resample draws the probe's cells once with replacement and recomputes every seed's difference on
    them, so the interval is that of the mean difference under cell sampling (the seeds are fixed).
    """
    from nsas.rankstats import kendall_tau
    common = sorted(set(seeds) & set(reference_seeds))
    if not common:
        return {"seeds": [], "differences": [], "mean": float("nan"), "ci": [float("nan")] * 2}
    mine = [score_vector(runs[seeds.index(s)], probe, rank_by[0]) for s in common]
    theirs = [score_vector(reference[reference_seeds.index(s)], probe, rank_by[1]) for s in common]
    t = np.array([truth[a] for a in probe])
    differences = [kendall_tau(m, t) - kendall_tau(r, t) for m, r in zip(mine, theirs)]
    rng = np.random.default_rng(0)
    means = []
    for idx in rng.integers(0, len(probe), size=(resamples, len(probe))):
        means.append(np.mean([kendall_tau(m[idx], t[idx]) - kendall_tau(r[idx], t[idx])
                              for m, r in zip(mine, theirs)]))
    low, high = np.quantile(means, [0.025, 0.975])
    return {"seeds": common, "differences": differences, "mean": float(np.mean(differences)),
            "ci": [float(low), float(high)]}


def op_bias(scores: dict[str, list[float]], probe: list[str], rank_by: str = "acc") -> dict[str, float]:
    """Kendall tau between each op's count in the cell and the score, over the probe (the truth: ``truth``)."""
    from nsas.rankstats import kendall_tau
    s = score_vector(scores, probe, rank_by)
    return {op: kendall_tau(np.array([a.count(op + "~") for a in probe], dtype=float), s) for op in OPS}


def report(out: Path, truth: dict[str, float], probe: list[str], candidates: list[str]) -> dict[str, Any]:
    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    runs: dict[tuple[str, str], list[dict[str, list[float]]]] = {}  # each group's seeds' scores
    bn_modes: set[str] = set()
    rank_bys: set[str] = set()
    for path in sorted((out / "jobs").glob("*.json")):
        job = json.loads(path.read_text())
        config = job.get("config", {})  # jobs before `bn` and `rank_by` existed: batch statistics, by accuracy
        bn_modes.add(config.get("bn", "batch"))
        by = config.get("rank_by", "acc")
        rank_bys.add(by)
        rows.append({**job["job"], "passes": job["passes"], "train_s": job["train_s"], "score_s": job["score_s"],
                     **metrics(job["scores"], truth, probe, candidates, by),
                     "op_bias": op_bias(job["scores"], probe, by)})
        groups.setdefault((rows[-1]["method"], rows[-1]["budget"]), []).append(rows[-1])
        runs.setdefault((rows[-1]["method"], rows[-1]["budget"]), []).append(job["scores"])
    summary = []
    for (method, budget), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        taus = [r["tau"] for r in rs]
        # the seeds' supernets as one ensemble: each cell's accuracy and loss averaged over the seeds
        seeds = runs[method, budget]
        mean_scores = {a: np.mean([run[a] for run in seeds], axis=0).tolist() for a in probe + candidates}
        summary.append({
            "tau_seed_ensemble": metrics(mean_scores, truth, probe, candidates, rs[0]["rank_by"])["tau"]
            if len(rs) > 1 else None, "rank_by": rs[0]["rank_by"],
            "method": method, "budget": budget, "seeds": [r["seed"] for r in rs], "steps": rs[0]["steps"],
            "passes": float(np.mean([r["passes"] for r in rs])), "tau": taus,
            "tau_mean": float(np.mean(taus)), "tau_std": float(np.std(taus, ddof=1)) if len(taus) > 1 else 0.0,
            "tau_acc_mean": float(np.mean([r["tau_acc"] for r in rs])),
            "tau_loss_mean": float(np.mean([r["tau_loss"] for r in rs])),
            "tau_within_size_mean": float(np.mean([r["tau_within_size"] for r in rs])),
            "spearman_mean": float(np.mean([r["spearman"] for r in rs])),
            "p_at_10_mean": float(np.mean([r["p_at_10"] for r in rs])),
            "selected_acc": [r["selected_acc"] for r in rs],
            "selected_acc_mean": float(np.mean([r["selected_acc"] for r in rs])),
            "train_s_mean": float(np.mean([r["train_s"] for r in rs])),
            "score_s_mean": float(np.mean([r["score_s"] for r in rs])),
            "tau_ci": [r["tau_ci"] for r in rs],
            "op_bias": {op: float(np.mean([r["op_bias"][op] for r in rs])) for op in OPS},
        })
    size = baseline_metrics(truth, probe, candidates)
    reference = next((m for m in PAIRED_WITH if (m, "compute") in runs), None)
    paired = [] if reference is None else [
        {"method": method, "budget": budget, "reference": reference,
         **paired_difference(runs[method, budget], [r["seed"] for r in groups[method, budget]],
                             runs[reference, "compute"], [r["seed"] for r in groups[reference, "compute"]],
                             truth, probe, rank_by=(groups[method, budget][0]["rank_by"],
                                                    groups[reference, "compute"][0]["rank_by"]))}
        for method, budget in sorted(runs) if (method, budget) != (reference, "compute") and budget != "untrained"]
    paired = [p for p in paired if p["seeds"]]
    result = {"probe": len(probe), "candidates": len(candidates), "jobs": rows, "summary": summary,
              "live_parameters": size, "paired": paired}
    (out / "report.json").write_text(json.dumps(result, indent=1))
    lines = ["| method | budget | steps | passes | Kendall tau per seed [95% CI] | tau mean ± std | tau by acc / by loss (mean) | "
             "tau of the seeds' mean score | tau within equal size (mean) | Spearman | P@10% | "
             "selected true acc per seed (mean) | train s | score s |",
             "|" + "---|" * 14,
             f"| live parameter count (no training) | - | 0 | 0 | {size['tau']:.3f} [{size['tau_ci'][0]:.2f}, "
             f"{size['tau_ci'][1]:.2f}] | | | | | {size['spearman']:.3f} | {size['p_at_10']:.2f} | "
             f"{size['selected_acc']:.2f} | 0 | 0 |"]
    for g in summary:
        per_seed = ", ".join(f"{t:.3f} [{lo:.2f}, {hi:.2f}]" for t, (lo, hi) in zip(g["tau"], g["tau_ci"]))
        accs = ", ".join(f"{a:.2f}" for a in g["selected_acc"])
        lines.append(f"| {g['method']} | equal {g['budget']} | {g['steps']} | {g['passes']:.0f} | {per_seed} | "
                     f"{g['tau_mean']:.3f} ± {g['tau_std']:.3f} | {g['tau_acc_mean']:.3f} / {g['tau_loss_mean']:.3f} | "
                     f"{'' if g['tau_seed_ensemble'] is None else format(g['tau_seed_ensemble'], '.3f')} | "
                     f"{g['tau_within_size_mean']:.3f} | {g['spearman_mean']:.3f} | "
                     f"{g['p_at_10_mean']:.2f} | {accs} ({g['selected_acc_mean']:.2f}) | "
                     f"{g['train_s_mean']:.0f} | {g['score_s_mean']:.0f} |")
    true_bias = op_bias({a: [truth[a], 0.0] for a in probe}, probe)
    lines += ["", "Op bias: Kendall tau between the number of each op in the cell and the score (mean over seeds); "
              "the first row is the truth's own.", "",
              "| method | budget | " + " | ".join(OPS) + " |", "|" + "---|" * (len(OPS) + 2),
              "| NAS-Bench-201 truth | | " + " | ".join(f"{true_bias[op]:+.2f}" for op in OPS) + " |"]
    lines += [f"| {g['method']} | equal {g['budget']} | " + " | ".join(f"{g['op_bias'][op]:+.2f}" for op in OPS)
              + " |" for g in summary]
    if paired:
        lines += ["", f"Paired with {reference} (equal compute) on the same seeds: the difference in Kendall tau per "
                  "seed, and its mean over the seeds with a 95% bootstrap interval over the probe's cells (both "
                  "rankings resampled together; seed-to-seed spread is the per-seed column).", "",
                  "| method | budget | seeds | tau difference per seed | mean [95% CI over cells] |", "|---|---|---|---|---|"]
        lines += [f"| {p['method']} | equal {p['budget']} | {', '.join(map(str, p['seeds']))} | "
                  + ", ".join(f"{d:+.3f}" for d in p["differences"])
                  + f" | {p['mean']:+.3f} [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}] |" for p in paired]
    scorer = {"batch": "each 256-image scoring batch's own BatchNorm statistics",
              "recalibrate": "BatchNorm statistics of each cell's own, from training batches (bn: recalibrate)"}
    lines += ["", "Scored on " + " and on ".join(scorer[m] for m in sorted(bn_modes)) + "."]
    ranked = {"acc": "the accuracy (ties broken by the lower loss)", "loss": "the validation loss alone (lower is better)"}
    lines += ["", "Kendall tau is of the score the run's `rank_by` names, as its selection and probes rank: "
              + " or ".join(ranked[b] for b in sorted(rank_bys)) + "; 'tau by acc / by loss' ranks by the accuracy "
              "(ties by loss) and by the loss alone, whatever the run's score; 'tau of the "
              "seeds' mean score' ranks by each cell's accuracy and loss averaged over the seeds' supernets (an ensemble "
              "of all the seeds: that many times the compute). The first row ranks by each cell's live parameter count (the "
              "parameters of the operations that reach its output; no training); 'tau within equal size' is the "
              "concordance (C - D) / (C + D) over the probe's pairs of cells with the same live parameter count: "
              "what the supernet knows that counting parameters cannot tell.", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    _figure(out, summary, size["tau"])
    return result


def _figure(out: Path, summary: list[dict[str, Any]], baseline: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(summary)), 3.5))  # room for every label
    # long method names on two lines, so that neighbouring labels do not overlap
    labels = [g["method"].replace("-functions", "\n-functions") + f"\n({g['budget']})" for g in summary]
    for i, g in enumerate(summary):
        color = {"compute": "C0", "steps": "C1"}.get(g["budget"], "C7")
        ax.scatter([i] * len(g["tau"]), g["tau"], color=color, s=18)
        ax.errorbar(i, g["tau_mean"], yerr=g["tau_std"], color="k", capsize=4, marker="_", markersize=14)
    ax.set_xticks(range(len(summary)), labels, fontsize=7)
    ax.set_ylabel("Kendall tau vs NAS-Bench-201")
    ax.set_title("probe ranking quality (blue: equal compute, orange: equal steps, grey: untrained)", fontsize=9)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axhline(baseline, color="C3", lw=1, ls="--")
    ax.text(0.01, baseline, f"live parameter count, no training: {baseline:.2f}", transform=ax.get_yaxis_transform(),
            ha="left", va="bottom", color="C3", fontsize=7)
    ax.set_ylim(top=max(ax.get_ylim()[1], baseline + 0.1))
    fig.tight_layout()
    fig.savefig(out / "tau.png", dpi=120)
    plt.close(fig)


def curve_report(out: Path, truth: dict[str, float], probe: list[str], candidates: list[str]) -> list[dict]:
    """Tau at every scored point of the ``curve-*.jsonl`` runs: ``curve.md``, ``curve.json``, ``curve.png``."""
    points = []
    for path in sorted(out.glob("curve-*.jsonl")):
        for line in path.read_text().splitlines():
            p = json.loads(line)
            m = metrics(p["scores"], truth, probe, candidates)
            points.append({k: p[k] for k in ("method", "seed", "epoch", "passes", "steps", "train_s")} | m)
    (out / "curve.json").write_text(json.dumps(points, indent=1))
    baseline = baseline_metrics(truth, probe, candidates)["tau"]
    lines = ["| method | seed | steps | passes | train s | Kendall tau [95% CI] | tau within equal size | Spearman | "
             "selected true acc |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {p['method']} | {p['seed']} | {p['steps']} | {p['passes']} | {p['train_s']:.0f} | "
              f"{p['tau']:.3f} [{p['tau_ci'][0]:.2f}, {p['tau_ci'][1]:.2f}] | {p['tau_within_size']:.3f} | "
              f"{p['spearman']:.3f} | {p['selected_acc']:.2f} |" for p in points]
    lines += ["", f"The live parameter count alone (no training) ranks this probe at tau {baseline:.3f}."]
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    methods = sorted({p["method"] for p in points})
    for method, seed in sorted({(p["method"], p["seed"]) for p in points}):  # one line per run
        mine = sorted((p for p in points if (p["method"], p["seed"]) == (method, seed)), key=lambda p: p["passes"])
        x, color = [p["passes"] for p in mine], f"C{methods.index(method)}"
        ax.plot(x, [p["tau"] for p in mine], marker="o", color=color, label=f"{method} seed {seed}",
                ls=("-", "--", ":", "-.")[seed % 4])
        ax.fill_between(x, [p["tau_ci"][0] for p in mine], [p["tau_ci"][1] for p in mine], color=color, alpha=0.12)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axhline(baseline, color="0.3", lw=1, ls="--", label=f"live parameter count ({baseline:.2f})")
    ax.set_xlabel("single-path passes (whole-batch equivalents)")
    ax.set_ylabel("Kendall tau vs NAS-Bench-201")
    ax.set_title("ranking quality along one run (95% bootstrap bands)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)
    plt.close(fig)
    return points


# ---------------------------------------------------------------- CLI
def record_command(out: Path, argv: list[str] | None) -> None:
    """Append this invocation to ``out/command.txt`` (the history of the runs that filled ``out``)."""
    with open(out / "command.txt", "a") as f:
        f.write("python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "report", "curve", "curve-report"))
    parser.add_argument("--points", nargs="+", type=int, default=[0, 1, 2, 4, 10],
                        help="curve: epochs (of --epochs) after which the probe is scored")
    parser.add_argument("--epochs", type=int, default=10, help="curve: epochs of the run (its cosine schedule)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override search settings of every method (YAML values), e.g. lr=0.1 channels=16")
    parser.add_argument("--tag", default="", help="curve: suffix of the curve's method name (for --set runs)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--truth", type=Path, default=TRUTH)
    parser.add_argument("--split", choices=("tune", "holdout"), default="holdout")
    parser.add_argument("--methods", nargs="+", default=["ce", "ce-functions", "nsas", "nsas-shared"],
                        choices=sorted(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=7800, help="single-path passes per search")
    parser.add_argument("--no-equal-steps", action="store_true")
    parser.add_argument("--probe", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=0,
                        help="random held-out architectures scored besides the probe for selection")
    parser.add_argument("--score-images", type=int, default=SCORE_IMAGES)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-untrained", action="store_true", help="run: no untrained-supernet baseline jobs")
    parser.add_argument("--also-fresh", type=int, nargs="+", default=[], metavar="GENERATION",
                        help="run: also score these fresh probes' cells (1, 2; see fresh_probe) with every job")
    args = parser.parse_args(argv)
    if not args.truth.is_file():
        parser.error(f"truth table not found: {args.truth}")
    truth = read_truth(args.truth)
    probe, candidates = probe_and_candidates(truth, args.split, args.probe, args.candidates)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.action == "curve-report":
        curve_report(args.out, truth, probe, candidates)
        print((args.out / "curve.md").read_text())
        return 0
    overrides = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    if args.action == "curve":
        record_command(args.out, argv)
        for method in args.methods:
            for seed in args.seeds:
                run_curve(method, seed, args.budget, args.points, args.out, probe + candidates, args.score_images,
                          args.epochs, overrides, args.tag)
        curve_report(args.out, truth, probe, candidates)
        return 0
    if args.action == "run":
        (args.out / "jobs").mkdir(exist_ok=True)
        record_command(args.out, argv)
        jobs = [j for j in make_jobs(args.methods, args.seeds, args.budget, not args.no_equal_steps, overrides,
                                     untrained=not args.no_untrained)
                if not (args.out / "jobs" / f"{j.name}.json").exists()]
        print(f"{len(jobs)} jobs: " + ", ".join(f"{j.name} ({j.steps} steps)" for j in jobs), flush=True)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from nsas.data import load_dataset
        load_dataset(DATASET, None)  # decode (and cache) once here: the pool's daemonic workers cannot start decoders
        extra = [a for g in args.also_fresh for a in fresh_probe(truth, args.split, args.probe, g)]
        work = [(j, args.out, list(dict.fromkeys(probe + candidates + extra)), args.score_images, overrides)
                for j in jobs]
        started = time.time()
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for line in pool.imap_unordered(_worker, work):
                print(f"[{time.time() - started:.0f}s] {line}", flush=True)
    result = report(args.out, truth, probe, candidates)
    print((args.out / "report.md").read_text())
    return 0 if result["jobs"] else 1


if __name__ == "__main__":
    sys.exit(main())
