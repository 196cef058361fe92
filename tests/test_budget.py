"""Cost columns and budgets: `nsas rank --cost/--max-params/--max-macs`, and search selection under a budget."""

from __future__ import annotations

import csv

import pytest
from torch import nn

import nsas
import nsas.data
from nsas.cli import main
from nsas.inspection import arch_cost, inspect_arch
from nsas.spaces import register_space
from nsas.spaces.choice import ChoiceSpace
from tiny import fake_dataset


def conv(k: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 4, k, padding=k // 2),
                         nn.BatchNorm2d(4, affine=False, track_running_stats=False), nn.ReLU())


SPACE = ChoiceSpace([{"k1": lambda: conv(1), "k3": lambda: conv(3), "k5": lambda: conv(5)}] * 2,
                    stem=lambda: nn.Conv2d(3, 4, 3, padding=1),
                    head=lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)))


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_space(SPACE, name="budget-chain")
    yield
    nsas.spaces.SPACES.remove("budget-chain")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(nsas.data, "load_dataset", fake_dataset)
    run = tmp_path_factory.mktemp("budget") / "run"
    cfg = nsas.SearchConfig(space="budget-chain", dataset="fake-images", loss="ce", epochs=1, steps_per_epoch=2,
                            batch_size=8, eval_batches=1, select_rounds=2, select_samples=3, probe_count=1,
                            log_every=1, checkpoint_every=0, device="cpu")
    nsas.search(cfg, run, progress=False)
    yield run
    mp.undo()


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cost_of_an_arch_is_what_inspect_reports():
    arch = SPACE.parse("k3|k5")
    info = inspect_arch(arch, "budget-chain")
    assert arch_cost(SPACE, arch) == (info["parameters"], info["macs"])
    assert arch_cost(SPACE, SPACE.parse("k1|k1"))[0] < arch_cost(SPACE, SPACE.parse("k5|k5"))[0]


def test_rank_cost_columns_and_budgets(run_dir, tmp_path):
    assert main(["rank", str(run_dir), "--all", "--cost", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "all.csv")]) == 0
    rows = read(tmp_path / "all.csv")
    assert len(rows) == SPACE.size() and list(rows[0])[-2:] == ["params", "macs"]
    for row in rows:
        assert (int(row["params"]), int(row["macs"])) == arch_cost(SPACE, SPACE.parse(row["arch"]))
    params = sorted(int(r["params"]) for r in rows)
    limit = params[len(params) // 2]
    assert main(["rank", str(run_dir), "--all", "--max-params", str(limit), "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "cheap.csv")]) == 0
    cheap = read(tmp_path / "cheap.csv")
    assert {r["arch"] for r in cheap} == {r["arch"] for r in rows if int(r["params"]) <= limit}
    macs = sorted(int(r["macs"]) for r in rows)
    result = nsas.rank(run_dir, all=True, max_macs=macs[2], device="cpu", out=tmp_path / "m.csv")
    assert {r["arch"] for r in result.rows} == {r["arch"] for r in rows if int(r["macs"]) <= macs[2]}


def test_plain_rank_has_no_cost_columns(run_dir, tmp_path):
    assert main(["rank", str(run_dir), "--sample", "3", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert list(read(tmp_path / "s.csv")[0]) == ["arch", "acc", "loss"]


def test_search_selection_respects_the_budget(tmp_path, monkeypatch, run_dir):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    limit = arch_cost(SPACE, SPACE.parse("k3|k1"))[0]
    cfg = nsas.SearchConfig(space="budget-chain", dataset="fake-images", loss="ce", epochs=1, steps_per_epoch=1,
                            batch_size=8, eval_batches=1, select_rounds=3, select_samples=4, probe_count=1,
                            checkpoint_every=0, device="cpu", max_params=limit)
    result = nsas.search(cfg, tmp_path / "r", progress=False)
    assert len(result.selected) == 3
    assert all(arch_cost(SPACE, SPACE.parse(r["arch"]))[0] <= limit for r in result.selected)
