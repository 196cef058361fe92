"""``--threads``: torch's CPU thread pool, set only when asked (issue 23)."""

from __future__ import annotations

import argparse

import pytest
import torch

from nsas.errors import NsasError
from nsas.threads import add_threads_flag, apply_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_apply_threads_sets_the_pool_only_when_asked(restore_threads):
    before = torch.get_num_threads()
    apply_threads(None)
    assert torch.get_num_threads() == before
    apply_threads(1)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -2])
def test_threads_below_one_is_an_error(bad):
    with pytest.raises(NsasError, match=f"--threads must be at least 1, got {bad}"):
        apply_threads(bad)


def test_the_flag_parses_and_documents_omp_num_threads():
    parser = argparse.ArgumentParser()
    add_threads_flag(parser)
    assert parser.parse_args([]).threads is None
    assert parser.parse_args(["--threads", "2"]).threads == 2
    assert "OMP_NUM_THREADS" in parser.format_help()


@pytest.mark.parametrize("command", ["search", "train", "rank"])
def test_every_computing_command_has_the_flag(command):
    from nsas.cli import build_parser
    help_text = build_parser(only=command)._subparsers._group_actions[0].choices[command].format_help()
    assert "--threads N" in help_text
