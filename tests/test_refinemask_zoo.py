"""Every released RefineMask checkpoint: the architecture and test settings are read from the checkpoint.

Reference data (``tests/fixtures/refinemask_zoo/``, README there): the official code (633ed2b) run on the
R101-COCO-2x, LVIS-R50-1x and Cityscapes-R50 configs with checkpoints written by ``make_checkpoint_zoo.py
--seed 10`` (laid out like the released files: official keys and shapes, ``meta.CLASSES`` and the mmdet config
text in ``meta.config``). The checkpoints are written at test time into a temporary folder.

Default run: config parsing, architecture, errors, the factory's settings, and ``predict`` on one photo with
the LVIS checkpoint. ``-m slow``: ``predict.py`` on the three photos for each of the three configs, each judged
by ``compare_predictions.py`` against the official float64 golden.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT
from refinemask_fixtures import ZOO_CONFIGS, ZOO_DIR, load_state_dict, require_fixture, zoo_checkpoint, zoo_module
from test_refinemask_detector import compare_module, photo_tensor

from insseg.config import compose_config
from insseg.errors import CheckpointError, ConfigError
from insseg.inference.predict_pipeline import run_prediction
from insseg.models.factory import build_model
from insseg.models.refinemask import VARIANTS, RefineMaskDetector, RefineMaskSpec, build_refinemask
from insseg.models.refinemask.mask_head import RefineMaskHead, select_class_logits
from insseg.models.refinemask.official_weights import CLASS_SPECIFIC_PREFIXES
from insseg.models.refinemask.preprocess import preprocess_exact
from insseg.models.refinemask.spec import (
    parse_config_text,
    settings_from_config,
    settings_from_state_dict,
    spec_from_checkpoint,
)

PHOTOS = ("astronaut", "coffee", "chelsea")
# One CPU thread: a fixed float summation order. LVIS coffee has a detection on a 0.5 px tall box at the top
# border whose one mask row samples probabilities at 0.50 +- 0.01: with 2 threads the box differs from the
# golden by 1.3e-4 px and 2 pixels turn on (mask IoU 0 against the golden's empty mask), which alone takes
# the mean mask IoU of that photo to 0.975 < 0.98. With 1 thread it stays empty, as in the official runs.
DEVICE = ("device=cpu", "device.num_threads=1")

# What the official configs say (README of the zoo goldens); every key settings_from_config reads.
OFFICIAL = {
    "r101-coco-2x": dict(
        depth=101,
        num_classes=80,
        stage_num_classes=(80, 80, 80, 80),
        img_scale=(1333, 800),
        score_thr=0.05,
        max_per_img=100,
        nms_thr=0.5,
        mask_thr=0.5,
        bbox_loss="l1",
    ),
    "lvis-r50-1x": dict(
        depth=50,
        num_classes=1203,
        stage_num_classes=(1203, 1203, 1203, 1),
        img_scale=(1333, 800),
        score_thr=0.0001,
        max_per_img=300,
        nms_thr=0.5,
        mask_thr=0.5,
        bbox_loss="l1",
    ),
    "cityscapes-r50": dict(
        depth=50,
        num_classes=8,
        stage_num_classes=(8, 8, 8, 8),
        img_scale=(2048, 1024),
        score_thr=0.05,
        max_per_img=100,
        nms_thr=0.5,
        mask_thr=0.5,
        bbox_loss="smooth_l1",
        bbox_loss_beta=1.0,
    ),
}


def meta_state_dict(config: str) -> dict[str, torch.Tensor]:
    """The official keys and shapes of ``config`` as storage-free tensors."""
    return {k: torch.empty(shape, device="meta") for k, shape in zoo_module().model_keys(config).items()}


# ----------------------------------------------------------------------------------------------- unit
@pytest.mark.parametrize("config", ZOO_CONFIGS)
def test_settings_from_the_official_config_text(config: str) -> None:
    assert settings_from_config(parse_config_text(zoo_module().CONFIG_TEXT[config])) == OFFICIAL[config]


@pytest.mark.parametrize("config", ZOO_CONFIGS)
def test_architecture_has_the_official_keys_and_shapes(config: str) -> None:
    """The model built from the checkpoint's spec has exactly the official state dict (R101: 724 tensors)."""
    spec = spec_from_checkpoint(meta_state_dict(config), {"config": zoo_module().CONFIG_TEXT[config]}, config)
    assert spec == RefineMaskSpec(**OFFICIAL[config])
    got = {k: list(v.shape) for k, v in RefineMaskDetector(spec).state_dict().items()}
    assert got == {k: list(s) for k, s in zoo_module().model_keys(config).items()}


