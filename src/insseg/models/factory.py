"""The one model factory behind train.py, evaluate.py and predict.py.

``model.weights``: ``DEFAULT`` (pretrained COCO weights), ``null`` (random init) or a path to a weights file:
one of our checkpoints, a torchvision state dict, or (RefineMask) the official mmdetection release.

Every model returned carries ``class_names`` (label k means ``class_names[k - 1]``; 0 is background) and
follows torchvision's detection interface: ``model(images)`` in eval mode gives dicts of ``boxes`` (xyxy),
``labels``, ``scores`` and ``masks`` [N, 1, H, W] probabilities; in train mode ``model(images, targets)`` gives
a dict of losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict
from torch import nn

from insseg.errors import CheckpointError, ConfigError
from insseg.models.maskrcnn import (
    COCO_CATEGORIES,
    build_maskrcnn,
    has_frozen_bn,
    load_torchvision_state_dict,
    replace_predictors,
)
from insseg.models.weights_file import is_insseg_checkpoint, is_mmdet_checkpoint, read_weights_file


def check_weights_available(model_cfg: Any) -> None:
    """Fail before any long work (a dataset download, an epoch) when the weights cannot be had."""
    weights = model_cfg.weights
    if model_cfg.name == "refinemask":
        from insseg.models.refinemask.zoo import get_variant

        get_variant(model_cfg.variant)  # an unknown variant is a config error even with explicit weights
    if weights is None:
        return
    if weights == "DEFAULT":
        if model_cfg.name == "maskrcnn" and model_cfg.backbone == "resnet50":
            from insseg.models.maskrcnn import COCO_WEIGHTS
            from insseg.models.weights_cache import ensure_cached

            ensure_cached(COCO_WEIGHTS.url)
        return
    if not Path(weights).is_file():
        if model_cfg.name == "refinemask":
            from insseg.models.refinemask.zoo import missing_checkpoint_message

            raise CheckpointError(missing_checkpoint_message(weights, model_cfg.variant))
        read_weights_file(weights)  # raises with the path and what to do


def build_model(
    model_cfg: Any, dataset_classes: Sequence[str] | None = None, fit_to_dataset: bool = False
) -> nn.Module:
    """Build the model of ``model_cfg`` with its weights loaded.

    fit_to_dataset: give the model one output per class in ``dataset_classes`` (training). Otherwise the model
    keeps the classes of its weights (COCO, or those stored in the checkpoint) and evaluation bridges class
    names; ``dataset_classes`` then only sizes a randomly initialised model (``model.weights=null``).
    """
    if fit_to_dataset and not dataset_classes:
        raise ConfigError("training needs the dataset's class names to size the model's heads")
    weights = model_cfg.weights
    checkpoint = None
    if weights not in (None, "DEFAULT"):
        check_weights_available(model_cfg)
        checkpoint = read_weights_file(weights)
        if is_insseg_checkpoint(checkpoint):
            return _from_insseg_checkpoint(model_cfg, checkpoint, weights, dataset_classes, fit_to_dataset)
    if model_cfg.name == "maskrcnn":
        return _build_maskrcnn(model_cfg, checkpoint, dataset_classes, fit_to_dataset)
    if model_cfg.name == "refinemask":
        return _build_refinemask(model_cfg, checkpoint, dataset_classes, fit_to_dataset)
    raise ConfigError(f"config key 'model.name' is '{model_cfg.name}'; expected maskrcnn or refinemask")


def _build_maskrcnn(
    model_cfg: Any, state_dict: dict | None, dataset_classes: Sequence[str] | None, fit: bool
) -> nn.Module:
    coco_names = COCO_CATEGORIES[1:]
    if model_cfg.weights is None:
        names = list(dataset_classes) if dataset_classes else coco_names
        model = build_maskrcnn(model_cfg, len(names) + 1, pretrained_coco=False)
    elif state_dict is None:  # DEFAULT
        names = list(dataset_classes or ()) if fit else coco_names
        model = build_maskrcnn(model_cfg, len(names) + 1, pretrained_coco=True)
    else:  # a torchvision COCO state dict on disk
        if is_mmdet_checkpoint(state_dict):
            raise CheckpointError(
                f"{model_cfg.weights} is an mmdetection checkpoint; use it with model=refinemask, not model=maskrcnn"
            )
        model = build_maskrcnn(
            model_cfg, len(COCO_CATEGORIES), pretrained_coco=False, frozen_bn=has_frozen_bn(state_dict)
        )
        load_torchvision_state_dict(model, state_dict, str(model_cfg.weights))
        names = coco_names
        if fit:
            names = list(dataset_classes or ())
            replace_predictors(model, len(names) + 1)
    model.class_names = names
    return model


def _build_refinemask(
    model_cfg: Any, checkpoint: dict | None, dataset_classes: Sequence[str] | None, fit: bool
) -> nn.Module:
    """Architecture, classes and test settings from the official checkpoint; non-null config keys override."""
    from insseg.models.refinemask import build_refinemask

    if model_cfg.weights == "DEFAULT":
        raise ConfigError(
            "model=refinemask has no DEFAULT download; set model.variant (the file models/<variant>.pth) or "
            "model.weights to an official RefineMask checkpoint (see docs/refinemask.md), or null"
        )
    if checkpoint is not None and not is_mmdet_checkpoint(checkpoint):
        raise CheckpointError(
            f"{model_cfg.weights} is neither an official RefineMask (mmdetection) checkpoint nor one of ours"
        )
    names = None
    if fit or (model_cfg.weights is None and dataset_classes):
        names = list(dataset_classes or ())
    backbone_weights = model_cfg.backbone_weights
    if backbone_weights == "DEFAULT":
        backbone_weights = None if model_cfg.weights else str(_imagenet_resnet(model_cfg.depth or 50))
    return build_refinemask(
        weights=model_cfg.weights,
        class_names=names,
        depth=model_cfg.depth,
        backbone_weights=backbone_weights,
        fine_tune=fit,
        img_scale=(model_cfg.max_size, model_cfg.min_size),
        score_thr=model_cfg.box_score_thresh,
        max_per_img=model_cfg.detections_per_img,
        bbox_loss=model_cfg.bbox_loss,
    )


def _imagenet_resnet(depth: int) -> Path:
    """torchvision's ImageNet ResNet-50/101 (what mmdet's ``torchvision://resnetXX`` loads), cached locally."""
    from torchvision.models import ResNet50_Weights, ResNet101_Weights

    from insseg.models.weights_cache import ensure_cached

    weights = {50: ResNet50_Weights.IMAGENET1K_V1, 101: ResNet101_Weights.IMAGENET1K_V1}[depth]
    return ensure_cached(weights.url)


