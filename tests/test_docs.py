"""The documentation stands alone: no file sends readers outside the repository, and citations resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".cff", ".txt", ".cfg"}
SKIP_DIRS = {".git", ".venv", "runs", "__pycache__", "build", "dist"}
# Places that may name the CI's data folder as a data path (tests, benchmarks and records of past
# runs); documentation, scripts and the package may not.
DATA_PATH_OK = ("tests/", "bench/", "results/")
OUTSIDE_DOCS = re.compile(r"ALGORITHM\.md|shared/docs|shared/paper|STYLE\.md")
DOCS = ("README.md", "docs/GUIDE.md")
PLUGINS_ENV = "NSAS_PLUGINS"


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
        if not re.search(r"(^|\s)nsas [a-z]", text) or text.startswith(f"{PLUGINS_ENV}="):
            continue  # (the custom-space walkthrough's commands run for real: test_custom_space_walkthrough...)
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


# ---- the Python snippets of the README and the guide run, as written ----------------------------------------
# Each ```python block is preceded by a marker saying how the test runs it, so none can be skipped unnoticed:
#   <!-- docs test: run (tiny settings) -->    executed as written, in order, in one fresh folder per document,
#                                              with the substitutions of `tiny_runs` below;
#   <!-- docs test: the file NAME -->          written as NAME into that folder (later blocks import it).
BLOCK = re.compile(r"(?:<!-- docs test: (?P<how>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)
TINY_SEARCH = dict(epochs=1, steps_per_epoch=2, batch_size=8, channels=4, cells=1, eval_batches=1, select_rounds=1,
                   select_samples=2, archive_size=2, pool_size=4, probe_count=4, log_every=1, checkpoint_every=0,
                   device="cpu")
TINY_TRAIN = dict(epochs=1, channels=4, cells=1, batch_size=16, eval_batch_size=20, log_every=0, device="cpu")


def python_blocks(doc: str) -> list[tuple[int, str | None, str]]:
    """(line, marker, code) of each ```python block of ``doc``."""
    text = (ROOT / doc).read_text()
    return [(text[:m.start("code")].count("\n") + 1, m.group("how"), m.group("code")) for m in BLOCK.finditer(text)]


def test_every_python_block_says_how_it_is_tested():
    blocks = [(doc, *b) for doc in DOCS for b in python_blocks(doc)]
    assert len(blocks) >= 4
    unmarked = [f"{doc}:{line}" for doc, line, how, _ in blocks
                if how is None or not (how == "run (tiny settings)" or re.fullmatch(r"the file [\w.]+\.py", how))]
    assert not unmarked, f"python blocks without a '<!-- docs test: ... -->' marker: {unmarked}"


@pytest.fixture
def tiny_runs(tmp_path, monkeypatch):
    """The substitutions that let the snippets run in seconds, and nothing else:

    - every search and training a snippet starts (``nsas.search``, ``nsas.train``, also inside ``nsas.study``)
      runs its config with TINY_SEARCH / TINY_TRAIN over it (a tiny supernet, 2 steps, one epoch);
    - ``nsas.rank(..., sample=N)`` scores at most 10 architectures (counting 100 networks' MACs takes 20 s);
    - every data set is the tests' fake one (96 random 16x16 images of 5 classes; text: random tokens);
    - ``truth.csv`` in the folder is a truth table of every NAS-Bench-201 architecture in the format of
      ``nsas truth import`` (``arch,test_acc``; the value: its count of 3x3 convolutions, a made-up truth).
    """
    import dataclasses

    import nsas.data
    import nsas.rank
    import nsas.search
    import nsas.train
    from nsas.spaces import get_space
    from tiny import fake_dataset

    real_search, real_train, real_rank = nsas.search.search, nsas.train.train, nsas.rank.rank
    monkeypatch.setattr(nsas.rank, "rank", lambda *a, sample=None, **kw: real_rank(
        *a, sample=None if sample is None else min(sample, 10), **kw))
    monkeypatch.setattr(nsas.search, "search", lambda cfg=None, run_dir=None, **kw: real_search(
        dataclasses.replace(cfg or nsas.SearchConfig(), **TINY_SEARCH), run_dir, **{"progress": False, **kw}))
    monkeypatch.setattr(nsas.train, "train", lambda cfg, arch, out_dir, **kw: real_train(
        dataclasses.replace(cfg, **TINY_TRAIN), arch, out_dir, **{"progress": False, **kw}))
    monkeypatch.setattr(nsas.data, "load_dataset", lambda name, *a, **kw: fake_dataset(
        "fake-text" if name in ("ptb", "wikitext2") else "fake-images"))
    rows = [f"{a},{str(a).count('nor_conv_3x3')}" for a in get_space("nb201").enumerate()]
    (tmp_path / "truth.csv").write_text("arch,test_acc\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # a file a block wrote is importable, as from its folder
    yield tmp_path
    _forget_my_space()


def _forget_my_space() -> None:
    import sys

    import nsas.spaces

    nsas.spaces.SPACES.remove("my-net")
    sys.modules.pop("my_space", None)


@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_run_as_written(doc, tiny_runs, capsys):
    blocks = python_blocks(doc)
    assert blocks, f"{doc} has no python block"
    for line, how, code in blocks:
        if how.startswith("the file "):
            (tiny_runs / how.removeprefix("the file ")).write_text(code)
            continue
        try:
            exec(compile(code, f"{doc}:{line}", "exec"), {"__name__": "__docs__"})  # noqa: S102 - our own docs
        except Exception as err:
            raise AssertionError(f"the python block at {doc}:{line} fails: {type(err).__name__}: {err}") from err


def test_custom_space_walkthrough_runs_as_written(tmp_path, monkeypatch, capsys):
    """The guide's `NSAS_PLUGINS=my_space nsas ...` lines, through the command, with the guide's my_space.py.

    Substitutions: the fake data set (as in `tiny_runs`), and the search's command line gets tiny flags
    appended (later flags win): 2 steps of one epoch, small selection.
    """
    import shlex
    import sys

    import nsas.data
    import nsas.registry
    from nsas.cli import main
    from tiny import fake_dataset

    monkeypatch.setattr(nsas.data, "load_dataset", lambda name, *a, **kw: fake_dataset("fake-images"))
    files = {how.removeprefix("the file "): code for _, how, code in python_blocks("docs/GUIDE.md")
             if how and how.startswith("the file ")}
    (tmp_path / "my_space.py").write_text(files["my_space.py"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # NSAS_PLUGINS adds the current folder: only for this test
    text = (ROOT / "docs" / "GUIDE.md").read_text()
    lines = [line.strip() for line in text.splitlines() if line.startswith(f"    {PLUGINS_ENV}=")]
    assert [shlex.split(line)[2] for line in lines] == ["search", "plot", "rank", "export"]
    tiny = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--select-rounds", "1",
            "--select-samples", "2", "--eval-batches", "1", "--log-every", "1", "--quiet"]
    try:
        for line in lines:
            words = shlex.split(line, comments=True)
            env, argv = words[0].split("=", 1), words[words.index("nsas") + 1:]
            monkeypatch.setenv(*env)
            monkeypatch.setattr(nsas.registry, "_plugins_loaded", False)  # a new process each time
            code = main(argv + tiny if argv[0] == "search" else argv)
            assert code == 0, f"{line}: exit {code}: {capsys.readouterr().err}"
    finally:
        _forget_my_space()
    assert (tmp_path / "runs" / "my-net" / "plots" / "forgetting.png").is_file()
    assert len((tmp_path / "runs" / "my-net" / "scores.csv").read_text().splitlines()) == 1 + 27
    assert (tmp_path / "my-net.pt2").is_file() and (tmp_path / "my-net.pt2.json").is_file()
