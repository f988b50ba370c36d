"""Where training reports go (``logger=tensorboard|mlflow|csv``): one small interface, one backend per run.

The trainer reports per-iteration values (``train/loss/<term>``, ``train/lr``), per-epoch values
(``epoch/loss/<term>``: the epoch's mean, ``epoch/lr``, ``val/<metric>`` when it evaluated), the
flattened config once, prediction overlays, and the run's files (metrics.json, config) at the end.
Each backend stores what suits it; the base class ignores everything, which is what ranks other than
0 get under DDP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from insseg.errors import ConfigError

LOGGERS = ("tensorboard", "mlflow", "csv")


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
        """Per-class AP and PR curves of an evaluated :class:`~insseg.evaluation.coco.CocoEvaluator`."""

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


def build_run_logger(logger_cfg: Any, out_dir: Path, run_name: str) -> RunLogger:
    """The backend that ``logger.name`` names, writing below ``out_dir`` (MLflow: its own store)."""
    name = logger_cfg.name
    if name == "tensorboard":
        from insseg.engine.tensorboard import TensorBoardLogger

        return TensorBoardLogger(out_dir / "tensorboard")
    if name == "csv":
        from insseg.engine.csv_logger import CsvLogger

        return CsvLogger(out_dir / "metrics.csv")
    if name == "mlflow":
        from insseg.engine.mlflow_logger import MLflowLogger

        return MLflowLogger(logger_cfg, run_name=run_name, output_dir=out_dir)
    raise ConfigError(f"config key 'logger.name' is '{name}'; expected one of: {', '.join(LOGGERS)}")
