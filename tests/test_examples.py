"""The examples under examples/ run (kept tiny) and do what they say."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

import nsas
from nsas.spaces.choice import ChoiceSupernet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def forget_mobilenet():
    yield
    nsas.spaces.SPACES.remove("mobilenet-chain")


def test_mobilenet_search_example(tmp_path, forget_mobilenet):
    example = load("mobilenet_search")
    result = example.main(["--epochs", "1", "--steps-per-epoch", "2", "--width", "4", "--batch-size", "8",
                           "--out", str(tmp_path / "run")])
    space = nsas.get_space("mobilenet-chain")
    assert isinstance(result.supernet, ChoiceSupernet) and result.steps == 2
    assert all(space.parse(row["arch"]) for row in result.selected)
    assert len(result.archive) == 2 and all(space.parse(a) for a in result.archive)
    # kernel x expansion candidates everywhere, skip only where the block keeps its shape
    assert [len(p) for p in space.points] == [5, 4, 5, 4] and space.size() == 400
    assert (tmp_path / "run" / "selected.json").is_file()


def test_regulariser_example():
    out = load("nsas_regularizer").main(["--steps", "3", "--batch-size", "8", "--width", "4"])
    assert out["members"] >= 2 and out["passes"] == 1 + out["members"]  # one extra pass per archive member
    assert math.isfinite(out["loss"]) and math.isfinite(out["archive_loss"])
