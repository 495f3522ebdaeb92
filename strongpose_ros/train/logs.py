"""What a run records: a JSON-lines metrics history, TensorBoard scalars, and PNG plots from the history.

`metrics.jsonl` in the run folder is the source of truth for the plots: one line per record, `{"step": n,
"kind": "train" | "eval", ...numbers}`. On resume the records after the checkpoint's step are dropped
(that work is redone), so the history never holds a step twice.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "TensorBoard"]


class MetricsLog:
    """Append-only JSON-lines history of training and evaluation figures."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        else:
            kept = [r for r in self.read() if r.get("step", 0) <= resume_step]
            temp = self.path.with_name(self.path.name + ".tmp")
            temp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
            os.replace(temp, self.path)

    def append(self, kind: str, step: int, values: Mapping[str, float]) -> None:
        record: dict[str, Any] = {"kind": kind, "step": int(step)}
        record |= {k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a kill: skip it
        return records


class TensorBoard:
    """TensorBoard scalars under RUN_DIR/tensorboard (a no-op, with one warning, if tensorboard is missing)."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is optional for the trainer to work
            print(f"strongpose train: TensorBoard logging off ({exc})")
            self.writer = None
            return
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, prefix: str, step: int, values: Mapping[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            if value is not None and math.isfinite(float(value)):
                self.writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
