"""docs/DESIGN.md tells the truth about the house: every file and name it gives exists, and the layering it
describes holds (no library module imports a command module; no import runs in a circle)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import nsas
from nsas.cli import SUBCOMMANDS

REPO = Path(__file__).resolve().parents[1]
DESIGN = (REPO / "docs" / "DESIGN.md").read_text()
COMMANDS = {module for module, _ in SUBCOMMANDS.values()} | {"nsas.cli", "nsas.__main__"}
NOT_NAMES = {"nsas.plugins": "the entry-point group", "nsas.X": "a placeholder for any name"}


def _modules() -> list[str]:
    names = ["nsas"]
    for info in pkgutil.walk_packages(nsas.__path__, "nsas."):
        names.append(info.name)
    return names


def _resolve(token: str, modules: list[str]) -> bool:
    """Whether ``a.b.c`` names something: a module and attributes, or an attribute of some nsas module."""
    parts = token.split(".")
    for start in ([], ["nsas"]):
        full = start + parts
        for cut in range(len(full), 0, -1):
            name = ".".join(full[:cut])
            if name not in modules:
                continue
            obj = importlib.import_module(name)
            try:
                for attr in full[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            return True
    for name in modules:  # `Search.train`: a class of some module and its attribute
        obj = importlib.import_module(name)
        if parts[0] in vars(obj):
            obj = vars(obj)[parts[0]]
            try:
                for attr in parts[1:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                continue
            return True
    return False


def test_every_file_design_names_exists():
    paths = set(re.findall(r"`((?:nsas|bench|examples|docs|tests)/[\w/.*-]+)`", DESIGN))
    assert len(paths) > 30
    missing = [p for p in sorted(paths) if not list(REPO.glob(p))]
    assert not missing, missing


def test_every_module_function_and_method_design_names_exists():
    modules = _modules()
    tokens = {t for t in re.findall(r"`([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+)(?:\(\))?`", DESIGN)
              if not re.search(r"\.(py|md|json|yaml|csv|txt|pt|jsonl|onnx|png)$", t)}
    assert len(tokens) > 10
    unknown = [t for t in sorted(tokens - set(NOT_NAMES)) if not _resolve(t, modules)]
    assert not unknown, unknown


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_library_module_imports_a_command_module():
    offenders = []
    for path in sorted((REPO / "nsas").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        if module in COMMANDS or module == "nsas":
            continue
        hits = sorted(_imports(path) & COMMANDS)
        if hits:
            offenders.append(f"{module} imports {', '.join(hits)}")
    assert not offenders, offenders
