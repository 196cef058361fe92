"""NAS-Bench-201 space: strings, JSON, sampling, distance, networks, supernet."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nsas.errors import ArchitectureError
from nsas.spaces import detect_space, get_space, parse_arch
from nsas.spaces.nb201 import EDGES as EDGES_201
from nsas.spaces.nb201 import NB201Arch, NB201Space
from nsas.spaces.nb201_net import InferCell, SearchCell, make_op

SPACE = get_space("nb201")
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
EXAMPLE = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
PUBLISHED = [
    BEST,
    EXAMPLE,
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]
SMALL = dict(channels=4, cells=2, num_classes=10)


def arch(*ops: str) -> NB201Arch:
    return NB201Arch(tuple(ops))


def images(batch: int = 2, size: int = 8) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


# ---- strings and JSON ---------------------------------------------------


def test_registered_as_image_space():
    assert isinstance(SPACE, NB201Space)
    assert SPACE.name == "nb201" and SPACE.kind == "image" and SPACE.ops == OPS
    assert detect_space(BEST) == "nb201"
    assert parse_arch(BEST) == SPACE.parse(BEST)


@pytest.mark.parametrize("text", PUBLISHED)
def test_published_strings_round_trip(text):
    a = SPACE.parse(text)
    assert str(a) == text
    assert SPACE.parse(str(a)) == a
    assert SPACE.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert hash(SPACE.parse(text)) == hash(a)


def test_example_string_maps_ops_to_edges_in_nb201_order():
    # Edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
    a = SPACE.parse(EXAMPLE)
    expected = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none", "avg_pool_3x3", "nor_conv_3x3")
    assert a.ops == expected
    assert a.to_json() == list(a.ops)


def test_samples_round_trip():
    rng = random.Random(1)
    for _ in range(300):
        a = SPACE.sample(rng)
        assert SPACE.parse(str(a)) == a
        assert SPACE.from_json(json.loads(json.dumps(a.to_json()))) == a


def test_parse_tolerates_surrounding_whitespace_only():
    assert SPACE.parse(f"  {BEST}\n\t") == SPACE.parse(BEST)
    with pytest.raises(ArchitectureError):
        SPACE.parse(BEST.replace("|+|", "| + |", 1))


@pytest.mark.parametrize(
    "text, token, where",
    [
        (BEST.replace("nor_conv_3x3~0|+", "conv_3x3~0|+", 1), "conv_3x3", "node 1"),
        (EXAMPLE.replace("avg_pool_3x3~1", "max_pool_3x3~1"), "max_pool_3x3", "node 3, input 1"),
        (EXAMPLE.replace("nor_conv_1x1~1", "nor_conv_1x1~0"), "nor_conv_1x1~0", "node 2, input 1"),
        (EXAMPLE.replace("nor_conv_3x3~2", "nor_conv_3x3~3"), "nor_conv_3x3~3", "node 3, input 2"),
        (EXAMPLE.replace("nor_conv_3x3~2", "nor_conv_3x3~02"), "nor_conv_3x3~02", "node 3, input 2"),
        (EXAMPLE.replace("none~0", "none~x"), "none~x", "node 3, input 0"),
        (EXAMPLE.replace("none~0", "none0"), "none0", "node 3, input 0"),
        (EXAMPLE.replace("|nor_conv_3x3~2|", "|"), "|none~0|avg_pool_3x3~1|", "node 3"),
        (EXAMPLE.replace("|skip_connect~0|", "|skip_connect~0|skip_connect~1|"), "|skip_connect~0|", "node 2"),
        (EXAMPLE + "+|none~0|", EXAMPLE + "+|none~0|", "4 node segments"),
        ("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|", "|nor_conv_3x3~0|", "2 node segments"),
        ("nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
         "nor_conv_3x3~0|", "node 1"),
        ("garbage", "garbage", "node segments"),
        ("", "''", "node segments"),
    ],
)
def test_malformed_strings_name_the_token(text, token, where):
    with pytest.raises(ArchitectureError) as info:
        SPACE.parse(text)
    assert token in str(info.value)
    assert where in str(info.value)


def test_parse_rejects_non_strings():
    with pytest.raises(ArchitectureError):
        SPACE.parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "obj, token",
    [
        (["none"] * 5, "6 edges"),
        (["none"] * 7, "6 edges"),
        (["none", "none", "conv", "none", "none", "none"], "'conv'"),
        (["none", "none", "none", "none", 3, "none"], "entry 4"),
        (BEST, "list of 6"),
        ({"ops": ["none"] * 6}, "list of 6"),
    ],
)
def test_from_json_rejects_malformed(obj, token):
    with pytest.raises(ArchitectureError) as info:
        SPACE.from_json(obj)
    assert token in str(info.value)


def test_arch_is_validated_and_immutable():
    with pytest.raises(ArchitectureError, match="edge 2"):
        arch("none", "none", "sep_conv_3x3", "none", "none", "none")
    a = SPACE.parse(BEST)
    with pytest.raises(AttributeError):
        a.ops = ("none",) * 6  # type: ignore[misc]
    assert NB201Arch(list(a.ops)) == a  # lists are frozen into tuples


# ---- enumeration and sampling --------------------------------------------


def test_enumerate_gives_every_arch_once_in_a_fixed_order():
    archs = list(SPACE.enumerate())
    assert SPACE.size() == 5**6 == 15625
    assert len(archs) == 15625 and len(set(archs)) == 15625
    assert len({str(a) for a in archs}) == 15625
    assert archs[:50] == list(SPACE.enumerate())[:50]
    assert archs[0] == arch(*["none"] * 6) and archs[-1] == arch(*["avg_pool_3x3"] * 6)


def test_sampling_is_seeded_valid_and_covers_every_op_on_every_edge():
    rng_a, rng_b = random.Random(7), random.Random(7)
    seq_a = [SPACE.sample(rng_a) for _ in range(200)]
    seq_b = [SPACE.sample(rng_b) for _ in range(200)]
    assert seq_a == seq_b
    rng = random.Random(8)
    assert [SPACE.sample(rng) for _ in range(200)] != seq_b
    for e in range(6):
        assert {a.ops[e] for a in seq_b} == set(OPS)
    assert all(SPACE.parse(str(a)) == a for a in seq_b)


# ---- distance -------------------------------------------------------------


def test_distance():
    a = SPACE.parse(EXAMPLE)
    assert SPACE.distance(a, a) == 0.0
    # Every edge changed: shift each op to the next one in OPS.
    shifted = arch(*(OPS[(OPS.index(op) + 1) % 5] for op in a.ops))
    assert SPACE.distance(a, shifted) == 1.0
    # EXAMPLE vs BEST: edges 0, 5 agree (nor_conv_3x3); edge 1 (skip vs conv),
    # 2 (1x1 vs 3x3), 3 (none vs skip), 4 (pool vs conv) differ -> 4/6.
    assert SPACE.distance(EXAMPLE, BEST) == pytest.approx(4 / 6)
    # Differs from EXAMPLE on edge 2 (1x1 -> none) and edge 5 (3x3 -> skip) only.
    b = arch("nor_conv_3x3", "skip_connect", "none", "none", "avg_pool_3x3", "skip_connect")
    assert SPACE.distance(a, b) == pytest.approx(2 / 6)
    rng = random.Random(3)
    for _ in range(50):
        x, y = SPACE.sample(rng), SPACE.sample(rng)
        assert SPACE.distance(x, y) == SPACE.distance(y, x)
        assert 0.0 <= SPACE.distance(x, y) <= 1.0


# ---- GDAS hooks -----------------------------------------------------------


def test_gdas_hooks():
    assert SPACE.gdas_alpha_shapes() == [(6, 5)]
    choices = torch.tensor([3, 1, 2, 0, 4, 3])
    path, derived = SPACE.gdas_decode([choices], [torch.full((6, 5), 0.2)])
    assert path == derived == SPACE.parse(EXAMPLE)
    alphas = torch.zeros(6, 5)
    alphas[torch.arange(6), choices] = 1.0
    assert SPACE.gdas_final([alphas]) == SPACE.parse(EXAMPLE)
    with pytest.raises(ArchitectureError):
        SPACE.gdas_final([torch.zeros(5, 6)])


# ---- cells ----------------------------------------------------------------

SKIP = "skip_connect"


@pytest.mark.parametrize(
    "ops, factor",
    [
        ((SKIP,) * 6, 4.0),  # n1 = x, n2 = x + n1, n3 = x + n1 + n2
        ((SKIP, "none", "none", "none", SKIP, "none"), 1.0),  # n3 = n1 = x
        (("none", SKIP, "none", "none", "none", SKIP), 1.0),  # n3 = n2 = x
        ((SKIP, "none", "none", "none", "none", SKIP), 0.0),  # n2 has only none inputs
        (("none", "none", "none", "none", SKIP, SKIP), 0.0),  # n1 = n2 = 0
        (("none",) * 6, 0.0),
    ],
)
def test_cell_wiring_follows_edge_order(ops, factor):
    x = torch.randn(2, 4, 5, 5)
    a = arch(*ops)
    assert torch.allclose(SearchCell(4)(x, a.ops), factor * x)
    assert torch.allclose(InferCell(a, 4)(x), factor * x)


@pytest.mark.parametrize("op", OPS[1:])
def test_ops_preserve_shape(op):
    x = torch.randn(2, 4, 5, 5)
    assert make_op(op, 4)(x).shape == x.shape


def test_avg_pool_excludes_padding():
    # count_include_pad=False: a constant map stays constant at the borders too.
    x = torch.full((1, 4, 3, 3), 3.0)
    assert torch.allclose(make_op("avg_pool_3x3", 4)(x), x)
    cell = arch("avg_pool_3x3", "none", "none", "none", SKIP, "none")  # n3 = n1 = pool(x)
    assert torch.allclose(SearchCell(4)(x, cell.ops), x)


# ---- networks ---------------------------------------------------------------


def _op_params(supernet: nn.Module) -> dict[tuple[int, int, int, str], list[nn.Parameter]]:
    """Parameters of every cell op, keyed by (stage, cell, edge, op)."""
    out = {}
    for s, stage in enumerate(supernet.stages):
        for k, cell in enumerate(stage):
            for e, ops in enumerate(cell.edges):
                for op, module in ops.items():
                    out[(s, k, e, op)] = list(module.parameters())
    return out


def _chosen(a: NB201Arch, cells: int) -> set[tuple[int, int, int, str]]:
    ops = [(e, op) for e, op in enumerate(a.ops) if op != "none"]
    return {(s, k, e, op) for s in range(3) for k in range(cells) for e, op in ops}


@pytest.mark.parametrize("text", [BEST, EXAMPLE, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_supernet_runs_only_the_sampled_ops(text):
    a = SPACE.parse(text)
    supernet = SPACE.build_supernet(**SMALL)
    calls: list[tuple[int, int, int, str]] = []
    for s, stage in enumerate(supernet.stages):
        for k, cell in enumerate(stage):
            for e, ops in enumerate(cell.edges):
                for op, module in ops.items():
                    module.register_forward_hook(lambda *_, key=(s, k, e, op): calls.append(key))
    convs = []
    for module in supernet.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda *_: convs.append(1))
    supernet(images(), a)
    assert sorted(calls) == sorted(_chosen(a, SMALL["cells"]))
    n_conv_edges = sum(op.startswith("nor_conv") for op in a.ops)
    # stem + 2 reductions x (conv_a, conv_b, shortcut) + chosen convs of every cell
    assert len(convs) == 1 + 2 * 3 + n_conv_edges * 3 * SMALL["cells"]


MIXED = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"


@pytest.mark.parametrize("text", [BEST, EXAMPLE, MIXED])
def test_supernet_flops_equal_standalone_flops(text):
    a = SPACE.parse(text)
    x = images(batch=2, size=16)
    flops = []
    for net, args in ((SPACE.build_supernet(**SMALL), (x, a)), (SPACE.build_network(a, **SMALL), (x,))):
        counter = FlopCounterMode(display=False)
        with counter:
            net(*args)
        flops.append(counter.get_total_flops())
    assert flops[0] == flops[1] > 0


def test_only_chosen_ops_get_gradients():
    a = SPACE.parse(EXAMPLE)  # every non-none op reaches the output
    supernet = SPACE.build_supernet(**SMALL)
    supernet(images(), a).logsumexp(dim=1).sum().backward()
    chosen = _chosen(a, SMALL["cells"])
    for key, params in _op_params(supernet).items():
        for p in params:
            if key in chosen:
                assert p.grad is not None and p.grad.abs().sum() > 0, key
            else:
                assert p.grad is None, key
    for module in (supernet.stem, supernet.reductions, supernet.head):
        assert all(p.grad is not None for p in module.parameters())


def test_edge_weights_scale_outputs_and_pass_gradients():
    a = SPACE.parse(EXAMPLE)
    supernet = SPACE.build_supernet(**SMALL)
    x = images()
    alpha = torch.randn(6, 5, requires_grad=True)
    p = alpha.softmax(dim=1)
    chosen = torch.tensor([OPS.index(op) for op in a.ops])
    weights = (1 - p.detach() + p)[torch.arange(6), chosen]  # value 1, gradient to alpha
    logits = supernet(x, a, edge_weights=[weights])
    assert torch.allclose(logits, supernet(x, a), atol=1e-6)
    logits.logsumexp(dim=1).sum().backward()
    for e, op in enumerate(a.ops):
        # a `none` edge is never computed, so its weight gets no gradient
        assert (alpha.grad[e].abs().sum() > 0) == (op != "none"), e
    assert all(p.grad is not None for p in supernet.stages[0][0].edges[0]["nor_conv_3x3"].parameters())
    # A weight that is not 1 changes the output.
    doubled = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 2.0])
    assert not torch.allclose(supernet(x, a, edge_weights=[doubled]), supernet(x, a))
    # The gradient with respect to each edge weight is the central difference of the output.
    supernet = supernet.double()
    w = torch.ones(6, dtype=torch.float64, requires_grad=True)
    f = lambda weights: supernet(x.double(), a, edge_weights=[weights]).logsumexp(dim=1).sum()  # noqa: E731
    (grad,) = torch.autograd.grad(f(w), w)
    with torch.no_grad():
        diffs = [(f(w.detach() + 1e-6 * torch.eye(6)[e]) - f(w.detach() - 1e-6 * torch.eye(6)[e])) / 2e-6
                 for e in range(6)]
    torch.testing.assert_close(grad, torch.stack(diffs), rtol=1e-5, atol=1e-7)
    assert grad[a.ops.index("none")] == 0 and (grad != 0).sum() == 5


def test_supernet_rejects_bad_paths_and_weights():
    supernet = SPACE.build_supernet(**SMALL)
    for bad in (BEST, None, ("none",) * 6):
        with pytest.raises(ArchitectureError):
            supernet(images(), bad)
    with pytest.raises(ArchitectureError):
        supernet(images(), SPACE.parse(BEST), edge_weights=[torch.ones(5)])


@pytest.mark.parametrize("size", [8, 32])
def test_output_shapes(size):
    a = SPACE.parse(BEST)
    x = images(batch=3, size=size)
    net = SPACE.build_network(BEST, channels=4, cells=1, num_classes=7)
    supernet = SPACE.build_supernet(channels=4, cells=1, num_classes=7)
    assert net(x).shape == (3, 7)
    assert supernet(x, a).shape == (3, 7)
    net.eval()
    assert net(x).shape == (3, 7)


def test_supernet_batchnorm_uses_batch_statistics():
    supernet = SPACE.build_supernet(**SMALL)
    assert not any(isinstance(b, nn.BatchNorm2d) and b.track_running_stats for b in supernet.modules())
    assert all(not b.affine for s in supernet.stages for b in s.modules() if isinstance(b, nn.BatchNorm2d))
    a, x = SPACE.parse(BEST), images()
    train_out = supernet.train()(x, a)
    assert torch.allclose(supernet.eval()(x, a), train_out, atol=1e-6)


def test_standalone_network_uses_affine_running_batchnorm():
    net = SPACE.build_network(BEST, **SMALL)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(b.affine and b.track_running_stats for b in bns)


def test_standalone_parameter_count_matches_hand_formula():
    # EXAMPLE has two nor_conv_3x3 edges and one nor_conv_1x1 edge.
    c, classes = 4, 10
    conv_bn = lambda cin, cout, k: cin * cout * k * k + 2 * cout  # noqa: E731
    stem = 3 * c * 9 + 2 * c
    cell = lambda w: 2 * conv_bn(w, w, 3) + conv_bn(w, w, 1)  # noqa: E731
    block = lambda cin, cout: conv_bn(cin, cout, 3) + conv_bn(cout, cout, 3) + cin * cout  # noqa: E731
    head = 2 * 4 * c + 4 * c * classes + classes
    expected = stem + cell(c) + block(c, 2 * c) + cell(2 * c) + block(2 * c, 4 * c) + cell(4 * c) + head
    assert expected == 11446  # worked by hand: 116 + 6552 + 4576 + 202
    net = SPACE.build_network(EXAMPLE, channels=c, cells=1, num_classes=classes)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_build_options_are_validated():
    for options in ({"channels": 0}, {"cells": -1}, {"num_classes": 1.5}):
        with pytest.raises(ArchitectureError):
            SPACE.build_supernet(**options)
        with pytest.raises(ArchitectureError):
            SPACE.build_network(BEST, **options)


# ---- same-function key (shared scores) -------------------------------------
def _cell(*ops: str) -> str:
    """The NB201 string of 6 ops given in EDGES order (short names)."""
    full = {"-": "none", "s": "skip_connect", "c1": "nor_conv_1x1", "c3": "nor_conv_3x3", "p": "avg_pool_3x3"}
    return str(NB201Arch(tuple(full[o] for o in ops)))


def test_function_key_hand_made_examples():
    from nsas.spaces.nb201 import function_key

    key = lambda *ops: function_key(SPACE.parse(_cell(*ops)))  # noqa: E731
    # node 1 is zero (its only input is none): what leaves it changes nothing
    assert len({key("-", "s", x, "c3", y, "c1") for x in ("-", "s", "c1", "c3", "p")
                for y in ("-", "s", "c1", "c3", "p")}) == 1
    # node 2 never reaches the output (edge 3<-2 is none): what enters it changes nothing
    assert len({key("c3", x, y, "s", "c1", "-") for x in ("-", "s", "c3") for y in ("-", "p", "c1")}) == 1
    # nothing reaches the output: every such cell is the zero function
    assert key("-", "-", "-", "-", "-", "-") == key("c3", "c3", "c3", "-", "-", "-") == "0"
    assert key("-", "s", "-", "-", "c3", "-") == "0"
    # weight-free ops on swapped parallel nodes: the same function
    assert key("s", "p", "-", "-", "p", "s") == key("p", "s", "-", "-", "s", "p")
    # a conv on another edge has other weights in the supernet: another function
    assert key("c3", "-", "-", "-", "s", "-") != key("-", "-", "-", "c3", "-", "-")
    assert key("c3", "-", "-", "s", "s", "-") != key("c3", "-", "-", "s", "-", "-")  # x + c(x) vs x


def test_live_arch_drops_exactly_the_edges_that_cannot_change_the_output():
    from nsas.spaces.nb201 import function_key

    live = lambda *ops: SPACE.live_arch(_cell(*ops))  # noqa: E731
    # node 1 is zero: both edges leaving it are dead
    assert live("-", "s", "c3", "c3", "c1", "c1") == SPACE.parse(_cell("-", "s", "-", "c3", "-", "c1"))
    # node 2 never reaches the output: both edges entering it are dead
    assert live("c3", "p", "c1", "s", "c1", "-") == SPACE.parse(_cell("c3", "-", "-", "s", "c1", "-"))
    assert live("c3", "c3", "c3", "-", "-", "-") == SPACE.parse(_cell("-", "-", "-", "-", "-", "-"))
    for arch in SPACE.enumerate():  # the whole space: same function, and no remaining edge is removable
        kept = SPACE.live_arch(arch)
        assert function_key(kept) == function_key(arch) and SPACE.live_arch(kept) == kept
        for e, op in enumerate(kept.ops):
            if op != "none":
                fewer = NB201Arch(tuple("none" if k == e else o for k, o in enumerate(kept.ops)))
                assert function_key(fewer) != function_key(arch), (str(arch), e)


def test_parameter_count_in_closed_form_equals_the_built_network():
    from nsas.inspection import count_parameters

    rng = random.Random(0)
    archs = [SPACE.sample(rng) for _ in range(8)] + [SPACE.parse(_cell(*["c3"] * 6)), SPACE.parse(_cell(*["-"] * 6))]
    for arch in archs:
        with torch.device("meta"):
            assert SPACE.parameter_count(arch) == count_parameters(SPACE.build_network(arch)), str(arch)
    # dead convs count in the network, not in its live cell: 5 cells per stage of widths 16, 32, 64
    arch = SPACE.parse(_cell("c3", "p", "c1", "s", "c1", "-"))
    dead_conv_1x1 = 5 * sum(w * w + 2 * w for w in (16, 32, 64))
    assert SPACE.parameter_count(arch) - SPACE.parameter_count(SPACE.live_arch(arch)) == dead_conv_1x1


def _numeric_function(ops: tuple[str, ...], maps: dict, pool: torch.Tensor, x: torch.Tensor) -> tuple:
    """An independent stand-in for the supernet's cell: every conv edge its own odd nonlinear map (f(0) = 0)."""
    nodes = [x]
    for j in range(1, 4):
        total = torch.zeros_like(x)
        for e, (target, i) in enumerate(EDGES_201):
            op = ops[e]
            if target != j or op == "none":
                continue
            total = total + (nodes[i] if op == "skip_connect" else pool @ nodes[i] if op == "avg_pool_3x3"
                             else torch.tanh(maps[e, op] @ nodes[i]))
        nodes.append(total)
    return tuple(torch.round(nodes[-1], decimals=9).tolist())


