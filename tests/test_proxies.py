"""Zero-cost proxies (nsas.proxies): hand-computed values on a tiny net, invariances, determinism, dedup."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nsas import proxies
from nsas.proxies import ProxyError, parse_proxies, proxy_names, register_proxy, score_proxies
from nsas.spaces import SPACES, get_space, register_space
from nsas.spaces.choice import ChoiceSpace

NB201_TINY = {"channels": 4, "cells": 1}


def _two_layer() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))


@pytest.fixture(scope="module")
def tiny_space():
    """One choice point holding a 2-3-2 ReLU MLP (no biases) on a flattened (N, 1, 1, 2) input."""
    space = ChoiceSpace([{"mlp": _two_layer}], stem=nn.Flatten, name="proxy-tiny")
    register_space(space, name="proxy-tiny")
    yield space
    SPACES.remove("proxy-tiny")


@pytest.fixture(scope="module")
def tiny_batch():
    g = torch.Generator().manual_seed(3)
    return torch.randn(6, 1, 1, 2, generator=g), torch.tensor([0, 1, 1, 0, 1, 0])


@pytest.fixture(scope="module")
def nb201_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 3, 16, 16, generator=g), torch.randint(0, 10, (12,), generator=g)


def _weights(space, seed=0):
    """W1 (3, 2), W2 (2, 3) of the network the proxies build at ``seed``, as float64 numpy."""
    torch.manual_seed(seed)
    net = space.build_network(space.parse("mlp"))
    return net.blocks[0][0].weight.detach().double().numpy(), net.blocks[0][2].weight.detach().double().numpy()


def _one(space, batch, name):
    return score_proxies(space, ["mlp"], [name], batch)[0][name]


def test_synflow_is_log_of_twice_the_path_sum(tiny_space, tiny_batch):
    w1, w2 = _weights(tiny_space)
    r = np.ones(2) @ np.abs(w2) @ np.abs(w1) @ np.ones(2)  # R = 1^T |W2| |W1| 1
    # two layers, each of degree 1 in its weights: sum |theta * dR/dtheta| = 2 R (Euler)
    assert _one(tiny_space, tiny_batch, "synflow") == pytest.approx(math.log(2 * r), rel=1e-10)


def _hand_gradients(space, batch):
    w1, w2 = _weights(space)
    x = batch[0].reshape(len(batch[0]), -1).double().numpy()
    y = np.eye(2)[batch[1].numpy()]
    z1 = x @ w1.T
    a = np.maximum(z1, 0)
    z2 = a @ w2.T
    p = np.exp(z2 - z2.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz2 = (p - y) / len(x)  # mean cross-entropy
    dz1 = (dz2 @ w2) * (z1 > 0)
    return w1, w2, x, z1, z2, dz1, dz2


def test_snip_grad_norm_fisher_by_hand(tiny_space, tiny_batch):
    w1, w2, x, z1, z2, dz1, dz2 = _hand_gradients(tiny_space, tiny_batch)
    a = np.maximum(z1, 0)
    dw1, dw2 = dz1.T @ x, dz2.T @ a
    snip = np.abs(w1 * dw1).sum() + np.abs(w2 * dw2).sum()
    grad_norm = np.linalg.norm(dw1) + np.linalg.norm(dw2)
    fisher = 0.5 * ((z1 * dz1) ** 2).mean(0).sum() + 0.5 * ((z2 * dz2) ** 2).mean(0).sum()
    row = score_proxies(tiny_space, ["mlp"], "snip,grad_norm,fisher", tiny_batch)[0]
    assert row["snip"] == pytest.approx(snip, rel=1e-5)
    assert row["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)
    assert row["fisher"] == pytest.approx(fisher, rel=1e-5)


def test_jacov_by_hand(tiny_space, tiny_batch):
    w1, w2, x, z1, *_ = _hand_gradients(tiny_space, tiny_batch)
    jac = ((z1 > 0) * (np.ones(2) @ w2)) @ w1  # d(sum f(x_n))/dx_n, one row per example
    eig = np.linalg.eigvalsh(np.corrcoef(jac))
    expected = -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5))
    assert _one(tiny_space, tiny_batch, "jacov") == pytest.approx(expected, rel=1e-6)


def test_naswot_by_hand(tiny_space, tiny_batch):
    w1, _, x, z1, *_ = _hand_gradients(tiny_space, tiny_batch)
    c = (z1 > 0).astype(float)
    kernel = np.array([[np.sum(ci == cj) for cj in c] for ci in c], dtype=float)  # units where they agree
    sign, logdet = np.linalg.slogdet(kernel)
    expected = logdet if sign != 0 else -math.inf
    assert _one(tiny_space, tiny_batch, "naswot") == pytest.approx(expected, rel=1e-9)


def test_naswot_kernel_helpers():
    codes = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    expected = torch.tensor([[3, 1, 2], [1, 3, 0], [2, 0, 3]], dtype=torch.float64)  # 3 - Hamming distance
    assert torch.equal(proxies.pattern_kernel(codes), expected)
    assert proxies.naswot_score(codes) == pytest.approx(math.log(abs(np.linalg.det(expected.numpy()))))
    assert proxies.naswot_score(torch.tensor([[1, 0], [1, 0]], dtype=torch.bool)) == -math.inf  # singular


def test_params_and_flops(tiny_space, tiny_batch):
    row = score_proxies(tiny_space, ["mlp"], "params,flops", tiny_batch)[0]
    assert row == {"arch": "mlp", "params": 12.0, "flops": 12.0}  # 2x3 + 3x2 weights, one MAC each
    from nsas.correlate import live_parameters

    nb = get_space("nb201")
    cell = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert score_proxies(nb, [cell], "count", None)[0]["params"] == live_parameters([cell], "nb201")[0]


def test_batch_order_invariance_and_determinism(nb201_batch):
    nb = get_space("nb201")
    cell = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
    names = ["snip", "grad_norm", "fisher", "jacov", "naswot"]
    first = score_proxies(nb, [cell], names + ["synflow"], nb201_batch, options=NB201_TINY)
    again = score_proxies(nb, [cell], names + ["synflow"], nb201_batch, options=NB201_TINY)
    assert first == again  # exactly the same numbers
    perm = torch.randperm(len(nb201_batch[0]), generator=torch.Generator().manual_seed(1))
    shuffled = score_proxies(nb, [cell], names, (nb201_batch[0][perm], nb201_batch[1][perm]), options=NB201_TINY)
    for n in names:  # BatchNorm statistics, mean loss, log-det and eigenvalues ignore the order
        assert shuffled[0][n] == pytest.approx(first[0][n], rel=1e-4), n
    assert set(first.seconds) >= set(names) and first.functions == 1


def test_order_of_proxies_does_not_change_values(nb201_batch):
    nb = get_space("nb201")
    cell = "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    a = score_proxies(nb, [cell], ["naswot", "jacov", "flops"], nb201_batch, options=NB201_TINY)[0]
    b = score_proxies(nb, [cell], ["flops", "jacov", "naswot"], nb201_batch, options=NB201_TINY)[0]
    assert a == b


def test_isomorphic_cells_are_computed_once(nb201_batch):
    calls = []

    @register_proxy("counting")
    def counting(ctx):
        calls.append(str(ctx.arch))
        return float(len(calls))

    try:
        nb = get_space("nb201")
        # the conv on edge 2<-1 leaves a node that never reaches the output (edges into 3 from 2 are none)
        a = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|none~2|"
        b = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|none~2|"
        c = "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"
        rows = score_proxies(nb, [a, b, c, a], ["counting", "naswot"], nb201_batch, options=NB201_TINY)
        assert len(calls) == 2 and rows.functions == 2
        assert rows[0]["counting"] == rows[1]["counting"] == rows[3]["counting"] != rows[2]["counting"]
        assert rows[0]["naswot"] == rows[1]["naswot"]
        assert [r["arch"] for r in rows] == [str(nb.parse(t)) for t in (a, b, c, a)]
    finally:
        proxies._REGISTRY.remove("counting")


def test_names_and_errors(nb201_batch):
    assert proxy_names()[:8] == list(proxies.BUILTIN)
    assert parse_proxies("all") == proxy_names()
    assert parse_proxies("count,jacov,count") == ["params", "jacov"]
    with pytest.raises(ProxyError, match="unknown proxy 'nope'"):
        parse_proxies("jacov,nope")
    with pytest.raises(ProxyError, match="no proxy"):
        parse_proxies(",")
    rnn = get_space("darts-rnn")
    with pytest.raises(ProxyError, match="text space"):
        score_proxies(rnn, [], "jacov", None)
    with pytest.raises(ProxyError, match="need a batch"):
        score_proxies(get_space("nb201"), [], "jacov", None)


def test_darts_network(nb201_batch):
    import random

    darts = get_space("darts")
    rows = score_proxies(darts, [darts.sample(random.Random(0))], "synflow,naswot,grad_norm", nb201_batch,
                         options={"channels": 4, "cells": 2})
    assert all(math.isfinite(rows[0][n]) for n in ("synflow", "naswot", "grad_norm"))


def test_a_cell_whose_output_ignores_the_input_gets_the_worst_jacov(nb201_batch):
    """Every edge into the output node is `none`, so the logits are constant in the image: jacov used to
    fail inside autograd ('not used in the graph'); such a cell now scores -inf, below any live one."""
    space = get_space("nb201")
    dead = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"
    live = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    rows = score_proxies(space, [dead, live], "jacov", nb201_batch, options={"channels": 4, "cells": 1})
    assert rows[0]["jacov"] == -math.inf
    assert math.isfinite(rows[1]["jacov"]) and rows[1]["jacov"] > rows[0]["jacov"]
