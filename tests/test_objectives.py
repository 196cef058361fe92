"""The losses: gradients really flow through every constraint (docs/METHOD.md §3)."""

from __future__ import annotations

import random

import pytest
import torch

from nsas.errors import CheckpointError
from nsas.objectives import LOSSES, NSASObjective, build_objective, path_loss
from nsas.spaces import get_space, space_names
from nsas.study import passes_per_step as study_passes
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


CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
POOL = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def _wpl_steps(wpl, model, opt, archs, batch):
    """One optimizer step of ``wpl`` per architecture; returns each step's squared CE gradients."""
    squares = []
    for arch in archs:
        ce = separate_grad(model, arch, batch)
        squares.append({n: g.pow(2) for n, g in ce.items()})
        model.zero_grad(set_to_none=True)
        wpl.backward(model, arch, batch)
        opt.step()
        wpl.after_step(model)
    return squares


def test_wpl_anchor_and_fisher_stay_fixed_over_the_window_then_refresh():
    space = get_space("nb201")
    model, batch = tiny_supernet("nb201"), tiny_batch("nb201")
    a, b = space.parse(CONV), space.parse(POOL)
    wpl = build_objective("wpl", space, wpl_strength=1.0, wpl_window=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    squares = _wpl_steps(wpl, model, opt, [a, b], batch)
    assert wpl.anchor == {}  # the window is not over: no anchor, plain CE so far
    squares += _wpl_steps(wpl, model, opt, [a], batch)
    # The window ended: w* is the weights now, F the mean squared gradient over the steps using each weight.
    params = dict(model.named_parameters())
    raw = {}
    for n in wpl.anchor:
        per_step = [s[n] for s in squares if n in s]
        raw[n] = sum(per_step) / len(per_step)
        assert torch.equal(wpl.anchor[n][0], params[n].detach())
    assert set(raw) == set().union(*squares)
    scale = sum(r.sum() for r in raw.values()) / sum(r.numel() for r in raw.values())
    for n, (_, fisher) in wpl.anchor.items():
        torch.testing.assert_close(fisher, raw[n] / scale)
    mean = sum(f.sum() for _, f in wpl.anchor.values()) / sum(f.numel() for _, f in wpl.anchor.values())
    assert float(mean) == pytest.approx(1.0)
    anchor = {n: (w.clone(), f.clone()) for n, (w, f) in wpl.anchor.items()}
    _wpl_steps(wpl, model, opt, [b, a], batch)  # inside the next window: unchanged
    assert all(torch.equal(anchor[n][0], w) and torch.equal(anchor[n][1], f) for n, (w, f) in wpl.anchor.items())
    _wpl_steps(wpl, model, opt, [b], batch)  # its end: refreshed
    assert not torch.equal(anchor["stem.0.weight"][0], wpl.anchor["stem.0.weight"][0])


def test_wpl_penalty_gradient_is_its_closed_form():
    space = get_space("nb201")
    model, batch = tiny_supernet("nb201"), tiny_batch("nb201")
    a, b = space.parse(CONV), space.parse(POOL)
    wpl = build_objective("wpl", space, wpl_strength=10.0, wpl_window=1)
    _wpl_steps(wpl, model, torch.optim.SGD(model.parameters(), lr=0.1), [a], batch)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move the weights away from the anchor, differently for each weight
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    ce = separate_grad(model, b, batch)
    model.zero_grad(set_to_none=True)
    stats = wpl.backward(model, b, batch)
    with_penalty = grads(model)
    params = dict(model.named_parameters())
    shared = [n for n in ce if n in wpl.anchor]
    assert shared and len(shared) < len(wpl.anchor)  # b shares some of a's weights, not all
    for n in ce:
        expected = ce[n]
        if n in wpl.anchor:
            w_star, fisher = wpl.anchor[n]
            expected = ce[n] + 10.0 * fisher * (params[n].detach() - w_star)
        torch.testing.assert_close(with_penalty[n], expected, rtol=1e-4, atol=1e-7)
    assert stats.total > stats.current


def test_wpl_state_dict_round_trips_mid_window():
    space = get_space("nb201")
    model, batch = tiny_supernet("nb201"), tiny_batch("nb201")
    wpl = build_objective("wpl", space, wpl_window=2)
    _wpl_steps(wpl, model, torch.optim.SGD(model.parameters(), lr=0.1), [space.parse(CONV)] * 3, batch)
    copy = build_objective("wpl", space, wpl_window=2)
    copy.load_state_dict(wpl.state_dict())
    assert copy.steps == wpl.steps == 1 and copy.fisher_count == wpl.fisher_count
    assert all(torch.equal(copy.fisher_sum[n], t) for n, t in wpl.fisher_sum.items())
    assert all(torch.equal(copy.anchor[n][1], f) for n, (_, f) in wpl.anchor.items())


# passes a step with an archive of M = 2 full: the current path, plus every member (nsas, nsas-random)
# or r = 1 of them (nsas-replay); ce and wpl train the current path only
PASSES = {"ce": 1, "wpl": 1, "nsas": 3, "nsas-random": 3, "nsas-replay": 2}


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_registered_loss_builds_and_trains(name):
    space = get_space("nb201")
    objective = build_objective(name, space, archive_size=2)
    assert objective.name == name
    rng = random.Random(0)
    for _ in range(3):
        arch = space.sample(rng)
        objective.observe(arch)
    supernet = tiny_supernet("nb201")
    stats = objective.backward(supernet, arch, tiny_batch("nb201"))
    assert stats.passes == PASSES[name]
    assert torch.isfinite(torch.tensor(stats.total)) and stats.total >= stats.current > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in supernet.parameters())


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


