"""Search-space registry: ``get_space("nb201")`` returns the space object.

Spaces register themselves with :func:`register_space`; the modules are
imported lazily on first use so that ``nsas --help`` stays fast.
"""

from __future__ import annotations

import importlib

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


__all__ = ["Architecture", "SearchSpace", "get_space", "register_space", "space_names"]
