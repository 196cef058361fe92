"""The command line: help, `inspect`, and one-line errors for malformed architectures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nsas.cli import SUBCOMMANDS, main

DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
RNN_V2 = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
          "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")
NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
CHAIN = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 2), "
         "('sep_conv_5x5', 0), ('dil_conv_3x3', 3), ('avg_pool_3x3', 0), ('sep_conv_3x3', 4)], "
         "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
         "('skip_connect', 2), ('max_pool_3x3', 0), ('skip_connect', 3), ('max_pool_3x3', 0), ('skip_connect', 4)], "
         "reduce_concat=range(2, 6))")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_every_subcommand(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0
    for name in SUBCOMMANDS:
        assert name in out


def test_python_dash_m_nsas_works():
    proc = subprocess.run([sys.executable, "-m", "nsas", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and "inspect" in proc.stdout


@pytest.mark.parametrize("arch,space,params", [
    (DARTS_V2, "darts", 3_349_342),
    (NB201_BEST, "nb201", None),
    (RNN_V2, "darts-rnn", None),
    (CHAIN, "darts-chain", None),
])
def test_inspect_published_architectures(capsys, arch, space, params):
    code, out, err = run_cli(capsys, "inspect", arch, "--space", space, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["space"] == space and info["macs"] > 0 and info["parameters"] > 0
    if params is not None:
        assert info["parameters"] == params
    # The canonical string parses back to itself.
    code, out2, _ = run_cli(capsys, "inspect", info["arch"], "--space", space, "--json")
    assert code == 0 and json.loads(out2)["arch"] == info["arch"]


def test_inspect_reads_at_file_and_sizes(tmp_path, capsys):
    f = tmp_path / "g.txt"
    f.write_text("DARTS_V2 = " + DARTS_V2.replace(", ", ",\n    ") + "\n")
    code, out, err = run_cli(capsys, "inspect", f"@{f}", "--channels", "16", "--cells", "8", "--json")
    assert code == 0, err
    small = json.loads(out)
    assert small["space"] == "darts" and small["parameters"] < 3_349_342


MALFORMED = [
    ("nb201", "|nor_conv_3x3~0|+|conv_9x9~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|", "conv_9x9"),
    ("nb201", "|nor_conv_3x3~0|+|skip_connect~0|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|", None),
    ("nb201", "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~5|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|", "~5"),
    ("nb201", "hello world", None),
    ("darts", DARTS_V2.replace("'dil_conv_3x3', 2", "'dil_conv_9x9', 2"), "dil_conv_9x9"),
    ("darts", DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)"), "7"),
    ("darts", DARTS_V2.replace("('sep_conv_3x3', 1), ('skip_connect', 0)", "('sep_conv_3x3', 0), ('skip_connect', 0)"),
     None),  # node 2 takes input 0 twice
    ("darts", DARTS_V2.replace(", ('dil_conv_3x3', 2)", ""), None),  # 7 edges
    ("darts-chain", DARTS_V2, None),  # DARTS_V2 breaks the chain
    ("darts-rnn", RNN_V2.replace("'tanh', 2", "'gelu', 2"), "gelu"),
    ("darts-rnn", RNN_V2.replace("('relu', 5)]", "('relu', 9)]"), "9"),
    ("darts-rnn", RNN_V2.replace(", ('relu', 5)", ""), None),
    ("darts", "Genotype(normal=[(", None),
]


@pytest.mark.parametrize("space,text,token", MALFORMED)
def test_malformed_architectures_fail_in_one_line(capsys, space, text, token):
    code, out, err = run_cli(capsys, "inspect", text, "--space", space)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsas: error:") and "Traceback" not in err
    if token is not None:
        assert token in lines[0]


def test_unknown_space_and_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "inspect", NB201_BEST, "--space", "nope")
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "inspect", f"@{tmp_path / 'missing.txt'}")
    assert code == 2 and "missing.txt" in err and len(err.strip().splitlines()) == 1


def test_unknown_data_set_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "search", "--dataset", "imagenet-1k", "--out", str(tmp_path / "r"), "--quiet")
    assert code == 2 and "imagenet-1k" in err and len(err.strip().splitlines()) == 1
