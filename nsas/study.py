"""`nsas study`: does NSAS make the supernet's ranking agree with stand-alone training?

    nsas study --space nb201 --dataset cifar10-mini --methods random:ce,random:nsas \\
        --seeds 3 --archs 20 --equal-compute --out runs/study

Stages (each skipped when its output exists, so an interrupted study resumes
where it stopped):

1. searches: one search per method and seed (``searches/<method>-s<seed>``);
   with ``--equal-compute`` also one per cheaper method whose epochs are
   scaled so that it spends as many single-path passes as the most expensive
   method (``searches/<method>-s<seed>-compute``).
2. ground truth: a fixed set of architectures (each search's best pick, then
   random ones up to ``--archs``), each trained stand-alone with the proxy
   recipe (``truth/<index>``). With ``--truth FILE`` (any truth table, e.g. a
   benchmark's published accuracies) nothing is trained: the set is a seeded
   sample of ``--archs`` architectures of the table, stratified over its
   metric (:func:`nsas.truth.stratified_sample`), and their values are the
   truth; picks are judged by the table's value when it has one.
3. scores: every search's supernet scores every ground-truth architecture
   with inherited weights on its validation half (``scores/<run>.csv``).
4. report: Kendall tau and Spearman rho per method and seed, mean and spread,
   at equal steps and at equal compute; the stand-alone accuracy of each
   method's picks (paper Figure 4); search cost as wall time and passes
   (``report.md``, ``report.json``, PNG figures).

Under torchrun (``torchrun --nproc-per-node N -m nsas study ...``) the
searches, the ground-truth trainings and the scores are shared out among the
ranks (job i goes to rank i mod N; each runs as a single process on its
rank's device); the ranks wait for each other between stages, and rank 0
reads the other ranks' result files and writes the report. The study
directory must be on a file system every rank sees.

(Long for one module: the four stages share the Study object's state, so they stay together; the figures
and report.md's text live in nsas/study_figures.py. ``nsas.study(cfg, out)`` (:func:`study`) is the command as a function.)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nsas import distributed
from nsas.config import (add_config_flag, add_config_flags, build_config, check_device, config_to_dict, option,
                         print_config, read_yaml, write_yaml)
from nsas.correlate import kendall_tau, live_parameters, spearman_rho, within_groups_tau
from nsas.errors import NsasError
from nsas.evaluate import rank_value
from nsas.objectives import loss_names
from nsas.registry import CLI_HINT
from nsas.rundir import write_json, write_text_atomic
from nsas.search_config import passes_per_step as config_passes
from nsas.spaces import get_space, space_names
from nsas.strategies import strategy_names
from nsas.study_figures import fmt as _fmt
from nsas.truth import read_truth, stratified_sample


def _methods(text: str) -> list[str]:
    """``"random:ce, random:nsas"`` -> ["random:ce", "random:nsas"]."""
    return [m.strip() for m in text.split(",") if m.strip()]


@dataclass
class StudyConfig:
    """A ranking study (recorded as study.yaml in its directory)."""

    space: str = option("nb201", "search space", choices=space_names)
    dataset: str = option("cifar10-mini", "data set of the searches and the ground truth")
    data_dir: str | None = option(None, "where data sets live (none: $NSAS_DATA or ~/.cache/nsas/data)",
                                  metavar="DIR")
    methods: list[str] = option(default_factory=lambda: ["random:ce", "random:nsas"],
                                help="comma-separated STRATEGY:LOSS list", parse=_methods, metavar="S:L,...")
    seeds: int = option(3, "search seeds per method")
    archs: int = option(20, "ground-truth architectures K (each search's picks first, then random ones)")
    picks: int = option(1, "best selected architectures of each search that join the ground-truth set")
    equal_compute: bool = option(False, "also run the cheaper methods with as many single-path passes as the "
                                        "costliest one")
    search_epochs: int = option(2, "epochs of each search")
    score_batches: int = option(80, "validation batches each supernet scores every architecture on (as "
                                    "eval_batches of `nsas search`)")
    truth_recipe: str = option("proxy", "`nsas train` recipe of the ground truth", choices=("proxy", "paper"))
    truth: str | None = option(None, "truth table (CSV/JSON/JSONL: arch + a metric, e.g. a benchmark's "
                                     "accuracies from `nsas truth import`): no stand-alone training; archs "
                                     "architectures sampled from it (seeded, stratified over the metric)",
                               metavar="FILE")
    truth_key: str | None = option(None, "truth column of truth (none: acc if present, else its only "
                                         "column)", metavar="KEY")
    search: dict[str, Any] = option(default_factory=dict, help="any other `nsas search` config key")
    train: dict[str, Any] = option(default_factory=dict,
                                   help="any `nsas train` config key (over the recipe)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "seed of the random part of the ground-truth set")

    def __post_init__(self) -> None:
        if self.space not in space_names():
            raise NsasError(f"unknown search space {self.space!r}; choose one of {', '.join(space_names())}; "
                            f"{CLI_HINT}")
        for method in self.methods:
            parse_method(method)
        if len(set(self.methods)) != len(self.methods) or not self.methods:
            raise NsasError("--methods must name at least one method, each once")
        for name in ("seeds", "archs", "search_epochs", "score_batches"):
            if getattr(self, name) < 1:
                raise NsasError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.picks < 0:
            raise NsasError(f"picks must not be negative, got {self.picks}")
        if self.archs < 3:
            raise NsasError("a ranking study needs at least 3 ground-truth architectures (--archs)")
        check_device(self.device)

    def check_runs(self) -> None:
        """Build the search and ground-truth configs once, so a bad ``search:``/``train:`` value stops the study now."""
        from nsas.search import SearchConfig
        from nsas.train import recipe_config

        strategy, loss = parse_method(self.methods[0])
        build_config(SearchConfig, {**self.search, "space": self.space, "dataset": self.dataset, "strategy": strategy,
                                    "loss": loss, "device": self.device, "data_dir": self.data_dir},
                     source="study config, search:")
        recipe_config(self.space, self.truth_recipe, **{"dataset": self.dataset, "device": self.device, **self.train})


def parse_method(text: str) -> tuple[str, str]:
    """``"random:nsas"`` -> ("random", "nsas"), validated."""
    strategy, _, loss = text.partition(":")
    if strategy not in strategy_names() or loss not in loss_names():
        raise NsasError(f"method {text!r} is not STRATEGY:LOSS with a strategy in {', '.join(strategy_names())} "
                        f"and a loss in {', '.join(loss_names())}")
    return strategy, loss


def passes_per_step(method: str, search: dict[str, Any]) -> float:
    """Single-path passes one step of ``method`` costs once its archive is full (the search keys ``search``)."""
    strategy, loss = parse_method(method)
    return config_passes({**search, "strategy": strategy, "loss": loss})


@dataclass(frozen=True)
class SearchJob:
    """One search of the study."""

    method: str
    seed: int
    epochs: int
    budget: str  # "steps" (the method's own epochs) or "compute" (epochs scaled to equal passes)

    @property
    def name(self) -> str:
        return f"{self.method.replace(':', '-')}-s{self.seed}" + ("-compute" if self.budget == "compute" else "")


def search_jobs(cfg: StudyConfig) -> list[SearchJob]:
    """Every search of the study: equal steps, then (optionally) equal compute."""
    jobs = [SearchJob(m, s, cfg.search_epochs, "steps") for m in cfg.methods for s in range(cfg.seeds)]
    if cfg.equal_compute:
        top = max(passes_per_step(m, cfg.search) for m in cfg.methods)
        for m in cfg.methods:
            epochs = round(cfg.search_epochs * top / passes_per_step(m, cfg.search))
            if epochs > cfg.search_epochs:  # otherwise its equal-steps runs already match the budget
                jobs += [SearchJob(m, s, epochs, "compute") for s in range(cfg.seeds)]
    return jobs


class Study:
    """The stages of a study in ``out_dir``; each stage skips what is already done."""

    def __init__(self, cfg: StudyConfig, out_dir: str | Path, *, progress: bool = True) -> None:
        self.cfg, self.dir, self.progress = cfg, Path(out_dir), progress
        self.space = get_space(cfg.space)
        self.jobs = search_jobs(cfg)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.group = distributed.waiting_group()  # stage barriers may wait for hours

    def log(self, message: str) -> None:
        if self.progress:
            print(message if self.world == 1 else f"[rank {self.rank}] {message}", flush=True)

    def mine(self, index: int) -> bool:
        """Whether job ``index`` of a stage is this rank's."""
        return index % self.world == self.rank

    def wait(self) -> None:
        """All ranks finished the stage (their files are written)."""
        distributed.barrier(self.group)

    # ---- 1. searches ---------------------------------------------------
    def search_config(self, job: SearchJob) -> Any:
        from nsas.search import SearchConfig

        strategy, loss = parse_method(job.method)
        values = {**self.cfg.search, "space": self.cfg.space, "dataset": self.cfg.dataset,
                  "data_dir": self.cfg.data_dir, "strategy": strategy, "loss": loss, "seed": job.seed,
                  "epochs": job.epochs, "device": self.cfg.device}
        return build_config(SearchConfig, values, source="study search config")

    def run_searches(self) -> None:
        from nsas.search import search

        for i, job in enumerate(self.jobs):
            run = self.dir / "searches" / job.name
            if not self.mine(i) or (run / "summary.json").exists():
                continue
            resume = (run / "checkpoint.pt").exists()
            self.log(f"[study] search {i + 1}/{len(self.jobs)}: {job.name} ({job.epochs} epochs)"
                     + (" - resuming" if resume else ""))
            with distributed.local():
                # the study owns its sub-runs: one killed before its first checkpoint starts over (force)
                search(self.search_config(job), run, resume=resume, progress=self.progress, force=not resume)
        self.wait()

    # ---- 2. ground truth -----------------------------------------------
    def truth_archs(self) -> list[str]:
        """The fixed ground-truth set: picks of every equal-steps search, then random ones (saved once)."""
        path = self.dir / "truth_archs.json"
        if not path.exists() and distributed.is_main():
            write_json(path, self._choose_truth_archs())
        self.wait()
        return read_json(path)

    def _choose_truth_archs(self) -> list[str]:
        if self.cfg.truth:
            return stratified_sample(self.table()[1], self.cfg.archs, seed=f"study-truth-{self.cfg.seed}")
        archs: list[str] = []
        for job in self.jobs:
            selected = read_json(self.dir / "searches" / job.name / "selected.json")
            for row in selected[: self.cfg.picks]:
                if row["arch"] not in archs:
                    archs.append(row["arch"])
        rng = random.Random(f"study-truth-{self.cfg.seed}")
        tries = 0
        while len(archs) < self.cfg.archs and tries < 100 * self.cfg.archs:
            arch = str(self.space.sample(rng))
            tries += 1
            if arch not in archs:
                archs.append(arch)
        return archs

    def table(self) -> tuple[str, dict[str, float]]:
        """The ``--truth`` table: its column and canonical arch -> value (read once)."""
        if not hasattr(self, "_table"):
            self._table = read_truth(self.cfg.truth, self.cfg.truth_key, space=self.cfg.space)
        return self._table

    def truth_key(self) -> str:
        """The truth column: the table's, else the stand-alone result's test metric."""
        if self.cfg.truth:
            return self.table()[0]
        return "test_loss" if self.space.kind == "text" else "test_acc"

    def train_truth(self, archs: list[str]) -> list[dict[str, Any]]:
        """Stand-alone proxy training of every ground-truth architecture (the table's values with ``--truth``)."""
        if self.cfg.truth:
            key, values = self.table()
            return [{key: values[a], "parameters": None, "wall_seconds": 0.0} for a in archs]
        from nsas.train import recipe_config, train

        overrides = {"dataset": self.cfg.dataset, "data_dir": self.cfg.data_dir, "device": self.cfg.device,
                     **self.cfg.train}
        tcfg = recipe_config(self.cfg.space, self.cfg.truth_recipe, **overrides)
        for i, arch in enumerate(archs):
            run = self.dir / "truth" / f"{i:03d}"
            if not self.mine(i) or (run / "result.json").exists():
                continue
            resume = (run / "checkpoint.pt").exists()
            self.log(f"[study] ground truth {i + 1}/{len(archs)}: {arch}")
            with distributed.local():
                train(tcfg, arch, run, resume=resume, progress=self.progress, force=not resume)
        self.wait()  # then every result.json exists
        return [read_json(self.dir / "truth" / f"{i:03d}" / "result.json") for i in range(len(archs))]

    # ---- 3. scores -----------------------------------------------------
    def score(self, job: SearchJob, archs: list[str]) -> None:
        """Inherited-weight accuracy of every ground-truth architecture under one search's supernet (this rank's)."""
        from nsas.device import resolve_device
        from nsas.evaluate import score_archs
        from nsas.rank import write_scores
        from nsas.search_data import fixed_batches, load_search_run

        path = self.dir / "scores" / f"{job.name}.csv"
        if not path.exists() and self.mine(self.jobs.index(job)):
            run_cfg, supernet, data, _ = load_search_run(self.dir / "searches" / job.name,
                                                         resolve_device(self.cfg.device))
            batches = fixed_batches(data.score, self.cfg.score_batches)
            # the run's own BatchNorm mode, as Search.score and `nsas rank RUN` use it
            recalibrate = (fixed_batches(data.train, run_cfg.recalibrate_batches)
                           if run_cfg.bn == "recalibrate" else [])
            rows = score_archs(supernet, [self.space.parse(a) for a in archs], batches, recalibrate=recalibrate,
                               seed=run_cfg.seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_scores(path, rows, kind=self.space.kind)

    def scores(self, job: SearchJob, archs: list[str]) -> list[dict[str, Any]]:
        """The scores :meth:`score` wrote."""
        from nsas.correlate import read_table

        table = read_table(self.dir / "scores" / f"{job.name}.csv")
        return [{"arch": a, **table[a]} for a in archs]

    # ---- 4. report -----------------------------------------------------
    def run(self) -> dict[str, Any]:
        """All stages, then the report."""
        start = time.time()
        self.run_searches()
        archs = self.truth_archs()
        truth = self.train_truth(archs)
        key = self.truth_key()
        truth_values = [r[key] * (-1 if self.space.kind == "text" else 1) for r in truth]
        with distributed.local():
            for job in self.jobs:
                self.score(job, archs)
        self.wait()
        if not distributed.is_main():  # rank 0 gathers the other ranks' files into the report
            return {}
        per_run = []
        try:  # the training-free yardstick; a plug-in space whose network cannot be built bare has none
            size = live_parameters(archs, self.space.name)
        except Exception as err:  # noqa: BLE001 - a missing baseline must not cost the study its report
            self.log(f"[study] no live-parameter baseline for space {self.space.name!r}: {err}")
            size = np.full(len(archs), math.nan)
        for job in self.jobs:
            scores = self.scores(job, archs)
            values = [rank_value(s, self.cfg.search.get("rank_by", "acc"), self.space.kind) for s in scores]
            summary = read_json(self.dir / "searches" / job.name / "summary.json")
            selected = read_json(self.dir / "searches" / job.name / "selected.json")
            picks = [r["arch"] for r in selected[: max(1, self.cfg.picks)]]
            per_run.append({
                "run": job.name, "method": job.method, "seed": job.seed, "budget": job.budget,
                "epochs": job.epochs, "kendall_tau": kendall_tau(values, truth_values),
                "spearman_rho": spearman_rho(values, truth_values),
                "tau_within_size": within_groups_tau(values, truth_values, size), "passes": summary["passes"],
                "steps": summary["steps"], "search_seconds": summary["train_seconds"],
                "pick_truth": self._pick_truth(picks, archs, truth, key),
                "scores": values,
            })
        write_text_atomic(self.dir / "truth.csv", f"arch,{key}\n" + "".join(
            f"\"{a}\",{t[key]!r}\n" for a, t in zip(archs, truth)))  # for `nsas correlate` and `nsas plot --truth`
        report = build_report(self.cfg, archs, truth, key, per_run)
        report["live_parameters"] = {"kendall_tau": kendall_tau(size, truth_values),
                                     "spearman_rho": spearman_rho(size, truth_values), "values": size.tolist()}
        report["study_seconds_this_invocation"] = time.time() - start
        write_json(self.dir / "report.json", report)
        from nsas.study_figures import render_markdown, write_figures

        figures = write_figures(self.dir, report)
        self.files = [self.dir / n for n in ("report.md", "report.json", "truth.csv", *figures)]
        write_text_atomic(self.dir / "report.md", render_markdown(self.cfg, report, figures))
        self.log(f"[study] report: {self.dir / 'report.md'}")
        return report


    def _pick_truth(self, picks: list[str], archs: list[str], truth: list[dict[str, Any]], key: str) -> list[float]:
        """The true value of each pick that has one (in the ground-truth set, or in the ``--truth`` table)."""
        values = self.table()[1] if self.cfg.truth else {a: t[key] for a, t in zip(archs, truth)}
        return [values[p] for p in picks if p in values]


def read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise NsasError(f"cannot read {path}: {err}") from None


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return float("nan"), float("nan")
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


def build_report(cfg: StudyConfig, archs: list[str], truth: list[dict[str, Any]], key: str,
                 per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per method and budget: tau/rho mean and spread, picks' truth, cost."""
    groups = []
    for budget in ("steps", "compute"):
        for method in cfg.methods:
            runs = [r for r in per_run if r["method"] == method and r["budget"] == budget]
            if budget == "compute" and not runs:  # the costliest method is its own equal-compute run
                runs = [r for r in per_run if r["method"] == method and r["budget"] == "steps"] \
                    if cfg.equal_compute else []
            if not runs:
                continue
            tau_mean, tau_std = _mean_std([r["kendall_tau"] for r in runs])
            rho_mean, rho_std = _mean_std([r["spearman_rho"] for r in runs])
            within_mean = _mean_std([r["tau_within_size"] for r in runs])[0]
            picks = [v for r in runs for v in r["pick_truth"]]
            groups.append({
                "method": method, "budget": budget, "seeds": len(runs),
                "kendall_tau": [r["kendall_tau"] for r in runs], "tau_mean": tau_mean, "tau_std": tau_std,
                "rho_mean": rho_mean, "rho_std": rho_std, "tau_within_size_mean": within_mean,
                "picks_truth_mean": _mean_std(picks)[0], "picks_truth_std": _mean_std(picks)[1],
                "passes_mean": float(np.mean([r["passes"] for r in runs])),
                "steps_mean": float(np.mean([r["steps"] for r in runs])),
                "search_seconds_mean": float(np.mean([r["search_seconds"] for r in runs])),
            })
    truth_vals = [t[key] for t in truth]
    return {
        "config": config_to_dict(cfg), "truth_key": key, "archs": archs,
        "truth": [{"arch": a, key: t[key], "parameters": t.get("parameters"),
                   "wall_seconds": t.get("wall_seconds")} for a, t in zip(archs, truth)],
        "truth_range": [min(truth_vals), max(truth_vals)],
        "truth_seconds": float(sum(t.get("wall_seconds", 0.0) or 0.0 for t in truth)),
        "runs": per_run, "groups": groups,
    }


def _resolve(args: argparse.Namespace, out: Path | None) -> StudyConfig:
    """Defaults < the study directory's study.yaml (resuming) < ``--config`` < flags."""
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    values = read_yaml(args.config) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k in names})
    if out is not None and (out / "study.yaml").exists():
        values = {**read_yaml(out / "study.yaml"), **values}
    return build_config(StudyConfig, values, source="study")


