"""Training targets of RefineMask: per-stage instance masks and the binary semantic map.

* Instance targets (mmdet ``BitmapMasks.crop_and_resize``): each positive box, clipped to the (padded) mask
  size, is RoI-aligned from its assigned ground-truth mask (spatial scale 1, sampling_ratio 0, aligned=True)
  at 14, 28, 56 and 112 px and thresholded at ``>= 0.5``.
* Instance targets from polygons (mmdet ``PolygonMasks.crop_and_resize``, what the official COCO/LVIS configs
  train on with ``poly2mask=False``): each polygon is shifted by the box's top-left corner, scaled by
  ``s / max(w, 1)`` and ``s / max(h, 1)`` and rasterised by pycocotools at ``s x s`` for EVERY stage size, so
  the 112 px target keeps the polygon's detail instead of resampling a bitmap.
* Semantic target (``RefineRoIHead._mask_forward_train``): the union of ALL ground-truth masks of the image
  (not only the sampled ones), resized bilinearly (align_corners=False, no antialiasing) to the stride-4
  semantic prediction and thresholded at ``>= 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from insseg.models.refinemask.mask_head import STAGE_SIZES


def instance_mask_targets(
    boxes: Tensor, gt_masks: Tensor, gt_index: Tensor, sizes: Sequence[int] = STAGE_SIZES
) -> list[Tensor]:
    """Binary float targets ``[M, s, s]`` for each size in ``sizes``.

    Args:
        boxes: ``[M,4]`` xyxy boxes in the coordinates of ``gt_masks`` (the resized, padded image).
        gt_masks: ``[G, H, W]`` ground-truth masks (bool/uint8/float 0-1); all images' masks stacked.
        gt_index: ``[M]`` row of ``gt_masks`` assigned to each box.
    """
    m = boxes.shape[0]
    device = boxes.device
    if m == 0:
        return [torch.zeros((0, s, s), device=device) for s in sizes]
    h, w = gt_masks.shape[-2:]
    boxes = clip_boxes_to_mask(boxes, h, w)
    # Only the masks that are actually used go through roi_align; RoIs point at their row.
    used, local = torch.unique(gt_index.to(device).long(), return_inverse=True)
    src = gt_masks.to(device)[used].to(torch.float32).unsqueeze(1)
    rois = torch.cat([local.to(torch.float32)[:, None], boxes], dim=1)
    targets = []
    for s in sizes:
        t = roi_align(src, rois, (s, s), spatial_scale=1.0, sampling_ratio=0, aligned=True)
        targets.append((t[:, 0] >= 0.5).to(torch.float32))
    return targets


Polygons = Sequence[Sequence[float]]  # one instance: its parts, each a flat [x0, y0, x1, y1, ...] list


def clip_boxes_to_mask(boxes: Tensor, h: int, w: int) -> Tensor:
    """mmdet's ``mask_target_single`` clipping of the proposals to the mask size (x to [0, w], y to [0, h])."""
    boxes = boxes.detach().to(torch.float32).clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    return boxes


def polygon_to_bitmap(parts: Polygons, h: int, w: int) -> np.ndarray:
    """pycocotools rasterisation of one instance's polygon parts (union), as mmdet's ``polygon_to_bitmap``."""
    from pycocotools import mask as mask_utils

    parts = [list(map(float, p)) for p in parts if len(p) >= 6]
    if not parts:
        return np.zeros((h, w), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects(parts, h, w))
    return mask_utils.decode(rle).astype(bool)


def polygon_mask_targets(
    boxes: Tensor, polygons: Sequence[Polygons], gt_index: Tensor, sizes: Sequence[int] = STAGE_SIZES
) -> list[Tensor]:
    """Binary float targets ``[M, s, s]`` per size, each drawn from the polygons at that size.

    Args:
        boxes: ``[M,4]`` xyxy boxes in the polygons' coordinates (already clipped as mmdet clips them).
        polygons: per ground truth its polygon parts (flat xy lists), in the resized image's coordinates.
        gt_index: ``[M]`` the ground truth (index into ``polygons``) of each box.
    """
    box_list = boxes.detach().to("cpu", torch.float64).tolist()
    rows = gt_index.tolist()
    out = []
    for s in sizes:
        t = np.zeros((len(rows), s, s), dtype=np.float32)
        for k, ((x1, y1, x2, y2), g) in enumerate(zip(box_list, rows)):
            sx, sy = s / max(x2 - x1, 1.0), s / max(y2 - y1, 1.0)
            parts = []
            for p in polygons[g]:
                q = np.asarray(p, dtype=np.float64).copy()
                q[0::2] = (q[0::2] - x1) * sx
                q[1::2] = (q[1::2] - y1) * sy
                parts.append(q.tolist())
            t[k] = polygon_to_bitmap(parts, s, s)
        out.append(torch.from_numpy(t).to(boxes.device))
    return out


def semantic_target(gt_masks: Sequence[Tensor], out_hw: tuple[int, int], stride: int = 4) -> Tensor:
    """Binary float ``[B, h, w]`` semantic target for a batch.

    Args:
        gt_masks: per image ``[G_i, H_i, W_i]`` masks in the resized image; they are zero-padded
            (bottom/right) to ``stride * out_hw``, the padded network input size.
        out_hw: size of the semantic prediction (P2).
    """
    h, w = out_hw
    ph, pw = h * stride, w * stride
    device = gt_masks[0].device if len(gt_masks) else torch.device("cpu")
    union = torch.zeros((len(gt_masks), 1, ph, pw), dtype=torch.float32, device=device)
    for i, masks in enumerate(gt_masks):
        if masks.shape[0] == 0:
            continue
        mh, mw = masks.shape[-2:]
        if mh > ph or mw > pw:
            raise ValueError(f"gt masks of image {i} are {mh}x{mw}, larger than the padded input {ph}x{pw}")
        union[i, 0, :mh, :mw] = masks.to(device).bool().any(dim=0).to(torch.float32)
    small = F.interpolate(union, (h, w), mode="bilinear", align_corners=False)
    return (small[:, 0] >= 0.5).to(torch.float32)
