"""Helpers shared by the verbs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def write_json(path: str | Path | None, figures: dict[str, Any]) -> None:
    """Write a verb's figures to `path` (when given), with stable names, NaN as null."""
    if path is None:
        return
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in figures.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