def test_shared_batch_splits_one_batch_between_current_and_members():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    beta = 0.5
    objective, current = _filled(space, beta=beta, shared_batch=True)
    members = list(objective.archive.members)
    model.zero_grad(set_to_none=True)
    stats = objective.backward(model, current, batch)
    got = grads(model)
    parts = [t.tensor_split(len(members) + 1) for t in batch]
    expected: dict[str, torch.Tensor] = {}
    add(expected, separate_grad(model, current, (parts[0][0], parts[1][0])), 1.0)  # slice 0: the current one
    for i, m in enumerate(members):  # member i: slice i + 1
        add(expected, separate_grad(model, m, (parts[0][i + 1], parts[1][i + 1])), beta / len(members))
    assert set(got) == set(expected)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-6)
    assert stats.passes == 1  # the whole step is one batch
    assert study_passes("random:nsas", {"archive_size": 3, "shared_batch": True}) == 1


def test_shared_batch_without_constraints_trains_the_current_path_on_the_whole_batch():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    objective, current = _filled(space, shared_batch=True, constraint_every=2)
    objective.steps = 1  # a step without constraints
    model.zero_grad(set_to_none=True)
    stats = objective.backward(model, current, batch)
    ce = separate_grad(model, current, batch)
    for n, g in grads(model).items():
        torch.testing.assert_close(g, ce[n])
    assert stats.passes == 1 and stats.archive is None


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


def test_carried_state_passes_use_the_objectives_criterion():
    space = get_space("darts-rnn")
    model = tiny_supernet("darts-rnn").eval()
    batch = tiny_batch("darts-rnn")
    objective = build_objective("nsas", space, archive_size=2, seed=1,
                                criterion=lambda logits, y: 2.0 * torch.nn.functional.cross_entropy(logits, y))
    rng = random.Random(0)
    for _ in range(3):
        objective.observe(space.sample(rng))
    path = space.sample(rng)
    hidden = model.init_hidden(batch[0].size(1))
    losses = objective.backward(model, path, batch, chunks=1, hidden=hidden)
    with torch.no_grad():
        logits, _ = model(batch[0], path, hidden=hidden, return_hidden=True)
        plain = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[1].reshape(-1))
    assert losses.current == pytest.approx(2.0 * plain.item(), rel=1e-5)
    assert losses.hidden.shape == hidden.shape and not losses.hidden.requires_grad


def _forgetting(space, *, size=3, every=2, candidates=None, seed=4):
    rng = random.Random(seed)
    objective = build_objective("nsas", space, archive_size=size, seed=1, archive_forgetting=every,
                                candidates=candidates, beta=0.5)
    return objective, rng


def test_forgetting_variant_keeps_the_architectures_whose_loss_rose_most():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    objective, rng = _forgetting(space, size=3, every=6, candidates=2)
    for step in range(6):  # steps 0-5 fill the archive (3 members) and pool; step 6 refreshes
        objective.observe(space.sample(rng))
        model.zero_grad(set_to_none=True)
        objective.backward(model, objective.current, batch)
    assert len(objective.archive) == 3 and objective.steps == 6
    trained = dict(objective.trained)  # each recent architecture's loss on the step it was trained
    members = list(objective.archive.members)
    current = space.sample(rng)
    objective.observe(current)
    recent = [a for a in dict.fromkeys(objective.archive.pool) if a not in members and str(a) in trained]
    assert len(recent) == 3
    state = objective.archive.rng.getstate()
    chosen = random.Random()
    chosen.setstate(state)
    candidates = chosen.sample(recent, 2)
    with torch.no_grad():
        now = {a: path_loss(model, a, batch).item() for a in members + candidates}
    rise = {a: now[a] - trained.get(str(a), now[a]) for a in now}
    want = sorted(now, key=lambda a: -rise[a])[:3]
    model.zero_grad(set_to_none=True)
    stats = objective.backward(model, current, batch)
    assert objective.archive.members == want
    assert stats.passes == 5 + 1 + 3  # 5 forward evaluations, then the current one and 3 constraints
    # the step's gradient is that of CE(current) + beta * mean CE(new members): the evaluations add none
    got = grads(model)
    expected: dict[str, torch.Tensor] = {}
    add(expected, separate_grad(model, current, batch), 1.0)
    for m in want:
        add(expected, separate_grad(model, m, batch), 0.5 / 3)
    assert set(got) == set(expected)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-6)
    # the next refresh measures the kept members' rise from the losses just seen
    assert objective.seen == {str(a): pytest.approx(now[a]) for a in want}
    assert study_passes("random:nsas", {"archive_size": 3, "archive_forgetting": 6, "candidates": 2}) == 1 + 3 + 5 / 6


