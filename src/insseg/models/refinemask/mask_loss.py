"""RefineMask training loss (the official ``RefineCrossEntropyLoss`` with the r50-refinemask-2x settings).

* Stages 14 and 28 px (``idx <= start_stage = 1``): plain per-pixel BCE, mean over all pixels and RoIs.
* Stages 56 and 112 px: BCE only inside a boundary region, summed and divided by the region's pixel count
  (at least 1). The region is the width-2 boundary of the previous stage's binary prediction united with the
  width-2 boundary of the previous stage's target, found at the previous resolution and upsampled bilinearly
  (align_corners=True, ``>= 0.5``).
* The "previous binary prediction" for the 112 px stage is the 28 -> 56 test-time style merge: raw 56 px
  logits on the width-1 boundary of the 28 px binary prediction, upsampled raw 28 px logits elsewhere.
* ``loss_instance = 0.25 * l14 + 0.5 * l28 + 0.75 * l56 + 1.0 * l112``;
  ``loss_semantic`` = BCE of the stride-4 semantic logits against the union of all gt masks (weight 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from insseg.models.refinemask.mask_boundary import mask_boundary
from insseg.models.refinemask.mask_head import STAGE_SIZES, RefineMaskHead
from insseg.models.refinemask.mask_roi_extract import extract_roi_feats
from insseg.models.refinemask.mask_targets import Polygons, instance_mask_targets, polygon_mask_targets, semantic_target

STAGE_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
SEMANTIC_WEIGHT = 1.0
BOUNDARY_WIDTH = 2
START_STAGE = 1


def _upsample_region(region: Tensor, size: tuple[int, int]) -> Tensor:
    """Bool ``[M,h,w]`` -> bool ``[M,H,W]`` via bilinear (align_corners=True) and ``>= 0.5``, as official."""
    up = F.interpolate(region.float().unsqueeze(1), size, mode="bilinear", align_corners=True)
    return (up >= 0.5).squeeze(1)


def refine_losses(
    stage_preds: Sequence[Tensor],
    semantic_pred: Tensor,
    stage_targets: Sequence[Tensor],
    sem_target: Tensor,
    stage_weights: Sequence[float] = STAGE_WEIGHTS,
    semantic_weight: float = SEMANTIC_WEIGHT,
    boundary_width: int = BOUNDARY_WIDTH,
    start_stage: int = START_STAGE,
) -> dict[str, Tensor]:
    """Losses from head outputs and targets.

    Args:
        stage_preds: logits ``[M,1,s,s]`` per stage (14, 28, 56, 112).
        semantic_pred: ``[B,1,h,w]`` semantic logits.
        stage_targets: binary float ``[M,s,s]`` per stage.
        sem_target: binary float ``[B,h,w]``.

    Returns:
        ``{'loss_instance': ..., 'loss_semantic': ...}`` (scalars). With no positive RoI the instance loss is
        a zero that still depends on the predictions (the official code would give NaN).
    """
    if len(stage_preds) != len(stage_weights) or len(stage_targets) != len(stage_preds):
        raise ValueError("need one prediction, target and weight per stage")
    loss_semantic = semantic_weight * F.binary_cross_entropy_with_logits(semantic_pred[:, 0], sem_target)
    if stage_preds[0].shape[0] == 0:
        zero = cast(Tensor, sum(p.sum() for p in stage_preds)) * 0.0  # keeps every stage in the graph
        return {"loss_instance": zero, "loss_semantic": loss_semantic}

    stage_losses = []
    prev_binary: Tensor | None = None  # previous stage's binary prediction [M,h,w]
    for idx, (pred, target) in enumerate(zip(stage_preds, stage_targets)):
        logits = pred[:, 0]
        if idx <= start_stage:
            stage_losses.append(F.binary_cross_entropy_with_logits(logits, target))
            prev_binary = logits.detach().sigmoid() >= 0.5
            continue
        assert prev_binary is not None  # set by stage 0 (start_stage >= 0)
        size = (int(logits.shape[-2]), int(logits.shape[-1]))
        region = mask_boundary(prev_binary, boundary_width) | mask_boundary(stage_targets[idx - 1], boundary_width)
        region = _upsample_region(region, size)
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        stage_losses.append(per_pixel[region].sum() / region.sum().clamp(min=1).float())
        with torch.no_grad():
            # Binary prediction handed to the next stage: finer logits on the width-1 boundary of the coarser
            # binary prediction, the upsampled (raw, not merged) coarser logits elsewhere.
            on_boundary = _upsample_region(mask_boundary(prev_binary, 1), size)
            up = F.interpolate(stage_preds[idx - 1].detach(), size, mode="bilinear", align_corners=True)[:, 0]
            merged = torch.where(on_boundary, logits.detach(), up)
            prev_binary = merged.sigmoid() >= 0.5
    loss_instance = cast(Tensor, sum(w * loss for w, loss in zip(stage_weights, stage_losses)))
    return {"loss_instance": loss_instance, "loss_semantic": loss_semantic}


def _stack_gt_masks(
    gt_masks: Sequence[Tensor], ph: int, pw: int, device: torch.device
) -> tuple[Tensor, list[int], list[tuple[int, int]]]:
    """``[G, ph, pw]`` bool (each image's masks zero-padded bottom/right), each image's first row, its (w, h)."""
    stacked = torch.zeros((sum(int(m.shape[0]) for m in gt_masks), ph, pw), dtype=torch.bool, device=device)
    offsets, sizes, row = [], [], 0
    for i, m in enumerate(gt_masks):
        mh, mw = m.shape[-2:]
        if mh > ph or mw > pw:
            raise ValueError(f"gt masks of image {i} are {mh}x{mw}, larger than the padded input {ph}x{pw}")
        stacked[row : row + m.shape[0], :mh, :mw] = m.to(device).bool()
        offsets.append(row)
        sizes.append((mw, mh))
        row += int(m.shape[0])
    return stacked, offsets, sizes


def refine_mask_loss(
    head: RefineMaskHead,
    feats: Sequence[Tensor],
    pos_rois: Tensor,
    pos_labels: Tensor,
    pos_assigned_gt_inds: Tensor,
    gt_masks: Sequence[Tensor],
    gt_polygons: Sequence[Sequence[Polygons]] | None = None,
) -> dict[str, Tensor]:
    """RefineMask mask-branch losses for a batch.

    Args:
        head: the mask head (its parameters receive the gradients).
        feats: P2..P5, each ``[B,256,h,w]`` (P2 also feeds the semantic branch).
        pos_rois: ``[M,5]`` positive RoIs: batch index, then xyxy in the resized (network input) image.
        pos_labels: ``[M]`` 0-based class of each RoI's assigned ground truth.
        pos_assigned_gt_inds: ``[M]`` index of each RoI's assigned ground truth within ITS image's masks.
        gt_masks: per image ``[G_i, H_i, W_i]`` bool/uint8 ground-truth masks in the resized image, as large as
            that image's padded input or smaller (they are zero-padded bottom/right to the batch input size).
            All of them make the semantic target, not only the sampled ones.
        gt_polygons: optional, per image the ground truths' polygons (resized-image coordinates, same order as
            ``gt_masks``); the instance targets are then drawn from them at every stage size, as the official
            COCO/LVIS configs do (``poly2mask=False``). The semantic target still comes from ``gt_masks``.

    Returns:
        ``{'loss_instance': ..., 'loss_semantic': ...}``.
    """
    p2 = feats[0]
    num_imgs = p2.shape[0]
    if len(gt_masks) != num_imgs:
        raise ValueError(f"gt_masks has {len(gt_masks)} entries for a batch of {num_imgs} images")
    device = p2.device
    pos_rois = pos_rois.to(device=device, dtype=torch.float32)
    pos_labels = pos_labels.to(device).long()
    img_idx = pos_rois[:, 0].long()

    # Every image's masks in one [G, H, W] tensor, each RoI pointed at its row; boxes are clipped to their own
    # image's mask size, as mmdet does per image.
    stacked, offsets, sizes = _stack_gt_masks(gt_masks, p2.shape[-2] * 4, p2.shape[-1] * 4, device)
    boxes = pos_rois[:, 1:].clone()
    if boxes.shape[0]:
        bounds = torch.tensor(sizes, dtype=torch.float32, device=device)[img_idx]  # [M, 2] (w, h)
        boxes[:, 0::2] = torch.minimum(boxes[:, 0::2].clamp(min=0), bounds[:, :1])
        boxes[:, 1::2] = torch.minimum(boxes[:, 1::2].clamp(min=0), bounds[:, 1:])
    gt_rows = torch.tensor(offsets, dtype=torch.long, device=device)[img_idx] + pos_assigned_gt_inds.to(device).long()
    if gt_polygons is None:
        stage_targets = instance_mask_targets(boxes, stacked, gt_rows, STAGE_SIZES)
    else:
        if len(gt_polygons) != num_imgs or any(len(p) != len(m) for p, m in zip(gt_polygons, gt_masks)):
            raise ValueError("gt_polygons needs one polygon list per ground-truth mask of every image")
        flat = [inst for per_image in gt_polygons for inst in per_image]
        stage_targets = polygon_mask_targets(boxes, flat, gt_rows, STAGE_SIZES)

    roi_feats = extract_roi_feats(feats, pos_rois)
    stage_preds, semantic_pred = head(roi_feats, p2, pos_rois, pos_labels)
    sem_target = semantic_target(list(gt_masks), tuple(semantic_pred.shape[-2:]))
    return refine_losses(stage_preds, semantic_pred, stage_targets, sem_target.to(device))
