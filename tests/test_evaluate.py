"""Scoring with inherited weights: text scores carry each architecture's own state."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from nsas.data import TextBatches
from nsas.evaluate import evaluate_model, evaluate_path, score_archs
from nsas.spaces import get_space
from nsas.spaces.darts_rnn_net import RNNModel
from tiny import TINY, tiny_supernet

SPACE = get_space("darts-rnn")


def _archs(n: int, seed: int = 0):
    rng = random.Random(seed)
    return [SPACE.sample(rng) for _ in range(n)]


def _windows(seed: int = 0, columns: int = 10, bptt: int = 5):
    tokens = torch.randint(0, TINY["darts-rnn"]["vocab"], (600,), generator=torch.Generator().manual_seed(seed))
    return list(TextBatches(tokens, batch_size=columns, bptt=bptt).epoch(0))


def test_supernet_text_score_equals_its_standalone_network_evaluation():
    supernet = tiny_supernet("darts-rnn", seed=1)
    batches = _windows()
    for arch in _archs(3):
        net = RNNModel(arch, batchnorm=True, **TINY["darts-rnn"])
        net.load_state_dict(supernet.state_dict())  # the same weights
        standalone = evaluate_model(net, batches, text=True)
        score = evaluate_path(supernet, arch, batches)
        assert score["loss"] == pytest.approx(standalone["loss"], rel=1e-6)
        assert score["acc"] == pytest.approx(standalone["acc"])
        # ... and the carried state matters: from zeros in every window the score differs.
        assert abs(evaluate_path(supernet, arch, batches, carry_state=False)["loss"] - score["loss"]) > 1e-4


def test_no_state_from_another_architecture_enters_a_score():
    supernet = tiny_supernet("darts-rnn", seed=2)
    batches = _windows(seed=1)
    a, b, c = _archs(3, seed=3)
    forward = {r["arch"]: r["loss"] for r in score_archs(supernet, [a, b, c], batches)}
    backward = {r["arch"]: r["loss"] for r in score_archs(supernet, [c, b, a], batches)}
    assert forward == backward  # exactly: each architecture starts from zeros at the first window
    assert len(set(forward.values())) == 3
    assert evaluate_path(supernet, b, batches)["loss"] == pytest.approx(forward[str(b)], rel=1e-9)


def _paired_stream(n: int, seed: int, words: int = 10) -> torch.Tensor:
    """Random words, each written twice: "a a b b ...". Predicting the word after a
    pair's first half needs to know where the pair starts, i.e. context across windows."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, words, (n // 2,), generator=g).repeat_interleave(2)


def test_carried_state_lowers_the_perplexity_of_a_trained_model():
    torch.manual_seed(0)
    supernet = tiny_supernet("darts-rnn", seed=0)
    arch = SPACE.parse("Genotype(recurrent=[('tanh', 0), ('relu', 1), ('sigmoid', 1), ('identity', 2), "
                       "('tanh', 3), ('relu', 4), ('tanh', 5), ('identity', 6)], concat=range(1, 9))")
    train = TextBatches(_paired_stream(4000, seed=0), batch_size=8, bptt=5)  # odd bptt: windows start mid-pair
    valid = list(TextBatches(_paired_stream(1000, seed=1), batch_size=10, bptt=5).epoch(0))
    before = {c: evaluate_path(supernet, arch, valid, carry_state=c)["loss"] for c in (True, False)}
    opt = torch.optim.Adam(supernet.parameters(), lr=0.02)
    for epoch in range(3):
        hidden = None
        for x, y in train.epoch(epoch):
            logits, hidden = supernet(x, arch, hidden=hidden, return_hidden=True)
            hidden = hidden.detach()
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    carried = evaluate_path(supernet, arch, valid)["loss"]
    zero = evaluate_path(supernet, arch, valid, carry_state=False)["loss"]
    assert carried < before[True] - 0.5  # it learned
    assert carried < zero - 0.05  # and context helps once it has


def test_one_perplexity_everywhere_capped_finite():
    import math

    from nsas import rank, train
    from nsas.evaluate import perplexity
    assert perplexity(math.log(50.0)) == pytest.approx(50.0)
    assert perplexity(1e6) == math.exp(700.0) and math.isfinite(perplexity(1e6))
    assert train.perplexity is perplexity and rank.perplexity is perplexity