def _config(args: argparse.Namespace, out: Path) -> StudyConfig | str:
    """The study's config from the command line, or the error message that refuses it."""
    try:
        return _resolve(args, out)
    except NsasError as err:
        return str(err)
    except OSError as err:  # every rank must learn of it, not only rank 0
        return f"{err.strerror}: {err.filename}"


def _record(cfg: StudyConfig, out: Path) -> str | None:
    """Record ``cfg`` as ``out/study.yaml`` (checking its runs' configs first), or the message that refuses it."""
    saved = out / "study.yaml"
    try:
        if saved.exists():
            if config_to_dict(cfg) != read_yaml(saved):
                return f"{out} holds a study with another config; use another --out (or the same options to resume it)"
        else:
            cfg.check_runs()
            out.mkdir(parents=True, exist_ok=True)
            write_yaml(saved, config_to_dict(cfg))
    except NsasError as err:
        return str(err)
    except OSError as err:
        return f"{err.strerror}: {err.filename}"
    return None


@dataclass(frozen=True)
class StudyResult:
    """What :func:`study` produced.

    Attributes:
        out: the study directory.
        report: report.json's content (empty on data-parallel ranks other than 0).
        files: report.md, report.json, truth.csv and the figures (none on other ranks).
    """

    out: Path
    report: dict[str, Any]
    files: list[Path]

    @property
    def report_md(self) -> Path:
        return self.out / "report.md"


