"""What every search space provides.

A search space is one object (registered by name in :mod:`nsas.spaces`) that
knows its architectures (parse, format, JSON, sampling, enumeration, size),
their distance (docs/METHOD.md §5), the stand-alone network of one architecture,
the weight-sharing supernet, and how GDAS samples it.

Architectures are immutable, hashable values; ``str(arch)`` is the canonical
string and ``space.parse(str(arch)) == arch``.

Supernet contract (all spaces)::

    logits = supernet(x, path, edge_weights=None)

``path`` is an architecture of the space, or (GDAS) the value returned as
``forward_path`` by :meth:`SearchSpace.gdas_decode`. Only the ops named by the
path are computed. ``edge_weights`` (GDAS only) is a list of 1-D tensors, one
per alpha matrix, one entry per row: the chosen op of row ``r`` of matrix
``m`` has its output multiplied by ``edge_weights[m][r]`` (value 1 in the
forward pass, straight-through gradient to alpha in the backward pass).
Image spaces take ``x`` of shape (B, 3, H, W) and return (B, classes);
the RNN space takes tokens (T, B) and returns (T, B, vocab).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from nsas.errors import ArchitectureError, NsasError


class Architecture(ABC):
    """An immutable architecture value. Subclasses are frozen dataclasses."""

    space: ClassVar[str]

    @abstractmethod
    def to_str(self) -> str:
        """Canonical string form."""

    @abstractmethod
    def to_json(self) -> Any:
        """A JSON-serialisable value; ``space.from_json`` inverts it."""

    def __str__(self) -> str:
        return self.to_str()


class SearchSpace(ABC):
    """A registered search space. See the module docstring for the contract."""

    name: ClassVar[str]
    ops: ClassVar[tuple[str, ...]]
    kind: ClassVar[str]  # "image" (inputs (B, 3, H, W)) or "text" (tokens (T, B))

    # ---- architectures -------------------------------------------------
    @abstractmethod
    def parse(self, text: str) -> Architecture:
        """Parse any accepted string form; raise ArchitectureError if malformed."""

    @abstractmethod
    def from_json(self, obj: Any) -> Architecture:
        """Inverse of ``Architecture.to_json``; raise ArchitectureError if malformed."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Architecture:
        """A uniformly random valid architecture drawn from ``rng``."""

    @abstractmethod
    def size(self) -> int:
        """Number of architectures that :meth:`sample` can return."""

    def enumerate(self) -> Iterator[Architecture]:
        """Every architecture of the space (only where the space is small)."""
        raise ArchitectureError(
            f"space {self.name!r} has {self.size():,} architectures: too many to enumerate"
        )

    def coerce(self, arch: Architecture | str) -> Architecture:
        """Accept an architecture or any of its string forms."""
        if isinstance(arch, str):
            return self.parse(arch)
        if getattr(arch, "space", None) != self.name:
            raise ArchitectureError(f"{arch!r} is not an architecture of space {self.name!r}")
        return arch

    def functions(self) -> list[Architecture]:
        """One representative architecture per distinct supernet function (see :meth:`same_function`).

        Spaces that cannot list them raise :class:`ArchitectureError` (the
        ``functions`` sampling of the random strategy needs this list).
        """
        raise ArchitectureError(f"space {self.name!r} cannot list its distinct supernet functions")

    def same_function(self, arch: Architecture) -> Architecture:
        """The architecture scored in place of ``arch``: one that computes the same supernet function.

        Architectures with the same answer get the same inherited-weight
        score, so a scorer runs only one of them. The default is ``arch``
        itself (no two architectures known to be equal).
        """
        return arch

    def split_options(self, edge: int) -> tuple[str, ...]:
        """Few-shot splitting: the operations on split point ``edge`` (one sub-supernet each).

        A space that cannot be split raises :class:`NsasError` (the default).
        """
        raise NsasError(f"space {self.name!r} cannot be split into few-shot sub-supernets "
                        "(few_shot_edge needs a space with split points: nb201, or a choice space)")

    def split_of(self, arch: Architecture, edge: int) -> int:
        """Few-shot splitting: the index in :meth:`split_options` of ``arch``'s operation on ``edge``."""
        raise NsasError(f"space {self.name!r} cannot be split into few-shot sub-supernets")

    def live_arch(self, arch: Architecture) -> Architecture:
        """``arch`` with every operation that cannot change the network's output removed.

        The stand-alone network of the result computes the same function with
        fewer (or as many) parameters. The default is ``arch`` itself (every
        operation reaches the output, as in DARTS cells, which concatenate
        all their nodes).
        """
        return arch

    def parameter_count(self, arch: Architecture) -> int:
        """Parameters of ``arch``'s stand-alone network at the default size (``nsas inspect ARCH``)."""
        from nsas.spaces.counting import count_parameters

        with torch.device("meta"):  # shapes only: no memory, no initialisation
            return count_parameters(self.build_network(self.coerce(arch)))

    # ---- distance and novelty (docs/METHOD.md §5) ---------------------
    @abstractmethod
    def distance(self, a: Architecture, b: Architecture) -> float:
        """Distance in [0, 1]; 0 for identical architectures."""

    def novelty(self, a: Architecture, others: Sequence[Architecture], k: int) -> float:
        """Mean distance from ``a`` to its ``k`` nearest neighbours in ``others``."""
        if not others:
            return 0.0
        dists = sorted(self.distance(a, o) for o in others)
        nearest = dists[: max(1, k)]
        return sum(nearest) / len(nearest)

    # ---- networks ------------------------------------------------------
    @abstractmethod
    def build_network(self, arch: Architecture, **options: Any) -> nn.Module:
        """The stand-alone network of ``arch`` (space-specific keyword options)."""

    @abstractmethod
    def build_supernet(self, **options: Any) -> nn.Module:
        """The weight-sharing supernet (space-specific keyword options)."""

    # ---- GDAS (docs/METHOD.md §7) -------------------------------------
    @abstractmethod
    def gdas_alpha_shapes(self) -> list[tuple[int, int]]:
        """Shapes of the architecture logit matrices; each row is one categorical choice."""

    @abstractmethod
    def gdas_decode(
        self, choices: Sequence[torch.Tensor], probs: Sequence[torch.Tensor]
    ) -> tuple[Any, Architecture]:
        """Turn one Gumbel sample into ``(forward_path, derived_architecture)``.

        Args:
            choices: per alpha matrix, a LongTensor with the chosen column of each row.
            probs: per alpha matrix, the detached soft (Gumbel-softmax) weights.

        Returns:
            The path the supernet computes for this sample, and the discrete
            architecture of the space derived from it (what enters the archive).
        """

    @abstractmethod
    def gdas_final(self, alphas: Sequence[torch.Tensor]) -> Architecture:
        """The final architecture: the argmax of the architecture logits."""
