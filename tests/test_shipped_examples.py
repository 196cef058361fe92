"""The example files in examples/ run in the commands the README uses them in (issue 23).

examples/nb201-truth.csv  40 NAS-Bench-201 cells with their published CIFAR-10 test accuracy (arch,test_acc)
examples/nb201-archs.txt  the same 40 cells, one per line (the README's cells.txt)
examples/darts_v2.txt     the DARTS_V2 genotype (the README's @darts_v2.txt)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

import nsas.data
from nsas.cli import main
from nsas.spaces import get_space
from tiny import fake_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRUTH = EXAMPLES / "nb201-truth.csv"
ARCHS = EXAMPLES / "nb201-archs.txt"


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny nb201 search on fake images, through the CLI."""
    from _pytest.monkeypatch import MonkeyPatch

    path = tmp_path_factory.mktemp("examples") / "run"
    with MonkeyPatch.context() as mp:
        mp.setattr(nsas.data, "load_dataset", fake_dataset)
        assert main(["search", "--space", "nb201", "--dataset", "fake-images", "--epochs", "1",
                     "--steps-per-epoch", "2", "--batch-size", "8", "--channels", "4", "--cells", "1",
                     "--eval-batches", "1", "--select-rounds", "1", "--select-samples", "2", "--probe-from",
                     str(TRUTH), "--probe-count", "5", "--device", "cpu", "--out", str(path), "--quiet"]) == 0
    return path


def test_the_example_files_hold_what_they_say():
    space = get_space("nb201")
    with TRUTH.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["arch", "test_acc"] and len(rows) == 40
    values = [float(r["test_acc"]) for r in rows]
    assert values == sorted(values) and 0 < values[0] < values[-1] < 100  # a stratified sample, lowest first
    archs = [line for line in ARCHS.read_text().splitlines() if line and not line.startswith("#")]
    assert sorted(map(str, map(space.parse, archs))) == sorted(str(space.parse(r["arch"])) for r in rows)


def test_inspect_darts_v2_prints_its_published_size(capsys):
    assert main(["inspect", f"@{EXAMPLES / 'darts_v2.txt'}", "--space", "darts", "--channels", "36",
                 "--cells", "20"]) == 0
    assert "3,349,342" in capsys.readouterr().out


def test_rank_correlate_plot_with_the_shipped_archs_and_truth(run_dir, tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    assert main(["rank", str(run_dir), "--archs", str(ARCHS), "--out", str(scores), "--quiet",
                 "--device", "cpu"]) == 0
    assert main(["correlate", str(scores), str(TRUTH), "--bootstrap", "50"]) == 0  # its only column is the truth
    out = capsys.readouterr().out
    assert "truth: test_acc (higher is better" in out and "kendall tau" in out and "40" in out
    assert main(["correlate", str(scores), str(TRUTH), "--key", "acc", "--truth-key", "test_acc",
                 "--bootstrap", "0", "--baseline", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 40
    assert main(["correlate", str(scores), str(TRUTH), "--key", "all", "--bootstrap", "0"]) == 0
    # the quick preset selects fused, so rank at its defaults adds the pipeline's proxies and score
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[3:]] == ["acc", "loss", "params",
                                                                                      "jacov", "score"]
    assert main(["plot", str(run_dir), "--truth", str(TRUTH), "--out", str(tmp_path / "plots"), "--dpi", "40"]) == 0
    assert "kendall.png" in capsys.readouterr().out


def test_study_with_the_shipped_truth(tmp_path, capsys):
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({"search": dict(
        steps_per_epoch=2, batch_size=8, channels=4, cells=1, eval_batches=1, select_rounds=1, select_samples=2,
        probe_count=2, log_every=1, checkpoint_every=0)}))
    out = tmp_path / "study"
    assert main(["study", "--space", "nb201", "--dataset", "fake-images", "--methods", "random:ce", "--seeds", "1",
                 "--archs", "8", "--search-epochs", "1", "--score-batches", "1", "--truth", str(TRUTH),
                 "--out", str(out), "--quiet", "--config", str(config)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["truth_key"] == "test_acc" and len(report["archs"]) == 8
