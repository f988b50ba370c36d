"""hydra/sweeper=optuna_ap: the project's Optuna settings over hydra-optuna-sweeper, and a real 3-trial search whose
optimization_results.yaml names the best trial (read back from each trial's metrics.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from insseg.config.compose import CONF_DIR
from insseg.config.schema import register_configs

REPO = Path(__file__).resolve().parents[1]


def test_optuna_sweeper_config_maximises_with_seeded_tpe():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra/sweeper=optuna_ap", "hydra.sweeper.n_trials=7"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and sweeper.storage is None and sweeper.n_jobs == 1
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert sweeper.n_trials == 7


@pytest.mark.slow
def test_three_trial_search_reports_the_best_trial(tmp_path: Path):
    logs = tmp_path / "logs"
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        "hydra/sweeper=optuna_ap",
        "hydra.sweeper.n_trials=3",
        "train.lr=interval(0.002,0.02)",
        "train.epochs=choice(1,2)",
        "experiment=smoke",
        "device=cpu",
        "logger=mlflow",
        f"paths.log_dir={logs}",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.synthetic.num_images=12",
        "data.num_test=3",
        "data.synthetic.height=64",
        "data.synthetic.width=96",
        "data.max_train_images=null",
        "data.max_eval_images=null",
        "model.min_size=64",
        "model.max_size=96",
        "model.detections_per_img=10",
        "eval.reports.html=false",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = logs.glob("train/*/multirun/*/optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    trials = sorted(p for p in results.parent.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(trials) == 3
    values = {t.name: json.loads((t / "metrics.json").read_text())["segm_AP"] for t in trials}
    assert best["best_value"] == pytest.approx(max(values.values()))
    best_trial = max(values, key=values.get)
    overrides = yaml.safe_load((results.parent / best_trial / ".hydra" / "overrides.yaml").read_text())
    chosen = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in best["best_params"])
    assert {k: float(v) for k, v in chosen.items()} == {k: float(v) for k, v in best["best_params"].items()}

    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{logs / 'mlflow' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("train/")]
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]  # every trial, under the sweep's run
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in [*trials, parent])
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    logged = sorted(r.data.metrics["val/segm_AP"] for r in trials)
    assert logged == pytest.approx(sorted(values.values()))
