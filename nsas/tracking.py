"""Optional TensorBoard mirror of ``metrics.jsonl`` (``--tensorboard``; needs ``pip install 'nsas[tensorboard]'``).

``metrics.jsonl`` stays the record; the mirror writes the same numbers as
TensorBoard scalars under ``RUN_DIR/tensorboard``, tagged ``KIND/KEY``
(``step/loss``, ``epoch/test_acc``, ...) at the record's ``step``. Probe
records add ``probe/acc_mean`` and ``probe/loss_mean``. Open them with
``tensorboard --logdir RUN_DIR/tensorboard``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from nsas.errors import NsasError


def require_tensorboard() -> None:
    """Raise a clear error when the tensorboard extra is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise NsasError("--tensorboard needs the tensorboard extra: pip install 'nsas[tensorboard]'")


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The finite numeric fields of one metrics record, as TensorBoard tags."""
    kind = record.get("kind", "record")
    out = {f"{kind}/{k}": float(v) for k, v in record.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step" and math.isfinite(v)}
    probe = record.get("probe")
    if isinstance(probe, list) and probe:
        for key in ("acc", "loss"):
            values = [p[key] for p in probe if isinstance(p.get(key), (int, float))]
            if values:
                out[f"probe/{key}_mean"] = sum(values) / len(values)
    return out


class TensorBoardMirror:
    """Wraps a metrics writer: every record goes to it, and its numbers to TensorBoard too.

    Args:
        writer: the ``metrics.jsonl`` writer (anything with ``write(record)``).
        log_dir: the TensorBoard event folder.
        enabled: False on data-parallel ranks other than 0.
    """

    def __init__(self, writer: Any, log_dir: str | Path, *, enabled: bool = True) -> None:
        self.writer, self.board = writer, None
        if enabled:
            require_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(log_dir=str(log_dir))

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)
        if self.board is None:
            return
        step = int(record.get("step", 0))
        for tag, value in scalars(record).items():
            self.board.add_scalar(tag, value, step)
        self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def open_metrics(run_dir: Path, *, resume_step: int | None, enabled: bool, tensorboard: bool) -> Any:
    """The run's ``metrics.jsonl`` writer, mirrored to ``run_dir/tensorboard`` when asked (search and train)."""
    from nsas.rundir import MetricsWriter

    writer = MetricsWriter(run_dir / "metrics.jsonl", resume_step=resume_step, enabled=enabled)
    return TensorBoardMirror(writer, run_dir / "tensorboard", enabled=enabled) if tensorboard else writer
