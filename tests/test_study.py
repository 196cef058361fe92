"""`nsas study` end to end on a tiny configuration, and its resume."""

from __future__ import annotations

import json
import math

import pytest
import yaml

import nsas.data
import nsas.train
from nsas.cli import main
from nsas.study import StudyConfig, passes_per_step, search_jobs
from test_correlate import tau_b_by_pairs
from tiny import fake_dataset

SEARCH = dict(steps_per_epoch=2, batch_size=8, channels=4, cells=1, eval_batches=1, select_rounds=1,
              select_samples=2, archive_size=2, pool_size=4, probe_count=2, log_every=1, checkpoint_every=0)
TRAIN = dict(epochs=1, channels=4, cells=1, batch_size=16, eval_batch_size=20, log_every=0)


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def write_config(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"space": "nb201", "dataset": "fake-images", "methods": ["random:ce", "random:nsas"],
                                    "seeds": 2, "archs": 4, "equal_compute": True, "search_epochs": 1,
                                    "score_batches": 1, "search": SEARCH, "train": TRAIN}))
    return path


def test_equal_compute_gives_cheaper_methods_more_epochs():
    cfg = StudyConfig(methods=["random:ce", "random:nsas", "random:nsas-replay", "gdas:nsas"], seeds=1,
                      search_epochs=2, equal_compute=True, search={"archive_size": 8})
    assert passes_per_step("random:nsas", cfg.search) == 9
    assert passes_per_step("gdas:nsas", cfg.search) == 10
    compute = {j.method: j.epochs for j in search_jobs(cfg) if j.budget == "compute"}
    # nsas (9 passes) rounds to its own 2 epochs of gdas:nsas's 10: no extra run.
    assert compute == {"random:ce": 20, "random:nsas-replay": 10}


