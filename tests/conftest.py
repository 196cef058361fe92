"""Shared fixtures: the shared data folder (see shared_data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shared_data import require_shared

torch.set_num_threads(1)  # bit-exact comparisons and fair sharing of the 2 CI cores


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` from the repository root (present in CI)."""
    return require_shared("")