def test_tensors_decide_the_architecture_and_contradictions_are_errors() -> None:
    assert settings_from_state_dict(meta_state_dict("r101-coco-2x"), "x") == {
        "depth": 101,
        "num_classes": 80,
        "stage_num_classes": (80, 80, 80, 80),
    }
    # a config path instead of the config text (older files): official r50-coco test settings
    spec = spec_from_checkpoint(meta_state_dict("cityscapes-r50"), {"config": "configs/x.py"}, "x")
    assert spec == RefineMaskSpec(num_classes=8, stage_num_classes=(8, 8, 8, 8))
    with pytest.raises(CheckpointError, match="config says depth=50 but its tensors hold 101"):
        spec_from_checkpoint(
            meta_state_dict("r101-coco-2x"), {"config": zoo_module().CONFIG_TEXT["lvis-r50-1x"]}, "mixed.pth"
        )
    sd = {k: v for k, v in meta_state_dict("cityscapes-r50").items() if not k.startswith("backbone.layer3.5.")}
    with pytest.raises(CheckpointError, match="5 blocks in layer3"):
        settings_from_state_dict(sd, "cut.pth")


def test_class_agnostic_stage_uses_channel_zero() -> None:
    """LVIS's last stage has one output; every label reads it (the official code clamps the label to 0)."""
    torch.manual_seed(0)
    head = RefineMaskHead(5, (5, 5, 5, 1))
    assert [s.instance_logits.out_channels for s in head.stages] == [5, 5, 5]
    conv = head.final_instance_logits
    assert conv.out_channels == 1
    feats = torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        got = select_class_logits(conv, feats, torch.tensor([0, 4]))
        want = conv(feats)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="stage_num_classes"):
        RefineMaskHead(5, (5, 5, 3, 1))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_missing_checkpoint_names_the_variant_download(tmp_path: Path, name: str) -> None:
    with pytest.raises(CheckpointError) as e:
        build_refinemask(weights=str(tmp_path / f"{name}.pth"))
    assert VARIANTS[name].url in str(e.value) and f"models/{name}.pth" in str(e.value)


def test_variant_key_names_file_and_link(tmp_path: Path) -> None:
    cfg = compose_config(
        "predict", ["model=refinemask", "model.variant=lvis-r101-1x", f"paths.models_dir={tmp_path}"]
    ).model
    assert cfg.weights == f"{tmp_path}/lvis-r101-1x.pth"
    with pytest.raises(CheckpointError, match="13cLKIFwlMg_QSAuXHEwISehm4PlB95eC"):
        build_model(cfg)
    bad = compose_config("predict", ["model=refinemask", "model.variant=r200-coco"]).model
    with pytest.raises(ConfigError, match="model.variant.*r200-coco.*cityscapes-r50"):
        build_model(bad)


# ------------------------------------------------------------------------------ with made checkpoints
@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zoo_checkpoint(tmp_path_factory, "cityscapes-r50")


@pytest.fixture(scope="module")
def lvis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zoo_checkpoint(tmp_path_factory, "lvis-r50-1x")


def _model_cfg(weights: Path, *overrides: str):
    return compose_config("predict", ["model=refinemask", f"model.weights={weights}", *overrides]).model


def test_cityscapes_settings_come_from_the_checkpoint(cityscapes: Path) -> None:
    model = build_model(_model_cfg(cityscapes))
    assert model.class_names == list(zoo_module().CITYSCAPES_CLASSES)
    assert model.img_scale == (2048, 1024) and model.score_thresh == 0.05 and model.detections_per_img == 100
    assert model.roi_head.bbox_head.bbox_loss == "smooth_l1"
    # chelsea (300x451) is upscaled to the official 1024x1539, not 800x1203
    assert preprocess_exact([photo_tensor("chelsea")], scale=model.img_scale).metas[0]["img_shape"][:2] == (1024, 1539)
    custom = build_model(
        _model_cfg(
            cityscapes,
            "model.min_size=800",
            "model.max_size=1333",
            "model.box_score_thresh=0.3",
            "model.detections_per_img=7",
        )
    )
    assert custom.img_scale == (1333, 800) and custom.score_thresh == 0.3 and custom.detections_per_img == 7
    assert build_model(_model_cfg(cityscapes, "model.max_size=1500")).img_scale == (1500, 1024)


def test_checkpoint_that_does_not_fit_is_an_error(cityscapes: Path) -> None:
    with pytest.raises(CheckpointError, match=r"8 classes \(person, rider, car, truck, \.\.\.\).*80 classes"):
        build_refinemask(weights=str(cityscapes), num_classes=80)
    with pytest.raises(CheckpointError, match="ResNet-50 RefineMask, but depth=101"):
        build_refinemask(weights=str(cityscapes), depth=101)
    with pytest.raises(CheckpointError, match="ResNet-50 RefineMask, but depth=101"):
        build_model(_model_cfg(cityscapes, "model.depth=101"))


