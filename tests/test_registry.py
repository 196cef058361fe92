"""Registries are open: a space, loss and data set registered from outside the package run everywhere."""

from __future__ import annotations

import csv
from dataclasses import replace
import importlib.metadata

import pytest
import torch
from torch import nn

import nsas
import nsas.data
import nsas.objectives
import nsas.registry
import nsas.spaces
import nsas.strategies
from nsas.data import ImageDataset, dataset_names, load_dataset, register_dataset
from nsas.errors import ArchitectureError, DataError, NsasError
from nsas.objectives import Objective, build_objective, loss_names, register_loss
from nsas.spaces import get_space, register_space, space_names
from nsas.spaces.choice import ChoiceSpace
from nsas.strategies import Sample, build_strategy, register_strategy, strategy_names


class Conv(nn.Sequential):
    def __init__(self, k: int) -> None:
        super().__init__(nn.Conv2d(4, 4, k, padding=k // 2), nn.BatchNorm2d(4, affine=False, track_running_stats=False),
                         nn.ReLU())


TOY = ChoiceSpace([{"k1": lambda: Conv(1), "k3": lambda: Conv(3)}] * 3,
                  stem=lambda: nn.Conv2d(3, 4, 3, padding=1),
                  head=lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)))
LOSS_CALLS: list[str] = []
LOSS_OPTIONS: list[dict] = []  # what each toy-smooth factory call was given


def toy_images(data_dir, download):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 8, 8), generator=g, dtype=torch.uint8)
    return ImageDataset(name="toy-images", train_x=x[:48], train_y=torch.arange(48) % 3, test_x=x[48:],
                        test_y=torch.arange(16) % 3, classes=("a", "b", "c"), mean=(0.5,) * 3, std=(0.25,) * 3)


def toy_smooth(space, **options):
    LOSS_CALLS.append(space.name)
    LOSS_OPTIONS.append(options)
    objective = Objective()
    objective.criterion = lambda logits, y: (LOSS_CALLS.append("criterion"),
                                             nn.functional.cross_entropy(logits, y, label_smoothing=0.1))[1]
    return objective


@pytest.fixture(autouse=True)
def registered():
    """Register from outside the package, as a user would; forget it afterwards (other tests walk the registries)."""
    register_space(TOY, name="toy-chain")
    register_dataset("toy-images")(toy_images)
    register_loss("toy-smooth")(toy_smooth)
    yield
    nsas.spaces.SPACES.remove("toy-chain")
    nsas.data._REGISTRY.remove("toy-images")
    nsas.objectives._REGISTRY.remove("toy-smooth")
    nsas.strategies._REGISTRY.remove("first-only")


def test_registered_names_are_listed_and_found():
    assert "toy-chain" in space_names() and get_space("toy-chain") is TOY
    assert "toy-images" in dataset_names() and load_dataset("toy-images").num_classes == 3
    assert "toy-smooth" in loss_names()
    assert isinstance(build_objective("toy-smooth", TOY), Objective)
    with pytest.raises(ArchitectureError, match="toy-chain"):  # the error lists registered names too
        get_space("no-such-space")
    with pytest.raises(DataError, match="toy-images"):
        load_dataset("no-such-data")
    with pytest.raises(NsasError, match="toy-smooth"):
        build_objective("no-such-loss", TOY)


def test_registered_strategy_is_built():
    @register_strategy("first-only")
    class FirstOnly:
        def __init__(self, space, *, seed=0, device="cpu", **_):
            self.arch = next(iter(space.enumerate()))

        def sample(self):
            return Sample(path=self.arch, arch=self.arch)

    assert "first-only" in strategy_names()
    assert build_strategy("first-only", TOY).sample().arch == TOY.parse("k1|k1|k1")


