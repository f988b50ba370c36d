"""``logger=mlflow``: one MLflow run per training run (so one per Hydra job in a sweep).

By default the store is local and needs no server: an SQLite database and an artefact folder under
``outputs/mlflow/`` (MLflow 3 refuses its old plain-folder store). ``mlflow ui --backend-store-uri
sqlite:///outputs/mlflow/mlflow.db`` opens it. ``logger.tracking_uri`` points at a server instead.
Recorded: the flattened config as params, every per-epoch value as a metric (step = epoch), the run's
metrics.json and config as artefacts, the run dir and best checkpoint path as tags. Parallel sweep jobs share
one store safely (:mod:`insseg.engine.loggers.mlflow_store`); a sweep's runs hang under one parent run named after
its overrides, each named after its own values (:mod:`insseg.engine.loggers.mlflow_sweep`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from insseg.engine.loggers.base import RunLogger
from insseg.engine.loggers.mlflow_store import experiment_id, open_store, retry_locked, sweep_job

# MLflow's limits: 100 params and 1000 metrics per batch call, 6000 characters per param value.
_PARAM_BATCH, _METRIC_BATCH, _PARAM_CHARS = 100, 1000, 6000


class MLflowLogger(RunLogger):
    def __init__(self, logger_cfg: Any, run_name: str, output_dir: Path) -> None:
        self.client, artifacts = open_store(logger_cfg)
        experiment = experiment_id(self.client, logger_cfg.experiment, artifacts)
        tags = {
            "insseg.output_dir": str(output_dir.resolve()),
            "insseg.best_checkpoint": str((output_dir / "checkpoints" / "best.pt").resolve()),
        }
        parent, job_name = sweep_job(output_dir)
        if parent is not None:  # a job of a sweep: grouped under the sweep's run, named by its swept values
            tags["mlflow.parentRunId"] = parent
            tags["insseg.job"] = output_dir.name
        created = retry_locked(self.client.create_run, experiment, run_name=job_name or run_name, tags=tags)
        self.run_id = created.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), _PARAM_BATCH):
            retry_locked(self.client.log_batch, self.run_id, params=items[i : i + _PARAM_BATCH])

    def log_epoch(self, values: Mapping[str, float], epoch: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in values.items()]
        for i in range(0, len(metrics), _METRIC_BATCH):
            retry_locked(self.client.log_batch, self.run_id, metrics=metrics[i : i + _METRIC_BATCH])

    def log_artifact(self, path: Path) -> None:
        if path.is_file():
            retry_locked(self.client.log_artifact, self.run_id, os.fspath(path))

    def close(self, failed: bool = False) -> None:
        retry_locked(self.client.set_terminated, self.run_id, status="FAILED" if failed else "FINISHED")
