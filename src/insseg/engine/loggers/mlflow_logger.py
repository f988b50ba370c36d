"""``logger=mlflow``: one MLflow run per training run (so one per Hydra job in a sweep).

By default the store is local and needs no server: an SQLite database and an artefact folder under
``outputs/mlflow/`` (MLflow 3 refuses its old plain-folder store). ``mlflow ui --backend-store-uri
sqlite:///outputs/mlflow/mlflow.db`` opens it. ``logger.tracking_uri`` points at a server instead.
Recorded: the flattened config as params, every per-epoch value as a metric (step = epoch), the run's
metrics.json and config as artefacts, the run dir and best checkpoint path as tags.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from insseg.engine.loggers.base import RunLogger
from insseg.errors import ConfigError

# MLflow's limits: 100 params and 1000 metrics per batch call, 6000 characters per param value.
_PARAM_BATCH, _METRIC_BATCH, _PARAM_CHARS = 100, 1000, 6000


class MLflowLogger(RunLogger):
    def __init__(self, logger_cfg: Any, run_name: str, output_dir: Path) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("logger=mlflow needs MLflow: pip install -e '.[mlflow]'") from None
        store = Path(logger_cfg.store_dir)
        if logger_cfg.tracking_uri:
            uri, artifacts = logger_cfg.tracking_uri, None
        else:
            store.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{store.resolve() / 'mlflow.db'}", (store.resolve() / "artifacts").as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        experiment_id = self._experiment_id(logger_cfg.experiment, artifacts)
        tags = {
            "insseg.output_dir": str(output_dir.resolve()),
            "insseg.best_checkpoint": str((output_dir / "checkpoints" / "best.pt").resolve()),
        }
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id

    def _experiment_id(self, name: str, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # a parallel sweep job created it first
            created = self.client.get_experiment_by_name(name)
            if created is None:
                raise
            return created.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), _PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _PARAM_BATCH])

    def log_epoch(self, values: Mapping[str, float], epoch: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in values.items()]
        for i in range(0, len(metrics), _METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + _METRIC_BATCH])

    def log_artifact(self, path: Path) -> None:
        if path.is_file():
            self.client.log_artifact(self.run_id, os.fspath(path))

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
