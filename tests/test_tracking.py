"""TensorBoard mirror of metrics.jsonl (skipped without the extra) and `nsas plot RUN1 RUN2` overlays."""

from __future__ import annotations

import importlib.util

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


def _board(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
    board.Reload()
    return board


def _hparams(board) -> dict:
    """The hyperparameters of the run's HParams session start, as plain values."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = board.PluginTagToContent("hparams")
    assert "_hparams_/experiment" not in content  # no experiment summary: TensorBoard takes every scalar as a metric
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}


def test_tensorboard_logs_the_config_once_and_no_axis_as_a_scalar(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    import yaml

    run = tmp_path / "run"
    search(tiny_search_config("nb201", epochs=2, tensorboard=True), run, progress=False)
    board = _board(run / "tensorboard")
    tags = board.Tags()["scalars"]
    assert "probe/acc_mean" in tags and "step/loss" in tags
    assert not [t for t in tags if t.split("/")[-1] in ("step", "epoch")], tags  # the x axis, not a metric
    config = yaml.safe_load((run / "config.yaml").read_text())
    hp = _hparams(board)
    assert set(hp) == set(config)
    assert hp["loss"] == config["loss"] == "nsas" and hp["epochs"] == config["epochs"] == 2
    assert hp["augment"] is config["augment"]
    none_keys = [k for k, v in config.items() if v is None]
    assert none_keys and all(hp[k] == "none" for k in none_keys)
    text = board.Tensors("config/text_summary")
    assert len(text) == 1 and "loss: nsas" in text[0].tensor_proto.string_val[0].decode()


def test_a_resumed_run_does_not_log_its_config_twice(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    (tmp_path / "config.yaml").write_text("loss: nsas\nepochs: 2\n")
    for resume_step in (None, 1, 2):  # the run, then two resumes (each opens a new event file)
        metrics = nsas.tracking.open_metrics(tmp_path, resume_step=resume_step, enabled=True, tensorboard=True)
        metrics.write({"kind": "step", "step": (resume_step or 0) + 1, "loss": 1.0})
        metrics.close()
    files = sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    starts = [v for f in files for e in LegacyEventFileLoader(str(f)).Load() for v in e.summary.value
              if v.tag == "_hparams_/session_start_info"]
    assert len(files) == 3 and len(starts) == 1
    assert _hparams(_board(tmp_path / "tensorboard")) == {"loss": "nsas", "epochs": 2.0}


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
