"""The DARTS CNN space and its chain variant: parsing, sampling, distance, networks, GDAS."""

from __future__ import annotations

import json
import random
import re
from math import comb

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nsas.errors import ArchitectureError
from nsas.spaces import get_space
from nsas.spaces.darts import ChainGenotype, DartsGenotype, DartsPath
from nsas.spaces.darts_ops import PRIMITIVES

DARTS = get_space("darts")
CHAIN = get_space("darts-chain")

DARTS_V1 = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
# pasted from a genotypes.py: assignment, line breaks, range(2, 6), double quotes
PDARTS = """PDARTS = Genotype(
    normal=[("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0),("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3",0), ("dil_conv_5x5", 4)],
    normal_concat=range(2, 6),
    reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2),
            ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('sep_conv_5x5', 3)],
    reduce_concat=range(2, 6),
)"""
WITH_NONE = (
    "Genotype(normal=[('none', 0), ('sep_conv_3x3', 1), ('none', 2), ('none', 0), ('avg_pool_3x3', 1), "
    "('sep_conv_5x5', 3), ('none', 4), ('dil_conv_5x5', 0)], normal_concat=list(range(2, 6)), "
    "reduce=[('none', 1), ('none', 0), ('skip_connect', 1), ('none', 2), ('max_pool_3x3', 0), "
    "('skip_connect', 3), ('sep_conv_3x3', 4), ('none', 2)], reduce_concat=[2, 3, 4, 5])"
)
# a chain genotype written with the node's later input first in some nodes
CHAIN_TEXT = """Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 0),
  ('dil_conv_3x3', 2), ('max_pool_3x3', 3), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('none', 4)],
  normal_concat=range(2, 6),
  reduce=[("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
  ("dil_conv_5x5", 0), ("skip_connect", 3), ("sep_conv_5x5", 4), ("max_pool_3x3", 0)],
  reduce_concat=range(2, 6))"""


def flat(op: str, chain: bool = False) -> list[tuple[str, int]]:
    """8 edges, all ``op``: DARTS inputs (0, 1) per node, or the chain's (0, i + 1)."""
    return [(op, j) for i in range(4) for j in ((0, i + 1) if chain else (i, i + 1))]


# ---- parsing and formatting ----------------------------------------------
@pytest.mark.parametrize("text", [DARTS_V1, DARTS_V2, PDARTS, WITH_NONE, CHAIN_TEXT])
def test_published_genotypes_round_trip(text):
    arch = DARTS.parse(text)
    assert arch.space == "darts" and isinstance(arch, DartsGenotype)
    assert DARTS.parse(str(arch)) == arch
    assert DARTS.from_json(json.loads(json.dumps(arch.to_json()))) == arch
    assert str(arch).startswith("Genotype(normal=[(") and "reduce_concat=[2, 3, 4, 5])" in str(arch)


def test_parsed_edges_match_the_text():
    arch = DARTS.parse(DARTS_V2)
    # node 2 of the normal cell was written as (sep_conv_3x3, 1), (skip_connect, 0)
    assert set(arch.normal[2]) == {("sep_conv_3x3", 1), ("skip_connect", 0)}
    assert set(arch.reduce[3]) == {("skip_connect", 2), ("max_pool_3x3", 1)}
    assert DARTS.parse(PDARTS).normal[3] == (("sep_conv_3x3", 0), ("dil_conv_5x5", 4))
    assert ("none", 0) in DARTS.parse(WITH_NONE).normal[0]


def test_edge_order_inside_a_node_is_not_significant():
    a = DARTS.parse(DARTS_V2)
    swapped = DARTS_V2.replace("('sep_conv_3x3', 1), ('skip_connect', 0)", "('skip_connect', 0), ('sep_conv_3x3', 1)")
    assert swapped != DARTS_V2
    b = DARTS.parse(swapped)
    assert a == b and hash(a) == hash(b) and str(a) == str(b)
    assert DARTS.distance(a, b) == 0.0


