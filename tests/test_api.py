"""The Python API: `import nsas`, presets, result objects, and the caller's own components in a search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nsas
import nsas.data
from nsas.errors import NsasError
from nsas.search import load_search_run
from nsas.spaces.choice import ChoiceSpace
from tiny import fake_dataset, tiny_search_config


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def test_import_nsas_is_light_and_names_resolve():
    code = "import sys, nsas; print('torch' in sys.modules); print(callable(nsas.search), nsas.search.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "nsas.search"]
    import nsas.search as module  # the module stays a module

    assert nsas.search is module and module.SearchConfig is nsas.SearchConfig
    assert set(nsas.__all__) <= set(dir(nsas))
    for name in nsas.__all__:
        assert getattr(nsas, name) is not None
    with pytest.raises(AttributeError):
        nsas.no_such_name  # noqa: B018


def test_presets_give_each_space_its_settings():
    rnn = nsas.SearchConfig.preset("darts-rnn")
    assert (rnn.space, rnn.dataset, rnn.lr, rnn.batch_size) == ("darts-rnn", "ptb", 20.0, 128)
    assert nsas.SearchConfig.preset("darts", strategy="gdas").epochs == 240
    assert nsas.SearchConfig.preset("darts").epochs == 50
    quick = nsas.SearchConfig.preset("quick", epochs=2)
    assert (quick.dataset, quick.epochs, quick.channels) == ("cifar10-mini", 2, 8)
    with pytest.raises(NsasError, match="unknown preset"):
        nsas.SearchConfig.preset("nb999")
    with pytest.raises(NsasError, match="chanels"):
        nsas.SearchConfig.preset("quick", chanels=4)
    assert nsas.TrainConfig.preset("nb201", "proxy").space == "nb201"


class Counter(nsas.Callback):
    def __init__(self) -> None:
        self.steps, self.epochs, self.lrs = [], [], []

    def on_step_end(self, run, record):
        self.steps.append(record["step"])

    def on_epoch_end(self, run, epoch):
        self.epochs.append(epoch)
        self.lrs.append(run.optimizer.param_groups[0]["lr"])


def test_search_with_the_callers_loaders_supernet_loss_optimizer_and_callbacks(tmp_path):
    space = ChoiceSpace([{"lin": lambda: nn.Sequential(nn.Linear(6, 6), nn.ReLU()), "skip": nn.Identity}] * 2,
                        head=lambda: nn.Linear(6, 3))
    nsas.register_space(space, name="api-chain")
    try:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
        train = DataLoader(TensorDataset(x[:24], y[:24]), batch_size=8)
        val = DataLoader(TensorDataset(x[24:], y[24:]), batch_size=8)
        calls = []

        def criterion(logits, target):
            calls.append(logits.shape)
            return nn.functional.cross_entropy(logits, target)

        supernet = space.build_supernet()
        counter = Counter()
        cfg = tiny_search_config("api-chain", epochs=2, steps_per_epoch=None, loss="ce")
        result = nsas.search(cfg, tmp_path / "run", progress=False, train_data=train, val_data=val,
                             supernet=supernet, criterion=criterion,
                             optimizer=lambda params: torch.optim.Adam(params, lr=0.01),
                             scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
                             callbacks=[counter])
        assert result.supernet is supernet and result.steps == 6  # 3 batches x 2 epochs
        assert counter.steps == [1, 2, 3, 4, 5, 6] and counter.epochs == [1, 2]
        assert counter.lrs == pytest.approx([0.005, 0.0025])  # our optimizer and scheduler ran
        assert len(calls) == 6 and calls[0] == (8, 3)  # our criterion computed every step's loss
        # the run reloads with the caller's (untrained) module and gets the trained weights back
        _, reloaded, _, _ = load_search_run(tmp_path / "run", supernet=space.build_supernet())
        for k, v in supernet.state_dict().items():
            assert torch.equal(reloaded.state_dict()[k], v)
        # a torch Dataset of (x, y) is split into the two halves
        dataset = TensorDataset(x, y)
        split = nsas.search(cfg, tmp_path / "split", progress=False, dataset=dataset, num_classes=3,
                            supernet=space.build_supernet())
        assert split.steps == 2 * (20 // 8)
    finally:
        nsas.spaces.SPACES.remove("api-chain")


def test_load_search_run_does_not_load_the_data_until_used(tmp_path, monkeypatch):
    run = tmp_path / "run"
    result = nsas.search(tiny_search_config("nb201"), run, progress=False)
    assert isinstance(result, nsas.SearchResult) and result.best == result.selected[0]["arch"]
    loads = []
    monkeypatch.setattr(nsas.data, "load_dataset", lambda *a, **k: loads.append(a) or fake_dataset(*a, **k))
    cfg, supernet, data, _ = load_search_run(run)
    assert loads == [] and isinstance(supernet, nn.Module)
    assert len(data.val) > 0 and len(loads) == 1


# ---- one function per command, each returning a result object ----------------------------------------------
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
TINY_SEARCH = dict(steps_per_epoch=2, batch_size=8, channels=4, cells=1, eval_batches=1, select_rounds=1,
                   select_samples=2, probe_count=2, log_every=1, checkpoint_every=0)


def test_load_search_run_is_a_named_tuple_that_unpacks_as_before(tmp_path):
    nsas.search(tiny_search_config("nb201"), tmp_path / "run", progress=False)
    run = load_search_run(tmp_path / "run")
    assert isinstance(run, nsas.SearchRun) and run._fields == ("config", "supernet", "data", "state")
    cfg, supernet, data, state = run
    assert run.config is cfg and run.supernet is supernet and run.data is data and run.state is state
    assert cfg.space == "nb201" and isinstance(supernet, nn.Module) and state["global_step"] == 2


def test_inspect_is_a_function_returning_what_the_command_prints(capsys):
    from nsas.cli import main

    info = nsas.inspect(ARCH, channels=4, cells=1)
    assert isinstance(info, nsas.InspectResult) and info.space == "nb201" and info.arch == ARCH
    assert main(["inspect", ARCH, "--channels", "4", "--cells", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info.as_dict()
    assert info.parameters == sum(p.numel() for p in nsas.get_space("nb201").build_network(
        nsas.parse_arch(ARCH), channels=4, cells=1).parameters())
    with pytest.raises(NsasError, match="--hidden does not apply"):
        nsas.inspect(ARCH, hidden=8)


def test_export_is_a_function_returning_every_file_written(tmp_path):
    result = nsas.export(ARCH, tmp_path / "net.pt2", "export", channels=4, cells=1)
    assert isinstance(result, nsas.ExportResult) and result.format == "export" and result.arch == ARCH
    assert result.files == [tmp_path / "net.pt2", tmp_path / "net.pt2.json"] and result.sidecars == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt2", "net.pt2.json"]
    assert torch.export.load(result.out).module()(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_plot_is_a_function_returning_the_figures_and_notes(tmp_path):
    nsas.search(tiny_search_config("nb201", epochs=2), tmp_path / "run", progress=False)
    result = nsas.plot(tmp_path / "run", out=tmp_path / "figs", dpi=40)
    assert isinstance(result, nsas.PlotResult)
    assert [p.name for p in result.paths] == ["forgetting.png", "losses.png", "cells.png"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in result.paths)
    assert result.notes == []  # nothing skipped but kendall.png, which needs a truth: not attempted
    nsas.search(tiny_search_config("nb201", loss="ce"), tmp_path / "ce", progress=False)
    compare = nsas.plot([tmp_path / "run", tmp_path / "ce"], out=tmp_path / "cmp", dpi=40)
    assert compare.paths == [tmp_path / "cmp" / "compare.png"] and compare.paths[0].stat().st_size > 0


def test_study_is_a_function_returning_the_report_and_its_files(tmp_path):
    truth = Path(__file__).resolve().parents[1] / "examples" / "nb201-truth.csv"
    cfg = nsas.StudyConfig(space="nb201", dataset="fake-images", methods=["random:ce"], seeds=1, archs=5,
                           search_epochs=1, score_batches=1, truth=str(truth), search=TINY_SEARCH)
    result = nsas.study(cfg, tmp_path / "study", progress=False)
    assert isinstance(result, nsas.StudyResult) and result.out == tmp_path / "study"
    saved = json.loads((tmp_path / "study" / "report.json").read_text())
    assert json.dumps(result.report, sort_keys=True) == json.dumps(saved, sort_keys=True)  # NaN != NaN: as text
    assert result.report["truth_key"] == "test_acc" and len(result.report["archs"]) == 5
    assert result.report_md in result.files and all(p.is_file() for p in result.files)
    assert {p.name for p in result.files} >= {"report.md", "report.json", "truth.csv", "scatter.png"}
    other = nsas.StudyConfig(**{**vars(cfg), "seeds": 2})
    with pytest.raises(NsasError, match="another config"):
        nsas.study(other, tmp_path / "study", progress=False)


@pytest.mark.parametrize("command", ["inspect", "export", "plot", "study"])
def test_the_command_calls_the_library_function(command, tmp_path, monkeypatch):
    """Each CLI body is a call of its library function (so the two cannot drift apart)."""
    import importlib

    from nsas.cli import main

    module = importlib.import_module({"inspect": "nsas.inspection"}.get(command, f"nsas.{command}"))
    calls = []

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        raise NsasError("spied")

    monkeypatch.setattr(module, command, spy)
    argv = {"inspect": ["inspect", ARCH], "export": ["export", ARCH, "--out", str(tmp_path / "x.pt")],
            "plot": ["plot", str(tmp_path)], "study": ["study", "--out", str(tmp_path / "s"), "--quiet"]}[command]
    assert main(argv) == 2 and len(calls) == 1


def test_correlate_reads_a_truth_import_csv(tmp_path, capsys):
    """`nsas.correlate(scores, "truth.csv")` on the CSV that `nsas truth import` writes, with no key given."""
    from nsas.cli import main
    from test_nasbench import ARCHS, _nb201_dict

    bench = tmp_path / "NAS-Bench-201-v1_1-test.pth"
    torch.save(_nb201_dict(), bench)
    assert main(["truth", "import", str(bench), "--out", str(tmp_path / "truth.csv")]) == 0
    assert (tmp_path / "truth.csv").read_text().splitlines()[0] == "arch,test_acc"
    nsas.search(tiny_search_config("nb201", rank_by="loss"), tmp_path / "run", progress=False)
    scores = nsas.rank(tmp_path / "run", ARCHS, device="cpu")
    report = nsas.correlate(scores.out, tmp_path / "truth.csv", bootstrap=0)
    assert report["n"] == len(ARCHS) and report["truth_key"] == "test_acc"
    assert report["key"] == "loss"  # what the run ranks by (its rank_by), lower is better
    import os

    os.chdir(tmp_path)
    try:  # the string form of the README
        assert nsas.correlate(str(scores.out), "truth.csv", bootstrap=0)["n"] == len(ARCHS)
    finally:
        os.chdir(Path(__file__).resolve().parents[1])