def test_a_registered_loss_gets_the_nsas_options_whole_and_a_registered_strategy_every_strategy_option(tmp_path):
    from nsas.objectives import NSASOptions, nsas_options

    seen: list[dict] = []

    @register_strategy("first-only")
    class FirstOnly:
        def __init__(self, space, *, seed=0, device="cpu", **options):
            seen.append(options)
            self.arch = next(iter(space.enumerate()))

        def sample(self):
            return Sample(path=self.arch, arch=self.arch)

        def set_progress(self, epoch, epochs):
            pass

        def parameters(self):
            return []

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    LOSS_OPTIONS.clear()
    cfg = nsas.SearchConfig(space="toy-chain", dataset="toy-images", loss="toy-smooth", strategy="first-only",
                            epochs=1, batch_size=8, eval_batches=1, select_rounds=1, select_samples=2,
                            probe_count=1, checkpoint_every=0, augment=False, device="cpu", beta=0.3,
                            archive_size=5, tau_max=7.0, arch_lr=0.01, sampling="uniform")
    assert isinstance(cfg, NSASOptions)  # the NSAS group of the config is the options class itself
    nsas.search(cfg, tmp_path / "run", progress=False)
    given = LOSS_OPTIONS[0]["options"]
    assert isinstance(given, NSASOptions) and given.beta == 0.3 and given.archive_size == 5
    assert given == replace(nsas_options(cfg), wpl_window=3)  # wpl_window 0 becomes one epoch (3 steps)
    assert LOSS_OPTIONS[0]["beta"] == 0.3  # the keyword form, for factories written against it
    assert seen[0] == dict(sampling="uniform", tau_max=7.0, tau_min=cfg.tau_min, lr=0.01,
                           weight_decay=cfg.arch_weight_decay)


def test_search_rank_correlate_on_outside_registrations(tmp_path):
    LOSS_CALLS.clear()
    cfg = nsas.SearchConfig(space="toy-chain", dataset="toy-images", loss="toy-smooth", epochs=2, batch_size=8,
                            eval_batches=1, select_rounds=1, select_samples=3, probe_count=2, log_every=1,
                            checkpoint_every=0, augment=False, device="cpu")
    result = nsas.search(cfg, tmp_path / "run", progress=False)
    assert isinstance(result, nsas.SearchResult)
    assert TOY.parse(result.best) in set(TOY.enumerate())
    assert result.steps == 2 * 3  # 24 weights-half images / batch 8, two epochs
    assert LOSS_CALLS[0] == "toy-chain" and LOSS_CALLS.count("criterion") == result.steps  # our loss trained it
    scores = nsas.rank(tmp_path / "run", all=True, device="cpu")
    assert [r["arch"] for r in scores.rows] == [str(a) for a in TOY.enumerate()]
    truth = tmp_path / "truth.csv"
    with truth.open("w", newline="") as f:  # a ground truth ordered exactly against the scores
        w = csv.writer(f)
        w.writerow(["arch", "acc"])
        for r in scores.rows:
            w.writerow([r["arch"], -r["loss"]])
    report = nsas.correlate(scores.out, truth, key="loss", truth_key="acc", lower_is_better=True,
                            truth_lower_is_better=False, space="toy-chain", bootstrap=0)
    assert report["n"] == TOY.size() and report["metrics"]["spearman_rho"]["value"] == pytest.approx(1.0)


def _entry_points(value):
    ep = importlib.metadata.EntryPoint(name="toy", value=value, group=nsas.registry.PLUGIN_GROUP)
    return lambda group: [ep] if group == nsas.registry.PLUGIN_GROUP else []


def test_entry_point_plugins_load_once_on_first_lookup(monkeypatch):
    import toy_plugin

    monkeypatch.setattr(nsas.registry, "_plugins_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points("toy_plugin:register"))
    toy_plugin.CALLS.clear()
    assert get_space("plugin-space").size() == 2
    assert "plugin-space" in space_names()
    assert toy_plugin.CALLS == ["register"]  # loaded once, however many lookups
    nsas.spaces.SPACES.remove("plugin-space")


def test_broken_plugin_names_itself(monkeypatch):
    monkeypatch.setattr(nsas.registry, "_plugins_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points("no_such_module_xyz"))
    with pytest.raises(NsasError, match="plug-in 'toy'"):
        get_space("still-unknown")
