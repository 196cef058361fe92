"""The generic choice space: single-path supernet, sampling, strings, distance, GDAS, stand-alone networks."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from nsas.errors import ArchitectureError
from nsas.spaces.choice import ChoiceSpace, hamming
from nsas.strategies import GDASStrategy


class Counting(nn.Module):
    """A linear block that counts its forward calls."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.relu(self.linear(x))


def space(**kw) -> ChoiceSpace:
    return ChoiceSpace([{"a": Counting, "b": Counting, "skip": nn.Identity}, [Counting, Counting]],
                       head=lambda: nn.Linear(4, 3), **kw)


def test_only_the_sampled_candidates_run():
    sp = space()
    net = sp.build_supernet()
    arch = sp.parse("b|1")
    out = net(torch.randn(2, 4), arch)
    assert out.shape == (2, 3)
    calls = {(i, n): m.calls for i, point in enumerate(net.points) for n, m in point.items() if hasattr(m, "calls")}
    assert calls == {(0, "a"): 0, (0, "b"): 1, (1, "0"): 0, (1, "1"): 1}


def test_one_set_of_weights_per_point_and_candidate():
    sp = space()
    net = sp.build_supernet()
    linears = [m.linear.weight for point in net.points for m in point.values() if isinstance(m, Counting)]
    assert len(linears) == 4 and len({id(w) for w in linears}) == 4
    head = sum(p.numel() for p in net.head.parameters())
    assert sum(p.numel() for p in net.parameters()) == 4 * (4 * 4 + 4) + head
    # training one path changes only that path's candidates
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    net(torch.randn(2, 4), sp.parse("a|0")).sum().backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"points.0.a.linear.weight", "points.0.a.linear.bias", "points.1.0.linear.weight",
                       "points.1.0.linear.bias", "head.weight", "head.bias"}


def test_strings_json_sampling_and_size():
    sp = space()
    archs = list(sp.enumerate())
    assert sp.size() == len(archs) == 6 and len(set(archs)) == 6
    for a in archs:
        assert sp.parse(str(a)) == a and sp.from_json(a.to_json()) == a and hash(sp.parse(str(a))) == hash(a)
    rng = random.Random(0)
    assert {sp.sample(rng) for _ in range(200)} == set(archs)
    with pytest.raises(ArchitectureError, match="choice point 1"):
        sp.parse("a|2")
    with pytest.raises(ArchitectureError, match="2 choice points"):
        sp.parse("a")
    with pytest.raises(ArchitectureError, match="'\\|'"):
        ChoiceSpace([{"x|y": nn.Identity}])


def test_distance_is_normalised_hamming_unless_overridden():
    sp = space()
    assert sp.distance(sp.parse("a|0"), sp.parse("a|0")) == 0.0
    assert sp.distance(sp.parse("a|0"), sp.parse("b|0")) == 0.5
    assert sp.distance(sp.parse("a|0"), sp.parse("skip|1")) == 1.0
    custom = space(distance=lambda x, y: 0.25 * hamming(x, y))
    assert custom.distance(custom.parse("a|0"), custom.parse("skip|1")) == 0.25


def test_gdas_logits_decode_and_train_alpha():
    sp = space()
    assert sp.gdas_alpha_shapes() == [(1, 3), (1, 2)]
    path, arch = sp.gdas_decode([torch.tensor([2]), torch.tensor([1])], [None, None])
    assert arch == path == sp.parse("skip|1")
    assert sp.gdas_final([torch.tensor([[0.0, 5.0, 1.0]]), torch.tensor([[3.0, 0.0]])]) == sp.parse("b|0")
    strategy = GDASStrategy(sp, seed=0)
    net = sp.build_supernet()
    before = [a.detach().clone() for a in strategy.alphas]
    strategy.arch_step(net, (torch.randn(6, 4), torch.randint(0, 3, (6,))))
    assert any(not torch.equal(a, b) for a, b in zip(strategy.alphas, before))  # gradient reached alpha


def test_stand_alone_network_holds_only_the_chosen_blocks():
    sp = space()
    net = sp.build_network(sp.parse("skip|1"))
    assert len(net.blocks) == 2 and isinstance(net.blocks[0], nn.Identity) and isinstance(net.blocks[1], Counting)
    assert net(torch.randn(5, 4)).shape == (5, 3)
    assert sum(p.numel() for p in net.parameters()) == (4 * 4 + 4) + (4 * 3 + 3)


def test_gdas_search_on_a_registered_choice_space(tmp_path, monkeypatch):
    import json

    import nsas
    import nsas.data
    from tiny import fake_dataset, tiny_search_config

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    sp = ChoiceSpace([{"k1": lambda: nn.Conv2d(3, 3, 1), "k3": lambda: nn.Conv2d(3, 3, 3, padding=1)}] * 2,
                     head=lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5)))
    nsas.register_space(sp, name="gdas-chain")
    try:
        result = nsas.search(tiny_search_config("gdas-chain", strategy="gdas"), tmp_path, progress=False)
    finally:
        nsas.spaces.SPACES.remove("gdas-chain")
    assert len(result.selected) == 1 and sp.parse(result.best) in set(sp.enumerate())  # GDAS: the argmax
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("arch_loss" in r and "tau" in r for r in steps if r["kind"] == "step")


def test_the_quick_preset_on_a_registered_space_carries_over_what_nb201_found():
    import nsas
    from nsas.search_config import SearchConfig

    sp = ChoiceSpace([{"a": lambda: nn.Identity(), "b": lambda: nn.Identity()}] * 2)
    nsas.register_space(sp, name="quick-chain")
    try:
        mine = SearchConfig.preset("quick", space="quick-chain")
        gdas = SearchConfig.preset("quick", space="quick-chain", strategy="gdas")
    finally:
        nsas.spaces.SPACES.remove("quick-chain")
    nb201 = SearchConfig.preset("quick")
    assert (mine.loss, mine.bn, mine.rank_by) == (nb201.loss, nb201.bn, nb201.rank_by) == ("ce", "recalibrate", "loss")
    # what does not carry over: function sampling (the space need not list its functions), fused selection
    # (proxies measured on nb201 only), 40 epochs (its cost is unknown)
    assert (mine.sampling, mine.select_by, mine.epochs) == ("uniform", "score", 5)
    assert gdas.loss == "nsas"  # GDAS keeps the paper's loss, as on every space
