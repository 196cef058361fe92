"""TensorBoard mirror of metrics.jsonl (skipped without the extra) and `nsas plot RUN1 RUN2` overlays."""

from __future__ import annotations

import importlib.util
import json

import pytest

import nsas.data
import nsas.tracking
from nsas.cli import main
from nsas.errors import NsasError
from nsas.plot_compare import plot_compare
from nsas.rundir import read_metrics
from nsas.search import search
from tiny import fake_dataset, tiny_search_config


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def test_tensorboard_mirrors_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    search(tiny_search_config("nb201", epochs=2, tensorboard=True), run, progress=False)
    board = EventAccumulator(str(run / "tensorboard"))
    board.Reload()
    records = read_metrics(run)
    steps = [r for r in records if r["kind"] == "step"]
    logged = {(e.step, round(e.value, 4)) for e in board.Scalars("step/loss")}
    assert logged == {(r["step"], round(r["loss"], 4)) for r in steps}
    probes = [r for r in records if r["kind"] == "probe"]
    assert len(board.Scalars("probe/acc_mean")) == len(probes)


def test_tensorboard_without_the_extra_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nsas.tracking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else importlib.util.find_spec(name, *a))
    with pytest.raises(NsasError, match=r"nsas\[tensorboard\]"):
        search(tiny_search_config("nb201", tensorboard=True), tmp_path / "r", progress=False)


def test_plot_overlays_several_runs(tmp_path, capsys):
    runs = []
    for loss in ("ce", "nsas"):
        run = tmp_path / loss
        search(tiny_search_config("nb201", loss=loss, epochs=2), run, progress=False)
        runs.append(run)
    out = tmp_path / "cmp"
    assert main(["plot", *map(str, runs), "--out", str(out)]) == 0
    assert (out / "compare.png").stat().st_size > 0 and str(out / "compare.png") in capsys.readouterr().out
    fig = plot_compare([(r.name, read_metrics(r)) for r in runs])
    loss_ax, probe_ax, div_ax = fig.axes[:3]
    assert len(loss_ax.lines) == 2 and len(probe_ax.lines) == 2
    assert len(div_ax.lines) == 1  # only the nsas run has an archive
    ce_passes = [r["passes"] for r in read_metrics(runs[0]) if r["kind"] == "step"]
    assert list(loss_ax.lines[0].get_xdata()) == ce_passes  # x is the cost measure, not the step


def test_plot_compare_refuses_truth_and_non_runs(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert main(["plot", str(tmp_path / "a"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a search run" in capsys.readouterr().err
