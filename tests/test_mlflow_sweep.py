"""A parallel joblib sweep with logger=mlflow into a fresh store records every run, named and grouped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from insseg.engine.loggers.mlflow_store import retry_locked
from insseg.engine.loggers.mlflow_sweep import swept_keys

ROOT = Path(__file__).resolve().parents[1]


def test_swept_keys_are_the_overrides_with_several_values():
    assert swept_keys(["experiment=smoke", "train.lr=0.001,0.002", "seed=range(3)", "logger=mlflow"]) == [
        "train.lr",
        "seed",
    ]


def test_database_is_locked_is_retried_and_other_errors_are_not():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "done"

    assert retry_locked(flaky, delay=0.001) == "done" and len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("no such table")

    calls.clear()
    with pytest.raises(RuntimeError, match="no such table"):
        retry_locked(broken, delay=0.001)
    assert len(calls) == 1


@pytest.mark.slow
def test_a_parallel_sweep_into_a_fresh_store_records_three_finished_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    args = [
        "-m",
        "experiment=smoke",
        "logger=mlflow",
        "train.lr=0.001,0.002,0.003",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=3",
        "device=cpu",
        "device.num_threads=1",
        f"paths.log_dir={tmp_path / 'outputs'}",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.synthetic.num_images=8",
        "data.num_test=2",
        "data.synthetic.height=64",
        "data.synthetic.width=80",
        "model.min_size=64",
        "model.max_size=96",
        "eval.reports.html=false",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("train/smoke_maskrcnn_synthetic")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].info.run_name.endswith("train.lr=0.001,0.002,0.003")
    assert sorted(r.info.run_name for r in children) == ["train.lr=0.001", "train.lr=0.002", "train.lr=0.003"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.params["train.lr"] for r in children) == ["0.001", "0.002", "0.003"]