def test_chain_space_round_trip_and_space_names():
    arch = CHAIN.parse(CHAIN_TEXT)
    assert isinstance(arch, ChainGenotype) and arch.space == "darts-chain"
    assert CHAIN.parse(str(arch)) == arch
    assert CHAIN.from_json(arch.to_json()) == arch
    # every node reads input 0 and i + 1, whatever order it was written in
    for cell in (arch.normal, arch.reduce):
        assert [tuple(j for _, j in node) for node in cell] == [(0, 1), (0, 2), (0, 3), (0, 4)]
    # same cells, different space: not equal
    assert DARTS.parse(CHAIN_TEXT) != arch


@pytest.mark.parametrize("space", [DARTS, CHAIN])
def test_samples_round_trip_and_are_valid(space):
    rng = random.Random(7)
    archs = [space.sample(rng) for _ in range(200)]
    assert len(set(archs)) == len(archs)
    for arch in archs:
        assert arch.space == space.name
        assert space.parse(str(arch)) == arch
        assert space.from_json(json.loads(json.dumps(arch.to_json()))) == arch
        for cell in (arch.normal, arch.reduce):
            for i, node in enumerate(cell):
                inputs = [j for _, j in node]
                assert len(node) == 2 and len(set(inputs)) == 2
                assert all(0 <= j <= i + 1 for j in inputs)
                assert all(op in PRIMITIVES and op != "none" for op, _ in node)
                if space is CHAIN:
                    assert sorted(inputs) == [0, i + 1]


