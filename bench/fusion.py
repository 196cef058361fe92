"""Round 8 of the ranking benchmark: zero-cost priors, supernet scores and their fusion on NAS-Bench-201.

Three steps, each a sub-command; every choice is made on the tune half, judged on held-out cells only.

``proxies``  computes every registered zero-cost proxy (``nsas.proxies``) on the cells of the four
             probes (the tune half's probe, the benchmark's held-out probe, fresh probes 1 and 2) and
             writes ``proxies.csv`` with the seconds each took.
``tune``     fits every candidate pipeline on the tune half's probe (supernet scores of the committed
             tune-half runs, recalibrated BatchNorm, and the proxies) and writes ``pipeline.json``: the
             best pipeline with the supernet's loss and the best without it (columns, fusion rule,
             weights, what they were fitted on), chosen by their mean tau over the tune runs.
``judge``    applies the frozen ``pipeline.json`` to every held-out score set of a probe (all seeds of
             both methods), and writes ``judge-<probe>.md`` / ``.json``: Kendall tau-b with bootstrap
             intervals, within-size concordance, precision at the top 10%, the pick's true accuracy, the
             count's own pick, the fused pipeline minus the pipeline without the supernet (paired by
             seed, bootstrap over cells), and the NSAS variant minus ce.

    python bench/fusion.py proxies --out results/ranking/round8
    python bench/fusion.py tune --out results/ranking/round8
    python bench/fusion.py judge --out results/ranking/round8 --probe probe fresh1
    python bench/fusion.py judge --out results/ranking/round8 --probe fresh2   # once, after pipeline.json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import ranking  # the benchmark's truth, probes and splits (a sibling script: python puts bench/ on sys.path)

REPO = ranking.REPO
RESULTS = REPO / "results" / "ranking"
METHODS = ("ce-functions", "nsas-forget-norm-functions")
PROXY_BATCH = 64  # images of the proxies' one fixed mini-batch
PROXY_NET = dict(channels=8, cells=1)  # the supernet's own size (16 x 5, NB201's, costs 4x: not measured here)


# ---------------------------------------------------------------- the probes and their score sets
def probes(truth: dict[str, float]) -> dict[str, list[str]]:
    """The four probes of the rounds: tune (fitting only) and three held-out ones (judging only)."""
    return {"tune": ranking.probe_and_candidates(truth, "tune", 200, 0)[0],
            "probe": ranking.probe_and_candidates(truth, "holdout", 200, 0)[0],
            "fresh1": ranking.fresh_probe(truth, "holdout", 200, 1),
            "fresh2": ranking.fresh_probe(truth, "holdout", 200, 2)}


def _csv_scores(path: Path) -> dict[str, tuple[float, float]]:
    with open(path, newline="") as f:
        return {r["arch"]: (float(r["acc"]), float(r["loss"])) for r in csv.DictReader(f)}


def _job_scores(path: Path) -> dict[str, tuple[float, float]]:
    return {a: (v[0], v[1]) for a, v in json.loads(path.read_text())["scores"].items()}


def score_sets(probe: str, round8: Path) -> list[dict[str, Any]]:
    """Every committed recalibrated supernet score set of ``probe``: method, seed, scores, CPU seconds."""
    sets = []

    def add(method: str, seed: int, path: Path, loader: Any) -> None:
        if path.is_file():
            cost = None
            if path.suffix == ".json":
                job = json.loads(path.read_text())
                cost = job["train_s"] + job["score_s"]
            sets.append({"method": method, "seed": seed, "source": str(path.resolve().relative_to(REPO)),
                         "scores": loader(path), "cpu_s": cost})

    for method in METHODS:
        if probe == "tune":
            folder = "bn-recalibrate" if method == "ce-functions" else "bn-recalibrate-nsas-tune"
            for seed in (3, 4):
                add(method, seed, RESULTS / folder / "scores" / f"tune-{method}-compute-s{seed}-recalibrate.csv",
                    _csv_scores)
        elif probe == "probe":
            folder = "bn-recalibrate" if method == "ce-functions" else "bn-recalibrate-nsas"
            for seed in (0, 1, 2):
                add(method, seed, RESULTS / folder / "scores" / f"holdout-{method}-compute-s{seed}-recalibrate.csv",
                    _csv_scores)
            for seed in range(5, 10):
                add(method, seed, RESULTS / "holdout-7800-recal" / "jobs" / f"{method}-compute-s{seed}.json",
                    _job_scores)
        elif probe == "fresh1":
            for seed in range(5, 10):
                add(method, seed, RESULTS / "recal-fresh" / "scores" / f"holdout-fresh-{method}-compute-s{seed}.csv",
                    _csv_scores)
        if probe in ("probe", "fresh2"):
            for seed in range(10, 15):
                add(method, seed, round8 / "jobs" / f"{method}-compute-s{seed}.json", _job_scores)
    return sets


def read_proxies(path: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """``proxies.csv``: each cell's proxy values, and the mean seconds per cell of each proxy."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    seconds = json.loads((path.parent / "proxies-cost.json").read_text())
    return {r["arch"]: {k: float(v) for k, v in r.items() if k != "arch"} for r in rows}, seconds