def test_fine_tuning_reinitialises_class_layers_and_says_so(cityscapes: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        model = build_model(_model_cfg(cityscapes), ["cat", "dog"], fit_to_dataset=True)
    assert "fine-tuning from 8 to 2 classes; re-initialised the class-specific layers" in caplog.text
    assert model.class_names == ["cat", "dog"] and model.roi_head.bbox_head.fc_cls.out_features == 3
    assert model.roi_head.bbox_head.bbox_loss == "smooth_l1"  # the checkpoint's recipe is kept
    sd = load_state_dict(cityscapes)
    for k, v in model.state_dict().items():
        if not k.startswith(CLASS_SPECIFIC_PREFIXES):
            assert torch.equal(v, sd[k]), k


def test_lvis_settings_and_class_agnostic_stage(lvis: Path) -> None:
    model = build_model(_model_cfg(lvis))
    assert len(model.class_names) == 1203 and model.class_names[0] == "aerosol_can"
    assert model.score_thresh == 0.0001 and model.detections_per_img == 300 and model.img_scale == (1333, 800)
    assert model.roi_head.mask_head.final_instance_logits.out_channels == 1
    # fine-tuning keeps the last stage class-agnostic
    tuned = build_refinemask(weights=str(lvis), class_names=["a", "b"], fine_tune=True)
    assert tuned.roi_head.mask_head.stage_num_classes == (2, 2, 2, 1)


def test_r101_checkpoint_loads_every_tensor(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = zoo_checkpoint(tmp_path_factory, "r101-coco-2x")
    model = build_refinemask(weights=str(path))
    sd = load_state_dict(path)
    own = model.state_dict()
    assert len(sd) == 724 and set(own) == set(sd) and len(model.backbone.layer3) == 23
    assert all(torch.equal(own[k], v) for k, v in sd.items())


# ------------------------------------------------------------------------------ end to end
def _judge(config: str, photo: str, predictions: dict) -> None:
    golden = json.loads(require_zoo(f"{config}_{photo}.float64.json").read_text())
    one = {
        "images": [im for im in predictions["images"] if im["file_name"] == f"{photo}.png"],
        "categories": predictions["categories"],
    }
    image_id = one["images"][0]["id"]
    one["annotations"] = [a for a in predictions["annotations"] if a["image_id"] == image_id]
    ok, result = compare_module().compare(golden, one, verbose=False)
    assert ok, f"{config} {photo}: {result}"


def require_zoo(name: str) -> Path:
    path = ZOO_DIR / name
    assert path.is_file(), f"{path} missing"
    return path


def test_predict_lvis_reproduces_official_detections(tmp_path: Path, lvis: Path) -> None:
    """run_prediction(cfg) with the LVIS checkpoint on chelsea: 1203 classes, score floor 1e-4, class-agnostic stage."""
    photo = tmp_path / "in" / "chelsea.png"
    photo.parent.mkdir()
    shutil.copy(require_fixture("chelsea.png"), photo)
    cfg = compose_config(
        "predict",
        [
            "model=refinemask",
            f"model.weights={lvis}",
            "predict.score_threshold=0",
            *DEVICE,
            f"input={photo}",
            "predict.save_overlays=false",
            "predict.save_masks=false",
        ],
        output_dir=tmp_path / "run",
    )
    run_prediction(cfg)
    _judge("lvis-r50-1x", "chelsea", json.loads((tmp_path / "run" / "predictions.json").read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("config", ZOO_CONFIGS)
def test_predict_cli_reproduces_official_detections(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, config: str
) -> None:
    """The acceptance command: ``predict.py model=refinemask model.weights=<ckpt> predict.score_threshold=0``
    on the three photos, each judged against the official float64 golden."""
    ckpt = zoo_checkpoint(tmp_path_factory, config)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(require_fixture(f"{name}.png"), folder / f"{name}.png")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "predict.py"),
            "model=refinemask",
            f"model.weights={ckpt}",
            "predict.score_threshold=0",
            *DEVICE,
            f"input={folder}",
            f"paths.log_dir={tmp_path / 'outputs'}",
            "predict.save_overlays=false",
            "predict.save_masks=false",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "outputs" / "predict").glob("*/*"))
    predictions = json.loads((run_dir / "predictions.json").read_text())
    for name in PHOTOS:
        _judge(config, name, predictions)
