"""One MLflow store shared by many processes: the jobs of a parallel sweep (joblib, SLURM) and their retries.

The local SQLite store is created (schema migrations included) under a file lock, so jobs that start together
never race to create it; a transient SQLite "database is locked" is retried. A sweep's jobs find their parent
run (made by :class:`insseg.engine.loggers.mlflow_sweep.MLflowSweepCallback`) in ``<sweep dir>/mlflow_parent.json``
and name their runs after the values the sweep gives them (``train.lr=0.002``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from insseg.errors import ConfigError
from insseg.utils.atomic import atomic_write_json

PARENT_FILE = "mlflow_parent.json"
T = TypeVar("T")


def retry_locked(fn: Callable[..., T], *args: Any, attempts: int = 8, delay: float = 0.25, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried with a growing pause while SQLite says "database is locked"."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if "database is locked" not in str(e) or attempt == attempts - 1:
                raise
            time.sleep(delay * 2**attempt)
    raise AssertionError("unreachable")


def open_store(logger_cfg: Any) -> tuple[Any, str | None]:
    """An MlflowClient on ``logger.tracking_uri`` or the local store in ``logger.store_dir`` (created once, under a
    file lock), and the artefact location for new experiments."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("logger=mlflow needs MLflow: pip install -e '.[mlflow]'") from None
    if logger_cfg.tracking_uri:
        return MlflowClient(tracking_uri=logger_cfg.tracking_uri), None
    from filelock import FileLock

    store = Path(logger_cfg.store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    with FileLock(str(store / ".create.lock")):
        retry_locked(client.search_experiments, max_results=1)  # creates and migrates the database
    return client, (store / "artifacts").as_uri()


def experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    found = retry_locked(client.get_experiment_by_name, name)
    if found is not None:
        return found.experiment_id
    try:
        return retry_locked(client.create_experiment, name, artifact_location=artifact_location)
    except MlflowException:  # a parallel sweep job created it first
        created = retry_locked(client.get_experiment_by_name, name)
        if created is None:
            raise
        return created.experiment_id


def write_parent(sweep_dir: Path, run_id: str, swept: list[str]) -> None:
    atomic_write_json(sweep_dir / PARENT_FILE, {"run_id": run_id, "swept": swept})


def sweep_job(output_dir: Path) -> tuple[str | None, str | None]:
    """(the sweep's parent run id, this job's name from its swept overrides) for a job dir of a sweep; Nones
    outside a sweep or without the callback."""
    parent = output_dir / ".." / PARENT_FILE
    if not parent.is_file():
        return None, None
    info = json.loads(parent.read_text())
    overrides_file = output_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    swept = set(info.get("swept") or [])
    chosen = [o for o in overrides or [] if str(o).split("=", 1)[0].lstrip("+~") in swept]
    return info.get("run_id"), (",".join(chosen) or None)
