"""``logger=tensorboard|mlflow|csv``: the one backend of a run, built from its config. Apart from the
interface (:mod:`insseg.engine.loggers.base`) so that the backends import the interface and nothing imports
them but this factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insseg.engine.loggers.base import RunLogger
from insseg.errors import ConfigError

LOGGERS = ("tensorboard", "mlflow", "csv")


def build_run_logger(logger_cfg: Any, out_dir: Path, run_name: str) -> RunLogger:
    """The backend that ``logger.name`` names, writing below ``out_dir`` (MLflow: its own store)."""
    name = logger_cfg.name
    if name == "tensorboard":
        from insseg.engine.loggers.tensorboard_logger import TensorBoardLogger

        return TensorBoardLogger(out_dir / "tensorboard")
    if name == "csv":
        from insseg.engine.loggers.csv_logger import CsvLogger

        return CsvLogger(out_dir / "metrics.csv")
    if name == "mlflow":
        from insseg.engine.loggers.mlflow_logger import MLflowLogger

        return MLflowLogger(logger_cfg, run_name=run_name, output_dir=out_dir)
    raise ConfigError(f"config key 'logger.name' is '{name}'; expected one of: {', '.join(LOGGERS)}")