def test_forgetting_variant_rebuilds_only_every_k_steps_and_its_state_round_trips():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    objective, rng = _forgetting(space, size=2, every=3)
    twin, _ = _forgetting(space, size=2, every=3)
    passes = []
    for step in range(12):
        arch = space.sample(rng)
        if step == 6:
            twin.load_state_dict(objective.state_dict())
        for obj in (objective, twin) if step >= 6 else (objective,):
            obj.observe(arch)
            model.zero_grad(set_to_none=True)
            stats = obj.backward(model, arch, batch)
        passes.append(stats.passes)
        if step >= 6:
            assert twin.archive.members == objective.archive.members and twin.seen == objective.seen
    # steps 0-1 fill the archive; every 3rd step rebuilds it from its 2 members and 2 recent trained ones
    # (at step 3 only one recent architecture has been trained and is not a member)
    assert passes == [2, 3, 3, 6, 3, 3, 7, 3, 3, 7, 3, 3]
    bad = objective.state_dict()
    bad["trained"] = ["not", "a", "mapping"]
    with pytest.raises(CheckpointError):
        twin.load_state_dict(bad)


def test_forgetting_variant_needs_its_archive_policy():
    space = get_space("nb201")
    from nsas.archive import NoveltyArchive
    with pytest.raises(ValueError, match="forgetting"):
        NSASObjective(NoveltyArchive(space, capacity=2), forgetting=3)
    with pytest.raises(ValueError, match="forgetting"):
        NSASObjective(NoveltyArchive(space, capacity=2, policy="forgetting"))


def test_registered_loss_declares_its_passes_per_step():
    """A plug-in loss counts the passes it declares in equal-compute presets and studies, not one."""
    import nsas.objectives
    from nsas.search_config import passes_per_step

    @nsas.objectives.register_loss("test-three-pass", passes=lambda get: 1 + get("replay"))
    def _three(space, **_):
        return nsas.objectives.build_objective("ce", space)

    @nsas.objectives.register_loss("test-plain")
    def _plain(space, **_):
        return nsas.objectives.build_objective("ce", space)

    try:
        assert passes_per_step({"loss": "test-three-pass", "replay": 2}) == 3
        assert passes_per_step({"loss": "test-three-pass", "replay": 2, "strategy": "gdas"}) == 4
        assert passes_per_step({"loss": "test-plain"}) == 1
        assert passes_per_step({"loss": "nsas", "archive_size": 4}) == 5  # built-in losses unchanged
    finally:
        for name in ("test-three-pass", "test-plain"):
            nsas.objectives._REGISTRY.remove(name)
            nsas.objectives._PASSES.pop(name, None)


def test_constraint_cap_scales_a_dominant_constraint_down_to_cap_times_the_current_loss():
    space = get_space("nb201")
    model = tiny_supernet("nb201").eval()
    batch = tiny_batch("nb201")
    beta, cap = 0.5, 1.0
    objective, current = _filled(space, beta=beta, constraint_cap=cap)
    members = list(objective.archive.members)
    model.zero_grad(set_to_none=True)
    stats = objective.backward(model, current, batch)
    got = grads(model)
    with torch.no_grad():
        cur = path_loss(model, current, batch).item()
        losses = [path_loss(model, m, batch).item() for m in members]
    expected: dict[str, torch.Tensor] = {}
    add(expected, separate_grad(model, current, batch), 1.0)
    for m, loss in zip(members, losses):  # a member above cap x current counts as exactly that, gradient included
        add(expected, separate_grad(model, m, batch), beta / len(members) * min(1.0, cap * cur / loss))
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-6)
    assert stats.archive == pytest.approx(sum(min(v, cap * cur) for v in losses) / len(losses), rel=1e-5)
    # the cap only bites where a member's loss is above it: a cap low enough to bite differs from none
    low = min(losses) / cur / 2
    capped, _ = _filled(space, beta=beta, constraint_cap=low)
    free, _ = _filled(space, beta=beta)
    model.zero_grad(set_to_none=True)
    capped.backward(model, current, batch)
    g_capped = grads(model)
    model.zero_grad(set_to_none=True)
    free.backward(model, current, batch)
    g_free = grads(model)
    assert any(not torch.allclose(g_capped[n], g_free[n]) for n in g_free)
    want: dict[str, torch.Tensor] = {}  # below every member's loss, each member's gradient shrinks by low x cur / its
    add(want, separate_grad(model, current, batch), 1.0)
    for m, loss in zip(members, losses):
        add(want, separate_grad(model, m, batch), beta / len(members) * low * cur / loss)
    for n in want:
        torch.testing.assert_close(g_capped[n], want[n], rtol=1e-5, atol=1e-6)
