"""Issue 22's hostile inputs, each through ``nsas.cli.main`` as the command runs it: numbers in architecture
strings, ambiguous and deeply nested tables, amplifying configs. Every one must end in one short line, exit
status 2, and (for a search) nothing written."""

from __future__ import annotations

import time

import pytest

from nsas.cli import main
from tiny import DARTS_GENOTYPE, RNN_GENOTYPE

DARTS = DARTS_GENOTYPE
RNN = RNN_GENOTYPE
NB201 = [f"|{a}~0|+|{b}~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|{c}~2|"
         for a in ("nor_conv_3x3", "none") for b in ("skip_connect", "avg_pool_3x3") for c in ("none", "nor_conv_1x1")]


def one_line_error(capsys, argv: list[str], *needles: str, limit: int = 400) -> str:
    """Run the command; it must fail with status 2 and one short line containing each needle."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[:2000]
    assert err.startswith("nsas: error: ") and err.count("\n") == 1, err[:2000]
    assert len(err) <= limit, f"{len(err):,} characters: {err[:300]}"
    for needle in needles:
        assert needle in err, err
    return err


# ---------------------------------------------------------------- numbers in architecture strings
@pytest.mark.parametrize("text, needle", [
    (DARTS.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', " + "9" * 5000 + ")"), "5,000 digits"),
    (DARTS.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', " + "9" * 1000 + ")"), "1,000 digits"),
    (DARTS.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, " + "9" * 5000 + ")"), "5,000 digits"),
    (DARTS.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, " + "5" * 4400 + "]"), "4,400 digits"),
    (RNN.replace("('relu', 5)", "('relu', " + "5" * 5000 + ")"), "5,000 digits"),
    (RNN.replace("('relu', 5)", "('relu', " + "5" * 1000 + ")"), "1,000 digits"),
    (RNN.replace("range(1, 9)", "range(1, " + "9" * 5000 + ")"), "5,000 digits"),
], ids=["darts-input", "darts-input-1000", "darts-range", "darts-concat", "rnn-input", "rnn-input-1000", "rnn-range"])
def test_integers_of_thousands_of_digits_in_genotypes_are_one_short_line(capsys, tmp_path, text, needle):
    path = tmp_path / "arch.txt"
    path.write_text(text)
    one_line_error(capsys, ["inspect", f"@{path}"], needle)


@pytest.mark.parametrize("genotype, old, digit", [
    (DARTS, "('dil_conv_3x3', 2)", "\u0662"),  # ARABIC-INDIC DIGIT TWO: int() reads it as 2
    (DARTS, "('dil_conv_3x3', 2)", "\uff12"),  # FULLWIDTH DIGIT TWO
    (RNN, "('relu', 5)", "\u0665"),
    (RNN, "('relu', 5)", "\u096b"),  # DEVANAGARI DIGIT FIVE
], ids=["darts-arabic", "darts-fullwidth", "rnn-arabic", "rnn-devanagari"])
def test_non_ascii_digits_are_refused_by_both_genotype_parsers(capsys, genotype, old, digit):
    assert main(["inspect", genotype]) == 0  # the ASCII original is fine
    capsys.readouterr()
    one_line_error(capsys, ["inspect", genotype.replace(old, old[:-2] + digit + ")")], digit)


@pytest.mark.parametrize("text", [
    "Genotype(normal=[" + "x" * 1_000_000 + "])",
    DARTS.replace("'sep_conv_3x3'", "'" + "s" * 1_000_000 + "'", 1),
    RNN.replace("'sigmoid'", "'" + "s" * 1_000_000 + "'", 1),
    "Genotype(recurrent=[" + "x" * 1_000_000 + "])",
], ids=["darts-name", "darts-op", "rnn-op", "rnn-name"])
def test_a_megabyte_token_in_a_genotype_is_not_echoed_whole(capsys, tmp_path, text):
    path = tmp_path / "arch.txt"
    path.write_text(text)
    one_line_error(capsys, ["inspect", f"@{path}"])  # at most 400 characters


# ---------------------------------------------------------------- tables: duplicates and nesting
def _table_pair(tmp_path, name: str, text: str):
    bad = tmp_path / name
    bad.write_text(text)
    good = tmp_path / "truth.csv"
    good.write_text("arch,acc\n" + "".join(f"{a},{90 - i}\n" for i, a in enumerate(NB201)))
    return bad, good


@pytest.mark.parametrize("name, text, needle", [
    ("scores.csv", "arch,acc,acc\n" + "".join(f"{a},{i},{-i}\n" for i, a in enumerate(NB201)), "column 'acc' twice"),
    ("scores.csv", "arch,acc , acc\n" + "".join(f"{a},{i},{-i}\n" for i, a in enumerate(NB201)), "column 'acc' twice"),
    ("scores.csv", "arch,acc,arch\n" + "".join(f"{a},{i},{NB201[0]}\n" for i, a in enumerate(NB201)),
     "column 'arch' twice"),
    ("scores.json", "[" + ",".join(f'{{"arch": "{a}", "acc": {i}, "acc": {-i}}}' for i, a in enumerate(NB201)) + "]",
     "key 'acc' twice"),
    ("scores.jsonl", "".join(f'{{"arch": "{a}", "acc": {i}, "arch": "{NB201[0]}"}}\n' for i, a in enumerate(NB201)),
     "key 'arch' twice"),
    ("scores.jsonl", "".join(f'{{"arch": "{a}", "acc": {i}, "meta": {{"x": 1, "x": 2}}}}\n'
                             for i, a in enumerate(NB201)), "key 'x' twice"),
], ids=["csv-metric", "csv-stripped", "csv-arch", "json-metric", "jsonl-arch", "jsonl-nested"])
def test_a_column_or_key_given_twice_is_refused_naming_it(capsys, tmp_path, name, text, needle):
    bad, good = _table_pair(tmp_path, name, text)
    one_line_error(capsys, ["correlate", str(bad), str(good), "--bootstrap", "0"], needle, str(bad))
    # the same table as truth, and as the truth a fused score is fitted on
    one_line_error(capsys, ["correlate", str(good), str(bad), "--bootstrap", "0"], needle, str(bad))


@pytest.mark.parametrize("name, text", [
    ("deep.json", "[" * 100_000 + "]" * 100_000),
    ("deep.jsonl", '{"a":' * 100_000 + "1" + "}" * 100_000 + "\n"),
    ("deep-value.json", f'[{{"arch": "{NB201[0]}", "acc": ' + "[" * 100_000 + "]" * 100_000 + "}]"),
], ids=["json-array", "jsonl-object", "json-value"])
def test_json_nested_100000_deep_is_one_line_not_a_recursion_error(capsys, tmp_path, name, text):
    bad, good = _table_pair(tmp_path, name, text)
    one_line_error(capsys, ["correlate", str(bad), str(good)], "nested too deeply", str(bad))
    one_line_error(capsys, ["correlate", str(good), str(bad)], "nested too deeply", str(bad))


def test_an_endless_table_is_refused_at_its_size_limit(capsys, tmp_path, monkeypatch):
    import nsas.tables

    monkeypatch.setattr(nsas.tables, "MAX_TABLE_BYTES", 1 << 20)
    _, good = _table_pair(tmp_path, "x.csv", "")
    start = time.perf_counter()
    one_line_error(capsys, ["correlate", "/dev/zero", str(good)], "larger than 1,048,576 bytes", "/dev/zero")
    assert time.perf_counter() - start < 20


# ---------------------------------------------------------------- configs: numbers, amplification, nesting
SEARCH = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--channels", "4", "--cells", "1",
          "--eval-batches", "1", "--select-rounds", "1", "--select-samples", "2", "--device", "cpu",
          "--dataset", "cifar10-mini"]
LAUGHS = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
    f"&{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]


@pytest.mark.parametrize("flags, yaml_text, needle", [
    (["--seed", str(2**70)], None, "'seed': 1180591620717411303424 is out of range"),
    ([], f"seed: {2**70}\n", "'seed': 1180591620717411303424 is out of range"),
    ([], f"seed: {-(2**63) - 1}\n", "out of range"),
    ([], f"checkpoint_every: {10**30}\n", "'checkpoint_every'"),
    (["--batch-size", str(2**64)], None, "'batch_size'"),
    ([], f"lr: {10**400}\n", "'lr'"),
    ([], f"seed: {'9' * 5000}\n", "digits"),
    ([], "lr: [" + ", ".join(LAUGHS) + "]\n", "expands to more than"),
    ([], "".join(f"{chr(97 + i)}: {v}\n" for i, v in enumerate(LAUGHS)) + "lr: *i\n", "expands to more than"),
    ([], "lr: " + "[" * 100_000 + "]" * 100_000 + "\n", "too deeply"),
], ids=["seed-flag", "seed-yaml", "seed-negative", "int-1e30", "batch-2**64", "float-1e400", "int-5000-digits",
        "laughs-in-a-value", "laughs-at-top", "nested-100000"])
def test_search_configs_that_overflow_or_amplify_are_refused_before_anything_is_written(
        capsys, tmp_path, flags, yaml_text, needle):
    argv = ["search", "--out", str(tmp_path / "run"), *SEARCH, *flags]
    if yaml_text is not None:
        (tmp_path / "c.yaml").write_text(yaml_text)
        argv += ["--config", str(tmp_path / "c.yaml")]
    start = time.perf_counter()
    one_line_error(capsys, argv, needle)
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_train_seed_of_2_to_the_70_is_one_line(capsys, tmp_path):
    one_line_error(capsys, ["train", NB201[0], "--seed", str(2**70), "--out", str(tmp_path / "t"), "--epochs", "1",
                            "--device", "cpu", "--dataset", "cifar10-mini"], "'seed'", "out of range")
    assert not (tmp_path / "t" / "config.yaml").exists()


def test_64_bit_integers_still_pass(tmp_path):
    from nsas.config import build_config
    from nsas.search_config import SearchConfig

    assert build_config(SearchConfig, {"seed": 2**63 - 1}).seed == 2**63 - 1
    assert build_config(SearchConfig, {"seed": -(2**63)}).seed == -(2**63)


# ---------------------------------------------------------------- the table itself
def test_every_test_docs_reliability_names_exists():
    """Each `file.py::name` (and each `::name` after it, same file) in docs/RELIABILITY.md is a test function."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "RELIABILITY.md").read_text()
    named: list[tuple[str, str]] = []
    for row in (line for line in text.splitlines() if line.startswith("| ")):
        current = None
        for match in re.finditer(r"`(?:(test_\w+\.py))?::(\w+)`", row):
            current = match.group(1) or current
            named.append((current, match.group(2)))
    assert len(named) > 60
    missing = []
    for file, name in named:
        tree = ast.parse((root / "tests" / file).read_text())
        if name not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}:
            missing.append(f"{file}::{name}")
    assert not missing


def test_huge_nb201_strings_and_space_names_are_quoted_briefly(capsys):
    for arch in ("|nor_conv_3x3~" + "9" * 5000 + "|+|skip_connect~0|skip_connect~1|+|none~0|none~1|none~2|",
                 "x" * 1_500_000):
        assert main(["inspect", arch, "--space", "nb201"]) == 2
        err = capsys.readouterr().err
        assert len(err) < 1000 and len(err.strip().splitlines()) == 1
    assert main(["inspect", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--space", "s" * 100_000]) == 2
    assert len(capsys.readouterr().err) < 2000
