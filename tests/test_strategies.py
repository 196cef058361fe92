"""RandomNAS and GDAS: hard Gumbel-max samples, straight-through gradients, annealing."""

from __future__ import annotations

import collections

import pytest
import torch

from nsas.spaces import get_space, space_names
from nsas.strategies import GDASStrategy, RandomStrategy, build_strategy
from tiny import tiny_batch, tiny_supernet


def test_gumbel_max_samples_follow_softmax_of_alpha():
    strategy = GDASStrategy(get_space("nb201"), seed=0)
    with torch.no_grad():
        strategy.alphas[0].copy_(torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]] * 6))
    counts = torch.zeros(6, 5)
    n = 3000
    for _ in range(n):
        choices, _, _ = strategy.gumbel()
        counts[torch.arange(6), choices[0]] += 1
    expected = torch.softmax(strategy.alphas[0].detach(), -1)
    torch.testing.assert_close(counts / n, expected, atol=0.03, rtol=0)


@pytest.mark.parametrize("space_name", space_names())
def test_forward_weights_are_one_hot_with_straight_through_gradient(space_name):
    space = get_space(space_name)
    strategy = GDASStrategy(space, seed=1, tau_max=2.0)
    choices, probs, weights = strategy.gumbel()
    for alpha, choice, prob, w in zip(strategy.alphas, choices, probs, weights):
        assert choice.shape == (alpha.shape[0],)
        assert torch.equal(choice, prob.argmax(-1))
        hard = torch.zeros_like(prob).scatter(1, choice[:, None], 1.0) * w.detach()[:, None]
        torch.testing.assert_close(hard, torch.zeros_like(prob).scatter(1, choice[:, None], 1.0))  # one-hot
    # The multiplier's gradient is the Gumbel-softmax weight's gradient (straight through).
    alpha = strategy.alphas[0]
    (g_w,) = torch.autograd.grad(weights[0].sum(), alpha, retain_graph=True)
    assert g_w.abs().sum() > 0


@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_straight_through_gradient_equals_the_analytic_softmax_gradient(tau):
    # By hand: h = softmax((log_softmax(alpha) + g) / tau), k = argmax h. Then
    # dh_k/dz_i = h_k (1[i = k] - h_i) / tau for z = log_softmax(alpha) + g, and
    # dz_i/dalpha_j = 1[i = j] - p_j with p = softmax(alpha); the p_j term vanishes
    # because sum_i h_k (1[i = k] - h_i) = 0. So d(multiplier_r)/dalpha_r = h_k (e_k - h) / tau.
    strategy = GDASStrategy(get_space("nb201"), seed=3, tau_max=tau)
    with torch.no_grad():
        strategy.alphas[0].copy_(torch.randn(strategy.alphas[0].shape, generator=torch.Generator().manual_seed(0)))
    choices, probs, weights = strategy.gumbel()
    (grad,) = torch.autograd.grad(weights[0].sum(), strategy.alphas[0])
    h, k = probs[0], choices[0]
    one_hot = torch.zeros_like(h).scatter(1, k[:, None], 1.0)
    expected = h.gather(1, k[:, None]) * (one_hot - h) / tau
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(weights[0].detach(), torch.ones(len(k)))  # forward value exactly 1


@pytest.mark.parametrize("space_name", space_names())
def test_arch_step_trains_alpha_only(space_name):
    space = get_space(space_name)
    model = tiny_supernet(space_name)
    strategy = GDASStrategy(space, seed=0, lr=0.1)
    before_alpha = [a.detach().clone() for a in strategy.alphas]
    before_w = {n: p.detach().clone() for n, p in model.named_parameters()}
    record = strategy.arch_step(model, tiny_batch(space_name))
    assert "arch_loss" in record
    assert any(not torch.equal(a, b) for a, b in zip(strategy.alphas, before_alpha))
    assert any(a.grad is not None and a.grad.abs().sum() > 0 for a in strategy.alphas)
    for n, p in model.named_parameters():
        assert torch.equal(p, before_w[n]) and p.grad is None and p.requires_grad


def test_temperature_anneals_linearly_from_10_to_0_1():
    strategy = GDASStrategy(get_space("nb201"))
    taus = []
    for epoch in range(5):
        strategy.set_progress(epoch, 5)
        taus.append(strategy.tau)
    assert taus == pytest.approx([10.0, 7.525, 5.05, 2.575, 0.1])


