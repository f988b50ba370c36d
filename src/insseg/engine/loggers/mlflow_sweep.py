"""A Hydra callback that groups a sweep's MLflow runs under one parent run (``logger=mlflow`` only).

At the start of a multirun it creates the store (once, before any job starts), the experiment and a parent run
named after the sweep's overrides, and leaves its id in ``<sweep dir>/mlflow_parent.json`` for the jobs; at the
end it marks the parent finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from insseg.engine.loggers.mlflow_store import experiment_id, open_store, retry_locked, write_parent


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a sweep varies (``train.lr=0.1,0.2`` -> ``train.lr``)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.key_or_group for o in parsed if o.is_sweep_override()]


class MLflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.client: Any = None
        self.run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        logger_cfg = OmegaConf.select(config, "logger")
        if logger_cfg is None or logger_cfg.get("name") != "mlflow":
            return
        overrides = list(config.hydra.overrides.task)
        swept = swept_keys(overrides)
        sweep_dir = Path(config.hydra.sweep.dir)
        self.client, artifacts = open_store(logger_cfg)
        exp = experiment_id(self.client, logger_cfg.experiment, artifacts)
        name = f"sweep {sweep_dir.name}: " + " ".join(o for o in overrides if o.split("=", 1)[0] in swept)
        tags = {"insseg.sweep_dir": str(sweep_dir.resolve())}
        self.run_id = retry_locked(self.client.create_run, exp, run_name=name, tags=tags).info.run_id
        write_parent(sweep_dir, self.run_id, swept)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.client is not None and self.run_id is not None:
            retry_locked(self.client.set_terminated, self.run_id, status="FINISHED")
