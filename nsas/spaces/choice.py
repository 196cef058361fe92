"""A search space from your own modules: a chain of choice points, each with candidate blocks.

    space = ChoiceSpace(
        [{"k3": lambda: Block(16, 3), "k5": lambda: Block(16, 5)},   # choice point 0
         {"k3": lambda: Block(16, 3), "skip": nn.Identity}],          # choice point 1
        stem=lambda: nn.Conv2d(3, 16, 3, padding=1),
        head=lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)),
    )
    register_space(space, name="my-chain")       # now --space my-chain / SearchConfig(space="my-chain")

An architecture picks one candidate per choice point; its canonical string
is the candidate names joined by ``|`` (``"k5|skip"``). The supernet holds
one instance of every candidate at every point (one set of weights per
(choice point, candidate)) and, for a path, runs only the chosen ones:
``stem -> chosen[0] -> chosen[1] -> ... -> head``. Candidates are given as
factories (no-argument callables returning a module, such as a class or a
lambda) because each network built (supernet, stand-alone networks) needs
its own fresh weights. The default distance is the normalised Hamming
distance (the share of choice points that differ); pass ``distance=`` to
use your own. GDAS gets one 1 x n logit row per choice point.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nsas.errors import ArchitectureError, NsasError
from nsas.spaces.base import Architecture, SearchSpace

Factory = Callable[[], nn.Module]
_MAX_ENUMERATE = 1_000_000


@dataclass(frozen=True)
class ChoiceArch(Architecture):
    """One candidate name per choice point, in a named :class:`ChoiceSpace`."""

    choices: tuple[str, ...]
    space: str = "choice"  # type: ignore[misc]  # the registered name of its space (per instance)

    def to_str(self) -> str:
        return "|".join(self.choices)

    def to_json(self) -> list[str]:
        return list(self.choices)


def hamming(a: ChoiceArch, b: ChoiceArch) -> float:
    """Share of choice points where ``a`` and ``b`` pick different candidates."""
    return sum(x != y for x, y in zip(a.choices, b.choices, strict=True)) / max(1, len(a.choices))


class ChoiceSupernet(nn.Module):
    """Weight-sharing supernet of a :class:`ChoiceSpace`; ``forward(x, path, edge_weights=None)``."""

    def __init__(self, space: ChoiceSpace) -> None:
        super().__init__()
        self.stem = space.stem() if space.stem else nn.Identity()
        self.points = nn.ModuleList(nn.ModuleDict({n: f() for n, f in point.items()}) for point in space.points)
        self.head = space.head() if space.head else nn.Identity()

    def forward(self, x: torch.Tensor, path: ChoiceArch,
                edge_weights: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        x = self.stem(x)
        for i, (point, name) in enumerate(zip(self.points, path.choices, strict=True)):
            x = point[name](x)  # only the chosen candidate runs
            if edge_weights is not None:  # GDAS: value 1, straight-through gradient to alpha
                x = x * edge_weights[i][0]
        return self.head(x)


class ChoiceNetwork(nn.Module):
    """The stand-alone network of one architecture: stem, the chosen candidates in order, head."""

    def __init__(self, space: ChoiceSpace, arch: ChoiceArch) -> None:
        super().__init__()
        self.stem = space.stem() if space.stem else nn.Identity()
        self.blocks = nn.Sequential(*(space.points[i][n]() for i, n in enumerate(arch.choices)))
        self.head = space.head() if space.head else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class ChoiceSpace(SearchSpace):
    """A chain of choice points over your own candidate modules (see the module docstring).

    Args:
        points: per choice point, its candidates: a mapping name -> factory, or a
            list of factories (named "0", "1", ...). Names may not contain ``|`` or ``.``.
        stem: factory of the module before the first choice point (None: identity).
        head: factory of the module after the last one (None: identity).
        name: the space's name (``register_space(space, name=...)`` sets it too).
        kind: "image" or "text" (how scores and multiply-adds are counted).
        distance: ``distance(a, b) -> float`` in [0, 1] (default: normalised Hamming).
    """

    def __init__(self, points: Sequence[Mapping[str, Factory] | Sequence[Factory]], *,
                 stem: Factory | None = None, head: Factory | None = None, name: str = "choice",
                 kind: str = "image", distance: Callable[[ChoiceArch, ChoiceArch], float] | None = None) -> None:
        self.points: list[dict[str, Factory]] = []
        for i, point in enumerate(points):
            named = dict(point) if isinstance(point, Mapping) else {str(j): f for j, f in enumerate(point)}
            if not named:
                raise ArchitectureError(f"choice point {i} has no candidates")
            for n, factory in named.items():
                if not isinstance(n, str) or not n or "|" in n or "." in n or n != n.strip():
                    raise ArchitectureError(f"choice point {i}: candidate name {n!r} must be a non-empty "
                                            "string without '|', '.' or surrounding spaces")
                if not callable(factory):
                    raise ArchitectureError(f"choice point {i}: candidate {n!r} must be a factory returning a module")
            self.points.append(named)
        if not self.points:
            raise ArchitectureError("a choice space needs at least one choice point")
        if kind not in ("image", "text"):
            raise ArchitectureError(f"kind must be image or text, got {kind!r}")
        self.stem, self.head, self.name, self.kind = stem, head, name, kind  # type: ignore[misc]
        self.ops = tuple(dict.fromkeys(n for p in self.points for n in p))  # type: ignore[misc]
        self._distance = distance or hamming

    @classmethod
    def names_only(cls, points: Sequence[Sequence[str]], *, name: str = "choice", **kwargs: Any) -> ChoiceSpace:
        """A space of architecture values only (sampling, strings, distance) for a supernet you built yourself.

        Its ``build_supernet`` / ``build_network`` raise: your module's
        ``forward(x, path)`` reads ``path.choices`` (one name per choice point).
        """
        def unbuildable() -> nn.Module:
            raise ArchitectureError(f"space {name!r} lists names only; build the network yourself")
        return cls([{n: unbuildable for n in point} for point in points], name=name, **kwargs)

    # ---- architectures -------------------------------------------------
    def arch(self, choices: Sequence[str]) -> ChoiceArch:
        """The architecture picking ``choices`` (validated)."""
        choices = tuple(choices)
        if len(choices) != len(self.points):
            raise ArchitectureError(f"{'|'.join(map(str, choices))!r} has {len(choices)} choices; "
                                    f"space {self.name!r} has {len(self.points)} choice points")
        for i, c in enumerate(choices):
            if c not in self.points[i]:
                raise ArchitectureError(f"choice {i} is {c!r}; choice point {i} of space {self.name!r} offers "
                                        f"{', '.join(self.points[i])}")
        return ChoiceArch(choices, space=self.name)

    def parse(self, text: str) -> ChoiceArch:
        if not isinstance(text, str):
            raise ArchitectureError(f"expected a string 'name|name|...', got {type(text).__name__}")
        return self.arch([part.strip() for part in text.strip().split("|")])

    def from_json(self, obj: Any) -> ChoiceArch:
        if not isinstance(obj, (list, tuple)) or not all(isinstance(c, str) for c in obj):
            raise ArchitectureError(f"a {self.name} JSON architecture is a list of candidate names, got {obj!r}")
        return self.arch(obj)

    def sample(self, rng: random.Random) -> ChoiceArch:
        return ChoiceArch(tuple(rng.choice(list(p)) for p in self.points), space=self.name)

    def size(self) -> int:
        return math.prod(len(p) for p in self.points)

    def enumerate(self) -> Iterator[ChoiceArch]:
        if self.size() > _MAX_ENUMERATE:
            return super().enumerate()
        return (ChoiceArch(c, space=self.name) for c in itertools.product(*(list(p) for p in self.points)))

    def split_options(self, edge: int) -> tuple[str, ...]:
        """The candidates of choice point ``edge``."""
        if not isinstance(edge, int) or not 0 <= edge < len(self.points):
            raise NsasError(f"space {self.name!r} has choice points 0-{len(self.points) - 1} to split on, "
                            f"not {edge!r}")
        return tuple(self.points[edge])

    def split_of(self, arch: Architecture, edge: int) -> int:
        return self.split_options(edge).index(self.coerce(arch).choices[edge])

    def distance(self, a: Architecture, b: Architecture) -> float:
        return self._distance(a, b)  # type: ignore[arg-type]

    # ---- networks ------------------------------------------------------
    def build_network(self, arch: Architecture, **options: Any) -> nn.Module:
        """The stand-alone network of ``arch`` (options are ignored: the factories fix the sizes)."""
        return ChoiceNetwork(self, self.coerce(arch))  # type: ignore[arg-type]

    def build_supernet(self, **options: Any) -> nn.Module:
        """The supernet (options such as ``channels`` or ``num_classes`` are ignored: the factories fix them)."""
        return ChoiceSupernet(self)

    # ---- GDAS ----------------------------------------------------------
    def gdas_alpha_shapes(self) -> list[tuple[int, int]]:
        return [(1, len(p)) for p in self.points]

    def gdas_decode(self, choices: Sequence[torch.Tensor], probs: Sequence[torch.Tensor]
                    ) -> tuple[ChoiceArch, ChoiceArch]:
        arch = ChoiceArch(tuple(list(p)[int(c[0])] for p, c in zip(self.points, choices, strict=True)),
                          space=self.name)
        return arch, arch

    def gdas_final(self, alphas: Sequence[torch.Tensor]) -> ChoiceArch:
        return ChoiceArch(tuple(list(p)[int(a[0].argmax())] for p, a in zip(self.points, alphas, strict=True)),
                          space=self.name)