@pytest.mark.parametrize("space_name", space_names())
def test_sample_gives_a_valid_discrete_architecture(space_name):
    space = get_space(space_name)
    strategy = GDASStrategy(space, seed=2)
    for _ in range(5):
        sample = strategy.sample()
        assert space.parse(str(sample.arch)) == sample.arch
    assert space.parse(str(strategy.final())) == strategy.final()


def test_random_strategy_is_seeded_and_resumable():
    space = get_space("darts")
    a, b = RandomStrategy(space, seed=7), RandomStrategy(space, seed=7)
    assert [a.sample().arch for _ in range(3)] == [b.sample().arch for _ in range(3)]
    c = RandomStrategy(space, seed=0)
    c.load_state_dict(a.state_dict())
    assert a.sample().arch == c.sample().arch


def test_gdas_state_round_trip():
    space = get_space("nb201")
    a = build_strategy("gdas", space, seed=4)
    a.arch_step(tiny_supernet("nb201"), tiny_batch("nb201"))
    b = build_strategy("gdas", space, seed=9)
    b.load_state_dict(a.state_dict())
    assert a.sample().arch == b.sample().arch
    assert all(torch.equal(x, y) for x, y in zip(a.alphas, b.alphas))


def test_function_sampling_draws_every_supernet_function_equally_often():
    from nsas.spaces.nb201 import function_key

    space = get_space("nb201")
    functions = space.functions()
    keys = [function_key(a) for a in functions]
    assert len(functions) == len(set(keys)) == 7548  # one representative per function
    assert {function_key(a) for a in space.enumerate()} == set(keys)
    strategy = RandomStrategy(space, seed=3, sampling="functions")
    n = 40000
    drawn = collections.Counter(function_key(strategy.sample().arch) for _ in range(n))
    # each of the 7,548 functions ~ Poisson(5.3): all but a few drawn, none more than ~20 times; uniform
    # sampling of strings would draw 'pool(x)' (460 strings) ~1,180 times and the zero function (341) ~870
    assert len(drawn) > 7400 and max(drawn.values()) < 25
    uniform = RandomStrategy(space, seed=3)
    assert sum(function_key(uniform.sample().arch) == "pool(x)" for _ in range(4000)) > 70
    copy = RandomStrategy(space, seed=0, sampling="functions")
    copy.load_state_dict(strategy.state_dict())
    assert [copy.sample().arch for _ in range(5)] == [strategy.sample().arch for _ in range(5)]


def test_function_sampling_needs_a_space_that_lists_its_functions():
    from nsas.errors import ArchitectureError, NsasError
    from nsas.search import SearchConfig

    with pytest.raises(ArchitectureError, match="cannot list its distinct supernet functions"):
        RandomStrategy(get_space("darts"), sampling="functions")
    with pytest.raises(NsasError, match="unknown sampling"):
        RandomStrategy(get_space("nb201"), sampling="novel")
    with pytest.raises(NsasError, match="option of the random strategy"):
        SearchConfig(strategy="gdas", sampling="functions")


def test_arch_step_on_a_sample_that_does_not_reach_the_output_takes_a_zero_gradient_step():
    # a cell whose chosen ops are all `none` outputs zeros whatever alpha is: nothing to back-propagate
    # (this raised "element 0 of tensors does not require grad" in a benchmark run)
    space = get_space("nb201")
    strategy = GDASStrategy(space, seed=0, weight_decay=0.0)
    with torch.no_grad():
        strategy.alphas[0][:, 0] = 100.0  # `none` wins every Gumbel-max draw
    before = strategy.alphas[0].detach().clone()
    supernet = tiny_supernet("nb201")
    out = strategy.arch_step(supernet, tiny_batch("nb201"))
    assert torch.isfinite(torch.tensor(out["arch_loss"]))
    assert torch.equal(strategy.alphas[0].grad, torch.zeros_like(before))
    torch.testing.assert_close(strategy.alphas[0].detach(), before)  # Adam on a zero gradient, no decay: no move
    assert all(p.requires_grad for p in supernet.parameters())  # the weights are trainable again
