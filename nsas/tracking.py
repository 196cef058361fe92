"""Optional TensorBoard mirror of ``metrics.jsonl`` (``--tensorboard``; needs ``pip install 'nsas[tensorboard]'``).

``metrics.jsonl`` stays the record; the mirror writes the same numbers as
TensorBoard scalars under ``RUN_DIR/tensorboard``, tagged ``KIND/KEY``
(``step/loss``, ``epoch/test_acc``, ...) at the record's ``step``. Probe
records add ``probe/acc_mean`` and ``probe/loss_mean``. ``step`` and
``epoch`` are the x axis, not metrics: they are never logged as scalars.

The run's config (``config.yaml``) is logged once, when the folder gets its
first event file (a resume adds none), in two forms:

- as hyperparameters (the HParams dashboard's session start, without an
  experiment summary, so TensorBoard takes every scalar tag as a metric):
  ``tensorboard --logdir runs/`` then shows a table of all runs with their
  config keys and last metric values, to sort and filter runs by any key.
  Its values must be numbers, strings or booleans: ``None`` is written as
  ``"none"``, lists and mappings as their JSON;
- as text (``config``): the whole ``config.yaml``, exactly as the run records it.

Open them with ``tensorboard --logdir RUN_DIR/tensorboard``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from nsas.errors import NsasError

AXES = ("step", "epoch")  # the x axis of a record, not a metric


def require_tensorboard() -> None:
    """Raise a clear error when the tensorboard extra is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise NsasError("--tensorboard needs the tensorboard extra: pip install 'nsas[tensorboard]'")


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The finite numeric fields of one metrics record, as TensorBoard tags."""
    kind = record.get("kind", "record")
    out = {f"{kind}/{k}": float(v) for k, v in record.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in AXES and math.isfinite(v)}
    probe = record.get("probe")
    if isinstance(probe, list) and probe:
        for key in ("acc", "loss"):
            values = [p[key] for p in probe if isinstance(p.get(key), (int, float))]
            if values:
                out[f"probe/{key}_mean"] = sum(values) / len(values)
    return out


def hparam_values(config: dict[str, Any]) -> dict[str, float | str | bool]:
    """A run's config as TensorBoard hyperparameters (numbers, strings, booleans; None as "none", the rest JSON)."""
    out: dict[str, float | str | bool] = {}
    for key, value in config.items():
        if value is None:
            out[key] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True, default=str)
    return out


class TensorBoardMirror:
    """Wraps a metrics writer: every record goes to it, and its numbers to TensorBoard too.

    Args:
        writer: the ``metrics.jsonl`` writer (anything with ``write(record)``).
        log_dir: the TensorBoard event folder.
        enabled: False on data-parallel ranks other than 0.
        config_path: the run's ``config.yaml``, logged with the first record (None: no config).
        resumed: the run continues: its config is logged only if the folder has no event file yet.
    """

    def __init__(self, writer: Any, log_dir: str | Path, *, enabled: bool = True,
                 config_path: str | Path | None = None, resumed: bool = False) -> None:
        self.writer, self.board = writer, None
        self.config_path = None
        if enabled:
            require_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            log_dir = Path(log_dir)
            fresh = not (resumed and any(log_dir.glob("events.out.tfevents.*")))  # a resume logged it before
            self.board = SummaryWriter(log_dir=str(log_dir))
            self.config_path = Path(config_path) if fresh and config_path is not None else None

    def _log_config(self) -> None:
        """The run's config, once: as hyperparameters and as the text of config.yaml."""
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb  # keeps booleans (torch's makes them 1.0)

        from nsas.config import read_yaml

        path, self.config_path = self.config_path, None
        if path is None or not path.is_file():
            return
        config = read_yaml(path)
        # a session start without an experiment summary: TensorBoard takes every scalar tag as a metric
        self.board.file_writer.add_summary(hparams_pb(hparam_values(config)))
        text = path.read_text(encoding="utf-8")
        self.board.add_text("config", "".join(f"    {line}\n" for line in text.splitlines()))  # a code block

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)
        if self.board is None:
            return
        if self.config_path is not None:
            self._log_config()
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
    if not tensorboard:
        return writer
    return TensorBoardMirror(writer, run_dir / "tensorboard", enabled=enabled, config_path=run_dir / "config.yaml",
                             resumed=resume_step is not None)
