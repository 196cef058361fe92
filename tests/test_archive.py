"""Algorithm 1 (greedy novelty search) on hand-made sequences and random ones."""

from __future__ import annotations

import random

import pytest

from nsas.archive import NoveltyArchive, mean_pairwise_distance
from nsas.spaces import get_space

SPACE = get_space("nb201")


def arch(*ops: str):
    names = {"c3": "nor_conv_3x3", "c1": "nor_conv_1x1", "p": "avg_pool_3x3", "s": "skip_connect", "n": "none"}
    o = [names[x] for x in ops]
    return SPACE.parse(f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|")


A = arch("c3", "c3", "c3", "c3", "c3", "c3")
B = arch("c1", "c1", "c1", "c1", "c1", "c1")
C = arch("p", "p", "p", "p", "p", "p")
D = arch("c3", "c3", "c3", "c3", "c3", "c1")  # 1/6 from A
E = arch("s", "s", "s", "s", "s", "s")
F = arch("c1", "c1", "c1", "c1", "c1", "c3")  # 1/6 from B


def test_fills_with_every_architecture_until_full():
    archive = NoveltyArchive(SPACE, capacity=3, pool_size=10, k=10)
    for a in (A, D, B):
        archive.update(a)
    assert archive.members == [A, D, B]
    assert list(archive.pool) == [A, D, B]


def test_most_similar_member_is_replaced_by_the_most_novel_candidate():
    archive = NoveltyArchive(SPACE, capacity=2, pool_size=10, k=1)
    archive.update(A)
    archive.update(D)  # archive [A, D]: diversity 1/6
    archive.update(E)  # E is 1 from both: a_m = A (first on ties); rest {D}
    # Candidates from the pool {A, D, E}: novelty w.r.t. {D}: A 1/6, E 1 -> E replaces A.
    assert archive.members == [E, D]
    assert archive.diversity() == pytest.approx(1.0)


def test_members_other_than_the_most_similar_are_kept():
    archive = NoveltyArchive(SPACE, capacity=3, pool_size=10, k=10)
    for a in (A, B, C):
        archive.update(a)
    archive.update(F)  # closest to B (1/6): only B's slot may change
    assert archive.members[0] == A and archive.members[2] == C
    # B's novelty w.r.t. {A, C} is 1 and no candidate beats it (ties keep the holder).
    assert archive.members[1] == B


def test_holder_novelty_never_decreases_and_diversity_grows():
    rng = random.Random(0)
    archive = NoveltyArchive(SPACE, capacity=6, pool_size=20, k=3, seed=1)
    stream = [SPACE.sample(rng) for _ in range(150)]
    for a in stream[:6]:
        archive.update(a)
    first_diversity = archive.diversity()
    for a in stream[6:]:
        before = list(archive.members)
        dists = [SPACE.distance(a, m) for m in before]
        replaced = dists.index(min(dists))
        rest = before[:replaced] + before[replaced + 1:]
        old = SPACE.novelty(before[replaced], rest, 3)
        archive.update(a)
        after = archive.members
        assert after[:replaced] + after[replaced + 1:] == rest  # only a_m's slot changes
        assert SPACE.novelty(after[replaced], rest, 3) >= old
    assert archive.diversity() >= first_diversity
    # A random stream of the same length is less diverse than the archive.
    assert archive.diversity() > mean_pairwise_distance(SPACE, stream[-6:]) - 1e-9


def test_random_policy_ignores_novelty_but_keeps_capacity():
    archive = NoveltyArchive(SPACE, capacity=4, pool_size=10, policy="random", seed=3)
    rng = random.Random(1)
    changed = 0
    for _ in range(40):
        before = list(archive.members)
        archive.update(SPACE.sample(rng))
        assert len(archive) <= 4
        new = [m for m, old in zip(archive.members, before) if m != old]
        assert len(new) <= 1 and all(m in archive.pool for m in new)  # one slot, from the pool
        changed += len(new)
    assert changed > 10  # replacements happen without any novelty test


def test_state_round_trip_continues_identically():
    rng = random.Random(2)
    stream = [SPACE.sample(rng) for _ in range(60)]
    one = NoveltyArchive(SPACE, capacity=5, pool_size=12, k=3, candidates=4, seed=9)
    for a in stream[:30]:
        one.update(a)
    two = NoveltyArchive(SPACE, capacity=5, pool_size=12, k=3, candidates=4, seed=0)
    two.load_state_dict(one.state_dict())
    for a in stream[30:]:
        one.update(a)
        two.update(a)
    assert one.members == two.members and list(one.pool) == list(two.pool)


def test_pool_is_first_in_first_out():
    archive = NoveltyArchive(SPACE, capacity=2, pool_size=3)
    for a in (A, B, C, D):
        archive.update(a)
    assert list(archive.pool) == [B, C, D]


def test_algorithm1_freezes_but_aging_keeps_renewing_members():
    rng = random.Random(5)
    stream = [SPACE.sample(rng) for _ in range(400)]
    plain = NoveltyArchive(SPACE, capacity=8, pool_size=50, k=10, seed=2)
    aged = NoveltyArchive(SPACE, capacity=8, pool_size=50, k=10, seed=2, max_age=20)
    late_plain, late_aged = set(), set()
    for step, a in enumerate(stream):
        plain.update(a)
        aged.update(a)
        if step >= 200:
            late_plain.update(plain.members)
            late_aged.update(aged.members)
            # the aging invariant: no member is older than max_age updates
            assert max(aged.updates - b for b in aged.born) < 20
    assert len(late_plain) == 8  # Algorithm 1 stopped changing the archive long before step 200
    assert len(late_aged) >= 8 * 200 // 20 // 2  # members keep being renewed
    assert len(set(aged.members)) == 8  # and stay distinct


def test_aging_replaces_the_oldest_member_with_the_most_novel_recent_one():
    archive = NoveltyArchive(SPACE, capacity=2, pool_size=3, k=1, max_age=2)
    archive.update(A)  # update 1: A born 1
    archive.update(B)  # update 2: B born 2
    archive.update(D)  # update 3: A is 2 updates old: the aged member goes even though A is more novel than D
    assert archive.members == [D, B] and archive.born == [3, 2]


def test_aging_state_round_trips():
    rng = random.Random(1)
    one = NoveltyArchive(SPACE, capacity=4, pool_size=10, k=3, max_age=5, seed=3)
    for _ in range(30):
        one.update(SPACE.sample(rng))
    two = NoveltyArchive(SPACE, capacity=4, pool_size=10, k=3, max_age=5, seed=3)
    two.load_state_dict(one.state_dict())
    for _ in range(30):
        a = SPACE.sample(rng)
        one.update(a)
        two.update(a)
        assert one.members == two.members and one.born == two.born


def test_forgetting_policy_only_fills_and_rebuild_keeps_the_ages_of_kept_members():
    archive = NoveltyArchive(SPACE, capacity=3, pool_size=5, k=1, policy="forgetting")
    for a in (A, A, B, C):  # a duplicate does not take a slot
        archive.update(a)
    assert archive.members == [A, B, C] and archive.born == [1, 3, 4]
    for a in (D, E, F):  # full: Algorithm 1 would replace A by more novel ones; this policy waits for rebuild
        archive.update(a)
    assert archive.members == [A, B, C] and list(archive.pool) == [B, C, D, E, F]
    archive.rebuild([E, C, E, D, A])  # the first three distinct ones
    assert archive.members == [E, C, D] and archive.born == [7, 4, 7]