def test_bad_methods_are_one_line_errors(tmp_path, capsys):
    assert main(["study", "--methods", "random:magic", "--out", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "random:magic" in err and len(err.strip().splitlines()) == 1


def test_study_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    cfg_file = write_config(tmp_path)
    out = tmp_path / "study"
    trained: list[str] = []
    original = nsas.train.train

    def counting_train(cfg, arch, out_dir, **kw):
        trained.append(str(out_dir))
        if len(trained) == 3 and not kw.get("resume"):
            raise KeyboardInterrupt  # interrupt the study in the middle of the ground truth
        return original(cfg, arch, out_dir, **kw)

    monkeypatch.setattr(nsas.train, "train", counting_train)
    assert main(["study", "--config", str(cfg_file), "--out", str(out), "--quiet"]) == 130  # interrupted
    searches = sorted(p.name for p in (out / "searches").iterdir())
    # 2 methods x 2 seeds at equal steps + random:ce x 2 seeds at equal compute
    assert searches == ["random-ce-s0", "random-ce-s0-compute", "random-ce-s1", "random-ce-s1-compute",
                        "random-nsas-s0", "random-nsas-s1"]
    stamps = {p: (out / "searches" / p / "summary.json").stat().st_mtime_ns for p in searches}

    trained.clear()
    assert main(["study", "--config", str(cfg_file), "--out", str(out), "--quiet"]) == 0
    assert len(trained) == 2  # only the two ground-truth runs not finished before the interrupt
    assert {p: (out / "searches" / p / "summary.json").stat().st_mtime_ns for p in searches} == stamps

    report = json.loads((out / "report.json").read_text())
    assert len(report["archs"]) == 4 and len(report["truth"]) == 4
    budgets = {(g["method"], g["budget"]) for g in report["groups"]}
    assert budgets == {("random:ce", "steps"), ("random:nsas", "steps"), ("random:ce", "compute"),
                       ("random:nsas", "compute")}
    from nsas.correlate import read_table

    truth = read_table(out / "truth.csv")
    assert sorted(truth) == sorted(report["archs"])
    (truth_key,) = next(iter(truth.values()))
    y = [truth[a][truth_key] for a in report["archs"]]
    for g in report["groups"]:
        # each seed's tau, recomputed from its scores file and the truth table by the definition
        # (random:nsas, the costliest, is its own equal-compute run)
        suffix = "-compute" if (g["budget"], g["method"]) == ("compute", "random:ce") else ""
        for seed, tau in enumerate(g["kendall_tau"]):
            scores = read_table(out / "scores" / f"{g['method'].replace(':', '-')}-s{seed}{suffix}.csv")
            x = [scores[a]["acc"] for a in report["archs"]]
            expected = tau_b_by_pairs(x, y) if len(set(x)) > 1 and len(set(y)) > 1 else math.nan
            assert tau == pytest.approx(expected, nan_ok=True), (g["method"], g["budget"], seed)
    assert any(not math.isnan(t) for g in report["groups"] for t in g["kendall_tau"])
    runs = {r["run"]: r for r in report["runs"]}
    # Passes: 1 a step for ce; 1 + archive members for nsas, whose archive takes one architecture a step up to
    # M = 2: (1 + 1) + (1 + 2) over its 2 steps. Equal compute gives random:ce 3x the steps: 6 steps, 6 passes.
    for seed in (0, 1):
        assert runs[f"random-nsas-s{seed}"]["steps"] == 2 and runs[f"random-nsas-s{seed}"]["passes"] == 5
        assert runs[f"random-ce-s{seed}"]["passes"] == 2
        assert runs[f"random-ce-s{seed}-compute"]["steps"] == runs[f"random-ce-s{seed}-compute"]["passes"] == 6
    md = (out / "report.md").read_text()
    assert "Kendall tau" in md and "equal compute" in md
    for png in ("kendall_tau.png", "picks.png", "scatter.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A different config in the same directory is refused.
    assert main(["study", "--config", str(cfg_file), "--seeds", "3", "--out", str(out), "--quiet"]) == 2
    assert "another config" in capsys.readouterr().err


def test_study_with_a_truth_table_trains_nothing_and_ranks_a_stratified_sample(tmp_path, monkeypatch):
    from nsas.truth import stratified_sample
    from test_truth import write_truth

    values = write_truth(tmp_path / "bench.csv", count=25)
    monkeypatch.setattr(nsas.train, "train", lambda *a, **k: pytest.fail("a truth table needs no training"))
    out = tmp_path / "study"
    assert main(["study", "--space", "nb201", "--dataset", "fake-images", "--methods", "random:ce", "--seeds", "1",
                 "--archs", "6", "--search-epochs", "1", "--score-batches", "1", "--truth", str(tmp_path / "bench.csv"),
                 "--out", str(out), "--quiet", "--config", str(_search_only_config(tmp_path))]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["archs"] == stratified_sample(values, 6, seed="study-truth-0")
    assert report["truth_key"] == "test_acc"
    assert [t["test_acc"] for t in report["truth"]] == [values[a] for a in report["archs"]]
    scores = json.loads((out / "report.json").read_text())["runs"][0]["scores"]
    from nsas.correlate import kendall_tau

    tau = report["runs"][0]["kendall_tau"]
    expected = kendall_tau(scores, [values[a] for a in report["archs"]])
    assert tau == pytest.approx(expected) or (math.isnan(tau) and math.isnan(expected))
    assert "sampled from the truth table `bench.csv`" in (out / "report.md").read_text()
    # the training-free yardstick: live parameter count against the same truth, and the scores within equal size
    from nsas.correlate import live_parameters, within_groups_tau

    size = live_parameters(report["archs"], "nb201")
    truth = [values[a] for a in report["archs"]]
    assert report["live_parameters"]["values"] == size.tolist()
    assert report["live_parameters"]["kendall_tau"] == pytest.approx(kendall_tau(size, truth), nan_ok=True)
    assert report["runs"][0]["tau_within_size"] == pytest.approx(within_groups_tau(scores, truth, size), nan_ok=True)
    assert "| live parameter count (no training) |" in (out / "report.md").read_text()


def test_study_without_a_parameter_baseline_still_reports(tmp_path, monkeypatch):
    from test_truth import write_truth

    write_truth(tmp_path / "bench.csv", count=25)

    def unbuildable(*args, **kwargs):
        raise TypeError("build_network() missing 1 required keyword argument")

    monkeypatch.setattr(nsas.study, "live_parameters", unbuildable)
    out = tmp_path / "study"
    assert main(["study", "--space", "nb201", "--dataset", "fake-images", "--methods", "random:ce", "--seeds", "1",
                 "--archs", "6", "--search-epochs", "1", "--score-batches", "1", "--truth", str(tmp_path / "bench.csv"),
                 "--out", str(out), "--quiet", "--config", str(_search_only_config(tmp_path))]) == 0
    report = json.loads((out / "report.json").read_text())
    assert math.isnan(report["live_parameters"]["kendall_tau"]) and math.isnan(report["runs"][0]["tau_within_size"])
    text = (out / "report.md").read_text()
    assert "| live parameter count (no training) | - | | n/a | n/a |" in text
    assert "; 1 seed; " in text and "1 seeds" not in text  # one seed is "1 seed" (it read "1 seeds")


def _search_only_config(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"search": SEARCH}))
    return path


def test_passes_per_step_counts_the_nsas_variants():
    assert passes_per_step("random:ce", {}) == 1
    assert passes_per_step("random:nsas", {"archive_size": 4}) == 5
    assert passes_per_step("random:nsas", {"constraint_slices": True}) == 2  # all members share one batch
    assert passes_per_step("random:nsas-random", {"constraint_every": 4}) == 3  # 8 members every 4th step
    assert passes_per_step("gdas:nsas-replay", {"constraint_every": 2}) == 2.5
    assert passes_per_step("random:wpl", {"constraint_slices": True}) == 1


def test_study_score_uses_the_runs_bn_recalibrate(tmp_path, monkeypatch):
    """Study.score scores with the search run's ``bn: recalibrate`` batches, as ``nsas rank RUN`` does."""
    import types

    import nsas.evaluate
    import nsas.rank
    import nsas.search_data
    import nsas.spaces
    from nsas.study import Study

    seen = {}

    def spy(model, archs, batches, *, recalibrate=(), seed=0, progress=False):
        seen["recalibrate"], seen["seed"] = list(recalibrate), seed
        return [{"arch": str(a), "acc": 0.0, "loss": 1.0} for a in archs]

    run_cfg = types.SimpleNamespace(bn="recalibrate", recalibrate_batches=2, seed=7)
    data = types.SimpleNamespace(score=["s1", "s2", "s3"], train=["t1", "t2", "t3"])
    monkeypatch.setattr(nsas.search_data, "load_search_run", lambda run, device: (run_cfg, None, data, {}))
    monkeypatch.setattr(nsas.search_data, "fixed_batches", lambda batches, count: list(batches)[:count])
    monkeypatch.setattr(nsas.evaluate, "score_archs", spy)
    monkeypatch.setattr(nsas.rank, "score_archs", spy)
    monkeypatch.setattr(nsas.rank, "write_scores", lambda path, rows, kind: None)
    job = types.SimpleNamespace(name="job")
    fake = types.SimpleNamespace(dir=tmp_path, jobs=[job], mine=lambda i: True,
                                 cfg=types.SimpleNamespace(device="cpu", score_batches=1),
                                 space=nsas.spaces.get_space("nb201"))
    arch = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    Study.score(fake, job, [arch])
    assert seen == {"recalibrate": ["t1", "t2"], "seed": 7}


def test_study_figures_never_touch_pyplot(tmp_path):
    """The figures are plain Figure objects on the Agg canvas, as nsas.plot's (pyplot's global state untouched)."""
    import subprocess
    import sys
    code = ("import sys, nsas.study_figures as f, pathlib\n"
            "g = [dict(method='random:ce', budget='steps', tau_mean=0.5, tau_std=0.1, kendall_tau=[0.4, 0.6],"
            " picks_truth_mean=90.0, picks_truth_std=1.0)]\n"
            "r = dict(groups=g, truth_key='acc', truth=[{'acc': 1.0}, {'acc': 2.0}],"
            " runs=[dict(seed=0, budget='steps', method='random:ce', scores=[0.1, 0.2], kendall_tau=1.0)])\n"
            f"print(f.write_figures(pathlib.Path({str(tmp_path)!r}), r)); print('matplotlib.pyplot' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['kendall_tau.png', 'picks.png', 'scatter.png']" and out[1] == "False"
    assert all((tmp_path / n).stat().st_size > 1000 for n in ("kendall_tau.png", "picks.png", "scatter.png"))