# ---------------------------------------------------------------- metrics
def rows_of(cells: list[str], proxies: dict[str, dict[str, float]],
            scores: dict[str, tuple[float, float]] | None) -> list[dict[str, float]]:
    """One row per cell for ``nsas.fusion``: the proxies, and the supernet's ``acc`` and ``loss``
    (lower is better, as fusion knows) when ``scores`` is given."""
    rows = [dict(proxies[a]) for a in cells]
    if scores is not None:
        for row, a in zip(rows, cells):
            row["acc"], row["loss"] = scores[a]
    return rows


def oriented(rows: list[dict[str, float]], column: str) -> np.ndarray:
    """One column as a score, higher is better (the loss negated)."""
    from nsas.fusion import direction
    v = direction(column) * np.array([r[column] for r in rows])
    finite = v[np.isfinite(v)]  # jacov/naswot give -inf to dead cells: below every live one, tied among themselves
    return np.where(np.isfinite(v), v, (finite.min() - 1) if len(finite) else 0.0)


def judge_vector(score: np.ndarray, truth: np.ndarray, size: np.ndarray) -> dict[str, Any]:
    from nsas.rankstats import bootstrap_ci, kendall_tau, precision_at_k, within_groups_tau
    ci = bootstrap_ci(kendall_tau, score, truth, resamples=500)
    best = int(np.argmax(score))
    return {"tau": kendall_tau(score, truth), "tau_ci": [ci.low, ci.high],
            "within_size": within_groups_tau(score, truth, size),
            "p_at_10": precision_at_k(score, truth, max(1, len(score) // 10)), "pick_acc": float(truth[best])}


def paired(mine: list[np.ndarray], theirs: list[np.ndarray], truth: np.ndarray, size: np.ndarray,
           resamples: int = 2000) -> dict[str, Any]:
    """Mean over seeds of tau(mine) - tau(theirs) and of the within-size difference, with bootstrap
    intervals over the probe's cells (each resample draws the cells once for every seed)."""
    from nsas.rankstats import kendall_tau, within_groups_tau

    def diffs(idx: np.ndarray) -> tuple[float, float]:
        t, g = truth[idx], size[idx]
        d_tau = [kendall_tau(m[idx], t) - kendall_tau(r[idx], t) for m, r in zip(mine, theirs)]
        d_in = [within_groups_tau(m[idx], t, g) - within_groups_tau(r[idx], t, g) for m, r in zip(mine, theirs)]
        return float(np.mean(d_tau)), float(np.nanmean(d_in))

    full = np.arange(len(truth))
    tau, within = diffs(full)
    per_seed = [kendall_tau(m, truth) - kendall_tau(r, truth) for m, r in zip(mine, theirs)]
    rng = np.random.default_rng(0)
    draws = np.array([diffs(i) for i in rng.integers(0, len(truth), size=(resamples, len(truth)))])
    return {"tau": tau, "tau_ci": np.quantile(draws[:, 0], [0.025, 0.975]).tolist(), "per_seed": per_seed,
            "within_size": within, "within_size_ci": np.nanquantile(draws[:, 1], [0.025, 0.975]).tolist(),
            "positive_seeds": int(sum(d > 0 for d in per_seed)), "seeds": len(per_seed)}


# ---------------------------------------------------------------- the three steps
def compute_proxies(out: Path, truth: dict[str, float]) -> None:
    """``proxies.csv`` of every cell of the four probes, and ``proxies-cost.json`` (seconds per distinct function)."""
    import torch

    from nsas.proxies import proxy_batch, score_proxies
    from nsas.spaces import get_space
    torch.set_num_threads(1)
    cells = list(dict.fromkeys(a for p in probes(truth).values() for a in p))
    started = time.perf_counter()
    rows = score_proxies(get_space("nb201"), cells, "all", proxy_batch(ranking.DATASET, PROXY_BATCH), options=PROXY_NET)
    total = time.perf_counter() - started
    names = [k for k in rows[0] if k != "arch"]
    with open(out / "proxies.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", *names])
        w.writerows([r["arch"], *(r[n] for n in names)] for r in rows)
    (out / "proxies-cost.json").write_text(json.dumps(
        {**rows.seconds, "build": rows.build_seconds, "cells": len(cells), "functions": rows.functions,
         "total_s": total, "network": PROXY_NET, "batch": PROXY_BATCH}, indent=1))


PRIORS = ("params", "flops", "synflow", "snip", "grad_norm", "fisher", "jacov", "naswot")
SUPERNET_COLUMNS = ("loss",)  # the presets rank by loss (round 7)
STEP = 0.05


def candidates(with_supernet: bool) -> list[tuple[str, ...]]:
    """Column sets tried on the tune half: up to three priors, or the loss with up to two priors."""
    if with_supernet:
        return [("loss", *c) for k in range(0, 3) for c in itertools.combinations(PRIORS, k)]
    return [c for k in range(1, 4) for c in itertools.combinations(PRIORS, k)]


def fit_mean_tau(tables: list[list[dict[str, float]]], truth: np.ndarray, columns: tuple[str, ...],
                 method: str) -> tuple[dict[str, float], float]:
    """Simplex weights of ``columns`` maximising the mean tau over ``tables`` (the tune runs), ties to the first."""
    from nsas.rankstats import kendall_tau
    from nsas.fusion import _simplex_grid, fuse
    best, best_tau = None, -np.inf
    for w in _simplex_grid(len(columns), round(1 / STEP)):
        weights = dict(zip(columns, w.tolist()))
        if not any(weights.values()):
            continue
        tau = float(np.mean([kendall_tau(fuse(rows, weights, method=method), truth) for rows in tables]))
        if tau > best_tau + 1e-12:
            best, best_tau = weights, tau
    return best, best_tau


def tune(out: Path, truth: dict[str, float]) -> dict[str, Any]:
    """Choose the pipeline (with the supernet's loss) and the priors-only comparator on the tune half."""
    proxies, _ = read_proxies(out / "proxies.csv")
    cells = probes(truth)["tune"]
    t = np.array([truth[a] for a in cells])
    sets = score_sets("tune", out)
    tables = {m: [rows_of(cells, proxies, s["scores"]) for s in sets if s["method"] == m] for m in METHODS}
    tried = []
    for with_supernet in (True, False):
        for columns in candidates(with_supernet):
            for method in ("rank", "z"):
                ref = tables["ce-functions"] if with_supernet else [rows_of(cells, proxies, None)]
                weights, tau = fit_mean_tau(ref, t, columns, method)
                tried.append({"supernet": with_supernet, "columns": list(columns), "method": method,
                              "weights": weights, "tune_tau": tau})
    best = {flag: max((c for c in tried if c["supernet"] == flag), key=lambda c: c["tune_tau"])
            for flag in (True, False)}
    pipeline = {"pipeline": {"columns": best[True]["columns"], "method": best[True]["method"],
                             "weights": {"ce-functions": best[True]["weights"]}, "tune_tau": {}},
                "priors": best[False],
                "fitted_on": {"probe": "tune half's probe (probe_and_candidates(truth, 'tune', 200, 0))",
                              "runs": [s["source"] for s in sets], "truth": ranking.TRUTH.name,
                              "step": STEP, "choice": "highest mean tau over the ce-functions tune runs"},
                "proxy_network": PROXY_NET}
    for m in METHODS:  # the same columns and rule; weights refitted on each method's own tune runs
        w, tau = fit_mean_tau(tables[m], t, tuple(best[True]["columns"]), best[True]["method"])
        pipeline["pipeline"]["weights"][m], pipeline["pipeline"]["tune_tau"][m] = w, tau
    (out / "pipeline.json").write_text(json.dumps(pipeline, indent=1))
    save_weights(out, pipeline)
    tried.sort(key=lambda c: -c["tune_tau"])
    (out / "tune.json").write_text(json.dumps(tried, indent=1))
    return pipeline


def save_weights(out: Path, pipeline: dict[str, Any]) -> None:
    """``fusion-ce.json`` / ``fusion-nsas.json``: the pipeline's weights as ``nsas rank --weights-from`` reads them."""
    from nsas.fusion import FusionWeights
    pipe = pipeline["pipeline"]
    for method, name in (("ce-functions", "ce"), ("nsas-forget-norm-functions", "nsas")):
        FusionWeights(pipe["weights"][method], pipe["method"], ["loss"],
                      {"truth": pipeline["fitted_on"]["truth"], "truth_key": "test_acc", "cells": 200,
                       "columns": pipe["columns"], "tau": pipe["tune_tau"][method], "search": "grid", "step": STEP,
                       "probe": pipeline["fitted_on"]["probe"], "runs": [r for r in pipeline["fitted_on"]["runs"] if method in r],
                       "proxy_network": pipeline["proxy_network"]}).save(out / f"fusion-{name}.json")


def judge(out: Path, truth: dict[str, float], probe: str) -> dict[str, Any]:
    """Every held-out score set of ``probe`` under the frozen pipeline: ``judge-<probe>.json`` and ``.md``."""
    from nsas.rankstats import live_parameters
    from nsas.fusion import fuse
    if probe == "tune":
        raise SystemExit("judge: the tune probe is for fitting only")
    spec = json.loads((out / "pipeline.json").read_text())
    proxies, cost = read_proxies(out / "proxies.csv")
    cells = probes(truth)[probe]
    t, size = np.array([truth[a] for a in cells]), live_parameters(cells, "nb201")
    plain = rows_of(cells, proxies, None)
    priors = fuse(plain, spec["priors"]["weights"], method=spec["priors"]["method"])
    result: dict[str, Any] = {"probe": probe, "cells": len(cells),
                              "alone": {c: judge_vector(oriented(plain, c), t, size) for c in PRIORS},
                              "priors": judge_vector(priors, t, size), "runs": [], "paired": {}}
    vectors: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    proxy_s = sum(v for k, v in cost.items() if k in PRIORS or k.startswith("shared:")) + cost["build"]
    for s in score_sets(probe, out):
        rows = rows_of(cells, proxies, s["scores"])
        pipe = spec["pipeline"]
        fused = fuse(rows, pipe["weights"][s["method"]], method=pipe["method"])
        loss = oriented(rows, "loss")
        result["runs"].append({"method": s["method"], "seed": s["seed"], "source": s["source"],
                               "cpu_min": None if s["cpu_s"] is None else (s["cpu_s"] + proxy_s * len(cells)) / 60,
                               "loss": judge_vector(loss, t, size), "fused": judge_vector(fused, t, size)})
        for name, v in (("fused", fused), ("loss", loss)):
            vectors.setdefault(s["method"], {}).setdefault(name, {})[s["seed"]] = v
    for m, v in vectors.items():
        seeds = sorted(v["fused"])
        result["paired"][f"{m} fused - priors"] = paired([v["fused"][k] for k in seeds], [priors] * len(seeds), t, size)
    if len(vectors) == 2:
        a, b = (vectors[m] for m in ("nsas-forget-norm-functions", "ce-functions"))
        common = sorted(set(a["fused"]) & set(b["fused"]))
        for name in ("fused", "loss"):
            result["paired"][f"nsas-forget - ce ({name})"] = paired([a[name][k] for k in common],
                                                                     [b[name][k] for k in common], t, size)
    (out / f"judge-{probe}.json").write_text(json.dumps(result, indent=1, default=float))
    (out / f"judge-{probe}.md").write_text(format_judge(result, spec))
    return result


def _f(x: Any) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _cpu(minutes: float | None) -> str:
    return "-" if minutes is None else f"{minutes:.1f}"


def format_judge(r: dict[str, Any], spec: dict[str, Any]) -> str:
    pipe, pri = spec["pipeline"], spec["priors"]
    lines = [f"# Round 8, judged on `{r['probe']}` ({r['cells']} held-out cells)", "",
             f"Pipeline: {pipe['method']} fusion of {', '.join(pipe['columns'])}; priors-only comparator: "
             f"{pri['method']} fusion of {', '.join(pri['columns'])} (weights in pipeline.json, fitted on the tune half).",
             "", "| scorer | tau-b | 95% CI | within-size | P@10% | pick's true acc |", "|---|---|---|---|---|---|"]
    for name, m in [*r["alone"].items(), ("priors (fused, no supernet)", r["priors"])]:
        lines.append(f"| {name} | {_f(m['tau'])} | {_f(m['tau_ci'][0])}..{_f(m['tau_ci'][1])} | "
                     f"{_f(m['within_size'])} | {_f(m['p_at_10'])} | {m['pick_acc']:.2f} |")
    lines += ["", "| method | seed | tau loss | tau fused | within-size loss | within-size fused | P@10% fused | "
              "pick (fused) | CPU-min |", "|---|---|---|---|---|---|---|---|---|"]
    for run in sorted(r["runs"], key=lambda x: (x["method"], x["seed"])):
        lo, fu = run["loss"], run["fused"]
        lines.append(f"| {run['method']} | {run['seed']} | {_f(lo['tau'])} | {_f(fu['tau'])} | {_f(lo['within_size'])} "
                     f"| {_f(fu['within_size'])} | {_f(fu['p_at_10'])} | {fu['pick_acc']:.2f} | "
                     f"{_cpu(run['cpu_min'])} |")
    for m in METHODS:
        mine = [x for x in r["runs"] if x["method"] == m]
        if mine:
            lines.append(f"| {m} | mean of {len(mine)} | {_f(np.mean([x['loss']['tau'] for x in mine]))} | "
                         f"{_f(np.mean([x['fused']['tau'] for x in mine]))} | "
                         f"{_f(np.nanmean([x['loss']['within_size'] for x in mine]))} | "
                         f"{_f(np.nanmean([x['fused']['within_size'] for x in mine]))} | "
                         f"{_f(np.mean([x['fused']['p_at_10'] for x in mine]))} | "
                         f"{np.mean([x['fused']['pick_acc'] for x in mine]):.2f} | |")
    return "\n".join(lines + paired_table(r["paired"])) + "\n"


def paired_table(paired: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines of paired comparisons (:func:`paired`'s results by name)."""
    lines = ["", "| paired (mean over seeds) | d tau | 95% CI over cells | d within-size | 95% CI | seeds > 0 |",
             "|---|---|---|---|---|---|"]
    for name, p in paired.items():
        lines.append(f"| {name} | {_f(p['tau'])} | {_f(p['tau_ci'][0])}..{_f(p['tau_ci'][1])} | {_f(p['within_size'])} | "
                     f"{_f(p['within_size_ci'][0])}..{_f(p['within_size_ci'][1])} | {p['positive_seeds']}/{p['seeds']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("proxies", "tune", "judge"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--probe", nargs="+", default=["probe", "fresh1"], choices=("probe", "fresh1", "fresh2"))
    args = parser.parse_args(argv)
    truth = ranking.read_truth(ranking.TRUTH)
    args.out.mkdir(parents=True, exist_ok=True)
    ranking.record_command(args.out, argv)
    if args.action == "proxies":
        compute_proxies(args.out, truth)
    elif args.action == "tune":
        print(json.dumps(tune(args.out, truth), indent=1))
    else:
        for probe in args.probe:
            judge(args.out, truth, probe)
            print((args.out / f"judge-{probe}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
