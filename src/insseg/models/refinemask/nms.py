"""Non-maximum suppression with mmcv's semantics on top of ``torchvision.ops.nms``.

mmcv 1.0.5's CPU NMS (the one the official numbers were produced with) suppresses a box when its IoU with a
kept box is ``>=`` the threshold, and compares in float32 against ``float(iou_threshold)``; torchvision
suppresses when IoU ``>`` threshold. Both compute the IoU with the same formula (areas ``(x2-x1)*(y2-y1)``,
no +1), so passing torchvision the largest representable value *below* the float32 threshold reproduces
mmcv exactly. ``batched_nms`` is mmcv's: one NMS over all groups, each group's boxes shifted by
``group_id * (boxes.max() + 1)`` (torchvision's own ``batched_nms`` switches to a per-group loop above 4000
boxes on CPU, which rounds the shifted coordinates differently).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import nms as _tv_nms


def mmcv_threshold(iou_threshold: float, dtype: torch.dtype) -> float:
    """The threshold for torchvision's ``>`` test equivalent to mmcv's ``>= float32(iou_threshold)``."""
    thr32 = np.float32(iou_threshold)
    if dtype == torch.float64:
        return float(np.nextafter(np.float64(thr32), -np.inf))
    return float(np.nextafter(thr32, np.float32(-np.inf)))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept by mmcv-style NMS (suppress at IoU >= threshold), in decreasing score order."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.dtype not in (torch.float32, torch.float64):
        boxes = boxes.float()
    scores = scores.to(boxes.dtype)
    return _tv_nms(boxes, scores, mmcv_threshold(iou_threshold, boxes.dtype))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """mmcv's ``batched_nms`` (coordinate-offset trick): NMS within each ``idxs`` group. Returns kept indices."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.dtype not in (torch.float32, torch.float64):
        boxes = boxes.float()
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)
