"""torchvision Mask R-CNN ResNet-FPN, built the way the official fine-tuning tutorial does."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet18, resnet50
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_Weights
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d

from insseg.errors import CheckpointError, ConfigError
from insseg.models.weights_cache import load_torchvision_weights

# torchvision's COCO categories: 91 ids, '__background__' first, 'N/A' for the ids COCO never used.
COCO_WEIGHTS = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
COCO_CATEGORIES: list[str] = list(COCO_WEIGHTS.meta["categories"])


def build_maskrcnn(model_cfg: Any, num_classes: int, pretrained_coco: bool, frozen_bn: bool | None = None) -> MaskRCNN:
    """Mask R-CNN with ``num_classes`` outputs (background included).

    With ``pretrained_coco`` the COCO weights are loaded first (91 classes) and, when ``num_classes`` differs,
    the box and mask predictors are replaced by new ones, as in the tutorial. ``frozen_bn`` forces the
    backbone's normalisation layers (to match a state dict about to be loaded); by default pretrained
    backbones get frozen BatchNorm, random ones trainable BatchNorm.
    """
    backbone_name = model_cfg.backbone
    if pretrained_coco and backbone_name != "resnet50":
        raise ConfigError(
            "model.weights=DEFAULT needs model.backbone=resnet50 (COCO weights exist only for it), "
            f"got '{backbone_name}'"
        )
    imagenet = model_cfg.backbone_weights == "DEFAULT" and not pretrained_coco
    pretrained = (pretrained_coco or imagenet) if frozen_bn is None else frozen_bn
    # Pretrained backbones keep frozen BatchNorm and their first stages frozen; random ones train everything.
    norm_layer = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    trainable = model_cfg.trainable_backbone_layers if pretrained else 5
    if backbone_name == "resnet50":
        body = resnet50(weights=ResNet50_Weights.IMAGENET1K_V1 if imagenet else None, norm_layer=norm_layer)
    else:
        body = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if imagenet else None, norm_layer=norm_layer)
    backbone = _resnet_fpn_extractor(body, trainable)
    model = MaskRCNN(
        backbone,
        num_classes=len(COCO_CATEGORIES) if pretrained_coco else num_classes,
        min_size=model_cfg.min_size,
        max_size=model_cfg.max_size,
        box_score_thresh=model_cfg.box_score_thresh,
        box_nms_thresh=model_cfg.box_nms_thresh,
        box_detections_per_img=model_cfg.detections_per_img,
        rpn_pre_nms_top_n_test=model_cfg.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=model_cfg.rpn_post_nms_top_n_test,
        rpn_pre_nms_top_n_train=model_cfg.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=model_cfg.rpn_post_nms_top_n_train,
        box_batch_size_per_image=model_cfg.box_batch_size_per_image,
    )
    if pretrained_coco:
        model.load_state_dict(load_torchvision_weights(COCO_WEIGHTS.url))
        if num_classes != len(COCO_CATEGORIES):
            replace_predictors(model, num_classes)
    return model


def replace_predictors(model: MaskRCNN, num_classes: int) -> None:
    """New box and mask predictors for ``num_classes`` (background included), as the tutorial does."""
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    in_channels = model.roi_heads.mask_predictor.conv5_mask.in_channels
    model.roi_heads.mask_predictor = MaskRCNNPredictor(in_channels, 256, num_classes)


def has_frozen_bn(state_dict: dict[str, torch.Tensor]) -> bool:
    """Frozen BatchNorm (pretrained backbones) stores no ``num_batches_tracked`` buffers."""
    return not any(k.startswith("backbone.body") and k.endswith("num_batches_tracked") for k in state_dict)


def load_torchvision_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with an error that lists what did not fit (instead of torch's wall of shapes)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape_errors = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if missing or unexpected or shape_errors:
        raise CheckpointError(
            f"weights in {source} do not fit this model ({len(missing)} missing keys, {len(unexpected)} unexpected, "
            f"{len(shape_errors)} of another shape): missing {missing[:5]}, unexpected {unexpected[:5]}, shapes "
            f"{shape_errors[:3]}. Check model.name and model.backbone."
        )
    model.load_state_dict(state_dict)
