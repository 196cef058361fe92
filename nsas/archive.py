"""The NSAS constraint archive: greedy novelty search (docs/METHOD.md §4, Algorithm 1).

The archive keeps at most ``capacity`` (M) past architectures chosen to be
maximally diverse; the recent pool keeps the last ``pool_size`` (|C|) sampled
architectures. Each supernet step calls :meth:`NoveltyArchive.update` with the
step's architecture *before* the loss is computed, so the loss regularises
with the updated archive.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from nsas.checkpoint import as_tuple
from nsas.errors import CheckpointError
from nsas.spaces.base import Architecture, SearchSpace


class NoveltyArchive:
    """Archive A and recent pool C of Algorithm 1.

    Args:
        space: the search space (gives distance and novelty).
        capacity: M, the most architectures the archive holds.
        pool_size: |C|, the recent architectures kept first in, first out.
        candidates: n, candidates drawn from C per update (None: all of C).
        k: nearest neighbours in the novelty score.
        policy: ``"novelty"`` (Algorithm 1), ``"random"`` (ablation: a random
            member is replaced by a random recent architecture) or
            ``"forgetting"`` (variant: :meth:`update` only fills the pool and
            the empty slots; the objective chooses the members with
            :meth:`rebuild`, by how much their loss rose).
        seed: seed of the archive's own random stream.
        max_age: archive aging, a variant (0: off, Algorithm 1 as published).
            Algorithm 1 only replaces a member by a strictly more novel
            candidate, so once the archive is spread out it stops changing
            (after ~35-65 steps on nb201) and the same M architectures
            regularise the rest of the search. With ``max_age = T``, a member
            that has been in the archive for T updates is replaced by the
            recent architecture most novel with respect to the other members,
            whether or not it beats the old member: every member is renewed
            about every T steps and the archive follows the training.
    """

    def __init__(self, space: SearchSpace, *, capacity: int = 8, pool_size: int = 50,
                 candidates: int | None = None, k: int = 10, policy: str = "novelty",
                 seed: int = 0, max_age: int = 0) -> None:
        if capacity < 1 or pool_size < 1 or k < 1 or (candidates is not None and candidates < 1):
            raise ValueError("archive capacity, pool size, k and candidates must be positive")
        if max_age < 0:
            raise ValueError("archive max_age must not be negative")
        if policy not in ("novelty", "random", "forgetting"):
            raise ValueError(f"unknown archive policy {policy!r}")
        self.space = space
        self.capacity, self.k, self.candidates, self.policy = capacity, k, candidates, policy
        self.max_age = max_age
        self.members: list[Architecture] = []
        self.born: list[int] = []  # update count at which each member entered (for max_age)
        self.updates = 0
        self.pool: deque[Architecture] = deque(maxlen=pool_size)
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.members)

    def update(self, arch: Architecture) -> None:
        """Append ``arch`` to the recent pool, then update the archive (Algorithm 1)."""
        self.pool.append(arch)
        self.updates += 1
        if len(self.members) < self.capacity:
            if arch not in self.members or self.policy != "forgetting":
                self._put(len(self.members), arch)
            return
        if self.policy == "forgetting":
            return
        if self.policy == "random":
            self._put(self.rng.randrange(self.capacity), self.rng.choice(list(self.pool)))
            return
        oldest = min(range(self.capacity), key=self.born.__getitem__)
        aged = self.max_age and self.updates - self.born[oldest] >= self.max_age
        # a_m: the member most similar to the current architecture (first on ties), or the aged one.
        dists = [self.space.distance(arch, m) for m in self.members]
        replaced = oldest if aged else dists.index(min(dists))
        rest = self.members[:replaced] + self.members[replaced + 1:]
        holder = old = self.members[replaced]
        best = -1.0 if aged else self.space.novelty(holder, rest, self.k)  # aged: the old member must go
        n = len(self.pool) if self.candidates is None else min(self.candidates, len(self.pool))
        for cand in self.rng.sample(list(self.pool), n):
            if cand in rest or (aged and cand == old):  # a duplicate constraint adds nothing
                continue
            novelty = self.space.novelty(cand, rest, self.k)
            if novelty > best:
                holder, best = cand, novelty
        if aged or holder != old:
            self._put(replaced, holder)

    def rebuild(self, ranked: Sequence[Architecture]) -> None:
        """Make the first ``capacity`` distinct architectures of ``ranked`` the members.

        A member that stays keeps its slot's age; a new one is born now.
        """
        chosen: list[Architecture] = []
        for arch in ranked:
            if arch not in chosen:
                chosen.append(arch)
            if len(chosen) == self.capacity:
                break
        born = {a: b for a, b in zip(self.members, self.born)}
        self.members = chosen
        self.born = [born.get(a, self.updates) for a in chosen]

    def _put(self, index: int, arch: Architecture) -> None:
        """Place ``arch`` at member slot ``index`` (appending when it is the next free slot)."""
        if index == len(self.members):
            self.members.append(arch)
            self.born.append(self.updates)
        else:
            self.members[index], self.born[index] = arch, self.updates

    def diversity(self) -> float:
        """Mean pairwise distance of the archive members (0 with fewer than 2)."""
        return mean_pairwise_distance(self.space, self.members)

    def state_dict(self) -> dict[str, Any]:
        """Canonical strings and RNG state: safe to store in a tensor-only checkpoint."""
        return {
            "members": [str(a) for a in self.members],
            "pool": [str(a) for a in self.pool],
            "rng": self.rng.getstate(),
            "born": list(self.born),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        try:
            self.members = [self.space.parse(s) for s in state["members"]]
            self.pool.clear()
            self.pool.extend(self.space.parse(s) for s in state["pool"])
            self.rng.setstate(as_tuple(state["rng"]))
            # checkpoints written before aging existed: every member as old as the run
            self.updates = int(state.get("updates", 0))
            self.born = [int(b) for b in state.get("born", [0] * len(self.members))]
            if len(self.born) != len(self.members):
                raise ValueError("archive ages do not match its members")
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"archive state in checkpoint is malformed: {err}") from None


def mean_pairwise_distance(space: SearchSpace, archs: Sequence[Architecture]) -> float:
    """Mean distance over all unordered pairs of ``archs``."""
    pairs = [(a, b) for i, a in enumerate(archs) for b in archs[i + 1:]]
    if not pairs:
        return 0.0
    return sum(space.distance(a, b) for a, b in pairs) / len(pairs)

