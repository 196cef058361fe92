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
        policy: ``"novelty"`` (Algorithm 1) or ``"random"`` (ablation: a random
            member is replaced by a random recent architecture).
        seed: seed of the archive's own random stream.
    """

    def __init__(self, space: SearchSpace, *, capacity: int = 8, pool_size: int = 50,
                 candidates: int | None = None, k: int = 10, policy: str = "novelty",
                 seed: int = 0) -> None:
        if capacity < 1 or pool_size < 1 or k < 1 or (candidates is not None and candidates < 1):
            raise ValueError("archive capacity, pool size, k and candidates must be positive")
        if policy not in ("novelty", "random"):
            raise ValueError(f"unknown archive policy {policy!r}")
        self.space = space
        self.capacity, self.k, self.candidates, self.policy = capacity, k, candidates, policy
        self.members: list[Architecture] = []
        self.pool: deque[Architecture] = deque(maxlen=pool_size)
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.members)

    def update(self, arch: Architecture) -> None:
        """Append ``arch`` to the recent pool, then update the archive (Algorithm 1)."""
        self.pool.append(arch)
        if len(self.members) < self.capacity:
            self.members.append(arch)
            return
        if self.policy == "random":
            self.members[self.rng.randrange(self.capacity)] = self.rng.choice(list(self.pool))
            return
        # a_m: the member most similar to the current architecture (first on ties).
        dists = [self.space.distance(arch, m) for m in self.members]
        replaced = dists.index(min(dists))
        rest = self.members[:replaced] + self.members[replaced + 1:]
        holder = self.members[replaced]
        best = self.space.novelty(holder, rest, self.k)
        n = len(self.pool) if self.candidates is None else min(self.candidates, len(self.pool))
        for cand in self.rng.sample(list(self.pool), n):
            if cand in rest:  # a duplicate constraint adds nothing
                continue
            novelty = self.space.novelty(cand, rest, self.k)
            if novelty > best:
                holder, best = cand, novelty
        self.members[replaced] = holder

    def diversity(self) -> float:
        """Mean pairwise distance of the archive members (0 with fewer than 2)."""
        return mean_pairwise_distance(self.space, self.members)

    def state_dict(self) -> dict[str, Any]:
        """Canonical strings and RNG state: safe to store in a tensor-only checkpoint."""
        return {
            "members": [str(a) for a in self.members],
            "pool": [str(a) for a in self.pool],
            "rng": self.rng.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        try:
            self.members = [self.space.parse(s) for s in state["members"]]
            self.pool.clear()
            self.pool.extend(self.space.parse(s) for s in state["pool"])
            self.rng.setstate(as_tuple(state["rng"]))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"archive state in checkpoint is malformed: {err}") from None


def mean_pairwise_distance(space: SearchSpace, archs: Sequence[Architecture]) -> float:
    """Mean distance over all unordered pairs of ``archs``."""
    pairs = [(a, b) for i, a in enumerate(archs) for b in archs[i + 1:]]
    if not pairs:
        return 0.0
    return sum(space.distance(a, b) for a, b in pairs) / len(pairs)