def _from_insseg_checkpoint(
    model_cfg: Any, checkpoint: dict, path: str, dataset_classes: Sequence[str] | None, fit: bool
) -> nn.Module:
    """Rebuild the architecture the checkpoint was trained with, then load it strictly."""
    names = list(checkpoint["class_names"])
    if checkpoint["model_name"] != model_cfg.name:
        raise CheckpointError(
            f"checkpoint {path} holds a {checkpoint['model_name']} model, but model={model_cfg.name} was selected"
        )
    if fit and dataset_classes is not None and len(dataset_classes) != len(names):
        raise CheckpointError(
            f"checkpoint {path} was trained for {len(names)} classes ({', '.join(names[:6])}"
            f"{', ...' if len(names) > 6 else ''}) but the dataset has {len(dataset_classes)}; train from "
            "model.weights=DEFAULT or null to get new heads, or pick the matching dataset"
        )
    arch_cfg = OmegaConf.create(OmegaConf.to_container(model_cfg, resolve=True))
    with open_dict(arch_cfg):
        if "backbone" in checkpoint.get("model_cfg", {}):
            arch_cfg.backbone = checkpoint["model_cfg"]["backbone"]
        arch_cfg.weights = None
        arch_cfg.backbone_weights = None
    if model_cfg.name == "maskrcnn":
        model = build_maskrcnn(
            arch_cfg, len(names) + 1, pretrained_coco=False, frozen_bn=has_frozen_bn(checkpoint["model"])
        )
    else:
        model = build_model(arch_cfg, names, fit_to_dataset=True)
    load_torchvision_state_dict(model, checkpoint["model"], path)
    model.class_names = names
    # The run's config: evaluate.py compares its data split with the one being evaluated.
    model.training_config = checkpoint.get("config")
    return model
