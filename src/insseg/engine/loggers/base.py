"""Where training reports go (``logger=tensorboard|mlflow|csv``): one small interface, one backend per run.

The trainer reports per-iteration values (``train/loss/<term>``, ``train/lr``), per-epoch values
(``epoch/loss/<term>``: the epoch's mean, ``epoch/lr``, ``val/<metric>`` when it evaluated), the
flattened config once, prediction overlays, and the run's files (metrics.json, config) at the end.
Each backend stores what suits it; the base class ignores everything, which is what ranks other than
0 get under DDP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch


class RunLogger:
    """The interface every backend implements; every method is optional (a no-op here)."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """The run's settings, flat (``train.lr`` -> 0.01)."""

    def log_step(self, values: Mapping[str, float], step: int) -> None:
        """Values of one training iteration (``step`` counts iterations over the whole training)."""

    def log_epoch(self, values: Mapping[str, float], epoch: int) -> None:
        """Values of one finished epoch."""

    def log_overlays(self, samples: Sequence[tuple[torch.Tensor, Any]], class_names: Sequence[str], epoch: int) -> None:
        """(image, prediction) pairs of the epoch's evaluation."""

    def log_evaluation(self, coco: Any, per_class: Mapping[str, Any] | None, epoch: int) -> None:
        """Per-class AP and PR curves from the pass's :class:`~insseg.evaluation.coco.CocoResults`."""

    def log_artifact(self, path: Path) -> None:
        """A file the run wrote (already in the run dir; backends with their own store copy it)."""

    def close(self, failed: bool = False) -> None:
        """Flush and finish; ``failed`` marks a run that ended with an error."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}``; lists stay values."""
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}." if isinstance(value, Mapping) else f"{prefix}{key}"))
    return {k.rstrip("."): v for k, v in flat.items()}
