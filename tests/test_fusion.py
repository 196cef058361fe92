"""Rank fusion (nsas.fusion): known ranks, directions, fitted weights, JSON round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nsas.fusion import FusionError, FusionWeights, fit_weights, fuse, parse_weights, transformed


def test_parse_weights():
    assert parse_weights("count=0.5,loss=0.5") == {"params": 0.5, "loss": 0.5}
    assert parse_weights(" jacov=1 , ") == {"jacov": 1.0}
    for bad in ("count", "count=x", "count=-1", "count=0", "a=1,a=2", ""):
        with pytest.raises(FusionError):
            parse_weights(bad)


def test_rank_fusion_by_hand():
    rows = [{"acc": 90, "loss": 0.5}, {"acc": 80, "loss": 0.4}, {"acc": 80, "loss": 0.9}, {"acc": 70, "loss": 0.1}]
    # acc ranks (higher better): 4, 2.5, 2.5, 1 -> scaled (r-1)/3
    assert transformed(np.array([90, 80, 80, 70.]), "rank").tolist() == pytest.approx([1, 0.5, 0.5, 0])
    # loss enters negated: best loss 0.1 gets the top rank
    score = fuse(rows, {"acc": 1, "loss": 1})
    acc = np.array([3, 1.5, 1.5, 0]) / 3
    neg_loss = np.array([1, 2, 0, 3]) / 3  # ranks of -loss: -0.5 -> 2nd lowest ...
    assert score.tolist() == pytest.approx((acc + neg_loss).tolist())
    assert fuse(rows, {"loss": 1}, lower_is_better=[]).tolist() == pytest.approx([2 / 3, 1 / 3, 1, 0])


def test_z_fusion_by_hand():
    rows = [{"a": 1.0, "b": 10.0}, {"a": 2.0, "b": 30.0}, {"a": 3.0, "b": 20.0}]
    z = lambda v: (np.array(v) - np.mean(v)) / np.std(v)  # noqa: E731
    expected = 0.25 * z([1, 2, 3]) + 0.75 * z([10, 30, 20])
    assert fuse(rows, {"a": 0.25, "b": 0.75}, method="z").tolist() == pytest.approx(expected.tolist())
    # an infinite value (naswot of a singular kernel) is clipped to the finite range
    assert transformed(np.array([-np.inf, 0.0, 1.0]), "z").tolist() == pytest.approx(z([0, 0, 1]).tolist())


def _table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    rows = [{"informative": t + 0.1 * rng.normal(), "noise": rng.normal(), "loss": -t + 2.0 * rng.normal()}
            for t in truth]
    return rows, truth


@pytest.mark.parametrize("method", ["rank", "z"])
def test_fit_recovers_the_informative_column(method):
    rows, truth = _table()
    fw = fit_weights(rows, truth, ["noise", "informative", "loss"], method=method, step=0.1)
    assert max(fw.weights, key=fw.weights.get) == "informative"
    assert fw.weights["informative"] >= 0.7 and sum(fw.weights.values()) == pytest.approx(1)
    assert fw.fitted_on["cells"] == 60 and fw.fitted_on["search"] == "grid"
    assert fw.fitted_on["tau"] == pytest.approx(
        float(__import__("scipy").stats.kendalltau(fw.fuse(rows), truth).statistic), abs=1e-6)
    assert fw.lower_is_better == ["loss"]
    again = fit_weights(rows, truth, ["noise", "informative", "loss"], method=method, step=0.1)
    assert again == fw  # deterministic


def test_coordinate_search_when_the_grid_is_large():
    rows, truth = _table(40, seed=1)
    for r in rows:
        r.update({f"n{i}": float(np.sin(i * r["noise"])) for i in range(6)})
    columns = ["noise", "loss", "informative"] + [f"n{i}" for i in range(6)]
    fw = fit_weights(rows, truth, columns, step=0.05)
    assert fw.fitted_on["search"] == "coordinate"
    assert max(fw.weights, key=fw.weights.get) == "informative"
    assert sum(fw.weights.values()) == pytest.approx(1)


def test_save_and_load(tmp_path):
    rows, truth = _table(20)
    fw = fit_weights(rows, truth, ["informative", "loss"], truth_name="tune.csv", step=0.25)
    path = fw.save(tmp_path / "w.json")
    assert json.loads(path.read_text())["fitted_on"]["truth"] == "tune.csv"
    loaded = FusionWeights.load(path)
    assert loaded == fw and loaded.fuse(rows).tolist() == fw.fuse(rows).tolist()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(FusionError, match="not a fusion weights file"):
        FusionWeights.load(tmp_path / "bad.json")
    with pytest.raises(FusionError, match="cannot read"):
        FusionWeights.load(tmp_path / "missing.json")


def test_errors():
    rows = [{"a": 1.0}, {"a": float("nan")}]
    with pytest.raises(FusionError, match="no column 'b'"):
        fuse(rows, {"b": 1})
    with pytest.raises(FusionError, match="NaN"):
        fuse(rows, {"a": 1})
    with pytest.raises(FusionError, match="unknown fusion method"):
        fuse([{"a": 1.0}], {"a": 1}, method="mean")
    with pytest.raises(FusionError, match="at least 3 cells"):
        fit_weights([{"a": 1.0}], [1.0], ["a"])
