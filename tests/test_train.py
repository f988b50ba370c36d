"""Smoke training end to end: artefacts, resume, class-count checks, DDP on gloo."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, smoke_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from insseg.config import compose_config
from insseg.engine.trainer import run_training
from insseg.errors import CheckpointError
from insseg.models import build_model

METRICS = ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, pennfudan_root: Path) -> tuple[Path, dict, list[str]]:
    """One smoke epoch, shared by the tests that inspect its artefacts."""
    tmp = tmp_path_factory.mktemp("train")
    overrides = smoke_overrides(tmp, pennfudan_root)
    run_dir = tmp / "outputs" / "train" / "smoke_maskrcnn_pennfudan" / "first"
    metrics = run_training(compose_config("train", overrides, output_dir=run_dir))
    return run_dir, metrics, overrides


def test_one_epoch_writes_every_artefact(trained_run) -> None:
    run_dir, metrics, _ = trained_run
    assert (run_dir / "config.yaml").is_file()
    for name in ("last.pt", "best.pt"):
        assert (run_dir / "checkpoints" / name).is_file()
    saved = json.loads((run_dir / "metrics.json").read_text())
    for key in METRICS:
        assert 0.0 <= saved[key] <= 1.0 and saved[key] == metrics[key]
    assert saved["epoch"] == 0
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    for term in ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"):
        assert f"train/loss/{term}" in scalars
    assert "train/lr" in scalars and "val/segm_AP" in scalars
    assert 0.0 <= saved["boundary_AP"] <= 1.0 and "val/boundary_AP" in scalars  # eval.boundary is on by default
    assert "epoch/loss/total" in scalars and "epoch/lr" in scalars
    assert events.Tags()["images"], "prediction overlays are logged"


def test_checkpoint_is_self_describing_and_reloads(trained_run) -> None:
    run_dir, _, overrides = trained_run
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["class_names"] == ["person"] and ckpt["model_cfg"]["backbone"] == "resnet18"
    # The data split it was trained on, so evaluation can tell whether a split would hold training images.
    data = ckpt["config"]["data"]
    assert (data["name"], data["split_seed"], data["num_test"]) == ("pennfudan", 0, 4)
    # The checkpoint rebuilds its own architecture even when the config names another backbone.
    cfg = compose_config("evaluate", [f"model.weights={run_dir / 'checkpoints' / 'last.pt'}"])
    model = build_model(cfg.model)
    assert model.class_names == ["person"]
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in model.state_dict().items())


def test_resume_continues_with_full_state(trained_run, tmp_path: Path) -> None:
    run_dir, _, overrides = trained_run
    cfg = compose_config(
        "train",
        overrides + ["train.epochs=2", f"train.resume={run_dir / 'checkpoints' / 'last.pt'}"],
        output_dir=tmp_path / "resumed",
    )
    run_training(cfg)
    ckpt = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    first = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert ckpt["lr_scheduler"]["last_epoch"] == 2 * 2, "stepped per iteration: 2 epochs of 2 iterations"
    step_counts = {s["step"].item() for s in ckpt["optimizer"]["state"].values() if "step" in s}
    first_counts = {s["step"].item() for s in first["optimizer"]["state"].values() if "step" in s}
    assert all(c > max(first_counts) for c in step_counts), "optimizer state (momentum buffers) carried over"


def test_resume_auto_finds_newest_checkpoint_of_the_experiment(trained_run, tmp_path: Path, caplog) -> None:
    run_dir, _, overrides = trained_run
    log_dir = run_dir.parents[2]
    new_run = log_dir / "train" / "smoke_maskrcnn_pennfudan" / "second"
    caplog.set_level("INFO", logger="insseg")
    run_training(compose_config("train", overrides + ["train.resume=auto"], output_dir=new_run))
    assert "resuming" in caplog.text and str(run_dir) in caplog.text
    assert "nothing to train" in caplog.text, "epoch 0 of 1 was already done by the first run"
    assert (new_run / "metrics.json").is_file()


def test_checkpoint_for_other_class_count_is_refused(trained_run, tmp_path: Path, voc_root: Path) -> None:
    run_dir, _, _ = trained_run
    ckpt = run_dir / "checkpoints" / "last.pt"
    cfg = compose_config(
        "train",
        smoke_overrides(tmp_path, voc_root, layout="voc") + [f"train.resume={ckpt}"],
        output_dir=tmp_path / "run",
    )
    with pytest.raises(CheckpointError, match="trained for 1 classes .* dataset has 20"):
        run_training(cfg)
    cfg = compose_config(
        "train",
        smoke_overrides(tmp_path, voc_root, layout="voc") + [f"model.weights={ckpt}"],
        output_dir=tmp_path / "run2",
    )
    with pytest.raises(CheckpointError, match="trained for 1 classes"):
        run_training(cfg)


def test_images_without_instances_train_and_evaluate(tmp_path: Path, pennfudan_root: Path) -> None:
    """Image 0 of the generated set has no objects; put it in both splits."""
    overrides = smoke_overrides(tmp_path, pennfudan_root) + [
        "data.num_test=11",
        "data.max_train_images=1",
        "data.max_eval_images=1",
        "data.split_seed=3",
    ]
    from insseg.data import pennfudan_split

    train_idx, test_idx = pennfudan_split(12, 11, 3)
    assert train_idx[0] != 0 and test_idx[0] == 0  # eval holds the empty image; train a normal one
    metrics = run_training(compose_config("train", overrides, output_dir=tmp_path / "run"))
    # No ground truth to score: AP is undefined (NaN), written as null, and the run still checkpoints.
    assert math.isnan(metrics["segm_AP"])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["segm_AP"] is None
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


def test_cli_prints_clear_error_for_bad_input(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "train.py"),
            "experiment=smoke",
            "device=cpu",
            "data=pennfudan",
            f"data.root={tmp_path / 'absent'}",
            "data.download=false",
            f"paths.log_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "error: dataset folder" in result.stderr and "Traceback" not in result.stderr


def test_ddp_on_gloo_writes_one_run_dir(tmp_path: Path, pennfudan_root: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(REPO_ROOT / "train.py"),
            *smoke_overrides(tmp_path, pennfudan_root),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "train" / "smoke_maskrcnn_pennfudan").iterdir())
    assert len(runs) == 1, f"one run dir for both ranks, got {runs}"
    assert (runs[0] / "checkpoints" / "last.pt").is_file() and (runs[0] / "metrics.json").is_file()
    # 4 training images over 2 ranks with batch 2: each rank runs 1 iteration, and only rank 0 prints.
    assert result.stdout.count("Epoch: [0] [0/1]") == 1
    # train.lr (0.002 in experiment=smoke) is for 2 images; 2 processes x 2 images run at twice the rate.
    assert "optimizer: SGD lr 0.004 " in result.stdout


def test_ddp_nan_on_one_rank_stops_every_rank_with_the_same_error(tmp_path: Path, pennfudan_root: Path) -> None:
    """Losses are averaged over the ranks before the finiteness check: no rank is left waiting in an all-reduce."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(REPO_ROOT / "tests" / "ddp_nan_train.py"),
            str(tmp_path),
            *smoke_overrides(tmp_path, pennfudan_root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    stopped = [r for r in (0, 1) if (tmp_path / f"rank{r}.txt").is_file()]
    assert stopped == [0, 1], f"ranks that stopped on the error: {stopped}\n{result.stderr[-3000:]}"
    messages = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert messages[0] == messages[1], messages
    assert messages[0].startswith("training diverged: loss is nan at epoch 0, iteration 0")
    assert "averaged over 2 processes" in messages[0]
    stopped_at = [(tmp_path / f"rank{r}.txt").stat().st_mtime for r in (0, 1)]
    assert abs(stopped_at[0] - stopped_at[1]) < 5.0, "both ranks stop at the same iteration, not after a timeout"
