"""One checkpoint, one set of numbers: training-time evaluation, evaluate.py, and predict.py
(``predict.score_threshold=0``) followed by ``evaluate.py eval.predictions=`` agree exactly on a model that has
learned (segm AP > 0.3), because they share the loader, the inference loop, the record and the evaluators."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from insseg.config import compose_config
from insseg.engine.trainer import run_training
from insseg.evaluation.pipeline import run_evaluation
from insseg.evaluation.split import split_differences
from insseg.inference.predict_pipeline import run_prediction

COCO_KEYS = ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75")
# The smoke model on small generated images, 3 epochs: segm AP about 0.5-0.6 (0.21, 0.49, 0.61 measured).
DATA = [
    "data.synthetic.num_images=60",
    "data.num_test=12",
    "data.synthetic.height=96",
    "data.synthetic.width=128",
    "data.max_train_images=null",
    "data.max_eval_images=null",
]
MODEL = ["model.min_size=128", "model.max_size=160"]


def _paths(tmp: Path) -> list[str]:
    return [f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={tmp / 'cache'}"]


@pytest.mark.slow
def test_one_checkpoint_scores_the_same_through_every_path(tmp_path):
    common = ["experiment=smoke", "device=cpu", *DATA, *MODEL, *_paths(tmp_path)]
    trained = run_training(
        compose_config(
            "train",
            [*common, "train.epochs=3", "train.lr=0.01", "train.lr_step_size=100", "train.print_freq=50"],
            output_dir=tmp_path / "train",
        )
    )
    assert trained["segm_AP"] > 0.3, trained  # it has learned: the comparison below means something
    ckpt = tmp_path / "train" / "checkpoints" / "last.pt"

    direct = run_evaluation(
        compose_config(
            "evaluate", [*common, f"model.weights={ckpt}", "eval.cache=false"], output_dir=tmp_path / "evaluate"
        )
    )
    images = Path(compose_config("predict", common).data.root) / "PNGImages"  # every image, train ones too
    predicted = run_prediction(
        compose_config(
            "predict",
            [
                *common,
                f"model.weights={ckpt}",
                f"input={images}",
                "predict.score_threshold=0",
                "predict.save_overlays=false",
                "predict.save_masks=false",
            ],
            output_dir=tmp_path / "predict",
        )
    )
    from_file = run_evaluation(
        compose_config(
            "evaluate", [*common, f"eval.predictions={predicted['predictions']}"], output_dir=tmp_path / "from_file"
        )
    )
    for key in COCO_KEYS:
        assert trained[key] == direct[key] == from_file[key], key
    for key in ("mean_iou", "mean_f1", "instance_precision", "instance_recall", "num_predictions"):
        assert direct[key] == from_file[key], key
    saved = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert saved["segm_AP"] == direct["segm_AP"]


def test_split_differences_name_the_settings_that_differ():
    trained = compose_config("train", ["experiment=smoke", "data.split_seed=3"])
    evaluated = compose_config("evaluate", ["experiment=smoke"]).data
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(trained, resolve=True)
    assert split_differences(config, evaluated) == ["data.split_seed: trained 3, evaluated 0"]
    assert split_differences(config, compose_config("evaluate", ["experiment=smoke", "data.split_seed=3"]).data) == []
    voc = compose_config("evaluate", ["experiment=smoke", "data.layout=voc"]).data
    assert split_differences(config, voc) == []  # VOC's split is its list files, not a seed


def test_evaluate_py_warns_when_the_checkpoint_saw_other_images(tmp_path, caplog):
    common = [
        "experiment=smoke",
        "device=cpu",
        "model.min_size=64",
        "model.max_size=96",
        "data.synthetic.num_images=8",
        "data.num_test=3",
        "data.synthetic.height=48",
        "data.synthetic.width=64",
        *_paths(tmp_path),
    ]
    run_training(compose_config("train", [*common, "data.split_seed=5"], output_dir=tmp_path / "train"))
    ckpt = tmp_path / "train" / "checkpoints" / "last.pt"
    with caplog.at_level(logging.WARNING, logger="insseg"):
        run_evaluation(
            compose_config(
                "evaluate", [*common, f"model.weights={ckpt}", "eval.save_masks=false"], output_dir=tmp_path / "eval"
            )
        )
    assert "data.split_seed: trained 5, evaluated 0" in caplog.text and "training images" in caplog.text
