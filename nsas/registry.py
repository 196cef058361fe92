"""Name registries for what users choose by name: spaces, strategies, losses, data sets.

Each registry maps a name to an entry (a space object, or a factory
function). Built-in entries are registered by their own modules, imported
lazily on first lookup so that ``nsas --help`` stays fast; third-party
packages plug in through the entry-point group :data:`PLUGIN_GROUP`::

    # pyproject.toml of a plug-in package
    [project.entry-points."nsas.plugins"]
    my_space = "my_package.nsas_plugin"

Every entry point of the group is imported once, the first time any
registry looks up a name or lists its names; importing the module runs its
``@register_space`` / ``@register_loss`` / ... decorators. An entry point
that names a function (``"my_package:register"``) is called with no
arguments instead.

Without a package to install, the environment variable :data:`PLUGINS_ENV`
does the same for the ``nsas`` command: ``NSAS_PLUGINS=my_module nsas search
--space my-net`` imports ``my_module`` (from the current folder or
``PYTHONPATH``) before any name is looked up; several are comma-separated,
``module:function`` calls the function. A name registered in Python
(``nsas.register_space(...)`` in a script) is known only to that process,
so an unknown-name error says how to make it visible to the command.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable
from typing import Generic, TypeVar

from nsas.errors import NsasError, brief

PLUGIN_GROUP = "nsas.plugins"
PLUGINS_ENV = "NSAS_PLUGINS"
CLI_HINT = (f"a name registered in Python is known only to that process: for the nsas command, name the module "
            f"that registers it in {PLUGINS_ENV}=MODULE or install it as an {PLUGIN_GROUP!r} entry point "
            "(docs/GUIDE.md, Registries)")
"""How to make a name registered in Python visible to the ``nsas`` command (the end of unknown-name errors)."""
T = TypeVar("T")
_plugins_loaded = False


def load_plugins() -> None:
    """Import every entry point of :data:`PLUGIN_GROUP` (only the first call does anything).

    Raises:
        NsasError: a plug-in failed to import (its name and the error).
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first: a plug-in that looks names up must not recurse
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        _load(ep.name, ep.value, ep.load)
    for value in filter(None, (v.strip() for v in os.environ.get(PLUGINS_ENV, "").split(","))):
        _load(f"{PLUGINS_ENV}={value}", value, lambda value=value: _import(value))


def _import(value: str) -> object:
    """The module ``value`` names, or its attribute after ``:`` (``module:function``)."""
    module, _, attr = value.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:  # the `nsas` script does not search the current folder
        sys.path.append(os.getcwd())
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


def _load(name: str, value: str, load: Callable[[], object]) -> None:
    """Import one plug-in (and call it when it names a function); a broken one names itself."""
    try:
        loaded = load()
        if callable(loaded) and not isinstance(loaded, type):
            loaded()
    except Exception as err:
        raise NsasError(f"nsas plug-in {name!r} ({value}) failed to load: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err).strip() else ''}"[:400]) from err


class Registry(Generic[T]):
    """Names to entries, with lazily imported built-ins and plug-ins.

    Args:
        kind: what the entries are, for error messages ("search space", "loss").
        builtins: name -> module that registers it when imported.
        error: the exception class raised for unknown names.
    """

    def __init__(self, kind: str, builtins: dict[str, str], error: type[NsasError] = NsasError) -> None:
        self.kind, self.builtins, self.error = kind, dict(builtins), error
        self.entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` (a later registration replaces an earlier one)."""
        if not name or not isinstance(name, str):
            raise self.error(f"a {self.kind} needs a non-empty name, got {name!r}")
        self.entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@registry.register("name")``."""
        return lambda entry: self.add(name, entry)

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests use it to clean up)."""
        self.entries.pop(name, None)

    def names(self) -> list[str]:
        """Built-in names first (in their order), then registered ones."""
        load_plugins()
        return list(self.builtins) + [n for n in self.entries if n not in self.builtins]

    def get(self, name: str) -> T:
        """The entry registered as ``name``; raises ``error`` naming the choices if there is none."""
        if name not in self.entries and name in self.builtins:
            importlib.import_module(self.builtins[name])
        if name not in self.entries:
            load_plugins()
        if name not in self.entries:
            raise self.error(f"unknown {self.kind} {brief(name)}; choose one of {', '.join(self.names())}; {CLI_HINT}")
        return self.entries[name]
