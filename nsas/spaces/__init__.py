"""Search-space registry: ``get_space("nb201")`` returns the space object.

Spaces register themselves with :func:`register_space`; the modules are
imported lazily on first use so that ``nsas --help`` stays fast.
"""

from __future__ import annotations

import importlib
import re

from nsas.errors import ArchitectureError
from nsas.spaces.base import Architecture, SearchSpace

# name -> module that defines and registers it
_MODULES = {
    "nb201": "nsas.spaces.nb201",
    "darts": "nsas.spaces.darts",
    "darts-chain": "nsas.spaces.darts",
    "darts-rnn": "nsas.spaces.darts_rnn",
}
_REGISTRY: dict[str, SearchSpace] = {}


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    _REGISTRY[cls.name] = cls()
    return cls


def space_names() -> list[str]:
    """Names of every search space, in a stable order."""
    return list(_MODULES)


def get_space(name: str) -> SearchSpace:
    """The search space registered as ``name``."""
    if name not in _MODULES:
        raise ArchitectureError(
            f"unknown search space {name!r}; choose one of {', '.join(space_names())}"
        )
    if name not in _REGISTRY:
        importlib.import_module(_MODULES[name])
    return _REGISTRY[name]


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


__all__ = ["Architecture", "SearchSpace", "detect_space", "get_space", "parse_arch", "register_space", "space_names"]
