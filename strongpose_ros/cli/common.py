"""Helpers shared by the verbs."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
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


def number(kind: type[int] | type[float] = int, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> Callable[[str], int | float]:
    """An argparse `type` that parses an int or float within [low, high] (or (low, high] with low_open)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
            bound = f"{'>' if low_open else '>='} {low}" if low is not None else ""
            bound += (" and " if bound and high is not None else "") + (f"<= {high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


NON_NEGATIVE_INT = number(int, 0)
POSITIVE_INT = number(int, 1)
POSITIVE_FLOAT = number(float, 0.0, low_open=True)
FRACTION = number(float, 0.0, 1.0)
