"""Search-space registry: ``get_space("nb201")`` returns the space object.

Spaces register themselves with :func:`register_space`; the built-in modules
are imported lazily on first use so that ``nsas --help`` stays fast, and
third-party packages register theirs through the ``nsas.plugins`` entry-point
group (see :mod:`nsas.registry`).
"""

from __future__ import annotations

import re
from typing import TypeVar

from nsas.errors import ArchitectureError
from nsas.registry import Registry
from nsas.spaces.base import Architecture, SearchSpace

S = TypeVar("S", bound=SearchSpace)

# built-in name -> module that defines and registers it
SPACES: Registry[SearchSpace] = Registry("search space", {
    "nb201": "nsas.spaces.nb201",
    "darts": "nsas.spaces.darts",
    "darts-chain": "nsas.spaces.darts",
    "darts-rnn": "nsas.spaces.darts_rnn",
}, error=ArchitectureError)


def register_space(space: type[S] | S, *, name: str | None = None) -> type[S] | S:
    """Register a search space; usable as a class decorator or called on an instance.

    ``@register_space`` on a class registers one instance of it (built with
    no arguments) under ``cls.name``; ``register_space(ChoiceSpace(...),
    name="mine")`` registers that object. The space's ``name`` attribute is
    set to the registered name. Returns its argument.
    """
    obj = space() if isinstance(space, type) else space
    obj.name = name or obj.name  # type: ignore[misc]
    SPACES.add(obj.name, obj)
    return space


def space_names() -> list[str]:
    """Names of every search space (built-in first, then registered), in a stable order."""
    return SPACES.names()


def get_space(name: str) -> SearchSpace:
    """The search space registered as ``name``."""
    return SPACES.get(name)


def detect_space(text: str) -> str:
    """Name of the space whose string form ``text`` uses (by its shape, not validated)."""
    t = re.sub(r"^\s*[A-Za-z_][\w.]*\s*=\s*", "", text).strip()  # "DARTS_V2 = Genotype(...)"
    t = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=Genotype)", "", t)  # "genotypes.Genotype(...)"
    if t.startswith("|"):
        return "nb201"
    if t.startswith("Genotype") and "recurrent" in t:
        return "darts-rnn"
    if t.startswith("Genotype"):
        return "darts"
    raise ArchitectureError(
        f"cannot tell the search space of {t[:40]!r}: expected a NAS-Bench-201 string "
        "'|op~0|+|...|' or a DARTS 'Genotype(...)'"
    )


def parse_arch(text: str, space: str | None = None) -> Architecture:
    """Parse ``text`` in ``space`` (detected from its shape when not given)."""
    return get_space(space or detect_space(text)).parse(text)


__all__ = ["SPACES", "Architecture", "SearchSpace", "detect_space", "get_space", "parse_arch", "register_space",
           "space_names"]
