"""PNG plots of a run, from its metrics history: the loss terms and AP/AR over the steps.

Written with matplotlib's Agg backend (no display needed), atomically (temporary file, then rename), so a
viewer that refreshes the files never shows half an image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PlotConfig", "write_plots"]


@dataclass(frozen=True)
class PlotConfig:
    """Loss curves are smoothed with a moving average of `smoothing` records (the raw curve drawn faintly)."""

    smoothing: int = 10
    dpi: int = 100
    loss_terms: tuple[str, ...] = ("total", "skhm", "short", "mid", "bhm")
    eval_terms: tuple[str, ...] = ("AP", "AP50", "AP75", "AR")


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, total, queue = [], 0.0, []
    for v in values:
        queue.append(v)
        total += v
        if len(queue) > window:
            total -= queue.pop(0)
        out.append(total / len(queue))
    return out


def _save(figure: Any, path: Path, dpi: int) -> None:
    temp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temp, dpi=dpi)
    os.replace(temp, path)


def write_plots(records: Sequence[dict[str, Any]], out_dir: str | Path, config: PlotConfig | None = None) -> list[Path]:
    """Write loss.png (and ap.png once there is an evaluation) into `out_dir`; return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = PlotConfig() if config is None else config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    if train:
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        steps = [r["step"] for r in train]
        for term in config.loss_terms:
            pairs = [(s, r[term]) for s, r in zip(steps, train, strict=True) if r.get(term) is not None]
            if not pairs:
                continue
            xs, ys = zip(*pairs, strict=True)
            line = axes[0].plot(xs, _smooth(ys, config.smoothing), label=term)[0]
            axes[0].plot(xs, ys, color=line.get_color(), alpha=0.2, linewidth=0.8)
        axes[0].set_yscale("log")
        axes[0].set_xlabel("step")
        axes[0].set_ylabel("loss (unweighted terms; total weighted)")
        axes[0].set_title("training loss")
        axes[0].grid(True, which="both", alpha=0.3)
        axes[0].legend()
        lr = [(r["step"], r["lr"]) for r in train if r.get("lr") is not None]
        if lr:
            xs, ys = zip(*lr, strict=True)
            axes[1].plot(xs, ys, color="tab:gray")
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("learning rate")
        axes[1].set_title("learning rate")
        axes[1].grid(True, alpha=0.3)
        figure.tight_layout()
        _save(figure, out / "loss.png", config.dpi)
        plt.close(figure)
        written.append(out / "loss.png")
    if evals:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for term in config.eval_terms:
            pairs = [(r["step"], r[term]) for r in evals if r.get(term) is not None]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                axis.plot(xs, ys, marker="o", label=term)
        axis.set_ylim(0, 1)
        axis.set_xlabel("step")
        axis.set_ylabel("COCO keypoint AP / AR (EMA model)")
        axis.set_title("validation")
        axis.grid(True, alpha=0.3)
        axis.legend()
        figure.tight_layout()
        _save(figure, out / "ap.png", config.dpi)
        plt.close(figure)
        written.append(out / "ap.png")
    return written
