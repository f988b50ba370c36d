"""Boundary IoU and Boundary AP, as the official boundary-iou-api defines them (Cheng, Girshick, Dollar, Berg,
Kirillov, CVPR 2021).

- The boundary of a mask G is ``G - erode(G)``: the mask padded with one pixel of zeros (so a mask cut by the
  image border has a boundary there), eroded with a 3x3 square ``d`` times, the padding cut off again. It is
  the band of the mask's pixels within ``d`` pixels (Chebyshev) of a pixel outside it.
- ``d = max(1, round(ratio * sqrt(H^2 + W^2)))`` (Python's ``round``: halves to even), ratio 0.02 by default.
- Boundary IoU of masks G and P: ``|Gb & Pb| / |Gb | Pb|``; boundary F1 (Dice): ``2 |Gb & Pb| / (|Gb| + |Pb|)``.
- Boundary AP: COCO AP with the IoU of a detection and a non-crowd ground truth replaced by
  ``min(mask IoU, boundary IoU)``; a crowd region keeps pycocotools' mask IoU (intersection over the
  detection's area). Everything else (area ranges from the annotations' ``area``, matching, accumulation) is
  COCOeval's own.
"""

from __future__ import annotations

import numpy as np

from insseg.evaluation.boundary_cocoeval import boundary_cocoeval
from insseg.evaluation.boundary_rle import DEFAULT_DILATION_RATIO, boundary_dilation, boundary_rles, erode_boundary

__all__ = [
    "DEFAULT_DILATION_RATIO",
    "boundary_cocoeval",
    "boundary_dilation",
    "boundary_iou_f1",
    "boundary_rles",
    "mask_to_boundary",
]


def _box(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def mask_to_boundary(masks: np.ndarray, dilation: int) -> np.ndarray:
    """Boundaries (bool, same shape) of bool masks [H, W] or [K, H, W], as the official ``mask_to_boundary``:
    the mask minus its erosion by a 3x3 square ``dilation`` times, with one pixel of zero padding. Each mask
    is eroded within its bounding box only, which gives the same pixels (boundary_rle's docstring)."""
    masks = np.asarray(masks, dtype=bool)
    out = np.zeros_like(masks)
    flat_in, flat_out = masks.reshape(-1, *masks.shape[-2:]), out.reshape(-1, *masks.shape[-2:])
    for mask, boundary in zip(flat_in, flat_out):
        box = _box(mask)
        if box is not None:
            boundary[box] = erode_boundary(np.ascontiguousarray(mask[box], dtype=np.uint8), dilation).view(bool)
    return out


def boundary_iou_f1(gt_masks: np.ndarray, pred_masks: np.ndarray, dilation: int) -> tuple[np.ndarray, np.ndarray]:
    """Boundary IoU and boundary F1 (float64 [N]) of the pairs (gt_masks[i], pred_masks[i]), bool [N, H, W]
    each. Where both boundaries are empty (both masks empty) the pair agrees perfectly: 1.0 for both, as the
    matching metrics score two empty masks."""
    gt_b = mask_to_boundary(np.asarray(gt_masks, bool), dilation)
    pred_b = mask_to_boundary(np.asarray(pred_masks, bool), dilation)
    n = gt_b.shape[0]
    g, p = gt_b.reshape(n, gt_b[0].size if n else 0), pred_b.reshape(n, pred_b[0].size if n else 0)
    inter = np.count_nonzero(g & p, axis=1).astype(np.float64)
    total = np.count_nonzero(g, axis=1) + np.count_nonzero(p, axis=1).astype(np.float64)
    union = total - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        f1 = np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
    return iou, f1
