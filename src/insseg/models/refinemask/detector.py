"""RefineMask R50/R101-FPN (the official detectors of every released config) in plain PyTorch + torchvision.ops.

``RefineMaskDetector`` behaves like torchvision's ``MaskRCNN``:

* eval: ``model(images)`` with ``images`` a list of ``[3, H, W]`` float RGB tensors in [0, 1] returns one dict
  per image with ``boxes`` ``[N, 4]`` float32 xyxy in original pixels, ``labels`` int64 ``[N]`` (1-based; label
  ``k`` is ``class_names[k - 1]``), ``scores`` ``[N]`` and ``masks`` ``[N, 1, H, W]`` float32 holding 0/1
  (mmdet's ``>= 0.5`` paste; thresholding at ``> 0.5`` downstream changes nothing);
* train: ``model(images, targets)`` with torchvision targets (``boxes`` xyxy, ``labels`` 1-based,
  ``masks`` uint8 ``[N, H, W]``) returns a dict of scalar losses.

Inference follows the official pipeline step by step (see ``docs/refinemask.md``). Several images are run
together in groups of equal padded size, so every image gets exactly the result it would get alone (zero
padding beyond an image's own multiple of 32 would otherwise change the features near its border).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from insseg.errors import CheckpointError, ConfigError

from .backbone import ResNet
from .bbox_head import Shared2FCBBoxHead
from .detector_inference import detect_batch, predict_images
from .detector_training import scale_polygons, train_losses
from .fpn import FPN
from .mask_head import RefineMaskHead
from .official_weights import (
    CLASS_SPECIFIC_PREFIXES,
    class_count_error,
    load_official_checkpoint,
    load_state,
    read_checkpoint,
)
from .preprocess import Batch
from .rpn import RPNHead
from .sampling import MaxIoUAssigner, RandomSampler
from .spec import RefineMaskSpec, spec_from_checkpoint
from .zoo import missing_checkpoint_message

COCO_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

FPN_STRIDES = (4, 8, 16, 32, 64)


class RoIHead(nn.Module):
    """Container giving the heads their checkpoint names (``roi_head.bbox_head``, ``roi_head.mask_head``)."""

    def __init__(self, spec: RefineMaskSpec) -> None:
        super().__init__()
        self.bbox_head = Shared2FCBBoxHead(
            spec.num_classes, bbox_loss=spec.bbox_loss, bbox_loss_beta=spec.bbox_loss_beta
        )
        self.mask_head = RefineMaskHead(spec.num_classes, spec.stages)
        # training: mmdet's rcnn assigner/sampler of the config
        self.assigner = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5)
        self.sampler = RandomSampler(num=512, pos_fraction=0.25, add_gt_as_proposals=True)


class RefineMaskDetector(nn.Module):
    """The detector ``spec`` describes (default: the official r50-coco-2x one)."""

    def __init__(
        self, spec: RefineMaskSpec | None = None, class_names: Sequence[str] | None = None, amp: bool = False
    ) -> None:
        super().__init__()
        spec = spec or RefineMaskSpec()
        num_classes = spec.num_classes
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is None:
            class_names = COCO_CLASSES if num_classes == 80 else [f"class_{i + 1}" for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ConfigError(f"{len(class_names)} class names given for num_classes={num_classes}")
        self.spec = spec
        self.num_classes = num_classes
        self.class_names: list[str] = [str(c) for c in class_names]
        # test settings (mutable; the spec keeps what the model was built with)
        self.score_thresh = float(spec.score_thr)
        self.detections_per_img = int(spec.max_per_img)
        self.nms_thresh = float(spec.nms_thr)
        self.mask_thresh = float(spec.mask_thr)
        self.amp = bool(amp)
        # mmdet's img_scale (test and train): (long side max, short side max)
        self.img_scale: tuple[int, int] = tuple(spec.img_scale)  # type: ignore[assignment]
        self.backbone = ResNet(spec.depth)
        self.neck = FPN()
        self.rpn_head = RPNHead()
        self.roi_head = RoIHead(spec)

    # ------------------------------------------------------------------ common
    def extract_feats(self, x: Tensor) -> list[Tensor]:
        """P2..P6 ``[B, 256, h, w]`` of a preprocessed batch."""
        return self.neck(self.backbone(x))

    def forward(self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None):
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            return self.forward_train(images, targets)
        return self.predict(images)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Detections for a list of images (eval mode semantics whatever the module's mode)."""
        return predict_images(self, images)

    @torch.no_grad()
    def run_batch(
        self, batch: Batch, debug: dict[str, Any] | None = None, with_masks: bool = True
    ) -> list[dict[str, Tensor]]:
        """Inference on a preprocessed batch; ``debug`` (a dict) receives the intermediate results.
        ``with_masks=False`` skips the mask branch (no ``masks`` key)."""
        return detect_batch(self, batch, debug, with_masks)

    # ------------------------------------------------------------------ training
    def forward_train(self, images: Sequence[Tensor], targets: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        """mmdet-style training losses (RPN, box head, RefineMask head) for a batch (see ``train_losses``)."""
        return train_losses(self, images, targets)


def build_refinemask(
    weights: str | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    depth: int | None = None,
    backbone_weights: str | None = None,
    fine_tune: bool = False,
    amp: bool = False,
    img_scale: tuple[int | None, int | None] | None = None,
    score_thr: float | None = None,
    max_per_img: int | None = None,
    bbox_loss: str | None = None,
) -> RefineMaskDetector:
    """RefineMask, optionally with an official checkpoint (``weights``) or ImageNet backbone weights.

    * ``weights`` (any released ``.pth``): the architecture (depth, classes, class-agnostic stages), class names
      and test settings come from the checkpoint (:func:`spec_from_checkpoint`). ``num_classes`` or ``depth``
      that contradict it are an error, except ``num_classes`` with ``fine_tune=True``: the class-specific
      layers are then re-initialised (logged) and everything else is loaded.
    * ``backbone_weights``: a torchvision ImageNet ResNet state dict, used when ``weights`` is not given.
    * ``class_names``: the names (default: the checkpoint's, else COCO's for 80 classes).
    * ``img_scale`` (long, short; a ``None`` entry keeps the checkpoint's), ``score_thr``, ``max_per_img``,
      ``bbox_loss``: overrides of the checkpoint's settings when not ``None``.
    """
    if weights and not Path(weights).is_file():
        raise CheckpointError(missing_checkpoint_message(weights))  # fail fast, before building the network
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    if class_names is not None and len(class_names) != num_classes:
        raise ConfigError(f"{len(class_names)} class names given for num_classes={num_classes}")
    sd: dict[str, Tensor] = {}
    meta: dict[str, Any] = {}
    spec = RefineMaskSpec(depth=depth or 50, num_classes=num_classes or 80)
    if weights:
        sd, meta = read_checkpoint(weights)
        spec, class_names = _checkpoint_spec(str(weights), sd, meta, num_classes, class_names, depth, fine_tune)
    if img_scale is not None:
        img_scale = (img_scale[0] or spec.img_scale[0], img_scale[1] or spec.img_scale[1])
    overrides: dict[str, Any] = dict(
        img_scale=img_scale, score_thr=score_thr, max_per_img=max_per_img, bbox_loss=bbox_loss
    )
    spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    model = RefineMaskDetector(spec, class_names=class_names, amp=amp)
    if weights:
        load_state(model, sd, meta, str(weights), fine_tune=fine_tune)
    elif backbone_weights:
        model.backbone.load_torchvision_weights(backbone_weights)
    model.eval()
    return model


def _checkpoint_spec(
    source: str,
    sd: dict[str, Tensor],
    meta: dict[str, Any],
    num_classes: int | None,
    class_names: Sequence[str] | None,
    depth: int | None,
    fine_tune: bool,
) -> tuple[RefineMaskSpec, Sequence[str] | None]:
    """The checkpoint's spec checked against what was asked for, and the class names to use."""
    spec = spec_from_checkpoint(sd, meta, source)
    if depth is not None and depth != spec.depth:
        raise CheckpointError(
            f"checkpoint {source} holds a ResNet-{spec.depth} RefineMask, but depth={depth} "
            "was asked for (leave it unset to follow the checkpoint)"
        )
    if num_classes is not None and num_classes != spec.num_classes:
        if not fine_tune:
            raise class_count_error(source, spec.num_classes, num_classes, meta)
        return spec.with_classes(num_classes), class_names
    if class_names is None and meta.get("CLASSES") is not None:
        class_names = [str(c) for c in meta["CLASSES"]]
        if len(class_names) != spec.num_classes:
            raise CheckpointError(
                f"checkpoint {source}: meta CLASSES has {len(class_names)} names for a "
                f"detector of {spec.num_classes} classes"
            )
    return spec, class_names


__all__ = [
    "RefineMaskDetector",
    "build_refinemask",
    "load_official_checkpoint",
    "COCO_CLASSES",
    "CLASS_SPECIFIC_PREFIXES",
    "scale_polygons",
]
