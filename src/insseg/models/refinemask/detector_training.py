"""RefineMask's training path (mmdet's ``forward_train``): ground truth in the resized image, RPN losses,
sampled RoIs for the box head, positives for the RefineMask head's multi-stage mask loss."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .mask_loss import refine_mask_loss
from .preprocess import preprocess_fast
from .sampling import assign_and_sample

if TYPE_CHECKING:
    from .detector import RefineMaskDetector


def train_autocast(amp: bool, device: torch.device) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def train_losses(
    model: RefineMaskDetector, images: Sequence[Tensor], targets: Sequence[dict[str, Any]]
) -> dict[str, Tensor]:
    """mmdet-style training losses (RPN, box head, RefineMask head) for a batch.

    ``targets``: torchvision's (``boxes``, ``labels``, ``masks``), optionally with ``polygons`` (per
    instance its parts as flat xy lists in original-image pixels, e.g. COCO ``segmentation`` polygons):
    then the instance mask targets are drawn from the polygons at every stage size (see ``mask_targets``).
    """
    images = list(images)
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    param = next(model.parameters())
    batch = preprocess_fast([im.to(param.device) for im in images], dtype=param.dtype, scale=model.img_scale)
    gt_boxes, gt_labels, gt_masks, gt_polygons = _train_targets(model, targets, batch.metas, param.device)
    head = model.roi_head
    with train_autocast(model.amp, param.device):
        feats = model.extract_feats(batch.tensor)
        cls_scores, bbox_preds = model.rpn_head(feats)
        anchors = model.rpn_head.anchors_for(feats)
        losses = model.rpn_head.loss(cls_scores, bbox_preds, anchors, gt_boxes, batch.metas)
        proposals = model.rpn_head.get_proposals(cls_scores, bbox_preds, batch.metas, anchors, training=True)
        rcnn = _rcnn_samples(model, proposals, gt_boxes, gt_labels)
        cls_score, bbox_pred = head.bbox_head.forward_rois(feats, rcnn["rois"])
        losses.update(head.bbox_head.loss(cls_score, bbox_pred, rcnn["labels"], rcnn["box_targets"], rcnn["is_pos"]))
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
    model: RefineMaskDetector, targets: Sequence[dict[str, Any]], metas: list[dict[str, Any]], device: torch.device
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
        if lab.numel() and (lab.min() < 0 or lab.max() >= model.num_classes):
            raise ValueError(f"target labels must be in 1..{model.num_classes}, got {t['labels'].tolist()}")
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
    model: RefineMaskDetector, proposals: list[dict[str, Tensor]], gt_boxes: list[Tensor], gt_labels: list[Tensor]
) -> dict[str, Tensor]:
    """Sampled RoIs of the batch with their box-head targets, and the positives for the mask head."""
    head = model.roi_head
    out: dict[str, list[Tensor]] = {
        k: [] for k in ("rois", "labels", "box_targets", "is_pos", "pos_rois", "pos_labels", "pos_gt")
    }
    for i, (props, gt) in enumerate(zip(proposals, gt_boxes)):
        boxes, assigned, pos, neg = assign_and_sample(head.assigner, head.sampler, props["boxes"].float(), gt)
        pos_gt = assigned.gt_inds[pos] - 1
        sampled = torch.cat([boxes[pos], boxes[neg]])
        labels = torch.full((sampled.shape[0],), model.num_classes, dtype=torch.long, device=boxes.device)
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
