"""The documentation stands alone: no file sends readers outside the repository, and citations resolve."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".cff", ".txt", ".cfg"}
SKIP_DIRS = {".git", ".venv", "runs", "__pycache__", "build", "dist"}
# Places that may name the CI's data folder as a data path (tests, benchmarks and records of past
# runs); documentation, scripts and the package may not.
DATA_PATH_OK = ("tests/", "bench/", "results/")
OUTSIDE_DOCS = re.compile(r"ALGORITHM\.md|shared/docs|shared/paper|STYLE\.md")


def _text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if path.is_file() and path.suffix in TEXT_SUFFIXES and not SKIP_DIRS & set(rel.parts) \
                and not any(p.endswith(".egg-info") for p in rel.parts):
            files.append(path)
    return files


def test_no_file_refers_to_documents_outside_the_repository():
    offenders = []
    for path in _text_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel == "tests/test_docs.py":
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            outside_data = "../shared" in line and not rel.startswith(DATA_PATH_OK)
            foreign_shared = re.search(r"\.\./shared(?!/data)", line)
            if OUTSIDE_DOCS.search(line) or outside_data or foreign_shared:
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "references outside the repository:\n" + "\n".join(offenders)


def test_method_citations_name_existing_sections():
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "METHOD.md").read_text(), flags=re.M))
    assert len(sections) >= 9
    cited = []
    for path in _text_files():
        for number in re.findall(r"METHOD\.md\W{0,3}§(\d+)", path.read_text(errors="replace")):
            cited.append((path.relative_to(ROOT).as_posix(), number))
    assert cited, "nothing cites docs/METHOD.md"
    assert all(number in sections for _, number in cited), [c for c in cited if c[1] not in sections]


def test_license_and_citation_match_the_project():
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, flags=re.M).group(1)
    assert 'license = {text = "MIT"}' in pyproject
    license_text = (ROOT / "LICENSE").read_text()
    assert "MIT License" in license_text and "Permission is hereby granted" in license_text
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"].startswith("1.2")
    assert citation["version"] == version and citation["license"] == "MIT"
    paper = citation["preferred-citation"]
    assert paper["title"] == "Overcoming Multi-Model Forgetting in One-Shot NAS with Diversity Maximization"
    assert paper["authors"][0]["family-names"] == "Zhang" and paper["year"] == 2020


def _readme_commands() -> list[list[str]]:
    """The `nsas ...` command lines of the code blocks of the README and the guide, as argument lists."""
    import shlex

    from nsas.cli import SUBCOMMANDS

    lines = [line for doc in ("README.md", "docs/GUIDE.md") for line in (ROOT / doc).read_text().splitlines()]
    commands, pending = [], ""
    for line in lines:
        if not line.startswith("    ") and not pending:
            continue
        text = pending + " " + line.strip() if pending else line.strip()
        if text.endswith("\\"):
            pending = text[:-1]
            continue
        pending = ""
        if not re.search(r"(^|\s)nsas [a-z]", text):
            continue
        words = shlex.split(text, comments=True)
        if "nsas" in words:
            argv = [w for w in words[words.index("nsas") + 1:] if w != "..."]  # "..." stands for more flags
            if argv and argv[0] in SUBCOMMANDS:
                commands.append(argv)
    return commands


def test_readme_commands_parse():
    """Every command line the README shows is accepted by the command's parser (flags exist, values fit)."""
    from nsas.cli import build_parser

    commands = _readme_commands()
    assert len(commands) >= 20 and {c[0] for c in commands} >= {"search", "train", "study", "truth", "rank"}
    for argv in commands:
        try:
            build_parser(argv[0]).parse_args(argv)
        except SystemExit:
            raise AssertionError(f"README command does not parse: nsas {' '.join(argv)}") from None
