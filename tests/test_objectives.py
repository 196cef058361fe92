"""The losses: gradients really flow through every constraint (docs/METHOD.md §3)."""

from __future__ import annotations

import random

import pytest
import torch

from nsas.objectives import LOSSES, NSASObjective, build_objective, path_loss
from nsas.spaces import get_space, space_names
from tiny import tiny_batch, tiny_supernet


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def separate_grad(model, path, batch) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    path_loss(model, path, batch).backward()
    return grads(model)


def add(total: dict, g: dict, scale: float) -> None:
    for n, v in g.items():
        total[n] = total.get(n, torch.zeros_like(v)) + scale * v


@pytest.mark.parametrize("space_name", space_names())
def test_nsas_gradient_is_sum_of_per_architecture_gradients(space_name):
    space = get_space(space_name)
    model = tiny_supernet(space_name).eval()  # eval: no dropout, so passes are repeatable
    batch = tiny_batch(space_name)
    rng = random.Random(4)
    beta = 0.7
    objective = build_objective("nsas", space, archive_size=3, beta=beta, seed=1)
    for _ in range(5):
        objective.observe(space.sample(rng))
    current = space.sample(rng)
    objective.observe(current)
    members = list(objective.archive.members)
    assert len(members) == 3

    model.zero_grad(set_to_none=True)
    stats = objective.backward(model, current, batch)
    got = grads(model)

    expected: dict[str, torch.Tensor] = {}
    add(expected, separate_grad(model, current, batch), 1.0)
    for m in members:
        add(expected, separate_grad(model, m, batch), beta / len(members))
    assert set(got) == set(expected)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-6)

    ce_only = separate_grad(model, current, batch)
    assert any(n not in ce_only or not torch.allclose(ce_only[n], got[n]) for n in got)
    assert stats.passes == 1 + len(members)
    assert stats.archive is not None and stats.total == pytest.approx(stats.current + beta * stats.archive)


def test_constraint_only_weights_receive_gradient():
    space = get_space("nb201")
    model = tiny_supernet("nb201")
    batch = tiny_batch("nb201")
    current = space.parse("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|")
    member = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    objective = build_objective("nsas", space, archive_size=1)
    objective.observe(member)  # fills the archive
    model.zero_grad(set_to_none=True)
    objective.backward(model, current, batch)
    with_archive = grads(model)
    model.zero_grad(set_to_none=True)
    build_objective("ce", space).backward(model, current, batch)
    without = grads(model)
    conv_only = set(with_archive) - set(without)
    assert conv_only, "the archive member's own conv weights got no gradient"
    assert all(with_archive[n].abs().sum() > 0 for n in conv_only)


def test_replay_uses_r_members_per_step():
    space = get_space("nb201")
    objective = build_objective("nsas-replay", space, archive_size=5, replay=2, seed=0)
    rng = random.Random(0)
    for _ in range(8):
        objective.observe(space.sample(rng))
    assert isinstance(objective, NSASObjective)
    picked = objective.constraints()
    assert len(picked) == 2 and all(p in objective.archive.members for p in picked)
    stats = objective.backward(tiny_supernet("nb201"), space.sample(rng), tiny_batch("nb201"))
    assert stats.passes == 3


def test_nsas_random_replaces_without_novelty():
    objective = build_objective("nsas-random", get_space("nb201"), archive_size=2)
    assert objective.archive.policy == "random"


def test_wpl_penalises_moving_shared_weights_by_fisher():
    space = get_space("nb201")
    model = tiny_supernet("nb201")
    batch = tiny_batch("nb201")
    a = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    wpl = build_objective("wpl", space, wpl_strength=10.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.zero_grad(set_to_none=True)
    wpl.backward(model, a, batch)
    opt.step()
    wpl.after_step(model)
    fisher = {n: f for n, (_, f) in wpl.anchor.items()}
    # Move the weights away from the anchor: the penalty gradient is strength * F * (w - w*).
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.zero_grad(set_to_none=True)
    stats = wpl.backward(model, a, batch)
    with_penalty = grads(model)
    ce = separate_grad(model, a, batch)
    for n, f in fisher.items():
        torch.testing.assert_close(with_penalty[n] - ce[n], 10.0 * f * 0.01, rtol=1e-3, atol=1e-7)
    assert stats.total > stats.current


def test_every_loss_is_registered():
    for name in LOSSES:
        assert build_objective(name, get_space("nb201")) is not None


def _filled(space, *, size: int = 3, seed: int = 4, **options):
    rng = random.Random(seed)
    objective = build_objective("nsas", space, archive_size=size, seed=1, **options)
    for _ in range(size + 2):
        objective.observe(space.sample(rng))
    current = space.sample(rng)
    objective.observe(current)
    return objective, current


def test_sliced_constraints_gradient_uses_one_slice_per_member():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    beta = 0.5
    objective, current = _filled(space, beta=beta, constraint_slices=True)
    members = list(objective.archive.members)
    model.zero_grad(set_to_none=True)
    stats = objective.backward(model, current, batch)
    got = grads(model)
    expected: dict[str, torch.Tensor] = {}
    add(expected, separate_grad(model, current, batch), 1.0)
    parts = [t.tensor_split(len(members)) for t in batch]
    for i, m in enumerate(members):  # member i sees only the i-th slice of the batch
        add(expected, separate_grad(model, m, (parts[0][i], parts[1][i])), beta / len(members))
    assert set(got) == set(expected)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-6)
    whole = build_objective("nsas", space, archive_size=3, beta=beta, seed=1)
    whole.archive.load_state_dict(objective.archive.state_dict())
    model.zero_grad(set_to_none=True)
    whole.backward(model, current, batch)
    assert any(not torch.allclose(got[n], p.grad) for n, p in model.named_parameters() if p.grad is not None)
    assert stats.passes == 2  # the slices together are one batch


def test_constraints_every_k_steps_leave_the_other_steps_plain_ce():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    objective, current = _filled(space, constraint_every=3)
    passes = []
    for step in range(6):
        model.zero_grad(set_to_none=True)
        stats = objective.backward(model, current, batch)
        passes.append(stats.passes)
        if step % 3:
            ce = separate_grad(model, current, batch)
            model.zero_grad(set_to_none=True)
            objective.steps -= 1  # the same step again, to read its gradient
            objective.backward(model, current, batch)
            for n, g in grads(model).items():
                torch.testing.assert_close(g, ce[n])
            assert stats.archive is None
    assert passes == [4, 1, 1, 4, 1, 1]
    assert objective.state_dict()["steps"] == 6


def test_normalized_loss_scales_the_gradient_by_one_over_one_plus_beta():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    beta = 0.7
    plain, current = _filled(space, beta=beta)
    scaled, _ = _filled(space, beta=beta, normalize_loss=True)
    assert plain.archive.members == scaled.archive.members
    model.zero_grad(set_to_none=True)
    plain_stats = plain.backward(model, current, batch)
    want = {n: g / (1 + beta) for n, g in grads(model).items()}
    model.zero_grad(set_to_none=True)
    stats = scaled.backward(model, current, batch)
    for n, g in grads(model).items():
        torch.testing.assert_close(g, want[n], rtol=1e-4, atol=1e-6)
    assert stats.total == pytest.approx(plain_stats.total / (1 + beta))