def study(cfg: StudyConfig, out: str | Path, *, progress: bool = True) -> StudyResult:
    """`nsas study`: every stage in ``out`` (each skipped where its output exists: rerun to resume), then the report.

    ``nsas.study(...)`` calls this. ``cfg`` is recorded as ``out/study.yaml``; a
    folder holding a study of another config is refused.

    Raises:
        NsasError: another study's folder, a bad ``search:``/``train:`` value, or a stage's error.
    """
    out = Path(out)
    error = distributed.broadcast_object(_record(cfg, out) if distributed.is_main() else None)
    if error is not None:  # rank 0 refused the folder; every rank stops with its message
        raise NsasError(error)
    runner = Study(cfg, out, progress=progress)
    report = runner.run()
    return StudyResult(out, report, list(getattr(runner, "files", [])))


# ---- command line ----------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `nsas study`: one per StudyConfig key, plus the study directory."""
    parser.description = (
        "Run searches for several methods and seeds, train a fixed set of architectures stand-alone, "
        "and report how well each supernet ranks them (Kendall tau), at equal steps and optionally at "
        "equal compute. Other search/train keys go under `search:` and `train:` (YAML file or flag). "
        "Rerun the same command to resume an interrupted study. --print-config shows the resolved settings.")
    add_config_flag(parser)
    add_config_flags(parser, StudyConfig)
    parser.add_argument("--out", help="study directory (required unless --print-config)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    """`nsas study`: :func:`study` with the config of the flags (and of study.yaml when resuming)."""
    if args.print_config:
        print_config(_resolve(args, Path(args.out) if args.out else None))
        return 0
    if not args.out:
        raise NsasError("give the study directory: --out DIR")
    out = Path(args.out)
    cfg = distributed.broadcast_object(_config(args, out) if distributed.is_main() else None)
    if isinstance(cfg, str):  # rank 0 refused the config; every rank stops with its message
        raise NsasError(cfg)
    result = study(cfg, out, progress=not args.quiet)
    if not distributed.is_main():
        return 0
    for g in result.report["groups"]:
        print(f"{g['method']:>22} ({g['budget']:>7}): Kendall tau {_fmt(g['tau_mean'])} ± {_fmt(g['tau_std'])}")
    print(f"report: {result.report_md}")
    return 0


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.study(...) calls study() above