@pytest.mark.parametrize("space", [DARTS, CHAIN])
def test_sampling_is_seeded(space):
    first = [space.sample(random.Random(3)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert len({space.sample(random.Random(seed)) for seed in range(20)}) == 20


def test_sampling_reaches_every_input_pair_and_op():
    rng = random.Random(1)
    pairs, ops = set(), set()
    for _ in range(300):
        node = DARTS.sample(rng).normal[3]
        pairs.add(tuple(sorted(j for _, j in node)))
        ops.update(op for op, _ in node)
    assert pairs == {(a, b) for a in range(5) for b in range(a + 1, 5)}
    assert ops == set(PRIMITIVES[1:])


def test_sizes():
    per_cell = 1
    for i in range(4):  # node i: choose 2 of its i + 2 inputs, 7 ops on each
        per_cell *= comb(i + 2, 2) * 7 * 7
    assert DARTS.size() == per_cell**2
    assert CHAIN.size() == 7**16


# ---- malformed input -------------------------------------------------------
def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


V2_9 = _replace(DARTS_V2, "], normal_concat", ", ('skip_connect', 1)], normal_concat")
V2_7 = _replace(DARTS_V2, "('skip_connect', 0), ('dil_conv_3x3', 2)]", "('skip_connect', 0)]")


@pytest.mark.parametrize(
    "space, text, tokens",
    [
        (DARTS, _replace(DARTS_V2, "('sep_conv_3x3', 0)", "('sep_conv_9x9', 0)"), ["'sep_conv_9x9'", "normal[0]", "line 1"]),
        (DARTS, V2_7, ["'normal'", "7 edges", "column 10"]),
        (DARTS, V2_9, ["'normal'", "9 edges"]),
        (DARTS, _replace(DARTS_V2, "('sep_conv_3x3', 1)", "('sep_conv_3x3', 2)"), ["input 2", "normal[1]", "node 0"]),
        (DARTS, _replace(DARTS_V2, "('max_pool_3x3', 1), ('max_pool_3x3', 0)", "('max_pool_3x3', 1), ('max_pool_3x3', 9)"),
         ["input 9", "reduce[4]", "node 2"]),
        (DARTS, _replace(DARTS_V2, "('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 2), ('dil_conv_3x3', 2)"),
         ["input 2", "twice", "node 3"]),
        (DARTS, _replace(DARTS_V2, "normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4]"), ["normal_concat", "[2, 3, 4]"]),
        (DARTS, _replace(PDARTS, "reduce_concat=range(2, 6)", "reduce_concat=range(1, 6)"), ["reduce_concat", "line 7"]),
        (DARTS, "hello world", ["'hello'"]),
        (DARTS, "", ["end of input"]),
        (DARTS, DARTS_V2.replace("reduce=", "normal=", 1), ["'normal'", "twice"]),
        (DARTS, "Genotype(normal=[('sep_conv_3x3', 0) ; ]", ["';'", "column 38"]),
        (DARTS, _replace(DARTS_V2, "normal_concat", "normal_kontakt"), ["'normal_kontakt'"]),
        (DARTS, _replace(DARTS_V2, "('sep_conv_3x3', 0)", "(sep_conv_3x3, 0)"), ["'sep_conv_3x3'", "quoted op"]),
        (DARTS, DARTS_V2[:-1], ["end of input"]),
        (DARTS, DARTS_V2 + " extra", ["'extra'"]),
        (CHAIN, DARTS_V2, ["input 1", "breaks the chain", "node 1"]),
        (CHAIN, _replace(CHAIN_TEXT, "('none', 4)", "('none', 3)"), ["input 3", "normal[7]", "node 3", "line 2"]),
    ],
)
def test_malformed_strings_raise_naming_the_token(space, text, tokens):
    with pytest.raises(ArchitectureError) as info:
        space.parse(text)
    for token in tokens:
        assert token in str(info.value)


@pytest.mark.parametrize(
    "obj, token",
    [
        ("nope", "'nope'"),
        ({"normal": []}, "normal"),
        ({"normal": [["sep_conv_3x3", 0]] * 8, "reduce": "x"}, "'reduce'"),
        ({"normal": flat("sep_conv_3x3"), "reduce": flat("conv_7x7")}, "'conv_7x7'"),
        ({"normal": flat("sep_conv_3x3"), "reduce": [["skip_connect", "0"]] + flat("skip_connect")[1:]}, "'0'"),
    ],
)
def test_malformed_json_raises(obj, token):
    with pytest.raises(ArchitectureError, match=token):
        DARTS.from_json(obj)


def test_direct_construction_is_validated():
    with pytest.raises(ArchitectureError, match="breaks the chain"):
        ChainGenotype(normal=flat("skip_connect"), reduce=flat("skip_connect"))
    assert DartsGenotype(normal=flat("skip_connect"), reduce=flat("skip_connect")).normal[1] == (
        ("skip_connect", 1), ("skip_connect", 2))


# ---- distance -------------------------------------------------------------
def test_darts_distances_by_hand():
    a = DartsGenotype(normal=flat("sep_conv_3x3"), reduce=flat("max_pool_3x3"))
    assert DARTS.distance(a, a) == 0.0
    b = DartsGenotype(normal=flat("sep_conv_5x5"), reduce=flat("avg_pool_3x3"))
    assert DARTS.distance(a, b) == 1.0
    c = DartsGenotype(normal=flat("sep_conv_5x5"), reduce=flat("max_pool_3x3"))
    assert DARTS.distance(a, c) == 0.5
    # same ops, different inputs: node 3 reads (0, 4) instead of (3, 4) -> 1 edge of 8 in normal
    d_normal = flat("sep_conv_3x3")[:6] + [("sep_conv_3x3", 0), ("sep_conv_3x3", 4)]
    d = DartsGenotype(normal=d_normal, reduce=flat("max_pool_3x3"))
    assert DARTS.distance(a, d) == pytest.approx(1 / 16)
    assert DARTS.distance(d, a) == pytest.approx(1 / 16)
    # swapped edge order inside every node
    swapped = [e for i in range(0, 8, 2) for e in flat("sep_conv_3x3")[i:i + 2][::-1]]
    assert DARTS.distance(a, DartsGenotype(normal=swapped, reduce=flat("max_pool_3x3"))) == 0.0
    assert DARTS.distance(str(a), str(c)) == 0.5


def test_chain_distance_by_hand():
    a = ChainGenotype(normal=flat("sep_conv_3x3", True), reduce=flat("skip_connect", True))
    normal = flat("sep_conv_3x3", True)
    normal[0] = ("dil_conv_3x3", 0)
    normal[7] = ("none", 4)
    reduce = flat("skip_connect", True)
    reduce[3] = ("max_pool_3x3", 2)
    b = ChainGenotype(normal=normal, reduce=reduce)
    assert CHAIN.distance(a, b) == pytest.approx(3 / 16)
    assert CHAIN.distance(a, a) == 0.0
    other = ChainGenotype(normal=flat("avg_pool_3x3", True), reduce=flat("sep_conv_5x5", True))
    assert CHAIN.distance(a, other) == 1.0


def test_distance_rejects_other_spaces():
    with pytest.raises(ArchitectureError):
        DARTS.distance(DARTS.parse(DARTS_V2), CHAIN.parse(CHAIN_TEXT))


# ---- stand-alone network --------------------------------------------------
def test_darts_v2_parameter_count():
    net = DARTS.build_network(DARTS.parse(DARTS_V2), channels=36, cells=20, num_classes=10, auxiliary=True)
    count = sum(p.numel() for name, p in net.named_parameters() if "auxiliary" not in name)
    assert count == 3_349_342
    assert any("auxiliary" in name for name, _ in net.named_parameters())


def test_network_outputs_auxiliary_and_drop_path():
    torch.manual_seed(0)
    net = DARTS.build_network(DARTS_V2, channels=4, cells=3, num_classes=5, auxiliary=True, drop_path=0.0)
    x = torch.randn(2, 3, 32, 32)
    logits, aux = net(x)
    assert logits.shape == aux.shape == (2, 5)
    net.eval()
    assert net(x).shape == (2, 5)
    net.train()
    net.auxiliary_head = None
    torch.testing.assert_close(net(x), net(x))  # no drop-path: deterministic
    net.drop_path_prob = 0.5
    assert not torch.allclose(net(x), net(x))


# ---- supernet -------------------------------------------------------------
def _record_calls(supernet) -> list[tuple[int, int, str]]:
    """Hook every candidate op; return the list that fills with (cell, row, op) per call."""
    calls: list[tuple[int, int, str]] = []
    for c, cell in enumerate(supernet.cells):
        for row, ops in enumerate(cell.edges):
            for name, module in ops.items():
                module.register_forward_hook(lambda *_, key=(c, row, name): calls.append(key))
    return calls


def _expected_calls(space, path, cells: int) -> list[tuple[int, int, str]]:
    reductions = {cells // 3, 2 * cells // 3}
    out = []
    for c in range(cells):
        nodes = path.reduce if c in reductions else path.normal
        for i, node in enumerate(nodes):
            out += [(c, space.edges.index((i, j)), op) for op, j in node if op != "none"]
    return out


@pytest.mark.parametrize("space", [DARTS, CHAIN])
def test_supernet_computes_only_the_path(space):
    torch.manual_seed(0)
    supernet = space.build_supernet(channels=4, cells=5, num_classes=3)
    calls = _record_calls(supernet)
    arch = space.sample(random.Random(5))
    out = supernet(torch.randn(2, 3, 8, 8), arch)
    assert out.shape == (2, 3)
    assert len(calls) == 8 * 5
    assert sorted(calls) == sorted(_expected_calls(space, arch, 5))


@pytest.mark.parametrize("text", [DARTS_V2, WITH_NONE, PDARTS])
def test_supernet_flops_equal_the_standalone_network(text):
    arch = DARTS.parse(text)
    torch.manual_seed(0)
    supernet = DARTS.build_supernet(channels=4, cells=3, num_classes=10)
    net = DARTS.build_network(arch, channels=4, cells=3, num_classes=10).eval()
    x = torch.randn(2, 3, 16, 16)
    flops = []
    for run in (lambda: supernet(x, arch), lambda: net(x)):
        with FlopCounterMode(display=False) as counter:
            run()
        flops.append(counter.get_total_flops())
    assert flops[0] > 0 and flops[0] == flops[1]


def test_supernet_gdas_path_computes_its_non_none_edges():
    torch.manual_seed(0)
    supernet = DARTS.build_supernet(channels=4, cells=3, num_classes=3)
    calls = _record_calls(supernet)
    gen = torch.Generator().manual_seed(0)
    choices = [torch.randint(0, 8, (14,), generator=gen) for _ in range(2)]
    choices[0][:4] = 0  # a few `none` rows, node 0 has none at all
    probs = [torch.rand(14, 8, generator=gen) for _ in range(2)]
    path, derived = DARTS.gdas_decode(choices, probs)
    assert isinstance(path, DartsPath) and path.normal[0] == ()
    supernet(torch.randn(2, 3, 8, 8), path)
    non_none = [int((c != 0).sum()) for c in choices]
    assert len(calls) == non_none[0] + 2 * non_none[1]  # cell 0 normal, cells 1 and 2 reduce
    assert sorted(calls) == sorted(_expected_calls(DARTS, path, 3))
    assert supernet(torch.randn(2, 3, 8, 8), derived).shape == (2, 3)


def test_only_chosen_ops_get_gradients():
    torch.manual_seed(0)
    supernet = DARTS.build_supernet(channels=4, cells=3, num_classes=3)
    arch = DARTS.sample(random.Random(11))
    supernet(torch.randn(2, 3, 8, 8), arch).sum().backward()
    chosen = set(_expected_calls(DARTS, arch, 3))
    checked = 0
    for c, cell in enumerate(supernet.cells):
        for row, ops in enumerate(cell.edges):
            for name, module in ops.items():
                for p in module.parameters():
                    assert (p.grad is not None) == ((c, row, name) in chosen), (c, row, name)
                    checked += (c, row, name) in chosen
    assert checked > 0


def test_edge_weights_carry_gradient_and_keep_values():
    torch.manual_seed(0)
    supernet = DARTS.build_supernet(channels=4, cells=3, num_classes=3)
    alphas = [torch.zeros(14, 8, requires_grad=True) for _ in range(2)]
    choices = [torch.full((14,), 4), torch.full((14,), 5)]  # sep_conv_3x3 / sep_conv_5x5 everywhere
    probs = [torch.softmax(a, dim=-1) for a in alphas]
    path, _ = DARTS.gdas_decode(choices, [p.detach() for p in probs])
    weights = [1 - p.gather(1, c[:, None])[:, 0].detach() + p.gather(1, c[:, None])[:, 0]
               for p, c in zip(probs, choices)]
    x = torch.randn(2, 3, 8, 8)
    out = supernet(x, path, edge_weights=weights)
    torch.testing.assert_close(out, supernet(x, path))
    (out * torch.randn_like(out)).sum().backward()
    for a, c in zip(alphas, choices):
        assert a.grad is not None and a.grad.abs().sum() > 0
        assert a.grad[:, c[0]].abs().sum() > 0


def test_supernet_rejects_other_paths():
    supernet = DARTS.build_supernet(channels=4, cells=3)
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ArchitectureError, match="darts"):
        supernet(x, CHAIN.parse(CHAIN_TEXT))
    with pytest.raises(ArchitectureError):
        supernet(x, get_space("darts-chain").sample(random.Random(0)))
    chain_net = CHAIN.build_supernet(channels=4, cells=3)
    bad = DartsPath(normal=((), (("skip_connect", 1),), (), ()), reduce=((), (), (), ()), space="darts-chain")
    with pytest.raises(ArchitectureError, match="input 1 of normal cell node 1"):
        chain_net(x, bad)
    with pytest.raises(ArchitectureError):
        chain_net(x, DARTS.parse(DARTS_V2))


# ---- GDAS -----------------------------------------------------------------
def _table(rows: int, entries: dict[tuple[int, int], float], base: float = 0.01) -> torch.Tensor:
    t = torch.full((rows, 8), base)
    for (r, k), v in entries.items():
        t[r, k] = v
    return t


def _op(name: str) -> int:
    return PRIMITIVES.index(name)


def test_gdas_shapes():
    assert DARTS.gdas_alpha_shapes() == [(14, 8), (14, 8)]
    assert CHAIN.gdas_alpha_shapes() == [(8, 8), (8, 8)]


def test_gdas_decode_darts_by_hand():
    none, sep3, skip, dil3, avg, dil5, mp = (_op(n) for n in (
        "none", "sep_conv_3x3", "skip_connect", "dil_conv_3x3", "avg_pool_3x3", "dil_conv_5x5", "max_pool_3x3"))
    # rows: node0 in 0,1 | node1 in 0,1,2 | node2 in 0..3 | node3 in 0..4
    choice = torch.tensor([sep3, none, skip, dil3, avg, none, none, none, none, none, none, none, sep3, none])
    prob = _table(14, {
        (0, sep3): 0.5, (1, none): 0.9, (1, mp): 0.3,
        (2, skip): 0.2, (3, dil3): 0.6, (4, avg): 0.4,
        # node 2: every row chose none; strongest non-none ops decide (none's own weight is ignored)
        (5, none): 0.95, (5, _op("sep_conv_5x5")): 0.1, (6, dil5): 0.7, (7, mp): 0.3, (8, skip): 0.5,
        # node 3: the one non-none choice wins although weak; the rest filled by strength
        (12, sep3): 0.05, (9, avg): 0.9, (10, skip): 0.6,
    })
    red_choice = torch.full((14,), sep3)
    red_prob = _table(14, {(r, sep3): r / 20 for r in range(14)})
    path, derived = DARTS.gdas_decode([choice, red_choice], [prob, red_prob])
    assert path.space == "darts"
    assert path.normal == ((("sep_conv_3x3", 0),),
                           (("skip_connect", 0), ("dil_conv_3x3", 1), ("avg_pool_3x3", 2)),
                           (),
                           (("sep_conv_3x3", 3),))
    assert sum(len(node) for node in path.reduce) == 14
    expected = DartsGenotype(
        normal=[("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("dil_conv_3x3", 1), ("avg_pool_3x3", 2),
                ("dil_conv_5x5", 1), ("skip_connect", 3), ("sep_conv_3x3", 3), ("avg_pool_3x3", 0)],
        reduce=[("sep_conv_3x3", i + j) for i in range(4) for j in (0, 1)],
    )
    assert derived == expected


def test_gdas_final_darts_by_hand():
    sep3, sep5, skip, dil5 = (_op(n) for n in ("sep_conv_3x3", "sep_conv_5x5", "skip_connect", "dil_conv_5x5"))
    normal = _table(14, {
        (0, 0): 9.0, (0, dil5): 2.0,  # none dominates, but the op is the best non-none one
        (1, skip): 1.0,
        (2, sep3): 3.0,
        (3, 0): 10.0, (3, sep5): 3.0,  # same logit as row 2, but none's mass shrinks its weight
        (4, skip): 2.0,
        (5, sep5): 1.0, (6, sep5): 4.0, (7, sep5): 2.0, (8, sep5): 3.0,
        (9, sep3): 5.0, (10, dil5): 1.0, (11, dil5): 1.0, (12, dil5): 1.0, (13, skip): 4.0,
    }, base=0.0)
    reduce = _table(14, {(r, skip): float(r + 1) for r in range(14)}, base=0.0)
    arch = DARTS.gdas_final([normal, reduce])
    assert arch == DartsGenotype(
        normal=[("dil_conv_5x5", 0), ("skip_connect", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
                ("sep_conv_5x5", 1), ("sep_conv_5x5", 3), ("sep_conv_3x3", 0), ("skip_connect", 4)],
        reduce=[("skip_connect", i + j) for i in range(4) for j in (0, 1)],
    )


def test_gdas_chain_by_hand():
    none, sep3, mp, dil3 = (_op(n) for n in ("none", "sep_conv_3x3", "max_pool_3x3", "dil_conv_3x3"))
    # rows: (0,0) (0,1) (1,0) (1,2) (2,0) (2,3) (3,0) (3,4)
    choice = torch.tensor([sep3, none, none, mp, sep3, sep3, none, none])
    prob = _table(8, {(1, none): 0.9, (1, dil3): 0.2, (2, mp): 0.4, (6, sep3): 0.3, (7, dil3): 0.5})
    red = torch.full((8,), mp)
    path, derived = CHAIN.gdas_decode([choice, red], [prob, _table(8, {})])
    assert path.space == "darts-chain"
    assert path.normal == ((("sep_conv_3x3", 0),), (("max_pool_3x3", 2),),
                           (("sep_conv_3x3", 0), ("sep_conv_3x3", 3)), ())
    assert derived == ChainGenotype(
        normal=[("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 2),
                ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_3x3", 4)],
        reduce=flat("max_pool_3x3", True),
    )
    supernet = CHAIN.build_supernet(channels=4, cells=3, num_classes=3)
    calls = _record_calls(supernet)
    supernet(torch.randn(2, 3, 8, 8), path)
    assert len(calls) == 4 + 2 * 8  # cell 0 normal, cells 1 and 2 reduce

    # none has the largest logit on every row; the final op is the best non-none one
    entries = {(r, 0): 5.0 for r in range(8)} | {(r, 1 + r % 7): 1.0 for r in range(8)}
    alphas = [_table(8, entries, base=0.0) for _ in range(2)]
    final = CHAIN.gdas_final(alphas)
    assert final.edges("normal") == [(PRIMITIVES[1 + r % 7], j) for r, (_, j) in enumerate(CHAIN.edges)]


def test_gdas_decode_rejects_wrong_shapes():
    with pytest.raises(ArchitectureError, match="14, 8"):
        DARTS.gdas_decode([torch.zeros(14, dtype=torch.long)] * 2, [torch.zeros(8, 8)] * 2)


@pytest.mark.parametrize("space_name, good", [("darts", DARTS_V2), ("darts-rnn", None)])
@pytest.mark.parametrize("change, needle", [
    (lambda t: t[:-1], "expected ',' or ')', found end of input"),
    (lambda t: t.replace("Genotype(", "Genotype(@", 1), "unexpected character '@'"),
    (lambda t: "X = " + t.replace("Genotype", "Genome", 1), "expected 'Genotype', found 'Genome'"),
    (lambda t: t.replace(", ", ",\n @ ", 1), "'@' at line 2, column 2"),
])
def test_both_genotype_parsers_report_errors_in_one_format(space_name, good, change, needle):
    """darts and darts-rnn share one tokenizer and grammar (nsas.spaces.genotype_text): one error format."""
    from tiny import RNN_GENOTYPE

    from nsas.spaces import get_space

    space = get_space(space_name)
    text = good or RNN_GENOTYPE
    space.parse(text)  # the original is fine
    with pytest.raises(ArchitectureError) as err:
        space.parse(change(text))
    message = str(err.value)
    assert message.startswith(f"{space_name} genotype: ") and needle in message, message
    assert re.search(r" at line \d+, column \d+$", message), message
