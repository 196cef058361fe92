"""Tests that need ../shared/data skip without it, and fail without it when CI asks for it."""

from __future__ import annotations

import pytest

from shared_data import REQUIRE_ENV, require_shared


def test_missing_shared_data_skips_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="shared data missing: .*cifar10-jpeg.tar.gz"):
        require_shared("cifar10-jpeg.tar.gz", root=tmp_path)


def test_missing_shared_data_fails_when_required(tmp_path, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"shared data missing: .*ptb .*{REQUIRE_ENV}"):
        require_shared("ptb", root=tmp_path)


def test_present_shared_data_is_returned(tmp_path, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "1")
    (tmp_path / "ptb").mkdir()
    assert require_shared("ptb", root=tmp_path) == tmp_path / "ptb"


def test_ci_requires_the_shared_data():
    from pathlib import Path

    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert f"export {REQUIRE_ENV}=1" in ci
