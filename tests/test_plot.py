"""Tests of `nsas plot`: series computations, the figures of a run directory, CLI errors."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from nsas.cli import main
from nsas.cell_diagram import cell_graphs, plot_cells
from nsas.plot import ProbeSeries, kendall_series, moving_average, plot_run, probe_series
from nsas.spaces import get_space
from tiny import DARTS_GENOTYPE, RNN_GENOTYPE
from test_correlate import tau_b_by_pairs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NB201 = [
    "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    "|none~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
    "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
]
DARTS = DARTS_GENOTYPE
RNN = RNN_GENOTYPE
# accuracy of each NB201 probe at the probe points 10, 20, 30, 40 (row 0 is constant: tau undefined)
ACC = np.array([[10.0, 10.0, 10.0, 10.0, 10.0],
                [20.0, 35.0, 15.0, 30.0, 25.0],
                [40.0, 30.0, 30.0, 45.0, 20.0],
                [55.0, 50.0, 20.0, 60.0, 52.0]])
TRUTH = [91.0, 88.5, 60.0, 93.2, 85.0]


def write_run(root: Path, *, space: str = "nb201", probes: bool = True, steps: bool = True,
              selected: str | None = NB201[0], gdas: bool = False) -> Path:
    """A synthetic search run directory: config.yaml, metrics.jsonl, selected.json."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(f"space: {space}\nstrategy: {'gdas' if gdas else 'random'}\nloss: nsas\n")
    records = []
    for step in range(1, 41):
        if steps and step % 2 == 0:
            record = {"kind": "step", "step": step, "epoch": 1 + step // 20, "loss": 2.3 - 0.02 * step,
                      "archive_loss": None if step < 6 else 2.4 - 0.02 * step, "total_loss": 4.0,
                      "passes": 9 * step, "lr": 0.025 * (1 - step / 50), "arch": NB201[step % 5],
                      "archive_diversity": 0.5 + 0.005 * step}
            if gdas:
                record["tau"] = 10 - 0.2 * step
            records.append(record)
        if probes and step % 10 == 0:
            row = ACC[step // 10 - 1]
            records.append({"kind": "probe", "step": step, "epoch": 1, "passes": 9 * step,
                            "probe": [{"arch": a, "acc": float(x), "loss": 2.0} for a, x in zip(NB201, row)]})
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if selected is not None:
        (root / "selected.json").write_text(json.dumps([{"arch": selected, "round": 1, "acc": 61.5, "loss": 1.2}]))
    return root


def assert_png(path: Path) -> np.ndarray:
    """``path`` is a non-empty PNG that matplotlib reads back as a picture with content."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image


# ---------------------------------------------------------------- series
def test_probe_series_orders_steps_keeps_last_record_and_marks_missing():
    records = [
        {"kind": "probe", "step": 20, "probe": [{"arch": "b", "acc": 5.0, "loss": 1.0}]},
        {"kind": "step", "step": 20, "loss": 1.0},
        {"kind": "probe", "step": 10, "probe": [{"arch": "a", "acc": 1.0, "loss": 2.0},
                                                {"arch": "b", "acc": 2.0, "loss": 2.0}]},
        {"kind": "probe", "step": 20, "probe": [{"arch": "a", "acc": 7.0, "loss": 0.5}]},
        {"kind": "probe", "step": 20, "probe": [{"arch": "a", "acc": 8.0, "loss": 0.4}]},  # epoch-end repeat
    ]
    s = probe_series(records)
    assert s.steps.tolist() == [10, 20]
    assert s.archs == ["b", "a"]
    assert s.acc.tolist() == [[2.0, 1.0], [5.0, 8.0]]
    assert s.loss[1].tolist() == [1.0, 0.4]
    partial = probe_series(records[:2])
    assert partial.archs == ["b"] and partial.steps.tolist() == [20]
    empty = probe_series([{"kind": "step", "step": 1}])
    assert empty.steps.size == 0 and empty.acc.shape == (0, 0)


def test_kendall_series_equals_the_definition_at_every_probe_point():
    archs = [f"arch{j}" for j in range(5)]
    series = ProbeSeries(np.array([10, 20, 30, 40]), archs, ACC.copy(), np.zeros_like(ACC))
    truth = dict(zip(archs, TRUTH))
    ks = kendall_series(series, truth)
    assert ks.steps.tolist() == [10, 20, 30, 40]
    assert ks.count.tolist() == [5, 5, 5, 5]
    assert math.isnan(ks.tau[0])  # constant inherited accuracy: undefined, as in scipy
    for i in range(1, 4):
        assert ks.tau[i] == pytest.approx(tau_b_by_pairs(ACC[i], TRUTH), abs=1e-12)
    assert ks.tau[3] > 0.5  # at the end the supernet ranks the probes mostly right
    flipped = kendall_series(series, truth, lower_is_better=True)
    assert np.allclose(flipped.tau[1:], -ks.tau[1:])


def test_kendall_series_uses_only_archs_with_truth_and_needs_three():
    archs = [f"arch{j}" for j in range(5)]
    acc = ACC.copy()
    acc[2, 4] = np.nan  # arch4 not probed at step 30
    series = ProbeSeries(np.array([10, 20, 30, 40]), archs, acc, np.zeros_like(acc))
    truth = {a: t for a, t in zip(archs, TRUTH) if a != "arch1"}
    ks = kendall_series(series, truth)
    assert ks.archs == ["arch0", "arch2", "arch3", "arch4"]
    assert ks.count.tolist() == [4, 4, 3, 4]
    cols = [0, 2, 3]
    assert ks.tau[2] == pytest.approx(tau_b_by_pairs(ACC[2, cols], [TRUTH[c] for c in cols]))
    with pytest.raises(ValueError, match="need at least 3"):
        kendall_series(series, {"arch0": 1.0, "arch2": 2.0})


def test_moving_average_is_trailing_and_skips_nan():
    x = np.array([1.0, 3.0, np.nan, 5.0, 7.0, 9.0])
    assert np.allclose(moving_average(x, 1), x, equal_nan=True)
    out = moving_average(x, 2)
    assert out[0] == 1.0 and out[1] == 2.0 and math.isnan(out[2])
    assert out[3] == 5.0  # the window [nan, 5] averages the finite value only
    assert out[4] == 6.0 and out[5] == 8.0


# ---------------------------------------------------------------- cell graphs
def test_cell_graphs_follow_the_architecture():
    nb = get_space("nb201").parse(NB201[0])
    (graph,) = cell_graphs(nb)
    assert len(graph.nodes) == 4
    assert sorted(op for _, _, op in graph.edges) == sorted(op for op in nb.ops if op != "none")
    assert ("0", "3", "none") not in graph.edges and ("1", "3", "avg_pool_3x3") in graph.edges

    darts = get_space("darts").parse(DARTS)
    normal, reduce = cell_graphs(darts)
    for graph, cell in ((normal, "normal"), (reduce, "reduce")):
        op_edges = [e for e in graph.edges if e[2]]
        assert sorted(op for *_, op in op_edges) == sorted(op for op, _ in darts.edges(cell))
        assert sorted(src for src, dst, op in graph.edges if dst == "out") == ["0", "1", "2", "3"]
        assert {n[1] for n in graph.nodes if n[2] == "input"} == {"$c_{k-2}$", "$c_{k-1}$"}
    assert ("k-1", "3", "dil_conv_3x3") not in normal.edges and ("0", "3", "dil_conv_3x3") in normal.edges

    rnn = get_space("darts-rnn").parse(RNN)
    (graph,) = cell_graphs(rnn)
    assert [(s, d, op) for s, d, op in graph.edges if op] == [
        (str(j), str(i), op) for i, (op, j) in enumerate(rnn.recurrent, start=1)]
    assert sorted(int(s) for s, d, _ in graph.edges if d == "out") == list(range(1, 9))
    ranks = {n[0]: n[3] for n in graph.nodes}
    assert all(ranks[d] > ranks[s] for s, d, _ in graph.edges)  # laid out left to right


@pytest.mark.parametrize("space,text", [("nb201", NB201[0]), ("darts", DARTS), ("darts-rnn", RNN)])
def test_plot_cells_labels_every_op_edge(space, text):
    arch = get_space(space).parse(text)
    fig = plot_cells(arch, title="t")
    drawn = Counter(t.get_text() for ax in fig.axes for t in ax.texts)
    ops = Counter(op for graph in cell_graphs(arch) for *_, op in graph.edges if op)
    assert all(drawn[op] == n for op, n in ops.items())
    assert "none" not in drawn
    assert len(fig.axes) == (2 if space == "darts" else 1)


# ---------------------------------------------------------------- run directories
def test_plot_run_draws_all_four_figures_with_truth(tmp_path):
    run = write_run(tmp_path / "run")
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,acc\n" + "".join(f"{a},{t}\n" for a, t in zip(NB201, TRUTH)))
    notes = []
    paths = plot_run(run, truth=truth, dpi=50, note=notes.append)
    assert [p.name for p in paths] == ["forgetting.png", "losses.png", "kendall.png", "cells.png"]
    assert all(p.parent == run / "plots" for p in paths)
    for path in paths:
        assert_png(path)
    assert notes == []


def test_figures_plot_the_data_of_the_run(tmp_path):
    """Each curve holds exactly the numbers of the metrics, not just some ink."""
    from nsas.plot import plot_forgetting, plot_kendall, plot_losses
    from nsas.rundir import read_metrics

    records = read_metrics(write_run(tmp_path / "run"))
    series = probe_series(records)
    lines = plot_forgetting(series).axes[0].get_lines()
    assert len(lines) == 5
    for j, line in enumerate(lines):  # probe j: its accuracy at steps 10, 20, 30, 40
        assert line.get_xdata().tolist() == [10, 20, 30, 40] and line.get_ydata().tolist() == ACC[:, j].tolist()
    steps = np.arange(2, 41, 2)
    current, archive = plot_losses(records, window=1).axes[0].get_lines()
    assert current.get_xdata().tolist() == steps.tolist()
    np.testing.assert_allclose(current.get_ydata(), 2.3 - 0.02 * steps)
    np.testing.assert_allclose(archive.get_ydata(), np.where(steps < 6, np.nan, 2.4 - 0.02 * steps))
    ks = kendall_series(series, dict(zip(NB201, TRUTH)))
    (tau_line,) = plot_kendall(ks).axes[0].get_lines()[1:]  # after the zero line
    expected = [math.nan] + [tau_b_by_pairs(ACC[i], TRUTH) for i in (1, 2, 3)]  # row 0 is constant
    np.testing.assert_allclose(tau_line.get_ydata(), expected)


def test_truth_joins_on_canonical_strings_and_needs_three_matches(tmp_path):
    run = write_run(tmp_path / "run", steps=False, selected=None)
    # rows are matched on canonical strings: padding around an architecture does not matter
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps([{"arch": f"  {a} ", "top1": t} for a, t in zip(NB201[:3], TRUTH)]))
    notes = []
    paths = plot_run(run, truth=truth, truth_key="top1", out_dir=tmp_path / "figs", dpi=50, note=notes.append)
    assert [p.name for p in paths] == ["forgetting.png", "kendall.png"]
    assert "kendall.png: 2 probe architecture(s) have no truth in " + str(truth) in notes

    truth.write_text(json.dumps([{"arch": a, "top1": t} for a, t in zip(NB201[:2], TRUTH)]))
    notes = []
    paths = plot_run(run, truth=truth, truth_key="top1", out_dir=tmp_path / "figs2", dpi=50, note=notes.append)
    assert [p.name for p in paths] == ["forgetting.png"]
    assert (f"skipped kendall.png: 2 of 5 probe architectures have a 'top1' value in {truth}; "
            "Kendall tau needs at least 3") in notes


def test_run_without_probe_records_skips_forgetting_with_a_message(tmp_path):
    run = write_run(tmp_path / "run", probes=False, gdas=True)
    notes = []
    paths = plot_run(run, dpi=50, note=notes.append)
    assert [p.name for p in paths] == ["losses.png", "cells.png"]
    assert notes == ["skipped forgetting.png: metrics.jsonl has no probe records yet"]
    assert not (run / "plots" / "forgetting.png").exists()
    assert_png(run / "plots" / "losses.png")


def test_run_in_progress_ignores_a_half_written_line_and_skips_cells(tmp_path):
    run = write_run(tmp_path / "run", selected=None)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "step", "step": 41, "lo')
    notes = []
    paths = plot_run(run, dpi=50, note=notes.append)
    assert [p.name for p in paths] == ["forgetting.png", "losses.png"]
    assert notes == ["skipped cells.png: no selected.json (the search has not finished)"]


@pytest.mark.parametrize("space,text", [("darts", DARTS), ("darts-rnn", RNN)])
def test_cells_only_run_of_other_spaces(tmp_path, space, text):
    run = write_run(tmp_path / "run", space=space, probes=False, steps=False, selected=text)
    notes = []
    paths = plot_run(run, dpi=50, note=notes.append)
    assert [p.name for p in paths] == ["cells.png"]
    image = assert_png(paths[0])
    assert image.shape[1] > image.shape[0]  # left to right: wider than tall
    assert len(notes) == 2 and all(n.startswith("skipped ") for n in notes)


def test_corrupt_files_are_one_line_errors(tmp_path):
    from nsas.errors import NsasError

    run = write_run(tmp_path / "run")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{oops"] + lines) + "\n")
    with pytest.raises(NsasError, match="metrics.jsonl line 1: not valid JSON"):
        plot_run(run, dpi=50)
    run = write_run(tmp_path / "run2")
    (run / "selected.json").write_text('{"arch": 1}')
    with pytest.raises(NsasError, match="not a list of selected architectures"):
        plot_run(run, dpi=50, note=lambda _: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text("space: nb201\n")
    with pytest.raises(NsasError, match="nothing to plot"):
        plot_run(empty, note=lambda _: None)


# ---------------------------------------------------------------- CLI
def test_cli_prints_the_paths_it_wrote_and_notes_what_it_skipped(tmp_path, capsys):
    run = write_run(tmp_path / "run", steps=False, selected=None)
    out = tmp_path / "figures"
    assert main(["plot", str(run), "--out", str(out), "--dpi", "40"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out / "forgetting.png")]
    assert assert_png(out / "forgetting.png").shape[1] == pytest.approx(9.0 * 40, abs=2)  # --dpi applied
    assert captured.err.splitlines() == [
        "nsas plot: skipped losses.png: metrics.jsonl has no step records yet",
        "nsas plot: skipped cells.png: no selected.json (the search has not finished)"]


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "is not a directory"),
    (lambda d: d.mkdir(), "is not a search run directory (no config.yaml)"),
    (lambda d: (d.mkdir(), (d / "config.yaml").write_text("arch: x\n")), "names no search space"),
])
def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys, setup, message):
    target = tmp_path / "not-a-run"
    setup(target)
    assert main(["plot", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nsas: error: ") and message in err
    assert not (target / "plots").exists()


def test_cli_rejects_a_silly_dpi(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    assert main(["plot", str(run), "--dpi", "0"]) == 2
    assert "--dpi must be at least 10" in capsys.readouterr().err


def test_kendall_series_ranks_by_loss_for_a_loss_ranked_run():
    """rank_by="loss": the probes' score is minus their loss (the search's probe_tau), not their accuracy."""
    archs = [f"arch{j}" for j in range(5)]
    loss = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    series = ProbeSeries(np.array([10, 20]), archs, ACC[2:].copy(), loss)
    truth = dict(zip(archs, TRUTH))
    by_loss = kendall_series(series, truth, rank_by="loss")
    for i in range(2):
        assert by_loss.tau[i] == pytest.approx(tau_b_by_pairs(-loss[i], TRUTH), abs=1e-12)
    assert not np.allclose(by_loss.tau, kendall_series(series, truth).tau)


# ---------------------------------------------------------------- issue 23: figures that mislead, custom spaces
def test_plot_modules_import_no_private_names_of_each_other():
    """plot_compare draws from nsas.plot_data, not nsas.plot's private helpers: no import circle."""
    import ast

    import nsas.plot_compare

    tree = ast.parse(Path(nsas.plot_compare.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "nsas.plot" not in imported and "nsas.plot_data" in imported
    data_tree = ast.parse(Path(nsas.plot_compare.__file__).with_name("plot_data.py").read_text())
    assert not {node.module for node in ast.walk(data_tree) if isinstance(node, ast.ImportFrom)} & {
        "nsas.plot", "nsas.plot_compare"}


def test_choice_space_run_skips_the_cell_diagram_and_draws_the_rest(tmp_path):
    from torch import nn

    import nsas
    from nsas.spaces.choice import ChoiceSpace

    nsas.register_space(ChoiceSpace([{"a": nn.Identity, "b": nn.Identity}] * 2), name="plot-choice")
    try:
        run = write_run(tmp_path / "run", space="plot-choice", selected="a|b")
        notes = []
        paths = plot_run(run, dpi=50, note=notes.append)
    finally:
        nsas.spaces.SPACES.remove("plot-choice")
    assert [p.name for p in paths] == ["forgetting.png", "losses.png"]
    assert notes == ["skipped cells.png: no cell diagram for architectures of space 'plot-choice' "
                     "(cells are drawn for nb201, darts, darts-chain and darts-rnn)"]
    for path in paths:
        assert_png(path)


def test_run_of_a_space_not_registered_here_still_plots(tmp_path, capsys):
    run = write_run(tmp_path / "run", space="not-installed-here", selected="a|b")
    assert main(["plot", str(run), "--dpi", "50"]) == 0
    out, err = capsys.readouterr()
    assert [Path(line).name for line in out.splitlines()] == ["forgetting.png", "losses.png"]
    assert err.count("\n") == 1 and err.startswith("nsas plot: skipped cells.png: ") and "not-installed-here" in err


def test_compare_puts_passes_on_every_panel(tmp_path):
    from nsas.plot_compare import plot_compare
    from nsas.rundir import read_metrics

    records = read_metrics(write_run(tmp_path / "run"))
    # a second run that spends twice the passes per step (e.g. NSAS's archive passes)
    doubled = [{**r, "passes": 2 * r["passes"]} for r in records]
    fig = plot_compare([("a", records), ("b", doubled)])
    loss_ax, probe_ax, div_ax = fig.axes[:3]
    step_passes = [r["passes"] for r in records if r["kind"] == "step"]
    probe_passes = [r["passes"] for r in records if r["kind"] == "probe"]
    assert loss_ax.lines[0].get_xdata().tolist() == step_passes
    assert div_ax.lines[0].get_xdata().tolist() == step_passes
    assert probe_ax.lines[0].get_xdata().tolist() == probe_passes
    assert probe_ax.lines[1].get_xdata().tolist() == [2 * p for p in probe_passes]
    assert div_ax.get_xlabel().startswith("single-path passes")
    assert loss_ax.get_shared_x_axes().joined(loss_ax, probe_ax)


def test_probe_passes_interpolates_from_step_records_when_a_probe_lacks_them():
    from nsas.plot_compare import probe_passes

    records = [{"kind": "step", "step": 10, "passes": 100}, {"kind": "step", "step": 20, "passes": 300},
               {"kind": "probe", "step": 15}, {"kind": "probe", "step": 20, "passes": 310}]
    np.testing.assert_allclose(probe_passes(records, [15, 20, 30]), [200.0, 310.0, np.nan])


@pytest.mark.parametrize("rank_by, words", [("acc", "inherited accuracy"), ("loss", "inherited validation loss")])
def test_kendall_title_names_the_runs_rank_by_and_fits(tmp_path, rank_by, words):
    run = write_run(tmp_path / "run")
    with (run / "config.yaml").open("a") as f:
        f.write(f"rank_by: {rank_by}\n")
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,test_acc\n" + "".join(f"{a},{t}\n" for a, t in zip(NB201, TRUTH)))
    from nsas.plot import plot_kendall

    ks = kendall_series(probe_series(__import__("nsas.rundir").rundir.read_metrics(run)), dict(zip(NB201, TRUTH)),
                        rank_by=rank_by)
    fig = plot_kendall(ks, truth_name="truth.csv (test_acc)", rank_by=rank_by)
    title = fig.axes[0].get_title()
    assert words in title and "truth.csv (test_acc)" in title and "5 probe architectures" in title
    assert ("accuracy" in title) == (rank_by == "acc")
    fig.canvas.draw()  # the title's box lies inside the figure: nothing is cut
    box = fig.axes[0].title.get_window_extent()
    width, height = fig.canvas.get_width_height()
    assert 0 <= box.x0 and box.x1 <= width and box.y1 <= height
    paths = plot_run(run, truth=truth, dpi=50, note=[].append)
    assert "kendall.png" in [p.name for p in paths]


def test_kendall_from_few_probes_is_flagged(tmp_path):
    run = write_run(tmp_path / "run", steps=False, selected=None)
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,acc\n" + "".join(f"{a},{t}\n" for a, t in zip(NB201[:3], TRUTH)))
    notes = []
    plot_run(run, truth=truth, dpi=50, note=notes.append)
    assert "kendall.png: tau from only 3 probe architectures can take just 4 values; a larger probe set " \
           "(probe_count) measures it" in notes
    from nsas.plot import plot_kendall

    series = probe_series(__import__("nsas.rundir").rundir.read_metrics(run))
    few = plot_kendall(kendall_series(series, dict(zip(NB201[:3], TRUTH))))
    assert any("only 3 probes" in t.get_text() for t in few.axes[0].texts)
    enough = plot_kendall(kendall_series(series, dict(zip(NB201, TRUTH))))
    assert not any("only" in t.get_text() for t in enough.axes[0].texts)


def test_kendall_truth_direction_follows_the_truth_columns_name(tmp_path):
    """A truth column named err is ranked lower-is-better without a flag: the same tau as its accuracy."""
    run = write_run(tmp_path / "run", steps=False, selected=None)
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,acc,err\n" + "".join(f"{a},{t},{100 - t}\n" for a, t in zip(NB201, TRUTH)))
    from nsas import plot as plot_module

    drawn = []
    real = plot_module.plot_kendall
    plot_module_kendall = lambda ks, **kw: drawn.append(ks) or real(ks, **kw)  # noqa: E731
    try:
        plot_module.plot_kendall = plot_module_kendall
        plot_run(run, truth=truth, truth_key="acc", out_dir=tmp_path / "a", dpi=40, note=[].append)
        plot_run(run, truth=truth, truth_key="err", out_dir=tmp_path / "b", dpi=40, note=[].append)
        plot_run(run, truth=truth, truth_key="err", truth_lower_is_better=False, out_dir=tmp_path / "c", dpi=40,
                 note=[].append)
    finally:
        plot_module.plot_kendall = real
    np.testing.assert_allclose(drawn[0].tau, drawn[1].tau)
    np.testing.assert_allclose(drawn[2].tau[1:], -drawn[0].tau[1:])  # given explicitly: used as given


def test_crossings_by_hand():
    from nsas.cell_diagram import crossings

    x = np.array([[0.0, 0.0], [2.0, 2.0]])
    assert crossings(x, np.array([[0.0, 2.0], [2.0, 0.0]])) == 1
    assert crossings(x, np.array([[0.0, 1.0], [2.0, 3.0]])) == 0  # parallel
    assert crossings(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]), np.array([[0.0, 0.5], [2.0, 0.5]])) == 2


@pytest.mark.parametrize("text", NB201)
def test_nb201_cell_edges_do_not_cross(text):
    """Crossing edges made labels ambiguous (0->2 and 1->3 both under the chain): an nb201 cell has room for none."""
    from matplotlib.patches import FancyArrowPatch

    from nsas.cell_diagram import _curve, crossings

    fig = plot_cells(get_space("nb201").parse(text))
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    t = np.linspace(0.1, 0.9, 33)
    curves = [_curve(np.array(a._posA_posB[0]), np.array(a._posA_posB[1]), a.get_connectionstyle().rad, t)
              for a in arrows]
    assert len(curves) >= 2
    for i in range(len(curves)):
        for j in range(i):
            assert crossings(curves[i], curves[j]) == 0, (i, j)
