"""--resume continues with the run's own config: only the free keys may be given (search and train alike)."""

from __future__ import annotations

import pytest

import nsas.data
from nsas.cli import main
from nsas.search import Search, search
from tiny import fake_dataset, tiny_search_config


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def test_search_resume_refuses_a_changed_key_and_takes_the_free_ones(tmp_path, capsys):
    run = tmp_path / "run"
    search(tiny_search_config("nb201"), run, progress=False)
    for argv, flag in ((["--lr", "0.5"], "--lr"), (["--preset", "paper"], "--preset"),
                       (["--config", str(run / "config.yaml")], "--config")):
        assert main(["search", "--out", str(run), "--resume", *argv]) == 2
        err = capsys.readouterr().err
        assert f"{flag} cannot change it" in err and "--device, --consistency-every, --tensorboard" in err
    assert main(["search", "--out", str(run), "--resume", "--device", "cpu", "--print-config"]) == 0
    assert "device: cpu" in capsys.readouterr().out


def test_train_resume_refuses_a_changed_key(tmp_path, capsys):
    run = tmp_path / "train"
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    assert main(["train", arch, "--space", "nb201", "--dataset", "fake-images", "--epochs", "1", "--channels", "4",
                 "--cells", "1", "--batch-size", "16", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "--epochs cannot change it" in err and "--device, --tensorboard" in err


def test_a_resume_refuses_data_that_changed_since_the_checkpoint(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    cfg = tiny_search_config("nb201", epochs=2)
    original = Search.end_epoch

    def stop_after_epoch_1(self):
        original(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Search, "end_epoch", stop_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, run, progress=False)
    monkeypatch.setattr(Search, "end_epoch", original)

    def replaced(name, data_dir=None, download=True):  # the image archive swapped between kill and resume
        ds = fake_dataset(name, data_dir, download)
        ds.train_x[0, 0, 0, 0] ^= 1
        return ds

    monkeypatch.setattr(nsas.data, "load_dataset", replaced)
    assert main(["search", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "is not the one" in err and "checkpoint.pt" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)  # the same data: the resume goes on
    assert main(["search", "--out", str(run), "--resume", "--quiet"]) == 0
