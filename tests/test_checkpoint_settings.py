"""A project checkpoint rebuilds the model it was trained with, from model.weights alone; a key given explicitly
wins and is logged as differing; the experiment's defaults never override the checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from insseg.config import compose_config
from insseg.engine.trainer import run_training
from insseg.evaluation.pipeline import run_evaluation
from insseg.inference.segmenter import Segmenter
from insseg.models import build_model
from insseg.models.checkpoint_settings import explicit_model_keys, with_checkpoint_model
from insseg.models.weights_file import CHECKPOINT_FORMAT

TRAINED = ["model.min_size=96", "model.max_size=112", "model.detections_per_img=7", "model.box_score_thresh=0.2"]


def test_explicit_model_keys_of_command_line_overrides():
    overrides = ["experiment=smoke", "model=maskrcnn", "model.min_size=64", "+model.extra.x=1", "~model.foo", "seed=1"]
    assert explicit_model_keys(overrides) == {"min_size", "extra", "foo"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random ResNet-18 Mask R-CNN saved as a project checkpoint with non-default settings."""
    tmp = tmp_path_factory.mktemp("ckpt")
    cfg = compose_config("train", ["experiment=smoke", "device=cpu", *TRAINED])
    model = build_model(cfg.model, ["person"], fit_to_dataset=True)
    path = tmp / "best.pt"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "model_name": "maskrcnn",
            "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
            "class_names": ["person"],
        },
        path,
    )
    return path


def test_the_checkpoint_settings_win_over_the_experiment_defaults(checkpoint):
    cfg = compose_config("evaluate", ["experiment=smoke", f"model.weights={checkpoint}"])
    assert cfg.model.min_size == 192  # the smoke experiment's default
    model_cfg = with_checkpoint_model(cfg).model
    assert (model_cfg.min_size, model_cfg.max_size) == (96, 112)
    assert (model_cfg.detections_per_img, model_cfg.box_score_thresh) == (7, 0.2)
    assert model_cfg.weights == str(checkpoint)


def test_a_key_given_explicitly_wins_and_is_logged(checkpoint, caplog):
    overrides = ["experiment=smoke", f"model.weights={checkpoint}", "model.min_size=64"]
    with caplog.at_level(logging.WARNING):
        model_cfg = with_checkpoint_model(compose_config("evaluate", overrides), explicit_model_keys(overrides)).model
    assert (model_cfg.min_size, model_cfg.max_size) == (64, 112)
    assert "model.min_size: checkpoint 96, given 64 on the command line" in caplog.text


def test_the_segmenter_rebuilds_the_trained_model(checkpoint):
    seg = Segmenter.from_config(["experiment=smoke", f"model.weights={checkpoint}", "device=cpu"])
    transform, heads = seg.model.transform, seg.model.roi_heads
    assert (transform.min_size, transform.max_size) == ((96,), 112)
    assert (heads.detections_per_img, heads.score_thresh) == (7, 0.2)
    given = Segmenter.from_config(["experiment=smoke", f"model.weights={checkpoint}", "model.max_size=200"])
    assert given.model.transform.max_size == 200 and given.model.transform.min_size == (96,)


@pytest.mark.slow
def test_a_model_trained_at_small_sizes_scores_its_training_ap_from_its_checkpoint_alone(tmp_path):
    """Trained at 128/160 with 20 detections an image; evaluate.py given only model.weights (and the data) gives
    the training's numbers; the smoke experiment's 192/256 would not."""
    data = [
        "data.synthetic.num_images=60",
        "data.num_test=12",
        "data.synthetic.height=96",
        "data.synthetic.width=128",
        "data.max_train_images=null",
        "data.max_eval_images=null",
    ]
    paths = [f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}", "eval.cache=false"]
    common = ["experiment=smoke", "device=cpu", *data, *paths]
    model = ["model.min_size=128", "model.max_size=160", "model.detections_per_img=20"]
    train = [*common, *model, "train.epochs=3", "train.lr=0.01", "train.lr_step_size=100", "train.print_freq=50"]
    trained = run_training(compose_config("train", train, output_dir=tmp_path / "train"))
    assert trained["segm_AP"] > 0.3, trained
    ckpt = f"model.weights={tmp_path / 'train' / 'checkpoints' / 'last.pt'}"
    alone = run_evaluation(compose_config("evaluate", [*common, ckpt], output_dir=tmp_path / "alone"))
    for key in ("segm_AP", "segm_AP50", "bbox_AP", "num_predictions"):
        assert alone[key] == trained[key], key
    given = ["model.min_size=192", "model.max_size=256"]
    other = run_evaluation(
        compose_config("evaluate", [*common, ckpt, *given], output_dir=tmp_path / "given"), explicit_model_keys(given)
    )
    assert other["segm_AP"] != trained["segm_AP"]
