"""The model factory: weight sources, class handling, and clear errors for weights that do not fit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from insseg.config import compose_config
from insseg.errors import CheckpointError, ConfigError
from insseg.models import build_model
from insseg.models.maskrcnn import COCO_CATEGORIES
from insseg.models.weights_cache import load_torchvision_weights


def _model_cfg(*overrides: str):
    return compose_config("train", ["experiment=smoke", "model.min_size=64", "model.max_size=96", *overrides]).model


def test_random_model_is_sized_for_the_dataset() -> None:
    model = build_model(_model_cfg(), ["cat", "dog"], fit_to_dataset=True)
    assert model.class_names == ["cat", "dog"]
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    model.eval()
    with torch.inference_mode():
        out = model([torch.rand(3, 64, 80)])[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"}
    assert out["masks"].shape[1:] == (1, 64, 80)


def test_torchvision_state_dict_on_disk_keeps_coco_classes(tmp_path: Path) -> None:
    cfg = _model_cfg("model.backbone=resnet50")
    coco = build_model(cfg, None)  # weights=null without dataset classes: COCO-sized heads
    assert len(coco.class_names) == len(COCO_CATEGORIES) - 1
    path = tmp_path / "coco.pth"
    torch.save(coco.state_dict(), path)
    loaded = build_model(_model_cfg("model.backbone=resnet50", f"model.weights={path}"))
    assert loaded.class_names == COCO_CATEGORIES[1:]
    assert torch.equal(
        loaded.state_dict()["roi_heads.box_predictor.cls_score.weight"],
        coco.state_dict()["roi_heads.box_predictor.cls_score.weight"],
    )
    # Fine-tuning from that file replaces the predictors, as the tutorial does.
    tuned = build_model(_model_cfg("model.backbone=resnet50", f"model.weights={path}"), ["person"], fit_to_dataset=True)
    assert tuned.roi_heads.box_predictor.cls_score.out_features == 2


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"absent\.pt does not exist.*model.weights=null"):
        build_model(_model_cfg(f"model.weights={tmp_path / 'absent.pt'}"), ["person"])


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(build_model(_model_cfg(), None).state_dict(), path)  # resnet18 backbone, 91 classes
    with pytest.raises(CheckpointError, match="do not fit this model"):
        build_model(_model_cfg("model.backbone=resnet50", f"model.weights={path}"))


def test_garbage_weights_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read weights file .*junk.pth"):
        build_model(_model_cfg(f"model.weights={path}"), ["person"])


def test_mmdet_checkpoint_needs_refinemask(tmp_path: Path) -> None:
    path = tmp_path / "mmdet.pth"
    torch.save({"meta": {"CLASSES": ["a"]}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="model=refinemask"):
        build_model(_model_cfg(f"model.weights={path}"))


def test_default_weights_offline_fail_fast_with_instructions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_torchvision_weights("http://127.0.0.1:9/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth") in message
    assert "model.weights=null" in message


def test_default_weights_need_the_resnet50_backbone() -> None:
    with pytest.raises(ConfigError, match="model.backbone=resnet50"):
        build_model(_model_cfg("model.weights=DEFAULT"), ["person"], fit_to_dataset=True)


def test_missing_refinemask_checkpoint_says_where_to_get_it(tmp_path: Path) -> None:
    cfg = compose_config("evaluate", ["model=refinemask", f"paths.models_dir={tmp_path}"]).model
    with pytest.raises(CheckpointError, match=r"r50-coco-2x\.pth.*drive\.google\.com") as info:
        build_model(cfg)
    assert "models" in str(info.value)


def test_training_checks_weights_before_preparing_data(tmp_path: Path) -> None:
    """A missing weights file fails before a dataset is downloaded or generated."""
    from insseg.engine.trainer import run_training

    cfg = compose_config(
        "train",
        ["experiment=smoke", f"model.weights={tmp_path / 'absent.pt'}", f"paths.data_dir={tmp_path / 'data'}"],
        output_dir=tmp_path / "run",
    )
    with pytest.raises(CheckpointError, match="absent.pt"):
        run_training(cfg)
    assert not (tmp_path / "data").exists()
