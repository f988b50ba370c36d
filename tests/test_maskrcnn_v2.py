"""model.variant=v2: torchvision's maskrcnn_resnet50_fpn_v2, trained, resumed, evaluated and predicted like v1, and
rebuilt as v2 from its checkpoint alone (whatever model.variant says when the file is loaded)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

from insseg.config import compose_config
from insseg.engine.trainer import run_training
from insseg.errors import ConfigError
from insseg.evaluation.pipeline import run_evaluation
from insseg.inference.predict_pipeline import run_prediction
from insseg.models import build_model
from insseg.models.maskrcnn import coco_weights, state_dict_variant

COCO_KEYS = ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75")


def _model_cfg(*overrides: str):
    return compose_config("train", ["model.weights=null", "model.min_size=64", "model.max_size=96", *overrides]).model


def test_v2_is_torchvisions_maskrcnn_resnet50_fpn_v2():
    ours = build_model(_model_cfg("model.variant=v2"), None)  # weights=null, no dataset: COCO-sized heads
    theirs = maskrcnn_resnet50_fpn_v2(weights=None)
    assert str(ours.backbone) == str(theirs.backbone) and str(ours.roi_heads) == str(theirs.roi_heads)
    assert str(ours.rpn) == str(theirs.rpn)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert state_dict_variant(ours.state_dict()) == "v2"
    assert state_dict_variant(build_model(_model_cfg(), None).state_dict()) == "v1"
    assert coco_weights(_model_cfg("model.variant=v2")).url.endswith("maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth")


def test_v2_heads_are_sized_for_the_dataset_and_a_v2_state_dict_is_recognised(tmp_path: Path):
    cfg = _model_cfg("model.variant=v2", "model.backbone=resnet18")
    model = build_model(cfg, ["cat", "dog"], fit_to_dataset=True)
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    path = tmp_path / "v2.pth"
    torch.save(build_model(_model_cfg("model.variant=v2"), None).state_dict(), path)
    # The file's keys say v2; model.variant (v1 here) does not have to.
    loaded = build_model(_model_cfg(f"model.weights={path}"))
    assert state_dict_variant(loaded.state_dict()) == "v2"


def test_v2_default_weights_offline_name_the_file_to_put_in_the_cache(tmp_path: Path, monkeypatch):
    import urllib.error

    from insseg.errors import CheckpointError
    from insseg.models import check_weights_available

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cfg = compose_config("train", ["model.variant=v2"]).model
    with pytest.raises(
        CheckpointError, match=r"hub/checkpoints/maskrcnn_resnet50_fpn_v2_coco-73cbd019\.pth.*no network"
    ):
        check_weights_available(cfg)
    with pytest.raises(CheckpointError, match="maskrcnn_resnet50_fpn_v2_coco"):
        build_model(cfg, ["person"], fit_to_dataset=True)


def test_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="model.variant.*v3"):
        compose_config("train", ["model.variant=v3"])


def _paths(tmp: Path) -> list[str]:
    return [f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={tmp / 'cache'}"]


TINY = [
    "experiment=smoke",
    "device=cpu",
    "model.min_size=64",
    "model.max_size=96",
    "model.detections_per_img=10",
    "data.synthetic.num_images=6",
    "data.num_test=2",
    "data.synthetic.height=48",
    "data.synthetic.width=64",
    "eval.reports.html=false",
]


def test_v2_smoke_epoch_checkpoint_is_rebuilt_as_v2_and_scores_the_same(tmp_path: Path, caplog):
    """One smoke epoch of v2 with LSJ; evaluate.py is given model.variant=v1 and must rebuild v2 from the
    checkpoint alone (its recorded config), and again from its keys when the record lacks the variant."""
    common = [*TINY, *_paths(tmp_path)]
    train = [*common, "model.variant=v2", "data.augment=[lsj,photometric]"]
    with caplog.at_level(logging.INFO, logger="insseg"):
        trained = run_training(compose_config("train", train, output_dir=tmp_path / "train"))
    assert "data.augment=[lsj, photometric]: RandomPhotometricDistort" in caplog.text  # printed at the start
    ckpt_path = tmp_path / "train" / "checkpoints" / "last.pt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["model_cfg"]["variant"] == "v2" and state_dict_variant(ckpt["model"]) == "v2"
    old_style = tmp_path / "old_style.pt"  # a checkpoint that does not record the variant
    del ckpt["model_cfg"]["variant"]
    torch.save(ckpt, old_style)
    for path in (ckpt_path, old_style):
        evaluate = [*common, "model.variant=v1", f"model.weights={path}", "eval.cache=false"]
        direct = run_evaluation(compose_config("evaluate", evaluate, output_dir=tmp_path / f"evaluate_{path.stem}"))
        for key in COCO_KEYS:
            assert trained[key] == direct[key] or (trained[key] != trained[key] and direct[key] != direct[key]), key
    resumed = run_training(
        compose_config("train", [*train, "train.epochs=2", f"train.resume={ckpt_path}"], output_dir=tmp_path / "more")
    )
    assert resumed["epoch"] == 1


DATA = [
    "data.synthetic.num_images=60",
    "data.num_test=12",
    "data.synthetic.height=96",
    "data.synthetic.width=128",
    "data.max_train_images=null",
    "data.max_eval_images=null",
]


@pytest.mark.slow
def test_v2_learns_and_scores_the_same_through_every_path(tmp_path: Path):
    """tests/test_parity.py for v2: training-time evaluation, evaluate.py and predict.py -> eval.predictions=."""
    common = ["experiment=smoke", "device=cpu", "model.min_size=128", "model.max_size=160", *DATA, *_paths(tmp_path)]
    train = [*common, "model.variant=v2", "train.epochs=3", "train.lr=0.01", "train.lr_step_size=100"]
    trained = run_training(compose_config("train", [*train, "train.print_freq=50"], output_dir=tmp_path / "train"))
    assert trained["segm_AP"] > 0.2, trained  # it has learned: the comparison below means something
    ckpt = tmp_path / "train" / "checkpoints" / "last.pt"
    evaluate = [*common, f"model.weights={ckpt}", "eval.cache=false"]
    direct = run_evaluation(compose_config("evaluate", evaluate, output_dir=tmp_path / "evaluate"))
    images = Path(compose_config("predict", common).data.root) / "PNGImages"
    predict = [*common, f"model.weights={ckpt}", f"input={images}", "predict.score_threshold=0"]
    predict += ["predict.save_overlays=false", "predict.save_masks=false"]
    predicted = run_prediction(compose_config("predict", predict, output_dir=tmp_path / "predict"))
    from_file = run_evaluation(
        compose_config(
            "evaluate", [*common, f"eval.predictions={predicted['predictions']}"], output_dir=tmp_path / "from_file"
        )
    )
    for key in COCO_KEYS:
        assert trained[key] == direct[key] == from_file[key], key
    for key in ("mean_iou", "mean_f1", "instance_precision", "instance_recall", "num_predictions"):
        assert direct[key] == from_file[key], key
