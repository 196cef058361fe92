"""Run-directory files survive a kill in the middle of a write."""

from __future__ import annotations

import pytest

from nsas.errors import NsasError
from nsas.rundir import MetricsWriter, read_metrics


def test_half_written_last_line_is_dropped_on_read_and_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    writer = MetricsWriter(path, resume_step=2)
    writer.write({"step": 3, "kind": "step"})
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(NsasError, match="line 2"):
        read_metrics(tmp_path)


def test_fresh_writer_truncates(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 9}\n')
    MetricsWriter(path).write({"step": 1})
    assert read_metrics(tmp_path) == [{"step": 1}]
