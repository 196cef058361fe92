"""bench/ranking.py's report on hand-made jobs: per-seed metrics, the seeds' ensemble, the parameter baseline."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from tiny import bench_module

from nsas.correlate import kendall_tau, live_parameters, within_groups_tau
from nsas.spaces import get_space


def test_report_gives_each_seed_and_the_tau_of_the_seeds_mean_score(tmp_path, monkeypatch):
    ranking = bench_module("ranking", monkeypatch)
    space, rng = get_space("nb201"), random.Random(0)
    archs = sorted({str(space.sample(rng)) for _ in range(60)})[:30]
    truth = {a: 85.0 + i / 3 for i, a in enumerate(archs)}
    probe, candidates = archs[:24], archs[24:]
    (tmp_path / "jobs").mkdir()
    noisy = []
    for seed in (0, 1):
        scores = {a: [truth[a] + rng.gauss(0, 4), 1.0 + rng.random()] for a in archs}
        noisy.append(scores)
        job = ranking.Job("ce", "compute", seed, 100)
        (tmp_path / "jobs" / f"{job.name}.json").write_text(json.dumps(
            {"job": vars(job), "passes": 100, "train_s": 1.0, "score_s": 1.0, "scores": scores}))
    result = ranking.report(tmp_path, truth, probe, candidates)
    (group,) = result["summary"]
    t = np.array([truth[a] for a in probe])
    for seed, scores in enumerate(noisy):
        s = np.array([scores[a][0] - 1e-6 * scores[a][1] for a in probe])
        assert group["tau"][seed] == kendall_tau(s, t)
    mean = {a: np.mean([noisy[0][a], noisy[1][a]], axis=0) for a in archs}
    expected = kendall_tau(np.array([mean[a][0] - 1e-6 * mean[a][1] for a in probe]), t)
    assert group["tau_seed_ensemble"] == expected and expected not in group["tau"]
    assert group["selected_acc"] == [truth[max(archs, key=lambda a: (s[a][0], -s[a][1]))] for s in noisy]
    size = live_parameters(probe, "nb201")
    within = [within_groups_tau([s[a][0] - 1e-6 * s[a][1] for a in probe], t, size) for s in noisy]
    assert group["tau_within_size_mean"] == np.mean(within)
    assert result["live_parameters"]["tau"] == kendall_tau(size, t)  # the training-free row
    report = (tmp_path / "report.md").read_text()
    assert "| live parameter count (no training) | - | 0 | 0 | " + f"{kendall_tau(size, t):.3f}" in report
    assert f"{expected:.3f}" in report and "tau of the seeds' mean score" in report
    assert (tmp_path / "tau.png").stat().st_size > 0


def test_curve_report_gives_tau_within_equal_size_and_the_parameter_baseline(tmp_path, monkeypatch):
    ranking = bench_module("ranking", monkeypatch)
    space, rng = get_space("nb201"), random.Random(2)
    probe = sorted({str(space.sample(rng)) for _ in range(40)})
    truth = {a: 80.0 + rng.random() * 10 for a in probe}
    with open(tmp_path / "curve-ce-s0.jsonl", "w") as f:
        for epoch, passes in ((1, 10), (2, 20)):
            scores = {a: [truth[a] + rng.gauss(0, 3), 1.0] for a in probe}
            f.write(json.dumps({"method": "ce", "seed": 0, "epoch": epoch, "passes": passes, "steps": passes,
                                "train_s": 1.0, "scores": scores}) + "\n")
    points = ranking.curve_report(tmp_path, truth, probe, [])
    size, t = live_parameters(probe, "nb201"), np.array([truth[a] for a in probe])
    lines = [line for line in open(tmp_path / "curve-ce-s0.jsonl")]
    for point, line in zip(points, lines):
        scores = json.loads(line)["scores"]
        s = [scores[a][0] - 1e-6 * scores[a][1] for a in probe]
        assert point["tau_within_size"] == within_groups_tau(s, t, size)
        assert f"| {point['tau_within_size']:.3f} |" in (tmp_path / "curve.md").read_text()
    assert f"ranks this probe at tau {kendall_tau(size, t):.3f}" in (tmp_path / "curve.md").read_text()


def test_curve_refuses_a_budget_its_epochs_cannot_hold(tmp_path, monkeypatch):
    ranking = bench_module("ranking", monkeypatch)
    # 30 epochs of at most 390 batches hold 11,700 steps: asking for 23,400 used to run 11,700 silently
    with pytest.raises(SystemExit, match="use --epochs 60 or more"):
        ranking.run_curve("ce-functions", 0, 23400, [10], tmp_path, [], 1024, epochs=30)
    assert not list(tmp_path.iterdir())  # refused before building anything


def test_report_pairs_each_method_with_ce_functions_on_common_seeds(tmp_path, monkeypatch):
    ranking = bench_module("ranking", monkeypatch)
    space, rng = get_space("nb201"), random.Random(1)
    probe = sorted({str(space.sample(rng)) for _ in range(60)})[:30]
    truth = {a: 85.0 + i / 3 for i, a in enumerate(probe)}
    (tmp_path / "jobs").mkdir()
    scores = {}
    for method, noise, seeds in (("ce-functions", 6, (0, 1, 2)), ("nsas", 2, (1, 2, 3)), ("wpl", 2, (5,))):
        for seed in seeds:
            scores[method, seed] = {a: [truth[a] + rng.gauss(0, noise), 1.0] for a in probe}
            job = ranking.Job(method, "compute", seed, 100)
            (tmp_path / "jobs" / f"{job.name}.json").write_text(json.dumps(
                {"job": vars(job), "passes": 100, "train_s": 1.0, "score_s": 1.0, "scores": scores[method, seed]}))
    result = ranking.report(tmp_path, truth, probe, [])
    (pair,) = result["paired"]  # wpl shares no seed with ce-functions: not paired
    t = np.array([truth[a] for a in probe])
    tau = {k: kendall_tau(np.array([v[a][0] - 1e-6 for a in probe]), t) for k, v in scores.items()}
    assert (pair["method"], pair["reference"], pair["seeds"]) == ("nsas", "ce-functions", [1, 2])
    assert pair["differences"] == pytest.approx([tau["nsas", s] - tau["ce-functions", s] for s in (1, 2)])
    assert pair["mean"] > 0 and pair["ci"][0] < pair["mean"] < pair["ci"][1]  # less noise ranks better
    assert f"{pair['mean']:+.3f} [" in (tmp_path / "report.md").read_text()


def test_bn_rescore_refuses_a_run_item_without_its_split(tmp_path, monkeypatch, capsys):
    rescore = bench_module("bn_rescore", monkeypatch)
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,test_acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10.0\n")
    with pytest.raises(SystemExit) as stop:
        rescore.main(["--out", str(tmp_path / "out"), "--truth", str(truth), "--runs", "runs/nb201-s0"])
    assert stop.value.code == 2
    assert "SPLIT:RUN_DIR" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_ensembles_report_every_subset_of_runs_and_refuse_a_source_without_the_probe(tmp_path, monkeypatch, capsys):
    ensembles = bench_module("ensembles", monkeypatch)
    ranking = bench_module("ranking", monkeypatch)
    space, rng = get_space("nb201"), random.Random(1)
    archs = sorted({str(space.sample(rng)) for _ in range(3000)})[:1000]
    truth = {a: 80.0 + 14 * rng.random() for a in archs}
    (tmp_path / "truth.csv").write_text("arch,test_acc\n" + "".join(f"{a},{v}\n" for a, v in truth.items()))
    probe, _ = ranking.probe_and_candidates(truth, "tune", 200, 0)
    runs, sources = [], []
    for seed in range(3):
        scores = {a: [truth[a] + rng.gauss(0, 3), 1.0 + rng.random()] for a in probe}
        runs.append(scores)
        if seed < 2:  # two score CSVs and one benchmark job file
            sources.append(tmp_path / f"s{seed}.csv")
            sources[-1].write_text("arch,acc,loss\n" + "".join(f"{a},{v[0]},{v[1]}\n" for a, v in scores.items()))
        else:
            sources.append(tmp_path / "job.json")
            sources[-1].write_text(json.dumps({"scores": scores}))
    out = tmp_path / "out"
    assert ensembles.main(["--out", str(out), "--split", "tune", "--truth", str(tmp_path / "truth.csv"),
                           "--target", "0.5", "--group", "noisy", *map(str, sources)]) == 0
    sizes = json.loads((out / "report.json").read_text())["groups"]["noisy"]["sizes"]
    t = np.array([truth[a] for a in probe])
    tau = lambda s: kendall_tau(np.array([s[a][0] - 1e-6 * s[a][1] for a in probe]), t)  # noqa: E731
    assert [row["k"] for row in sizes] == [1, 2, 3] and [len(row["taus"]) for row in sizes] == [3, 3, 1]
    assert sizes[0]["taus"] == [tau(r) for r in runs]
    mean = {a: np.mean([r[a] for r in runs], axis=0) for a in probe}
    assert sizes[2]["taus"] == [tau(mean)] and tau(mean) > max(sizes[0]["taus"])  # averaging noise helps
    assert all(row["reach"] == sum(x >= 0.5 for x in row["taus"]) for row in sizes)
    assert "| noisy | 3 | 1 |" in (out / "report.md").read_text()
    assert ensembles.main(["--out", str(tmp_path / "by-loss"), "--split", "tune", "--truth", str(tmp_path / "truth.csv"),
                           "--score", "loss", "--group", "noisy", *map(str, sources)]) == 0
    by_loss = json.loads((tmp_path / "by-loss" / "report.json").read_text())["groups"]["noisy"]["sizes"]
    assert by_loss[0]["taus"] == [kendall_tau(np.array([-r[a][1] for a in probe]), t) for r in runs]
    assert by_loss[2]["taus"] == [kendall_tau(np.array([-mean[a][1] for a in probe]), t)]
    sources[1].write_text("arch,acc,loss\n" + f"{probe[0]},50,1\n")  # a CSV of another probe
    with pytest.raises(SystemExit) as stop:
        ensembles.main(["--out", str(tmp_path / "out2"), "--split", "tune", "--truth", str(tmp_path / "truth.csv"),
                        "--group", "noisy", *map(str, sources)])
    assert stop.value.code == 2 and "lacks 199 of the benchmark tune probe's 200 cells" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()
    # the fresh probe: 200 other cells of the same half, none of them in the benchmark's probe
    fresh = ranking.fresh_probe(truth, "tune", 200)
    assert len(set(fresh)) == 200 and not set(fresh) & set(probe)
    assert all(ranking.half_of(a) == "tune" for a in fresh) and fresh == ranking.fresh_probe(truth, "tune", 200)
    assert ensembles.main(["--out", str(tmp_path / "out3"), "--truth", str(tmp_path / "truth.csv"), "--split", "tune",
                           "--probe", "fresh", "--write-probe", str(tmp_path / "fresh.txt")]) == 0
    assert (tmp_path / "fresh.txt").read_text().split() == fresh


def test_report_ranks_a_run_by_its_own_rank_by(tmp_path, monkeypatch):
    """A job whose config says rank_by: loss is judged by its loss: tau, the pick, and its pairing with ce."""
    ranking = bench_module("ranking", monkeypatch)
    space, rng = get_space("nb201"), random.Random(2)
    archs = sorted({str(space.sample(rng)) for _ in range(60)})[:30]
    truth = {a: 85.0 + i / 3 for i, a in enumerate(archs)}
    # accuracy agrees with the truth, loss disagrees: the two scores give opposite taus
    scores = {a: [truth[a] + rng.gauss(0, 1), 1.0 + (truth[a] - 85.0) / 10 + rng.gauss(0, 0.05)] for a in archs}
    (tmp_path / "jobs").mkdir()
    for method, by in (("ce-functions", "acc"), ("nsas-forget-norm-functions", "loss")):
        job = ranking.Job(method, "compute", 0, 100)
        (tmp_path / "jobs" / f"{job.name}.json").write_text(json.dumps(
            {"job": vars(job), "config": {"rank_by": by, "bn": "recalibrate"}, "passes": 100, "train_s": 1.0,
             "score_s": 1.0, "scores": scores}))
    result = ranking.report(tmp_path, truth, archs, [])
    groups = {g["method"]: g for g in result["summary"]}
    t = np.array([truth[a] for a in archs])
    by_acc = kendall_tau(np.array([scores[a][0] - 1e-6 * scores[a][1] for a in archs]), t)
    by_loss = kendall_tau(np.array([-scores[a][1] for a in archs]), t)
    assert by_acc > 0.5 and by_loss < -0.5
    assert groups["ce-functions"]["tau"] == [by_acc] and groups["nsas-forget-norm-functions"]["tau"] == [by_loss]
    assert groups["nsas-forget-norm-functions"]["selected_acc"] == [truth[min(archs, key=lambda a: scores[a][1])]]
    (paired,) = result["paired"]
    assert paired["differences"] == [pytest.approx(by_loss - by_acc)]
    report = (tmp_path / "report.md").read_text()
    assert "the validation loss alone" in report and "BatchNorm statistics of each cell's own" in report
