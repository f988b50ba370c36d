"""Training-time target assignment and sampling as mmdet 2.3 does it (``MaxIoUAssigner``,
``RandomSampler``); used by the RPN (256 samples, half positive) and the box head (512, a quarter positive,
ground truths added as proposals).

Order matters for the box head (``StandardRoIHead.forward_train``): the proposals are assigned first,
low-quality matches included, and only then are the ground truths prepended, each assigned to itself
(``AssignResult.add_gt_``). Prepending first would make every ground truth's best IoU 1 (its own copy), so the
low-quality matching would never move a proposal to a ground truth it overlaps less than another one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou


@dataclass
class AssignResult:
    gt_inds: Tensor  # [n] 0 = negative, -1 = ignored, k >= 1 = matched to gt k - 1
    max_overlaps: Tensor  # [n]
    num_gts: int


class MaxIoUAssigner:
    def __init__(self, pos_iou_thr: float, neg_iou_thr: float, min_pos_iou: float, match_low_quality: bool = True):
        self.pos_iou_thr = pos_iou_thr
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = min_pos_iou
        self.match_low_quality = match_low_quality

    def assign(self, boxes: Tensor, gt_boxes: Tensor) -> AssignResult:
        n, g = boxes.shape[0], gt_boxes.shape[0]
        gt_inds = torch.full((n,), -1, dtype=torch.long, device=boxes.device)
        if g == 0 or n == 0:
            if g == 0:
                gt_inds.zero_()
            return AssignResult(gt_inds, boxes.new_zeros(n), g)
        overlaps = box_iou(gt_boxes.float(), boxes.float())  # [g, n]
        overlaps = torch.nan_to_num(overlaps, nan=0.0)
        max_ov, argmax_ov = overlaps.max(dim=0)
        gt_max_ov, _ = overlaps.max(dim=1)
        gt_inds[(max_ov >= 0) & (max_ov < self.neg_iou_thr)] = 0
        pos = max_ov >= self.pos_iou_thr
        gt_inds[pos] = argmax_ov[pos] + 1
        if self.match_low_quality:
            # every box tied with a gt's best IoU goes to that gt (later gts win, as in mmdet's loop)
            eligible = (gt_max_ov >= self.min_pos_iou)[:, None] & (overlaps == gt_max_ov[:, None])
            ranks = torch.arange(1, g + 1, device=boxes.device)[:, None] * eligible
            best = ranks.max(dim=0).values
            gt_inds = torch.where(best > 0, best, gt_inds)
        return AssignResult(gt_inds, max_ov, g)


def add_gt(assigned: AssignResult) -> AssignResult:
    """mmdet's ``add_gt_``: ground truths prepended as boxes ``0..g-1``, each assigned to itself (IoU 1)."""
    g = assigned.num_gts
    self_inds = torch.arange(1, g + 1, dtype=torch.long, device=assigned.gt_inds.device)
    ones = assigned.max_overlaps.new_ones(g)
    return AssignResult(torch.cat([self_inds, assigned.gt_inds]), torch.cat([ones, assigned.max_overlaps]), g)


def assign_and_sample(
    assigner: MaxIoUAssigner, sampler: RandomSampler, proposals: Tensor, gt_boxes: Tensor
) -> tuple[Tensor, AssignResult, Tensor, Tensor]:
    """RCNN targets of one image as mmdet orders them: assign the proposals, then (``add_gt_as_proposals``)
    prepend the ground truths, then sample. Returns ``(boxes, assigned, pos, neg)``; ``pos``/``neg`` index
    ``boxes`` (the proposals with the ground truths in front)."""
    assigned = assigner.assign(proposals, gt_boxes)
    boxes = proposals
    if sampler.add_gt_as_proposals and gt_boxes.numel():
        boxes = torch.cat([gt_boxes.to(proposals.dtype), proposals])
        assigned = add_gt(assigned)
    pos, neg = sampler.sample(assigned)
    return boxes, assigned, pos, neg


class RandomSampler:
    def __init__(self, num: int, pos_fraction: float, add_gt_as_proposals: bool):
        self.num = num
        self.pos_fraction = pos_fraction
        self.add_gt_as_proposals = add_gt_as_proposals

    @staticmethod
    def _choice(idx: Tensor, k: int) -> Tensor:
        if idx.numel() <= k:
            return idx
        return idx[torch.randperm(idx.numel(), device=idx.device)[:k]]

    def sample(self, assigned: AssignResult) -> tuple[Tensor, Tensor]:
        """Indices of the sampled positive and negative boxes."""
        pos = torch.nonzero(assigned.gt_inds > 0, as_tuple=False).squeeze(1)
        pos = self._choice(pos, int(self.num * self.pos_fraction))
        neg = torch.nonzero(assigned.gt_inds == 0, as_tuple=False).squeeze(1)
        neg = self._choice(neg, self.num - pos.numel())
        return pos, neg
