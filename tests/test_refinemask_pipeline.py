"""RefineMask through train.py's and evaluate.py's code paths: fine-tuning, our checkpoints, VOC evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import smoke_overrides
from refinemask_fixtures import checkpoint_path

from insseg.config import compose_config
from insseg.engine.trainer import run_training
from insseg.evaluation.pipeline import run_evaluation
from insseg.models import build_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint_path(tmp_path_factory)


def test_finetune_from_official_checkpoint_then_reload(tmp_path: Path, pennfudan_root: Path, ckpt: Path) -> None:
    overrides = smoke_overrides(tmp_path, pennfudan_root) + [
        "model=refinemask",
        f"model.weights={ckpt}",
        "data.max_train_images=2",
        "data.max_eval_images=1",
    ]
    metrics = run_training(compose_config("train", overrides, output_dir=tmp_path / "run"))
    assert metrics["segm_AP"] == json.loads((tmp_path / "run" / "metrics.json").read_text())["segm_AP"]
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["model_name"] == "refinemask" and saved["class_names"] == ["person"]
    # The fine-tuned head has one class; the backbone came from the official checkpoint and was fine-tuned.
    assert saved["model"]["roi_head.bbox_head.fc_cls.weight"].shape[0] == 2
    model = build_model(
        compose_config(
            "evaluate", ["model=refinemask", f"model.weights={tmp_path / 'run' / 'checkpoints' / 'last.pt'}"]
        ).model
    )
    assert model.class_names == ["person"]
    assert all(torch.equal(v, saved["model"][k]) for k, v in model.state_dict().items())


def test_evaluate_refinemask_on_voc_bridges_coco_names(tmp_path: Path, voc_root: Path, ckpt: Path) -> None:
    overrides = smoke_overrides(tmp_path, voc_root, layout="voc") + [
        "model=refinemask",
        f"model.weights={ckpt}",
        "eval.score_threshold=0.3",
        "data.max_eval_images=2",
    ]
    metrics = run_evaluation(compose_config("evaluate", overrides, output_dir=tmp_path / "eval"))
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    names = {c["name"] for c in predictions["categories"]}
    assert "airplane" in names and "person" in names and len(names) == 80, "the model's own COCO classes"
    # Matching counts the detections above the threshold whose COCO class has a VOC name (the bridge).
    coco_to_voc = {
        "airplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "dining table",
        "dog",
        "horse",
        "motorcycle",
        "person",
        "potted plant",
        "sheep",
        "couch",
        "train",
        "tv",
    }
    name = {c["id"]: c["name"] for c in predictions["categories"]}
    bridged = [a for a in predictions["annotations"] if a["score"] > 0.3 and name[a["category_id"]] in coco_to_voc]
    assert metrics["num_images"] == 2 and metrics["num_predictions"] == len(bridged)
