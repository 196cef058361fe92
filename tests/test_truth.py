"""Truth tables through the library and the CLI: stratified samples, correlate, search probes and selection, plot."""

from __future__ import annotations

import json
import random

import pytest
from scipy import stats

import nsas
import nsas.data
from nsas.cli import main
from nsas.errors import NsasError
from nsas.search import search
from nsas.spaces import get_space
from nsas.truth import read_arch_file, read_truth, stratified_sample
from tiny import fake_dataset, tiny_search_config

SPACE = get_space("nb201")


def write_truth(path, count: int = 30, seed: int = 0, column: str = "test_acc") -> dict[str, float]:
    """A small NAS-Bench-201-style truth table (``arch,<column>``) of distinct random cells."""
    rng = random.Random(seed)
    values: dict[str, float] = {}
    while len(values) < count:
        values[str(SPACE.sample(rng))] = round(rng.uniform(10.0, 94.0), 2)
    path.write_text(f"arch,{column}\n" + "".join(f"{a},{v}\n" for a, v in values.items()))
    return values


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def test_read_truth_picks_the_only_column_or_the_named_one(tmp_path):
    values = write_truth(tmp_path / "t.csv")
    assert read_truth(tmp_path / "t.csv", space="nb201") == ("test_acc", values)
    (tmp_path / "two.jsonl").write_text("".join(json.dumps({"arch": a, "acc": v, "loss": -v}) + "\n"
                                                for a, v in values.items()))
    assert read_truth(tmp_path / "two.jsonl")[0] == "acc"
    assert read_truth(tmp_path / "two.jsonl", "loss")[1] == {a: -v for a, v in values.items()}
    (tmp_path / "three.csv").write_text("arch,x,y\n" + "".join(f"{a},{v},{v}\n" for a, v in values.items()))
    with pytest.raises(NsasError, match="several value columns"):
        read_truth(tmp_path / "three.csv")


def test_stratified_sample_takes_one_from_each_stratum_and_is_seeded():
    values = {f"a{i:03d}": float(i % 97) + i / 1000 for i in range(300)}
    ordered = sorted(values, key=values.get)
    sample = stratified_sample(values, 10, seed=1)
    assert len(set(sample)) == 10 and [values[a] for a in sample] == sorted(values[a] for a in sample)
    for k, arch in enumerate(sample):  # the k-th pick lies in the k-th tenth of the sorted values
        assert 30 * k <= ordered.index(arch) < 30 * (k + 1)
    assert sample == stratified_sample(values, 10, seed=1)
    assert sample != stratified_sample(values, 10, seed=2)
    assert stratified_sample(values, 500) == ordered
    assert "a000" not in stratified_sample(values, 300, exclude=["a000"])


