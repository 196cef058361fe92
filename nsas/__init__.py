"""nsas: one-shot neural architecture search that does not forget.

The method is NSAS (Novelty Search based Architecture Selection, CVPR 2020):
a diversity-maximised archive of past architectures whose losses regularise
every supernet step. See docs/DESIGN.md for the map of the package.

The Python API (imported lazily, so ``import nsas`` stays fast): one function
per command, each returning a result object::

    import nsas

    cfg = nsas.SearchConfig.preset("quick", epochs=2)
    result = nsas.search(cfg, "runs/my-search")         # -> nsas.SearchResult
    scores = nsas.rank("runs/my-search", sample=100)     # -> nsas.RankResult
    record = nsas.train(nsas.TrainConfig.preset("nb201"), result.best, "runs/my-train")  # dict (result.json)
    report = nsas.correlate(scores.out, "truth.csv")     # dict
    figures = nsas.plot("runs/my-search")                # -> nsas.PlotResult (paths, notes)
    info = nsas.inspect(result.best)                     # -> nsas.InspectResult (parameters, macs, ...)
    files = nsas.export(result.best, "net.pt2", "export")  # -> nsas.ExportResult (every file written)
    done = nsas.study(nsas.StudyConfig(seeds=1), "runs/study")  # -> nsas.StudyResult (report, files)

``nsas.search``, ``nsas.rank``, ``nsas.train``, ``nsas.correlate``,
``nsas.plot``, ``nsas.export`` and ``nsas.study`` are the modules
``nsas/search.py`` etc., made callable: calling one calls the module's
function of the same name (``nsas.search(...)`` is
``nsas.search.search(...)``), and ``nsas.search.SearchConfig`` still works.
(A plain function could not have the name: importing the submodule
``nsas.search`` sets the package's attribute to the module.)
``nsas.inspect`` is the function ``nsas.inspection.inspect``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

from nsas.errors import NsasError  # noqa: E402

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "SearchConfig": "nsas.search", "SearchResult": "nsas.search", "Callback": "nsas.search",
    "load_search_run": "nsas.search",
    "TrainConfig": "nsas.train",
    "RankResult": "nsas.rank",
    "get_space": "nsas.spaces", "register_space": "nsas.spaces", "space_names": "nsas.spaces",
    "parse_arch": "nsas.spaces", "Architecture": "nsas.spaces", "SearchSpace": "nsas.spaces",
    "ChoiceSpace": "nsas.spaces.choice",
    "NoveltyArchive": "nsas.archive",
    "Objective": "nsas.objectives", "NSASObjective": "nsas.objectives", "WPLObjective": "nsas.objectives",
    "build_objective": "nsas.objectives", "register_loss": "nsas.objectives", "loss_names": "nsas.objectives",
    "path_loss": "nsas.objectives",
    "build_strategy": "nsas.strategies", "register_strategy": "nsas.strategies",
    "strategy_names": "nsas.strategies",
    "load_dataset": "nsas.data", "register_dataset": "nsas.data", "dataset_names": "nsas.data",
    "ImageDataset": "nsas.data", "TextDataset": "nsas.data",
    "load_plugins": "nsas.registry",
    "SearchRun": "nsas.search_data",
    "StudyConfig": "nsas.study", "StudyResult": "nsas.study",
    "PlotResult": "nsas.plot",
    "ExportResult": "nsas.export",
    "inspect": "nsas.inspection", "InspectResult": "nsas.inspection",
}
_CALLABLE_MODULES = ("search", "rank", "train", "correlate", "plot", "export", "study")


class _CallableModule(types.ModuleType):
    """A module whose call runs its function of the same name (looked up at call time)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def _make_callable(module_name: str) -> None:
    """Let ``nsas.<name>(...)`` call ``nsas.<name>.<name>(...)`` (called at the end of those modules)."""
    sys.modules[module_name].__class__ = _CallableModule


def __getattr__(name: str) -> Any:
    if name in _CALLABLE_MODULES:
        return importlib.import_module(f"nsas.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nsas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_CALLABLE_MODULES))


__all__ = ["NsasError", "__version__", *_CALLABLE_MODULES, *_EXPORTS]
