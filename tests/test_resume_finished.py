"""--resume of a search that already finished redoes nothing (issue 23), and --threads reaches torch."""

from __future__ import annotations

import pytest
import torch

import nsas.data
from nsas.cli import main
from tiny import fake_dataset

FLAGS = ["--space", "nb201", "--dataset", "fake-images", "--loss", "ce", "--epochs", "1", "--steps-per-epoch", "2",
         "--batch-size", "8", "--channels", "4", "--cells", "1", "--eval-batches", "1", "--select-rounds", "1",
         "--select-samples", "2", "--probe-count", "2", "--device", "cpu"]


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def test_resume_of_a_finished_search_keeps_its_selection(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", *FLAGS, "--out", str(run)]) == 0
    first = capsys.readouterr().out
    selected = (run / "selected.json").read_text()
    metrics = (run / "metrics.jsonl").read_text()
    stamp = (run / "selected.json").stat().st_mtime_ns
    assert main(["search", "--resume", "--out", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "finished training (1/1 epochs) and its selection; nothing to resume" in err + out
    assert "epoch 2" not in err + out and "resumed from" not in err + out and "1 epochs " not in err + out
    assert (run / "selected.json").read_text() == selected and (run / "selected.json").stat().st_mtime_ns == stamp
    assert (run / "metrics.jsonl").read_text() == metrics  # no probe, no selection records added
    picks = [line for line in first.splitlines() if line.startswith("  ")]
    assert picks and picks == [line for line in out.splitlines() if line.startswith("  ")]  # the same list


def test_resume_after_training_but_before_selection_selects(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", *FLAGS, "--out", str(run), "--quiet"]) == 0
    (run / "selected.json").unlink()
    capsys.readouterr()
    assert main(["search", "--resume", "--out", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "after training (1/1 epochs): selecting" in err + out and (run / "selected.json").is_file()


def test_search_threads_flag_sets_torch(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert main(["search", *FLAGS, "--out", str(tmp_path / "run"), "--quiet", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main(["search", *FLAGS, "--out", str(tmp_path / "run2"), "--threads", "0"]) == 2
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()
