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

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from insseg.errors import CheckpointError, ConfigError

from .backbone import ResNet
from .bbox_head import Shared2FCBBoxHead
from .fpn import FPN
from .mask_head import RefineMaskHead
from .mask_loss import refine_mask_loss
from .mask_test import refine_mask_test_batch
from .official_weights import (
    CLASS_SPECIFIC_PREFIXES,
    class_count_error,
    load_official_checkpoint,
    load_state,
    read_checkpoint,
)
from .preprocess import Batch, preprocess_exact, preprocess_fast, rescale_size
from .rpn import RPNHead
from .sampling import MaxIoUAssigner, RandomSampler, assign_and_sample
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


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    """Full-precision float32 matmuls/convolutions on CUDA for the duration (restores the flags)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


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
    @property
    def _param(self) -> Tensor:
        return next(self.parameters())

    def _autocast(self, device: torch.device):
        if self.amp and device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        if device.type == "cuda":
            return _no_tf32()
        return contextlib.nullcontext()

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
        images = list(images)
        for im in images:
            if not isinstance(im, Tensor) or im.dim() != 3 or im.shape[0] != 3:
                raise ValueError(f"expected images as [3, H, W] tensors, got {getattr(im, 'shape', type(im))}")
        results: list[dict[str, Tensor] | None] = [None] * len(images)
        # group by padded size: each image then sees exactly the input it would see alone
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            nh, nw = rescale_size(int(im.shape[-2]), int(im.shape[-1]), self.img_scale)
            groups.setdefault((-(-nh // 32) * 32, -(-nw // 32) * 32), []).append(i)
        param = self._param
        for idxs in groups.values():
            batch = preprocess_exact(
                [images[i] for i in idxs], device=param.device, dtype=param.dtype, scale=self.img_scale
            )
            for i, r in zip(idxs, self.run_batch(batch)):
                results[i] = r
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def run_batch(
        self, batch: Batch, debug: dict[str, Any] | None = None, with_masks: bool = True
    ) -> list[dict[str, Tensor]]:
        """Inference on a preprocessed batch; ``debug`` (a dict) receives the intermediate results.
        ``with_masks=False`` skips the mask branch (no ``masks`` key)."""
        x = batch.tensor
        metas = batch.metas
        with self._autocast(x.device):
            feats = self.extract_feats(x)
            cls_scores, bbox_preds = self.rpn_head(feats)
            anchors = self.rpn_head.anchors_for(feats)
            proposals = self.rpn_head.get_proposals(cls_scores, bbox_preds, metas, anchors)
            rois = torch.cat(
                [
                    torch.cat([p["boxes"].new_full((p["boxes"].shape[0], 1), float(i)), p["boxes"]], 1)
                    for i, p in enumerate(proposals)
                ]
            )
            cls_score, bbox_pred = self.roi_head.bbox_head.forward_rois(feats, rois)
            dets = []
            start = 0
            for i, meta in enumerate(metas):
                n = proposals[i]["boxes"].shape[0]
                sl = slice(start, start + n)
                start += n
                dets.append(
                    self.roi_head.bbox_head.get_detections(
                        rois[sl],
                        cls_score[sl],
                        bbox_pred[sl],
                        meta,
                        score_thr=self.score_thresh,
                        nms_thr=self.nms_thresh,
                        max_per_img=self.detections_per_img,
                    )
                )
            if debug is not None:
                debug.update(img_tensor=x, feats=feats, proposals=proposals, dets=dets)
            masks: list[Tensor | None] = [None] * len(metas)
            if with_masks:
                mask_out = refine_mask_test_batch(
                    self.roi_head.mask_head,
                    feats[:4],
                    [d[0] for d in dets],
                    [d[2] for d in dets],
                    metas,
                    mask_thr=self.mask_thresh,
                    return_logits=debug is not None,
                )
                masks = mask_out[0] if debug is not None else mask_out
                if debug is not None:
                    debug["mask_debug"] = mask_out[1]
        out = []
        for (boxes, scores, labels), m in zip(dets, masks):
            r = {
                "boxes": boxes.to(torch.float32),
                "labels": labels.to(torch.int64) + 1,
                "scores": scores.to(torch.float32),
            }
            if m is not None:
                r["masks"] = m.to(torch.float32).unsqueeze(1)
            out.append(r)
        return out

    # ------------------------------------------------------------------ training
    def forward_train(self, images: Sequence[Tensor], targets: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        """mmdet-style training losses (RPN, box head, RefineMask head) for a batch.

        ``targets``: torchvision's (``boxes``, ``labels``, ``masks``), optionally with ``polygons`` (per
        instance its parts as flat xy lists in original-image pixels, e.g. COCO ``segmentation`` polygons):
        then the instance mask targets are drawn from the polygons at every stage size (see ``mask_targets``).
        """
        images = list(images)
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        param = self._param
        batch = preprocess_fast([im.to(param.device) for im in images], dtype=param.dtype, scale=self.img_scale)
        gt_boxes, gt_labels, gt_masks, gt_polygons = self._train_targets(targets, batch.metas, param.device)
        head = self.roi_head
        with self._train_autocast(param.device):
            feats = self.extract_feats(batch.tensor)
            cls_scores, bbox_preds = self.rpn_head(feats)
            anchors = self.rpn_head.anchors_for(feats)
            losses = self.rpn_head.loss(cls_scores, bbox_preds, anchors, gt_boxes, batch.metas)
            proposals = self.rpn_head.get_proposals(cls_scores, bbox_preds, batch.metas, anchors, training=True)
            rcnn = self._rcnn_samples(proposals, gt_boxes, gt_labels)
            cls_score, bbox_pred = head.bbox_head.forward_rois(feats, rcnn["rois"])
            losses.update(
                head.bbox_head.loss(cls_score, bbox_pred, rcnn["labels"], rcnn["box_targets"], rcnn["is_pos"])
            )
            losses.update(
                refine_mask_loss(
                    head.mask_head,
                    feats[:4],
                    rcnn["pos_rois"],
                    rcnn["pos_labels"],
                    rcnn["pos_gt"],
                    gt_masks,
                    gt_polygons,
                )
            )
        return {k: v.float() for k, v in losses.items()}

    def _train_targets(
        self, targets: Sequence[dict[str, Any]], metas: list[dict[str, Any]], device: torch.device
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[list] | None]:
        """Ground truth in the resized image: boxes scaled and clipped, 0-based labels, masks resized with
        nearest neighbour (mmdet), polygons scaled (all images or none carry ``polygons``)."""
        gt_boxes, gt_labels, gt_masks, gt_polygons = [], [], [], []
        for t, meta in zip(targets, metas):
            sf = torch.as_tensor(meta["scale_factor"], device=device)
            h, w = meta["img_shape"][:2]
            b = t["boxes"].to(device, torch.float32).reshape(-1, 4) * sf
            b[:, 0::2] = b[:, 0::2].clamp(0, w)
            b[:, 1::2] = b[:, 1::2].clamp(0, h)
            gt_boxes.append(b)
            lab = t["labels"].to(device, torch.int64) - 1
            if lab.numel() and (lab.min() < 0 or lab.max() >= self.num_classes):
                raise ValueError(f"target labels must be in 1..{self.num_classes}, got {t['labels'].tolist()}")
            gt_labels.append(lab)
            m = t["masks"].to(device)
            if m.shape[0]:
                m = F.interpolate(m[:, None].float(), size=(h, w), mode="nearest")[:, 0] >= 0.5
            else:
                m = torch.zeros((0, h, w), dtype=torch.bool, device=device)
            gt_masks.append(m)
            if "polygons" in t:
                gt_polygons.append(scale_polygons(t["polygons"], float(sf[0]), float(sf[1])))
        if gt_polygons and len(gt_polygons) != len(targets):
            raise ValueError("either every target of a batch carries 'polygons' or none does")
        return gt_boxes, gt_labels, gt_masks, (gt_polygons or None)

    def _rcnn_samples(
        self, proposals: list[dict[str, Tensor]], gt_boxes: list[Tensor], gt_labels: list[Tensor]
    ) -> dict[str, Tensor]:
        """Sampled RoIs of the batch with their box-head targets, and the positives for the mask head."""
        head = self.roi_head
        out: dict[str, list[Tensor]] = {
            k: [] for k in ("rois", "labels", "box_targets", "is_pos", "pos_rois", "pos_labels", "pos_gt")
        }
        for i, (props, gt) in enumerate(zip(proposals, gt_boxes)):
            boxes, assigned, pos, neg = assign_and_sample(head.assigner, head.sampler, props["boxes"].float(), gt)
            pos_gt = assigned.gt_inds[pos] - 1
            sampled = torch.cat([boxes[pos], boxes[neg]])
            labels = torch.full((sampled.shape[0],), self.num_classes, dtype=torch.long, device=boxes.device)
            labels[: pos.numel()] = gt_labels[i][pos_gt]
            tgt = sampled.new_zeros(sampled.shape)
            if pos.numel():
                tgt[: pos.numel()] = head.bbox_head.bbox_coder.encode(boxes[pos], gt[pos_gt])
            is_pos = torch.zeros_like(labels, dtype=torch.bool)
            is_pos[: pos.numel()] = True
            idx_col = sampled.new_full((sampled.shape[0], 1), float(i))
            out["rois"].append(torch.cat([idx_col, sampled], 1))
            out["labels"].append(labels)
            out["box_targets"].append(tgt)
            out["is_pos"].append(is_pos)
            out["pos_rois"].append(torch.cat([idx_col[: pos.numel()], boxes[pos]], 1))
            out["pos_labels"].append(gt_labels[i][pos_gt])
            out["pos_gt"].append(pos_gt)
        return {k: torch.cat(v) for k, v in out.items()}

    def _train_autocast(self, device: torch.device):
        if self.amp and device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()


def scale_polygons(polygons: Sequence[Sequence[Sequence[float]]], sx: float, sy: float) -> list[list[list[float]]]:
    """Polygons (per instance, its parts as flat xy lists) scaled like mmdet's ``PolygonMasks.resize``."""
    out = []
    for parts in polygons:
        scaled = []
        for p in parts:
            q = [float(v) for v in p]
            q[0::2] = [v * sx for v in q[0::2]]
            q[1::2] = [v * sy for v in q[1::2]]
            scaled.append(q)
        out.append(scaled)
    return out


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
    overrides = dict(img_scale=img_scale, score_thr=score_thr, max_per_img=max_per_img, bbox_loss=bbox_loss)
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
]
