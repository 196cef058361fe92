"""Shared fixtures: the shared data folder and tiny synthetic data sets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

torch.set_num_threads(1)  # bit-exact comparisons and fair sharing of the 2 CI cores


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` from the repository root (present in CI)."""
    assert SHARED_DATA.is_dir(), f"shared data folder missing: {SHARED_DATA}"
    return SHARED_DATA
