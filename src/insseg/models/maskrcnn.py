"""torchvision Mask R-CNN ResNet-FPN, built the way the official fine-tuning tutorial does.

Two variants (``model.variant``): ``v1``, the 2019 model (``maskrcnn_resnet50_fpn``, COCO mask AP 34.6), and
``v2``, ``maskrcnn_resnet50_fpn_v2`` (COCO mask AP 41.8: two-conv RPN head, four-conv box head with one FC layer,
BatchNorm in the FPN and the heads), built layer for layer as torchvision builds it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet18, resnet50
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, _default_anchorgen
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FrozenBatchNorm2d

from insseg.errors import CheckpointError, ConfigError
from insseg.models.weights_cache import load_torchvision_weights

# torchvision's COCO categories: 91 ids, '__background__' first, 'N/A' for the ids COCO never used.
COCO_WEIGHTS = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
COCO_CATEGORIES: list[str] = list(COCO_WEIGHTS.meta["categories"])
# The weights ``model.weights=DEFAULT`` loads for each ``model.variant`` (torchvision's DEFAULT of each builder).
COCO_WEIGHTS_BY_VARIANT = {"v1": COCO_WEIGHTS, "v2": MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT}
VARIANTS = tuple(COCO_WEIGHTS_BY_VARIANT)


def coco_weights(model_cfg: Any) -> Any:
    """The torchvision weights enum of ``model.variant``."""
    return COCO_WEIGHTS_BY_VARIANT[variant_of(model_cfg)]


def variant_of(model_cfg: Any) -> str:
    variant = model_cfg.get("variant", "v1") if hasattr(model_cfg, "get") else getattr(model_cfg, "variant", "v1")
    if variant not in COCO_WEIGHTS_BY_VARIANT:
        raise ConfigError(f"config key 'model.variant' is '{variant}'; expected one of: {', '.join(VARIANTS)}")
    return variant


def state_dict_variant(state_dict: dict[str, torch.Tensor]) -> str:
    """v2's box head is convolutional (``box_head.0.0.weight``), v1's two FC layers (``box_head.fc6.weight``)."""
    return "v2" if "roi_heads.box_head.0.0.weight" in state_dict else "v1"


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
    pretrained = pretrained_coco or imagenet
    v2 = variant_of(model_cfg) == "v2"
    # v1: pretrained backbones keep frozen BatchNorm, random ones train it. v2 trains BatchNorm everywhere.
    frozen = (pretrained if frozen_bn is None else frozen_bn) and not v2
    norm_layer = FrozenBatchNorm2d if frozen else nn.BatchNorm2d
    # Pretrained backbones keep their first stages frozen; random ones train everything.
    trainable = model_cfg.trainable_backbone_layers if pretrained or frozen else 5
    if backbone_name == "resnet50":
        body = resnet50(weights=ResNet50_Weights.IMAGENET1K_V1 if imagenet else None, norm_layer=norm_layer)
    else:
        body = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if imagenet else None, norm_layer=norm_layer)
    backbone = _resnet_fpn_extractor(body, trainable, norm_layer=nn.BatchNorm2d if v2 else None)
    model = MaskRCNN(
        backbone,
        num_classes=len(COCO_CATEGORIES) if pretrained_coco else num_classes,
        **(_v2_heads(backbone.out_channels) if v2 else {}),
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
        model.load_state_dict(load_torchvision_weights(coco_weights(model_cfg).url))
        if num_classes != len(COCO_CATEGORIES):
            replace_predictors(model, num_classes)
    return model


def _v2_heads(channels: int) -> dict[str, nn.Module]:
    """The heads ``maskrcnn_resnet50_fpn_v2`` gives MaskRCNN (torchvision/models/detection/mask_rcnn.py)."""
    anchor_generator = _default_anchorgen()
    return {
        "rpn_anchor_generator": anchor_generator,
        "rpn_head": RPNHead(channels, anchor_generator.num_anchors_per_location()[0], conv_depth=2),
        "box_head": FastRCNNConvFCHead((channels, 7, 7), [256, 256, 256, 256], [1024], norm_layer=nn.BatchNorm2d),
        "mask_head": MaskRCNNHeads(channels, [256, 256, 256, 256], 1, norm_layer=nn.BatchNorm2d),
    }


def replace_predictors(model: MaskRCNN, num_classes: int) -> None:
    """New box and mask predictors for ``num_classes`` (background included), as the tutorial does."""
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    in_channels = model.roi_heads.mask_predictor.conv5_mask.in_channels
    model.roi_heads.mask_predictor = MaskRCNNPredictor(in_channels, 256, num_classes)


def has_frozen_bn(state_dict: dict[str, torch.Tensor]) -> bool:
    """Frozen BatchNorm (v1's pretrained backbones) stores no ``num_batches_tracked`` buffers."""
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