def test_correlate_takes_a_benchmark_truth_table_as_is(tmp_path, capsys):
    truth = write_truth(tmp_path / "truth.csv")
    rng = random.Random(1)
    scores = {a: v + rng.gauss(0, 10) for a, v in truth.items()}
    (tmp_path / "scores.csv").write_text("arch,acc,loss\n" + "".join(f"{a},{v},{-v}\n" for a, v in scores.items()))
    assert main(["correlate", str(tmp_path / "scores.csv"), str(tmp_path / "truth.csv"), "--json",
                 "--bootstrap", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    archs = list(truth)
    expected = stats.kendalltau([scores[a] for a in archs], [truth[a] for a in archs]).statistic
    assert result["truth_key"] == "test_acc" and result["n"] == 30
    assert result["metrics"]["kendall_tau"]["value"] == pytest.approx(expected)


def test_search_probes_from_a_truth_file_log_mean_accuracy_and_tau(tmp_path):
    truth = write_truth(tmp_path / "truth.csv")
    cfg = tiny_search_config("nb201", epochs=2, probe_from=str(tmp_path / "truth.csv"), probe_count=6)
    search(cfg, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in records if r["kind"] == "probe"]
    assert len(probes) == 2
    archs = [p["arch"] for p in probes[0]["probe"]]
    assert archs == stratified_sample(truth, 6, seed="probe-0")
    for record in probes:
        acc = [p["acc"] for p in record["probe"]]
        assert [p["truth"] for p in record["probe"]] == [truth[a] for a in archs]
        assert record["probe_mean_acc"] == pytest.approx(sum(acc) / 6)
        expected = stats.kendalltau(acc, [truth[a] for a in archs]).statistic
        assert record["probe_tau"] == (None if expected != expected else pytest.approx(expected))
    # `nsas plot` draws tau over training from the probe records alone
    assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "kendall.png").is_file()
    # ... or from the truth table itself (its only column, test_acc), with bootstrap bands
    from nsas.plot import kendall_series, probe_series

    assert main(["plot", str(tmp_path / "run"), "--truth", str(tmp_path / "truth.csv"),
                 "--out", str(tmp_path / "plots2")]) == 0
    assert (tmp_path / "plots2" / "kendall.png").is_file()
    ks = kendall_series(probe_series(records), truth, bootstrap=200)
    finite = ~(ks.tau != ks.tau)
    assert all(lo <= t <= hi for lo, t, hi in zip(ks.low[finite], ks.tau[finite], ks.high[finite]))


def test_search_selects_only_from_the_given_file(tmp_path):
    truth = write_truth(tmp_path / "truth.csv", count=5)
    listed = tmp_path / "list.txt"
    listed.write_text("# candidates\n" + "\n".join(list(truth)[:3]) + "\n")
    for name, path, allowed in [("table", tmp_path / "truth.csv", set(truth)), ("list", listed, set(list(truth)[:3]))]:
        cfg = tiny_search_config("nb201", select_from=str(path), select_rounds=4, select_samples=2)
        selected = search(cfg, tmp_path / name, progress=False).selected
        assert len(selected) == 4 and {row["arch"] for row in selected} <= allowed
    assert read_arch_file(listed, SPACE)[0] == [SPACE.parse(a) for a in list(truth)[:3]]


def test_selection_breaks_accuracy_ties_by_loss(tmp_path, monkeypatch):
    import nsas.searcher

    def fake_scores(model, archs, batches, **_):  # every candidate gets the same accuracy
        return [{"arch": str(a), "acc": 50.0, "loss": float(len(str(a)))} for a in archs]

    monkeypatch.setattr(nsas.searcher, "score_archs", fake_scores)  # where the Search run looks it up
    selected = search(tiny_search_config("nb201", select_rounds=1, select_samples=6), tmp_path, progress=False).selected
    rng = random.Random("select-0")
    candidates = [str(SPACE.sample(rng)) for _ in range(6)]
    assert selected[0]["arch"] == min(candidates, key=len)


def test_rank_by_loss_drives_probe_tau_and_selection(tmp_path):
    """`rank_by: loss`: the probe's tau is of minus the loss, and selection keeps the lowest-loss cells."""
    truth = write_truth(tmp_path / "truth.csv")
    cfg = tiny_search_config("nb201", epochs=1, probe_from=str(tmp_path / "truth.csv"), probe_count=6,
                             rank_by="loss", select_rounds=1, select_samples=len(truth),
                             select_from=str(tmp_path / "truth.csv"))
    search(cfg, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (probe,) = [r for r in records if r["kind"] == "probe"]
    loss, acc = [p["loss"] for p in probe["probe"]], [p["acc"] for p in probe["probe"]]
    truths = [p["truth"] for p in probe["probe"]]
    by_loss = stats.kendalltau([-x for x in loss], truths).statistic
    assert probe["probe_tau"] == pytest.approx(by_loss)
    assert by_loss != pytest.approx(stats.kendalltau(acc, truths).statistic)  # the two scores differ here
    (winner,) = json.loads((tmp_path / "run" / "selected.json").read_text())
    # `nsas rank` at the run's defaults ranks the same way (the run's rank_by) and agrees on the winner
    ranked = nsas.rank(tmp_path / "run", list(truth), device="cpu", out=tmp_path / "scores.csv")
    assert ranked.rank_by == "loss" and ranked.best[0]["arch"] == winner["arch"]
    assert winner["loss"] == pytest.approx(min(r["loss"] for r in ranked.rows))
    by_acc = nsas.rank(tmp_path / "run", list(truth), device="cpu", rank_by="acc", out=tmp_path / "acc.csv")
    assert by_acc.best[0]["acc"] == max(r["acc"] for r in ranked.rows)
