"""The Python API: `import nsas`, presets, result objects, and the caller's own components in a search."""

from __future__ import annotations

import subprocess
import sys

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
