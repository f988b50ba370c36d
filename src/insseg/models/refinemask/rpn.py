"""mmdet 2.3 ``RPNHead`` (3x3 conv + ReLU, 1x1 sigmoid objectness and 1x1 deltas, 3 anchors per cell):
proposals at test time and losses for training.

Proposals of one image (``_get_bboxes_single``): per level, sigmoid scores in ``permute(1, 2, 0)`` order, the
``nms_pre`` best (1000 at test, 2000 in training), decode against the anchors with means 0 / stds 1, clip to the
resized image; then one NMS (IoU 0.7, mmcv semantics) over all levels with each level's boxes offset apart
(``batched_nms`` with the level as group) and the first ``nms_post`` (1000) kept. ``min_bbox_size`` is 0, so no
box is dropped for being small.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .anchors import AnchorGenerator
from .box_coder import DeltaXYWHBBoxCoder
from .nms import batched_nms
from .sampling import MaxIoUAssigner, RandomSampler


class RPNHead(nn.Module):
    def __init__(self, in_channels: int = 256, feat_channels: int = 256, num_anchors: int = 3) -> None:
        super().__init__()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, num_anchors * 4, 1)
        for m in (self.rpn_conv, self.rpn_cls, self.rpn_reg):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        self.anchor_generator = AnchorGenerator()
        self.bbox_coder = DeltaXYWHBBoxCoder()
        self.assigner = MaxIoUAssigner(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3)
        self.sampler = RandomSampler(num=256, pos_fraction=0.5, add_gt_as_proposals=False)
        self.test_cfg = dict(nms_pre=1000, nms_post=1000, nms_thr=0.7)
        self.train_proposal_cfg = dict(nms_pre=2000, nms_post=1000, nms_thr=0.7)

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        scores, deltas = [], []
        for x in feats:
            x = F.relu(self.rpn_conv(x))
            scores.append(self.rpn_cls(x))
            deltas.append(self.rpn_reg(x))
        return scores, deltas

    def anchors_for(self, feats: list[Tensor]) -> list[Tensor]:
        # float32 (also under autocast, like mmdet); float64 when the model runs in double
        dtype = torch.float64 if feats[0].dtype == torch.float64 else torch.float32
        return self.anchor_generator.grid_anchors(
            [(int(f.shape[-2]), int(f.shape[-1])) for f in feats], dtype, feats[0].device
        )

    @torch.no_grad()
    def get_proposals(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        metas: list[dict[str, Any]],
        anchors: list[Tensor],
        training: bool = False,
    ) -> list[dict[str, Tensor]]:
        """Per image: ``boxes`` [n, 4] (resized coordinates), ``scores`` [n], ``levels`` [n] (0 = P2)."""
        cfg = self.train_proposal_cfg if training else self.test_cfg
        out = []
        for i, meta in enumerate(metas):
            mlvl_scores, mlvl_deltas, mlvl_anchors, mlvl_ids = [], [], [], []
            for lvl, (score, delta, anc) in enumerate(zip(cls_scores, bbox_preds, anchors)):
                s = score[i].detach().permute(1, 2, 0).reshape(-1)
                s = s.float().sigmoid() if s.dtype in (torch.float16, torch.bfloat16) else s.sigmoid()
                d = delta[i].detach().permute(1, 2, 0).reshape(-1, 4)
                if d.dtype in (torch.float16, torch.bfloat16):
                    d = d.float()
                a = anc
                if cfg["nms_pre"] > 0 and s.shape[0] > cfg["nms_pre"]:
                    s, order = s.sort(descending=True, stable=True)
                    s = s[: cfg["nms_pre"]]
                    keep = order[: cfg["nms_pre"]]
                    d = d[keep]
                    a = a[keep]
                mlvl_scores.append(s)
                mlvl_deltas.append(d)
                mlvl_anchors.append(a)
                mlvl_ids.append(torch.full((s.shape[0],), lvl, dtype=torch.long, device=s.device))
            scores = torch.cat(mlvl_scores)
            ids = torch.cat(mlvl_ids)
            boxes = self.bbox_coder.decode(
                torch.cat(mlvl_anchors), torch.cat(mlvl_deltas), max_shape=meta["img_shape"][:2]
            )
            keep = batched_nms(boxes, scores, ids, cfg["nms_thr"])[: cfg["nms_post"]]
            out.append({"boxes": boxes[keep], "scores": scores[keep], "levels": ids[keep]})
        return out

    def targets(
        self,
        anchors: list[Tensor],
        featmap_sizes: list[tuple[int, int]],
        gt_boxes: list[Tensor],
        metas: list[dict[str, Any]],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """mmdet's ``get_targets`` for a batch: per anchor (images concatenated, each image's anchors in level
        order) the label, label weight, delta target and delta weight, and the loss normaliser.

        Only anchors valid for the image's own padded shape take part (see ``AnchorGenerator.valid_flags``).
        The normaliser is mmdet's ``num_total_pos + num_total_neg`` with each image counting at least one
        positive and one negative: ``sum_i max(pos_i, 1) + max(neg_i, 1)``.
        """
        all_anchors = torch.cat(anchors)
        labels_l, label_w_l, targets_l, target_w_l = [], [], [], []
        normaliser = 0
        for gt, meta in zip(gt_boxes, metas):
            gt = gt.to(all_anchors)
            valid = torch.cat(self.anchor_generator.valid_flags(featmap_sizes, meta["pad_shape"], all_anchors.device))
            valid_idx = torch.nonzero(valid, as_tuple=False).squeeze(1)
            assigned = self.assigner.assign(all_anchors[valid_idx], gt)
            pos, neg = self.sampler.sample(assigned)
            n = all_anchors.shape[0]
            labels, label_w = all_anchors.new_zeros(n), all_anchors.new_zeros(n)
            targets, target_w = all_anchors.new_zeros(n, 4), all_anchors.new_zeros(n, 4)
            pos_full, neg_full = valid_idx[pos], valid_idx[neg]
            if pos.numel():
                labels[pos_full] = 1.0
                targets[pos_full] = self.bbox_coder.encode(all_anchors[pos_full], gt[assigned.gt_inds[pos] - 1])
                target_w[pos_full] = 1.0
            label_w[pos_full] = 1.0
            label_w[neg_full] = 1.0
            normaliser += max(int(pos.numel()), 1) + max(int(neg.numel()), 1)
            labels_l.append(labels)
            label_w_l.append(label_w)
            targets_l.append(targets)
            target_w_l.append(target_w)
        return (torch.cat(labels_l), torch.cat(label_w_l), torch.cat(targets_l), torch.cat(target_w_l), normaliser)

    def loss(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        anchors: list[Tensor],
        gt_boxes: list[Tensor],
        metas: list[dict[str, Any]],
    ) -> dict[str, Tensor]:
        """mmdet's anchor-head loss: MaxIoU assignment (0.7/0.3, low-quality matches from 0.3) among the valid
        anchors, 256 random samples with half positive, sigmoid BCE and L1 on deltas, both divided by the
        normaliser of :meth:`targets`."""
        featmap_sizes = [(int(s.shape[-2]), int(s.shape[-1])) for s in cls_scores]
        labels, label_w, box_targets, box_w, normaliser = self.targets(anchors, featmap_sizes, gt_boxes, metas)
        num_imgs = cls_scores[0].shape[0]
        scores = torch.cat(
            [torch.cat([s[i].permute(1, 2, 0).reshape(-1) for s in cls_scores]) for i in range(num_imgs)]
        ).float()
        deltas = torch.cat(
            [torch.cat([d[i].permute(1, 2, 0).reshape(-1, 4) for d in bbox_preds]) for i in range(num_imgs)]
        ).float()
        loss_cls = (F.binary_cross_entropy_with_logits(scores, labels, reduction="none") * label_w).sum()
        loss_bbox = ((deltas - box_targets).abs() * box_w).sum()
        return {"loss_rpn_cls": loss_cls / normaliser, "loss_rpn_bbox": loss_bbox / normaliser}