def test_function_keys_count_the_distinct_cell_functions_of_the_space():
    from nsas.spaces.nb201 import function_key

    g = torch.Generator().manual_seed(0)
    maps = {(e, op): torch.randn(6, 6, generator=g, dtype=torch.float64)
            for e in range(6) for op in ("nor_conv_1x1", "nor_conv_3x3")}
    pool, x = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    keys, functions = {}, {}
    for arch in SPACE.enumerate():
        keys.setdefault(function_key(arch), len(keys))
        functions.setdefault(_numeric_function(arch.ops, maps, pool, x), len(functions))
    assert 6_000 < len(keys) < SPACE.size()
    assert len(keys) == len(functions)
    reps = {SPACE.same_function(a) for a in SPACE.enumerate()}
    assert len(reps) == len(keys) and all(SPACE.same_function(r) == r for r in reps)


def test_cells_with_one_key_give_the_same_supernet_output():
    from nsas.spaces.nb201 import function_key

    torch.manual_seed(0)
    net = SPACE.build_supernet(channels=4, cells=1, num_classes=5).eval()
    x = torch.randn(4, 3, 8, 8)
    rng = random.Random(0)
    archs = [SPACE.sample(rng) for _ in range(40)]
    archs += [NB201Arch(("none",) + a.ops[1:]) for a in archs[:20]]  # node 1 zero: many sharing a function
    with torch.no_grad():
        out = {a: net(x, a) for a in archs}
        for a in archs:
            rep = SPACE.same_function(a)
            torch.testing.assert_close(out[a], net(x, rep), rtol=1e-5, atol=1e-6)
        for a, b in zip(archs, archs[1:]):
            if function_key(a) != function_key(b):
                assert not torch.allclose(out[a], out[b], atol=1e-4)
