"""The DARTS recurrent space: genotype strings, sampling, distance, networks, GDAS hooks."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from nsas.errors import ArchitectureError
from nsas.spaces import get_space, parse_arch
from nsas.spaces.base import Architecture
from nsas.spaces.darts_rnn import RnnGenotype
from nsas.spaces.darts_rnn_net import embedding_dropout, locked_dropout, macs_per_token

SPACE = get_space("darts-rnn")
# As in DARTS's rnn/genotypes.py.
DARTS_V1 = (
    "DARTS_V1 = Genotype(recurrent=[('relu', 0), ('relu', 1), ('tanh', 2), ('relu', 3), ('relu', 4), "
    "('identity', 1), ('relu', 5), ('relu', 1)], concat=range(1, 9))"
)
DARTS_V2 = (
    "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
    "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))"
)
V2_NODES = (
    ("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2), ("sigmoid", 5), ("tanh", 3), ("relu", 5)
)
WITH_NONE = RnnGenotype(
    (("tanh", 0), ("none", 1), ("relu", 2), ("none", 0), ("identity", 4), ("sigmoid", 1), ("tanh", 6), ("relu", 7))
)
V, H, T, B = 40, 12, 5, 4  # tiny sizes; V, H, 2H distinct so matmuls can be told apart


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- strings and JSON
def test_darts_genotypes_parse_to_the_published_nodes():
    v2 = SPACE.parse(DARTS_V2)
    assert v2.recurrent == V2_NODES
    assert str(v2) == DARTS_V2  # the canonical form is DARTS's own
    v1 = SPACE.parse(DARTS_V1)  # pasted with its assignment
    assert v1.recurrent[5] == ("identity", 1) and v1.recurrent[7] == ("relu", 1)
    assert parse_arch(str(v1)) == v1 and parse_arch(DARTS_V2) == v2


@pytest.mark.parametrize(
    "text",
    [
        DARTS_V2.replace(", (", ",\n    (").replace("concat", "\n  concat"),
        DARTS_V2.replace("'", '"'),
        DARTS_V2.replace("range(1, 9)", "[1, 2, 3, 4, 5, 6, 7, 8]"),
        DARTS_V2.replace("range(1, 9)", "range(1,9)").replace(", ", ","),
        # keywords swapped, odd spacing
        "  Genotype( concat = range( 1 , 9 ) ,recurrent = [" + DARTS_V2.split("[", 1)[1].split("]")[0] + "] ) ",
    ],
)
def test_spellings_of_darts_v2(text):
    assert SPACE.parse(text).recurrent == V2_NODES


def test_round_trips_with_none_and_samples():
    rng = random.Random(0)
    archs = [WITH_NONE, SPACE.parse(DARTS_V1)] + [SPACE.sample(rng) for _ in range(200)]
    for a in archs:
        assert SPACE.parse(str(a)) == a
        assert SPACE.from_json(json.loads(json.dumps(a.to_json()))) == a
        assert hash(SPACE.parse(str(a))) == hash(a)
    assert "('none', 1)" in str(WITH_NONE)


@pytest.mark.parametrize(
    "text, needles",
    [
        (DARTS_V2.replace("('tanh', 2)", "('tanx', 2)"), ["'tanx'", "node 5"]),
        (DARTS_V2.replace("('relu', 5)]", "('relu', 8)]"), ["input 8", "node 8"]),
        (DARTS_V2.replace("('sigmoid', 0)", "('sigmoid', -1)"), ["input -1", "node 1"]),
        (DARTS_V2.replace(", ('relu', 5)]", "]"), ["got 7", "'recurrent'"]),
        (DARTS_V2.replace("('relu', 5)]", "('relu', 5), ('relu', 2)]"), ["got 9"]),
        (DARTS_V2.replace("range(1, 9)", "range(0, 9)"), ["[0, 1, 2", "concat"]),
        (DARTS_V2.replace("range(1, 9)", "[1, 2, 3, 5, 4, 6, 7, 8]"), ["[1, 2, 3, 5, 4", "concat"]),
        (DARTS_V2.replace("range(1, 9)", "[1, 2, 3]"), ["concat", "got [1, 2, 3]"]),
        (DARTS_V2.replace("('relu', 1), ('relu', 1)", "('relu', 1), relu, 1"), ["'relu'", "node 3"]),
        (DARTS_V2.replace("('identity', 1)", "('identity', one)"), ["'one'", "node 4"]),
        (DARTS_V2[:-1], ["end of input"]),
        (DARTS_V2 + " x", ["'x'"]),
        ("Genotype(normal=[], concat=range(1, 9))", ["'normal'"]),
        ("hello world", ["'hello'", "line 1, column 1"]),
        ("Genotype(recurrent=[('relu' 0)])", ["'0'"]),
        (DARTS_V2.replace("concat", "@ concat"), ["'@'"]),
        ("", ["end of input"]),
    ],
)
def test_malformed_strings_name_the_token(text, needles):
    with pytest.raises(ArchitectureError) as err:
        SPACE.parse(text)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))
    assert str(err.value).startswith("darts-rnn genotype: ") and "line 1, column " in str(err.value)


@pytest.mark.parametrize(
    "obj",
    [
        None,
        {"recurrent": "x"},
        {"recurrent": [["relu", 0]] * 7},
        {"recurrent": [["relu", "0"]] * 8},
        {"recurrent": list(map(list, V2_NODES)), "concat": [1, 2]},
        {"recurrent": [["bogus", 0]] + [["relu", 0]] * 7},
    ],
)
def test_malformed_json(obj):
    with pytest.raises(ArchitectureError):
        SPACE.from_json(obj)


def test_constructor_validates():
    with pytest.raises(ArchitectureError, match="node 3"):
        RnnGenotype(V2_NODES[:2] + (("relu", 3),) + V2_NODES[3:])
    with pytest.raises(ArchitectureError, match="'gelu'"):
        RnnGenotype((("gelu", 0),) + V2_NODES[1:])


# ---------------------------------------------------------------- sampling, size, distance
def test_sampling_is_valid_uniform_support_and_seeded():
    draws = [SPACE.sample(random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = random.Random(1)
    archs = [SPACE.sample(rng) for _ in range(400)]
    assert len(set(archs)) > 390  # 2.6e9 architectures: repeats are rare
    for i in range(1, 9):
        inputs = Counter(a.recurrent[i - 1][1] for a in archs)
        ops = Counter(a.recurrent[i - 1][0] for a in archs)
        assert set(inputs) == set(range(i))  # every input 0..i-1 occurs, nothing else
        assert set(ops) == {"tanh", "relu", "sigmoid", "identity"}  # never "none"


def test_size():
    assert SPACE.size() == math.factorial(8) * 4**8
    with pytest.raises(ArchitectureError):
        next(iter(SPACE.enumerate()))


def test_distance_by_hand():
    a = SPACE.parse(DARTS_V2)
    assert SPACE.distance(a, a) == 0
    flip = {"tanh": "relu", "relu": "tanh", "sigmoid": "identity", "identity": "sigmoid"}
    all_diff = RnnGenotype(tuple((flip[op], j) for op, j in a.recurrent))
    assert SPACE.distance(a, all_diff) == 1
    three = list(a.recurrent)
    three[0] = ("tanh", 0)  # op differs
    three[4] = ("tanh", 0)  # input differs
    three[7] = ("tanh", 6)  # both differ
    b = RnnGenotype(tuple(three))
    assert SPACE.distance(a, b) == SPACE.distance(b, a) == 3 / 8
    assert SPACE.distance(DARTS_V2, str(b)) == 3 / 8  # strings are coerced


# ---------------------------------------------------------------- networks
def reference_step(model, x, h, genotype):
    """The DARTS cell written out by hand (no dropout, no BatchNorm)."""
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda v: v}
    w0, ws = model.cell.W0, model.cell.Ws
    c0, h0 = torch.cat([x, h], -1).mm(w0).split(H, dim=-1)
    states = [h + c0.sigmoid() * (h0.tanh() - h)]
    for i, (op, j) in enumerate(genotype.recurrent):
        if op == "none":
            states.append(torch.zeros_like(h))
            continue
        c, hh = states[j].mm(ws[i]).split(H, dim=-1)
        states.append(states[j] + c.sigmoid() * (act[op](hh) - states[j]))
    return sum(states[1:]) / 8


@pytest.mark.parametrize("genotype", [SPACE.parse(DARTS_V2), WITH_NONE])
def test_standalone_matches_hand_written_cell_and_carries_hidden(genotype):
    torch.manual_seed(0)
    model = SPACE.build_network(genotype, vocab=V, hidden=H).eval()
    x = tokens()
    with torch.no_grad():
        logits, last = model(x)
        h = torch.zeros(B, H)
        for t in range(T):
            h = reference_step(model, model.encoder(x[t]), h, genotype)
            expect = h @ model.encoder.weight.t() + model.decoder_bias  # tied decoder
            torch.testing.assert_close(logits[t], expect)
        torch.testing.assert_close(last, h)
        # Carrying the hidden state across two halves equals one pass over the whole.
        first, mid = model(x[:2])
        second, end = model(x[2:], mid)
    assert logits.shape == (T, B, V) and last.shape == (B, H)
    torch.testing.assert_close(torch.cat([first, second]), logits)
    torch.testing.assert_close(end, last)


class OpCounter(TorchDispatchMode):
    """Counts aten ops, and matmuls by the identity of their right-hand matrix."""

    def __init__(self):
        super().__init__()
        self.ops, self.rhs = Counter(), Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        if name == "mm":
            self.rhs[args[1].data_ptr()] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("genotype", [SPACE.parse(DARTS_V2), WITH_NONE, SPACE.sample(random.Random(3))])
def test_supernet_runs_only_the_chosen_ops(genotype, train):
    net = SPACE.build_supernet(vocab=V, hidden=H).train(train)
    cell = net.cell
    with OpCounter() as count:
        net(tokens(), genotype)
    ops = Counter(op for op, _ in genotype.recurrent)
    expect_rhs = {cell.W0.data_ptr(): T}  # the initial state: one matmul per step
    for i, (op, _) in enumerate(genotype.recurrent):
        if op != "none":
            expect_rhs[cell.Ws[i].data_ptr()] = T  # exactly one W_i matmul per node and step
    cell_rhs = {p: n for p, n in count.rhs.items() if p in {w.data_ptr() for w in [cell.W0, *cell.Ws]}}
    assert cell_rhs == expect_rhs
    live = 8 - ops["none"]
    assert count.ops["sigmoid"] == T * (1 + live + ops["sigmoid"])  # gates c0, c_i, then chosen activations
    assert count.ops["tanh"] == T * (1 + ops["tanh"])
    assert count.ops["relu"] == T * ops["relu"]


def test_supernet_flops_equal_standalone_and_macs_formula():
    genotype = SPACE.parse(DARTS_V1)
    torch.manual_seed(0)
    net = SPACE.build_supernet(vocab=V, hidden=H).eval()
    model = SPACE.build_network(genotype, vocab=V, hidden=H).eval()
    flops = []
    for run in (lambda: net(tokens(), genotype), lambda: model(tokens())):
        with FlopCounterMode(display=False) as counter:
            run()
        flops.append(counter.get_total_flops())
    assert flops[0] == flops[1] == 2 * T * B * macs_per_token(model)


def test_macs_per_token_by_hand():
    v2 = SPACE.build_network(DARTS_V2, vocab=V, hidden=H)
    assert macs_per_token(v2) == (2 * H) * (2 * H) + 8 * H * (2 * H) + H * V
    sparse = SPACE.build_network(WITH_NONE, vocab=V, hidden=H)
    assert macs_per_token(sparse) == (2 * H) * (2 * H) + 6 * H * (2 * H) + H * V


def test_published_parameter_count():
    vocab, hidden = 10000, 850
    model = SPACE.build_network(DARTS_V2)  # defaults: PTB vocabulary, 850 hidden
    n = sum(p.numel() for p in model.parameters())
    assert n == vocab * hidden + vocab + (2 * hidden) * (2 * hidden) + 8 * hidden * (2 * hidden)
    assert 22.5e6 < n < 23.5e6  # "23M" in DARTS and NSAS
    assert model.encoder.weight.abs().max() <= 0.1 and model.cell.Ws[3].abs().max() <= 0.04


def test_supernet_path_independence_and_weight_inheritance():
    torch.manual_seed(0)
    net = SPACE.build_supernet(vocab=V, hidden=H).eval()
    a, b = SPACE.parse(DARTS_V2), SPACE.parse(DARTS_V1)
    with torch.no_grad():
        first = net(tokens(), a)
        other = net(tokens(), b)
        again = net(tokens(), a)
    assert first.shape == (T, B, V)
    torch.testing.assert_close(first, again)  # no state leaks from path b
    assert not torch.allclose(first, other)
    model = SPACE.build_network(a, vocab=V, hidden=H)
    model.load_state_dict(net.state_dict())  # same names and shapes: inherited weights
    torch.testing.assert_close(model.cell.Ws[5], net.cell.Ws[5])


def test_supernet_rejects_foreign_paths():
    class Other(Architecture):
        space = "nb201"

        def to_str(self):
            return "|none~0|"

        def to_json(self):
            return "|none~0|"

    net = SPACE.build_supernet(vocab=V, hidden=H)
    for bad in (Other(), "Genotype(recurrent=[])", None):
        with pytest.raises(ArchitectureError):
            net(tokens(), bad)
    with pytest.raises(ArchitectureError):
        SPACE.build_network(Other(), vocab=V, hidden=H)


def test_single_path_gradients():
    net = SPACE.build_supernet(vocab=V, hidden=H).train()
    net(tokens(), WITH_NONE).logsumexp(-1).mean().backward()
    for i, (op, _) in enumerate(WITH_NONE.recurrent):
        assert (net.cell.Ws[i].grad is None) == (op == "none")


# ---------------------------------------------------------------- GDAS
def test_gdas_shapes_decode_and_final():
    shapes = SPACE.gdas_alpha_shapes()
    assert shapes == [(1, 4 * i) for i in range(1, 9)]
    target = SPACE.parse(DARTS_V2)
    order = ("tanh", "relu", "sigmoid", "identity")
    cols = [4 * j + order.index(op) for op, j in target.recurrent]  # input-major columns
    choices = [torch.tensor([c]) for c in cols]
    probs = [torch.full(s, 1.0 / s[1]) for s in shapes]
    path, arch = SPACE.gdas_decode(choices, probs)
    assert path == arch == target
    alphas = [torch.zeros(s).index_fill_(1, torch.tensor([c]), 3.0) for s, c in zip(shapes, cols)]
    assert SPACE.gdas_final(alphas) == target
    with pytest.raises(ArchitectureError, match="node 1"):
        SPACE.gdas_decode([torch.tensor([4])] + choices[1:], probs)


def test_edge_weights_are_identity_in_value_and_carry_gradient():
    torch.manual_seed(0)
    net = SPACE.build_supernet(vocab=V, hidden=H).eval()
    shapes = SPACE.gdas_alpha_shapes()
    alphas = [torch.randn(s, requires_grad=True) for s in shapes]
    choices = [a.detach().argmax(-1) for a in alphas]
    path, _ = SPACE.gdas_decode(choices, [a.detach().softmax(-1) for a in alphas])
    weights = []
    for a, c in zip(alphas, choices):
        p = a.softmax(-1).gather(1, c[:, None])[:, 0]  # (1,) soft weight of the chosen column
        weights.append(1 - p.detach() + p)
    x = tokens()
    with_w = net(x, path, weights)
    torch.testing.assert_close(with_w, net(x, path))  # value 1 in the forward pass
    with_w.logsumexp(-1).mean().backward()
    for a in alphas:
        assert a.grad is not None and a.grad.abs().sum() > 0


# ---------------------------------------------------------------- dropouts
def test_locked_and_word_dropouts():
    torch.manual_seed(0)
    out = locked_dropout(torch.ones(6, 3, 20), 0.5, True)
    assert torch.equal(out, out[:1].expand_as(out))  # one mask for every time step
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(locked_dropout(torch.ones(6, 3, 20), 0.5, False), torch.ones(6, 3, 20))
    embed = torch.nn.Embedding(5, 8)
    words = torch.tensor([[0, 1, 2, 3, 4] * 4])
    emb = embedding_dropout(embed, words, 0.5, True)[0]  # (20, 8)
    for w in range(5):
        rows = emb[words[0] == w]
        assert torch.equal(rows, rows[:1].expand_as(rows))  # a word is dropped everywhere or nowhere
        assert rows.abs().sum() == 0 or torch.allclose(rows[0], embed.weight[w] * 2)


def test_standalone_dropouts_train_vs_eval():
    model = SPACE.build_network(DARTS_V2, vocab=V, hidden=H)
    x = tokens()
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])
