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
