"""Training control on short runs with scripted evaluation results: best.pt across a resume, early stopping,
eval_every, the per-iteration schedule, and the csv and mlflow loggers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import smoke_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import insseg.engine.trainer as trainer
from insseg.config import compose_config
from insseg.engine.optim import build_schedule
from insseg.engine.validation import Evaluation


def tiny(tmp_path: Path, data_root: Path, *extra: str) -> list[str]:
    """The smoke model at its smallest: 2 training images (1 iteration per epoch), 64-96 px."""
    return smoke_overrides(tmp_path, data_root) + [
        "data.max_train_images=2",
        "model.min_size=64",
        "model.max_size=96",
        "train.warmup_iters=0",
        *extra,
    ]


@pytest.fixture
def scripted_ap(monkeypatch: pytest.MonkeyPatch):
    """Replace the per-epoch evaluation by a script of segm AP values; records the epochs it was called at."""
    script: list[float] = []
    calls: list[int] = []

    def evaluate(model, dataset, device, eval_cfg, dist_info=None, report_dir=None, precision="float32", print_freq=50):
        calls.append(len(calls))
        ap = script.pop(0)
        return Evaluation(
            {"segm_AP": ap, "segm_AP50": ap, "segm_AP75": ap, "bbox_AP": ap, "bbox_AP50": ap, "bbox_AP75": ap}
        )

    monkeypatch.setattr(trainer, "evaluate_coco", evaluate)
    return script, calls


def read_ckpt(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def test_best_checkpoint_is_the_best_over_a_resume(tmp_path: Path, pennfudan_root: Path, scripted_ap) -> None:
    script, _ = scripted_ap
    script += [0.30, 0.10, 0.20]
    first = tmp_path / "first"
    trainer.run_training(compose_config("train", tiny(tmp_path, pennfudan_root, "train.epochs=1"), output_dir=first))
    second = tmp_path / "second"
    trainer.run_training(
        compose_config(
            "train",
            tiny(tmp_path, pennfudan_root, "train.epochs=3", f"train.resume={first / 'checkpoints' / 'last.pt'}"),
            output_dir=second,
        )
    )
    best = read_ckpt(second / "checkpoints" / "best.pt")
    assert best["epoch"] == 0 and best["metrics"]["segm_AP"] == 0.30
    assert torch.equal(
        best["model"]["roi_heads.mask_predictor.mask_fcn_logits.weight"],
        read_ckpt(first / "checkpoints" / "best.pt")["model"]["roi_heads.mask_predictor.mask_fcn_logits.weight"],
    )
    saved = json.loads((second / "metrics.json").read_text())
    assert (saved["best_segm_AP"], saved["best_epoch"]) == (0.30, 0)
    assert (saved["segm_AP"], saved["epoch"], saved["early_stopped"]) == (0.20, 2, False)
    assert read_ckpt(second / "checkpoints" / "last.pt")["epoch"] == 2


def test_early_stopping_keeps_the_best_and_logs_csv(tmp_path: Path, pennfudan_root: Path, scripted_ap) -> None:
    script, calls = scripted_ap
    script += [0.10, 0.30, 0.20, 0.25, 0.90]
    run = tmp_path / "run"
    trainer.run_training(
        compose_config(
            "train",
            tiny(tmp_path, pennfudan_root, "train.epochs=5", "train.early_stopping=2", "logger=csv"),
            output_dir=run,
        )
    )
    assert len(calls) == 4, "stopped after two evaluations without improvement (epochs 2 and 3)"
    assert read_ckpt(run / "checkpoints" / "best.pt")["epoch"] == 1
    assert read_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 3
    saved = json.loads((run / "metrics.json").read_text())
    assert (saved["best_segm_AP"], saved["best_epoch"], saved["early_stopped"]) == (0.30, 1, True)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["val/segm_AP"]) for r in rows] == [0.10, 0.30, 0.20, 0.25]
    assert all(float(r["epoch/loss/total"]) > 0 for r in rows)
    # Resuming a run that stopped early trains nothing more.
    trainer.run_training(
        compose_config(
            "train",
            tiny(
                tmp_path,
                pennfudan_root,
                "train.epochs=5",
                "train.early_stopping=2",
                f"train.resume={run / 'checkpoints' / 'last.pt'}",
            ),
            output_dir=tmp_path / "again",
        )
    )
    assert len(calls) == 4


def test_eval_every_and_the_per_iteration_schedule(tmp_path: Path, pennfudan_root: Path, scripted_ap) -> None:
    """eval_every=2 over 3 epochs evaluates after epochs 1 and 2 (the last); the lr follows the cosine schedule
    per iteration (4 training images, batch 2: 2 iterations per epoch)."""
    script, calls = scripted_ap
    script += [0.1, 0.2]
    run = tmp_path / "run"
    cfg = compose_config(
        "train",
        tiny(
            tmp_path,
            pennfudan_root,
            "train.epochs=3",
            "train.eval_every=2",
            "data.max_train_images=4",
            "train.lr_schedule=cosine",
            "train.warmup_iters=1",
        ),
        output_dir=run,
    )
    trainer.run_training(cfg)
    assert len(calls) == 2
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("val/segm_AP")] == [1, 2]
    lrs = [e.value for e in events.Scalars("train/lr")]
    schedule = build_schedule(cfg.train, 1, 2)
    assert lrs == pytest.approx([schedule.lr_at(i) for i in range(6)], rel=1e-6)
    assert lrs[0] == pytest.approx(0.002 * 0.001) and lrs[3] == pytest.approx(0.002 * 0.5)


def test_mlflow_runs_read_back_through_mlflow(tmp_path: Path, pennfudan_root: Path, scripted_ap) -> None:
    """Two jobs (as in a Hydra sweep) are two MLflow runs in one local store, with params, metrics, artefacts."""
    mlflow = pytest.importorskip("mlflow")
    script, _ = scripted_ap
    script += [0.1, 0.4, 0.3]
    store = tmp_path / "outputs" / "mlflow"
    for job, (lr, epochs) in enumerate((("0.001", 2), ("0.002", 1))):
        run_dir = tmp_path / "outputs" / "train" / "smoke_maskrcnn_pennfudan" / "multirun" / "t" / str(job)
        trainer.run_training(
            compose_config(
                "train",
                tiny(tmp_path, pennfudan_root, f"train.epochs={epochs}", "logger=mlflow", f"train.lr={lr}"),
                output_dir=run_dir,
            )
        )
    assert (store / "mlflow.db").is_file()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("train/smoke_maskrcnn_pennfudan")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.run_name for r in runs] == [
        "smoke_maskrcnn_pennfudan/multirun/t/0",
        "smoke_maskrcnn_pennfudan/multirun/t/1",
    ]
    assert [r.data.params["train.lr"] for r in runs] == ["0.001", "0.002"]
    first = runs[0]
    assert first.info.status == "FINISHED" and first.data.params["model.backbone"] == "resnet18"
    assert [(m.step, m.value) for m in client.get_metric_history(first.info.run_id, "val/segm_AP")] == [
        (0, 0.1),
        (1, 0.4),
    ]
    for key in ("epoch/loss/total", "epoch/loss/loss_mask", "epoch/lr"):
        assert [m.step for m in client.get_metric_history(first.info.run_id, key)] == [0, 1]
    assert {a.path for a in client.list_artifacts(first.info.run_id)} >= {"metrics.json", "config.yaml"}
    local = Path(client.download_artifacts(first.info.run_id, "metrics.json", str(tmp_path / "dl")))
    assert json.loads(local.read_text())["best_segm_AP"] == 0.4
    assert first.data.tags["insseg.best_checkpoint"].endswith("multirun/t/0/checkpoints/best.pt")
