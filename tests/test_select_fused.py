"""select_by: fused: selection by the supernet's score fused with zero-cost proxies (nsas.selection)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import nsas.data
from nsas.cli import main
from nsas.errors import NsasError
from nsas.fusion import fuse
from nsas.search import SearchConfig, search
from nsas.selection import fused_rows
from nsas.spaces import get_space
from tiny import fake_dataset, tiny_search_config


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def test_fused_rows_add_the_named_proxies_and_the_fusion_of_the_columns():
    space = get_space("nb201")
    archs = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
             "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|",
             "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"]
    rows = [{"arch": a, "acc": 50.0, "loss": loss} for a, loss in zip(archs, (1.0, 3.0, 2.0))]
    out = fused_rows(space, rows, "loss=0.5,params=0.5", method="z", options={"channels": 4, "cells": 1})
    assert [set(r) for r in out] == [{"arch", "acc", "loss", "params", "score"}] * 3
    assert out[0]["params"] > out[2]["params"] > out[1]["params"]  # three convs > one 1x1 > none
    expected = fuse(out, {"loss": 0.5, "params": 0.5}, method="z")
    assert np.allclose([r["score"] for r in out], expected)
    assert out[0]["score"] > out[2]["score"] > out[1]["score"]  # lowest loss and most parameters first


def test_a_fused_search_selects_the_best_fused_score_of_each_round(tmp_path):
    cfg = tiny_search_config("nb201", loss="ce", select_by="fused", fuse_weights="loss=0.3,params=0.7",
                             select_rounds=2, select_samples=4)
    selected = search(cfg, tmp_path, progress=False).selected
    assert len(selected) == 2 and all("score" in r and "params" in r for r in selected)
    assert selected[0]["score"] >= selected[1]["score"]
    # the same search selecting by loss alone: its winners are the lowest-loss candidates instead
    plain = search(tiny_search_config("nb201", loss="ce", select_rounds=2, select_samples=4, rank_by="loss"),
                   tmp_path / "plain", progress=False).selected
    assert all("score" not in r for r in plain)
    saved = json.loads((tmp_path / "selected.json").read_text())
    assert [r["arch"] for r in saved] == [r["arch"] for r in selected]


def test_fused_selection_differs_from_loss_selection_when_the_weights_say_so(tmp_path):
    # all the weight on the live parameter count: the winner is each round's largest live cell
    cfg = tiny_search_config("nb201", loss="ce", select_by="fused", fuse_weights="loss=0.0001,params=1",
                             select_rounds=1, select_samples=6)
    run = search(cfg, tmp_path, progress=False)
    space = get_space("nb201")
    rng = random.Random(f"select-{cfg.seed}")  # the candidates, redrawn as Search.select draws them
    candidates = [space.sample(rng) for _ in range(6)]
    live = {str(a): space.parameter_count(space.live_arch(a)) for a in candidates}
    assert run.selected[0]["arch"] in {a for a, p in live.items() if p == max(live.values())}


def test_fused_selection_refuses_what_it_cannot_do():
    with pytest.raises(NsasError, match="argmax"):
        SearchConfig(space="nb201", strategy="gdas", select_by="fused")
    with pytest.raises(NsasError, match="images"):
        SearchConfig(space="darts-rnn", select_by="fused")
    with pytest.raises(NsasError, match="unknown proxy 'bogus'"):
        SearchConfig(space="nb201", select_by="fused", fuse_weights="loss=1,bogus=1")
    assert main(["search", "--select-by", "fused", "--fuse-weights", "loss=-1", "--print-config"]) == 2


def test_rank_at_a_fused_runs_defaults_writes_the_pipelines_score_beside_its_parts(tmp_path):
    cfg = tiny_search_config("nb201", loss="ce", select_by="fused", fuse_weights="loss=0.4,params=0.6",
                             select_rounds=1, select_samples=3)
    run = search(cfg, tmp_path / "run", progress=False)
    archs = tmp_path / "archs.txt"
    chosen = [r["arch"] for r in run.selected] + [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"]
    archs.write_text("\n".join(chosen) + "\n")
    assert main(["rank", str(tmp_path / "run"), "--archs", str(archs), "--out", str(tmp_path / "s.csv")]) == 0
    import csv
    with open(tmp_path / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"acc", "loss", "params", "score"} <= set(rows[0])
    values = [{"arch": r["arch"], "loss": float(r["loss"]), "params": float(r["params"])} for r in rows]
    assert np.allclose([float(r["score"]) for r in rows], fuse(values, {"loss": 0.4, "params": 0.6}, method="z"))
    # a run that selects by its score writes no fused column
    plain = search(tiny_search_config("nb201", loss="ce"), tmp_path / "plain", progress=False)
    assert plain.selected
    assert main(["rank", str(tmp_path / "plain"), "--archs", str(archs), "--out", str(tmp_path / "p.csv")]) == 0
    assert "score" not in (tmp_path / "p.csv").read_text().splitlines()[0].split(",")


def test_a_fused_search_on_a_data_set_smaller_than_the_proxy_batch_takes_every_image(tmp_path, monkeypatch):
    def tiny(name, data_dir=None, download=True):  # 20 training images, fewer than the proxies' 64
        import dataclasses
        ds = fake_dataset("fake-images")
        return dataclasses.replace(ds, train_x=ds.train_x[:20], train_y=ds.train_y[:20])

    monkeypatch.setattr(nsas.data, "load_dataset", tiny)
    from nsas.proxies import proxy_batch
    assert len(proxy_batch("fake-images", 64)[1]) == 20
    cfg = tiny_search_config("nb201", loss="ce", select_by="fused", batch_size=4, steps_per_epoch=1)
    assert all("jacov" in r for r in search(cfg, tmp_path, progress=False).selected)
