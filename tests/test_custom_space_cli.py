"""The guide's custom-space walkthrough through the `nsas` command: a space registered in a module of one's own,
named in NSAS_PLUGINS, is searched, plotted, ranked and exported; an unknown space says how to make it known."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import nsas.data
import nsas.registry
import nsas.spaces
from nsas.cli import main
from tiny import fake_dataset

# What a user writes next to their work (docs/GUIDE.md, "Your own model as a search space"): a module whose
# import registers the space. Sized for the tests' fake 16x16 images of 5 classes.
PLUGIN = '''
from torch import nn

import nsas
from nsas.spaces.choice import ChoiceSpace


def conv(k):
    return lambda: nn.Sequential(nn.Conv2d(4, 4, k, padding=k // 2), nn.ReLU())


points = [{"k1": conv(1), "k3": conv(3), "skip": nn.Identity}] * 2
nsas.register_space(ChoiceSpace(points, stem=lambda: nn.Conv2d(3, 4, 3, padding=1),
                                head=lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))),
                    name="my-net")
'''
SEARCH = ["search", "--space", "my-net", "--dataset", "fake-images", "--epochs", "1", "--steps-per-epoch", "2",
          "--batch-size", "8", "--select-rounds", "1", "--select-samples", "3", "--probe-count", "2",
          "--eval-batches", "1", "--log-every", "1", "--quiet"]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``my_space.py`` in the working folder and ``NSAS_PLUGINS=my_space``; plug-ins load afresh."""
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    (tmp_path / "my_space.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])  # as the `nsas` script
    monkeypatch.setattr(nsas.registry, "_plugins_loaded", False)
    monkeypatch.setenv(nsas.registry.PLUGINS_ENV, "my_space")
    yield tmp_path
    nsas.spaces.SPACES.remove("my-net")
    sys.modules.pop("my_space", None)


def test_unknown_space_says_how_the_command_can_know_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(nsas.registry, "_plugins_loaded", False)
    monkeypatch.delenv(nsas.registry.PLUGINS_ENV, raising=False)
    for argv in (["search", "--space", "my-net", "--out", str(tmp_path / "r")],
                 ["export", "k1|k3", "--space", "my-net", "--out", str(tmp_path / "x.pt")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "'my-net'" in err[0] and "nb201" in err[0], err  # names the known spaces
        assert "NSAS_PLUGINS=MODULE" in err[0] and "'nsas.plugins' entry point" in err[0], err


def test_walkthrough_search_plot_rank_export_through_the_command(plugin, capsys):
    run = plugin / "runs" / "my-net"
    assert main([*SEARCH, "--out", str(run)]) == 0
    space = nsas.spaces.get_space("my-net")
    best = json.loads((run / "selected.json").read_text())[0]["arch"]
    assert space.parse(best) in set(space.enumerate())
    capsys.readouterr()

    assert main(["plot", str(run)]) == 0
    out, err = capsys.readouterr()
    assert (run / "plots" / "forgetting.png").stat().st_size > 0 and (run / "plots" / "losses.png").is_file()
    assert "skipped cells.png" in err and not (run / "plots" / "cells.png").exists()  # no cell diagram: a note

    assert main(["rank", str(run), "--all", "--out", str(plugin / "scores.csv")]) == 0
    capsys.readouterr()
    rows = (plugin / "scores.csv").read_text().splitlines()
    assert rows[0].startswith("arch") and len(rows) == 1 + space.size() == 10

    assert main(["export", str(run), "--format", "export", "--image-size", "16",
                 "--out", str(plugin / "net.pt2")]) == 0
    out = capsys.readouterr().out
    assert str(plugin / "net.pt2") in out and str(plugin / "net.pt2.json") in out
    meta = json.loads((plugin / "net.pt2.json").read_text())
    assert meta["space"] == "my-net" and meta["arch"] == best
    with torch.no_grad():
        assert torch.export.load(plugin / "net.pt2").module()(torch.randn(3, 3, 16, 16)).shape == (3, 5)


def test_a_plugin_that_fails_to_import_names_itself(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(nsas.registry, "_plugins_loaded", False)
    monkeypatch.setenv(nsas.registry.PLUGINS_ENV, "no_such_module_xyz")
    assert main(["inspect", "k1|k3", "--space", "my-net"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NSAS_PLUGINS=no_such_module_xyz" in err[0] and "ModuleNotFoundError" in err[0], err
