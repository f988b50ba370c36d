"""mmdet 2.3 ``Shared2FCBBoxHead`` (two shared 1024-d FCs, 81-way softmax with background LAST, 320
class-specific deltas with means 0 / stds (0.1, 0.1, 0.2, 0.2)), its test-time post-processing and its loss.

Test (``get_bboxes`` + ``multiclass_nms`` of one image): softmax; decode every class's box against the RoI;
clip to the resized image; divide by the float32 scale factor (original coordinates); keep (RoI, class) pairs
with score strictly above ``score_thr`` in RoI-major order; per-class NMS (IoU 0.5, mmcv semantics, classes
offset apart); the first ``max_per_img`` (100) in decreasing score.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .box_coder import DeltaXYWHBBoxCoder
from .mask_roi_extract import extract_roi_feats
from .nms import batched_nms


class Shared2FCBBoxHead(nn.Module):
    def __init__(
        self,
        num_classes: int = 80,
        in_channels: int = 256,
        roi_size: int = 7,
        fc_channels: int = 1024,
        bbox_loss: str = "l1",
        bbox_loss_beta: float = 1.0,
    ):
        super().__init__()
        if bbox_loss not in ("l1", "smooth_l1"):
            raise ValueError(f"bbox_loss must be l1 or smooth_l1, got {bbox_loss!r}")
        self.num_classes = num_classes
        self.bbox_loss = bbox_loss  # the config's loss_bbox: L1Loss (COCO, LVIS) or SmoothL1Loss (Cityscapes)
        self.bbox_loss_beta = float(bbox_loss_beta)
        self.roi_size = roi_size
        shared_fcs = [nn.Linear(in_channels * roi_size * roi_size, fc_channels), nn.Linear(fc_channels, fc_channels)]
        self.shared_fcs = nn.ModuleList(shared_fcs)
        self.fc_cls = nn.Linear(fc_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, 4 * num_classes)
        for fc in shared_fcs:
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        self.reset_class_layers()
        self.bbox_coder = DeltaXYWHBBoxCoder(stds=(0.1, 0.1, 0.2, 0.2))

    def reset_class_layers(self) -> None:
        """mmdet's init of the class-specific layers (normal std 0.01 / 0.001, zero bias)."""
        nn.init.normal_(self.fc_cls.weight, std=0.01)
        nn.init.zeros_(self.fc_cls.bias)
        nn.init.normal_(self.fc_reg.weight, std=0.001)
        nn.init.zeros_(self.fc_reg.bias)

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        x = roi_feats.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)

    def forward_rois(self, feats: list[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Scores and deltas for ``rois`` ``[n, 5]`` (batch index, resized xyxy) pooled 7x7 from P2..P5."""
        roi_feats = extract_roi_feats(feats[:4], rois, output_size=self.roi_size)
        return self(roi_feats.to(feats[0].dtype))

    @torch.no_grad()
    def get_detections(
        self,
        rois: Tensor,
        cls_score: Tensor,
        bbox_pred: Tensor,
        meta: dict[str, Any],
        score_thr: float = 0.05,
        nms_thr: float = 0.5,
        max_per_img: int = 100,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Boxes ``[k, 4]`` in original-image coordinates, scores ``[k]``, 0-based labels ``[k]`` of one image."""
        if cls_score.dtype in (torch.float16, torch.bfloat16):
            cls_score, bbox_pred = cls_score.float(), bbox_pred.float()
        scores = F.softmax(cls_score, dim=1)
        boxes = self.bbox_coder.decode(rois[:, 1:].to(bbox_pred.dtype), bbox_pred, max_shape=meta["img_shape"][:2])
        if boxes.shape[0] > 0:
            sf = boxes.new_tensor(meta["scale_factor"])
            boxes = (boxes.view(boxes.shape[0], -1, 4) / sf).view(boxes.shape[0], -1)
        n = scores.shape[0]
        boxes = boxes.view(n, -1, 4)
        fg = scores[:, :-1]
        valid = fg > score_thr
        valid &= torch.isfinite(boxes).all(dim=-1)  # a diverged model must not crash the mask paste
        sel_boxes = boxes[valid]  # RoI-major, class-minor like masked_select
        sel_scores = fg[valid]
        sel_labels = torch.nonzero(valid, as_tuple=False)[:, 1]
        if sel_boxes.numel() == 0:
            return boxes.new_zeros((0, 4)), scores.new_zeros((0,)), sel_labels
        keep = batched_nms(sel_boxes, sel_scores, sel_labels, nms_thr)
        if max_per_img > 0:
            keep = keep[:max_per_img]
        return sel_boxes[keep], sel_scores[keep], sel_labels[keep]

    def loss(
        self, cls_score: Tensor, bbox_pred: Tensor, labels: Tensor, bbox_targets: Tensor, pos_mask: Tensor
    ) -> dict[str, Tensor]:
        """Softmax CE (weight 2) over all sampled RoIs and L1 or SmoothL1 (weight 2) on the positives' class
        deltas, both divided by the number of sampled RoIs (mmdet's avg_factor)."""
        cls_score, bbox_pred = cls_score.float(), bbox_pred.float()
        n = max(labels.numel(), 1)
        loss_cls = F.cross_entropy(cls_score, labels, reduction="sum") / n
        if pos_mask.any():
            pred = bbox_pred.view(bbox_pred.shape[0], -1, 4)[pos_mask, labels[pos_mask]]
            loss_bbox = box_regression_loss(pred, bbox_targets[pos_mask], self.bbox_loss, self.bbox_loss_beta) / n
        else:
            loss_bbox = bbox_pred.sum() * 0
        return {"loss_cls": 2.0 * loss_cls, "loss_bbox": 2.0 * loss_bbox}


def box_regression_loss(pred: Tensor, target: Tensor, kind: str, beta: float = 1.0) -> Tensor:
    """Summed mmdet ``L1Loss`` or ``SmoothL1Loss`` (``0.5 d^2 / beta`` below ``beta``, ``d - 0.5 beta`` above)."""
    diff = (pred - target).abs()
    if kind == "smooth_l1":
        diff = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    return diff.sum()
