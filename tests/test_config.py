"""Config composition and validation: typos and out-of-range values fail with the key named."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from insseg.config import compose_config
from insseg.errors import ConfigError


def test_defaults_compose_to_the_tutorial_recipe() -> None:
    cfg = compose_config("train", ["model=maskrcnn", "data=pennfudan"])
    assert cfg.data.name == "pennfudan" and cfg.model.name == "maskrcnn"
    assert (cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay) == (0.005, 0.9, 0.0005)
    assert (cfg.train.lr_step_size, cfg.train.lr_gamma, cfg.train.epochs, cfg.train.batch_size) == (3, 0.1, 10, 2)
    assert cfg.data.num_test == 50 and cfg.model.weights == "DEFAULT"


def test_smoke_experiment_does_not_pin_the_dataset(tmp_path) -> None:
    cfg = compose_config("train", ["experiment=smoke", "data=pennfudan", f"data.root={tmp_path}"])
    assert cfg.data.name == "pennfudan" and cfg.data.root == str(tmp_path)
    assert cfg.train.epochs == 1 and cfg.model.weights is None


@pytest.mark.parametrize("override", ["train.lrr=0.1", "data.rooot=/x"])
def test_typo_in_override_names_the_key(override: str) -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as info:
        compose_config("train", [override])
    assert override.split("=")[0].split(".")[-1] in str(info.value) + str(info.value.__cause__)


def test_wrong_type_is_rejected() -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        compose_config("train", ["train.epochs=ten"])
    assert "epochs" in str(info.value) + str(info.value.__cause__)


def test_unknown_group_option_is_rejected() -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("train", ["data=imagenet"])  # data=coco exists: COCO-format data
    assert "imagenet" in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.lr=-0.1", "train.lr"),
        ("train.epochs=0", "train.epochs"),
        ("eval.score_threshold=1.5", "eval.score_threshold"),
        ("model.min_size=2000", "model.min_size"),
        ("data.num_workers=-1", "data.num_workers"),
        ("device.type=tpu", "device.type"),
        ("eval.reports.gallery=-1", "eval.reports.gallery"),
    ],
)
def test_out_of_range_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose_config("train", [override])


def test_refinemask_evaluates_on_voc_unless_told_otherwise() -> None:
    assert compose_config("evaluate", ["model=refinemask"]).data.name == "voc"
    assert compose_config("evaluate", ["model=refinemask", "data=pennfudan"]).data.name == "pennfudan"
    assert compose_config("evaluate", ["data=pennfudan", "model=refinemask"]).data.name == "pennfudan"
    assert compose_config("evaluate", []).data.name == "synthetic"


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model=refinemask", "model.backbone=resnet18"], "backbone"),  # a Mask R-CNN key
        (["model=refinemask", "model.box_nms_thresh=0.9"], "box_nms_thresh"),
        (["model=maskrcnn", "model.no_such_key=1"], "no_such_key"),
    ],
)
def test_each_model_accepts_only_its_own_keys(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("train", overrides)
    text = str(info.value) + str(info.value.__cause__)
    assert key in text and ("RefineMaskConfig" in text or "MaskRCNNConfig" in text)


def test_each_model_config_holds_only_the_keys_its_builder_reads() -> None:
    refinemask = compose_config("train", ["model=refinemask"]).model
    assert "backbone" not in refinemask and "rpn_pre_nms_top_n_test" not in refinemask
    assert "rpn_pre_nms_top_n_test" in compose_config("train", ["model=maskrcnn"]).model
    # experiment=smoke brings each model's own small settings.
    assert compose_config("train", ["experiment=smoke", "model=refinemask"]).model.max_size == 256
    assert compose_config("train", ["experiment=smoke"]).model.backbone == "resnet18"


def test_evaluation_and_prediction_run_float32_unless_amp_is_asked_for() -> None:
    import torch

    from insseg.utils.device import inference_precision

    cfg = compose_config("evaluate", [])
    assert cfg.device.amp is False
    assert inference_precision(cfg.device, torch.device("cuda")) == "float32"
    amp = compose_config("evaluate", ["device.amp=true", "device.amp_dtype=bfloat16"]).device
    assert inference_precision(amp, torch.device("cuda")) == "bfloat16"
    assert inference_precision(amp, torch.device("cpu")) == "float32"  # autocast is CUDA-only here
