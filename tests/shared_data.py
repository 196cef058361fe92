"""The shared data folder ``../shared/data`` next to the repository, present in CI only.

Tests that read it (real CIFAR-10 JPEGs, Penn Treebank) skip, naming the
missing path, where it is absent (a user's fresh clone). With
``NSAS_REQUIRE_SHARED_DATA=1`` (set by ``.ci/run``) a missing path fails them
instead, so CI never skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REQUIRE_ENV = "NSAS_REQUIRE_SHARED_DATA"


def require_shared(relative: str, root: Path | None = None) -> Path:
    """``../shared/data/<relative>``; skip the test when it is absent, fail instead under ``$NSAS_REQUIRE_SHARED_DATA``."""
    path = (root or SHARED_DATA) / relative
    if not path.exists():
        message = f"shared data missing: {path}"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{message} ({REQUIRE_ENV} is set)")
        pytest.skip(message)
    return path
