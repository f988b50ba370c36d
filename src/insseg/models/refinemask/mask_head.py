"""RefineMask mask head (``RefineMaskHead`` of the official r50-refinemask-2x config) in plain PyTorch.

Layout, with the official module names so ``state_dict()`` matches the released checkpoint's
``roi_head.mask_head.*`` keys (70 tensors):

* ``instance_convs.{0,1}.conv``: two 3x3 conv + ReLU on the 14x14 RoI features.
* ``semantic_convs.{0-3}.conv``: four 3x3 conv + ReLU on the whole P2 map; ``semantic_logits`` (1x1, one
  channel) gives the binary foreground/background "semantic" prediction at stride 4.
* ``stages.{0,1,2}``: semantic fusion stages at 14, 28 and 56 px. Each predicts class-specific logits at its
  input size, fuses instance features, RoI-aligned semantic features and both masks, and upsamples x2 while
  halving the channels (256 -> 128 -> 64 -> 32).
* ``final_instance_logits``: class-specific logits at 112 px.

Config values fixed here (r50-refinemask-2x): no norm layers, dilations (1, 3, 5), semantic stride 4,
``mask_use_sigmoid=True`` (the masks fed into each fusion are probabilities, not logits), bilinear x2
upsampling. ``stage_num_classes`` as the official head: each stage's classifier has ``num_classes`` outputs or
one (class-agnostic: the LVIS configs' last stage, ``[1203, 1203, 1203, 1]``, whose label is taken as 0).

One deliberate generalisation: the official stage samples the semantic *prediction* with every RoI's batch
index forced to 0 (it only supports one image per batch); we use the RoI's real batch index, which is the same
for one image and correct for several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

STAGE_SIZES = (14, 28, 56, 112)
SEMANTIC_STRIDE = 4
DILATIONS = (1, 3, 5)


def _init_conv(conv: nn.Conv2d) -> None:
    # mmcv's ConvModule and the official _init_weights both use Kaiming normal (fan_out, ReLU), zero bias.
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ConvAct(nn.Module):
    """A conv with bias and an optional ReLU; the conv sits at ``.conv`` like mmcv's ConvModule."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1, relu: bool = True) -> None:
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, dilation=dilation)
        self.relu = relu
        _init_conv(self.conv)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class MultiBranchFusion(nn.Module):
    """Three parallel dilated 3x3 convs (with ReLU) summed, then a 1x1 merge conv without activation."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = DILATIONS) -> None:
        super().__init__()
        for i, d in enumerate(dilations):
            self.add_module(f"dilation_conv_{i + 1}", ConvAct(channels, channels, 3, dilation=d))
        self.num_branches = len(dilations)
        self.merge_conv = ConvAct(channels, channels, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        branches = [getattr(self, f"dilation_conv_{i}") for i in range(1, self.num_branches + 1)]
        total = branches[0](x)
        for branch in branches[1:]:
            total = total + branch(x)
        return self.merge_conv(total)


def roi_align_like(x: Tensor, rois: Tensor, size: int, spatial_scale: float) -> Tensor:
    """mmcv-style RoIAlign (sampling_ratio 0, aligned=True) computed in float32, or float64 for double inputs.

    Half-precision box coordinates would move RoIs by up to a pixel, so half inputs are pooled in float32 (as
    mmdet's ``force_fp32``); the result comes back in ``x``'s dtype.
    """
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    out = roi_align(x.to(dtype), rois.to(dtype), (size, size), spatial_scale, 0, True)
    return out.to(x.dtype)


def select_class_logits(conv: nn.Conv2d, feats: Tensor, labels: Tensor) -> Tensor:
    """``conv(feats)[arange(n), labels][:, None]`` for a 1x1 conv, computing only the labelled channel.

    The full conv would materialise ``n x num_classes x s x s`` values (400 MB for 100 RoIs at 112 px); a
    per-RoI dot product over the input channels gives the same logits (up to float summation order).
    """
    if conv.out_channels == 1:  # class-agnostic stage: the official code clamps the label to 0
        labels = torch.zeros_like(labels)
    weight = conv.weight[labels, :, 0, 0]  # [n, C]
    out = torch.einsum("nchw,nc->nhw", feats, weight.to(feats.dtype))
    if conv.bias is not None:
        out = out + conv.bias[labels].to(out.dtype)[:, None, None]
    return out.unsqueeze(1)


@dataclass
class SemanticContext:
    """Per-batch semantic-branch results shared by every RoI chunk of the batch.

    ``feat``: output of the semantic convs ``[B,256,h,w]`` (stride 4); ``pred``: semantic logits ``[B,1,h,w]``;
    ``stage_maps[i]``: ``relu(stages[i].semantic_transform_in(feat))``, computed once instead of per chunk.
    """

    feat: Tensor
    pred: Tensor
    stage_maps: list[Tensor]


class SFMStage(nn.Module):
    """One semantic fusion stage at ``size`` px: ``in_ch`` channels in, ``in_ch // 2`` out at ``2 * size``."""

    def __init__(self, in_ch: int, size: int, num_classes: int, semantic_in_ch: int = 256) -> None:
        super().__init__()
        self.size = size
        out_ch = in_ch // 2
        self.semantic_transform_in = nn.Conv2d(semantic_in_ch, in_ch, 1)
        self.semantic_transform_out = nn.Conv2d(in_ch, in_ch, 1)
        self.instance_logits = nn.Conv2d(in_ch, num_classes, 1)
        # input: instance feats + instance-wise semantic feats + instance mask + semantic mask
        self.fuse_conv = nn.ModuleList([nn.Conv2d(2 * in_ch + 2, in_ch, 1), MultiBranchFusion(in_ch)])
        self.fuse_transform_out = nn.Conv2d(in_ch, out_ch - 2, 1)
        for m in (
            self.semantic_transform_in,
            self.semantic_transform_out,
            self.instance_logits,
            cast(nn.Conv2d, self.fuse_conv[0]),
            self.fuse_transform_out,
        ):
            _init_conv(m)

    def semantic_map(self, semantic_feat: Tensor) -> Tensor:
        return F.relu(self.semantic_transform_in(semantic_feat))

    def forward(
        self, inst_feats: Tensor, semantic_map: Tensor, semantic_prob: Tensor, rois: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Returns this stage's class logits ``[n,1,s,s]`` and the fused features ``[n,in_ch//2,2s,2s]``."""
        s = inst_feats.shape[-1]
        scale = 1.0 / SEMANTIC_STRIDE
        # mmcv RoIAlign defaults (sampling_ratio 0, aligned=True), on the RoI's own image.
        sem_feats = roi_align_like(semantic_map, rois, s, scale)
        sem_feats = F.relu(self.semantic_transform_out(sem_feats))

        logits = select_class_logits(self.instance_logits, inst_feats, labels)
        inst_mask = logits.sigmoid()  # mask_use_sigmoid=True
        sem_mask = roi_align_like(semantic_prob, rois, s, scale)
        # The official code also resizes both masks to the instance size with align_corners=True; at equal
        # sizes that is the identity, so it is left out.

        x = torch.cat([inst_feats, sem_feats, inst_mask, sem_mask], dim=1)
        for conv in self.fuse_conv:
            x = F.relu(conv(x))
        x = F.relu(self.fuse_transform_out(x))
        # mmcv's 'bilinear' upsample layer is nn.Upsample(scale_factor=2, mode='bilinear'): align_corners=False.
        x = F.relu(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        # ...while the masks are carried up with align_corners=True.
        up = x.shape[-2:]
        inst_mask = F.interpolate(inst_mask, up, mode="bilinear", align_corners=True)
        sem_mask = F.interpolate(sem_mask, up, mode="bilinear", align_corners=True)
        return logits, torch.cat([x, inst_mask, sem_mask], dim=1)


class RefineMaskHead(nn.Module):
    """The RefineMask mask head (official RefineMaskHead; ``stage_num_classes`` defaults to num_classes x 4)."""

    def __init__(self, num_classes: int = 80, stage_num_classes: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        stage_nc = tuple(stage_num_classes or (num_classes,) * len(STAGE_SIZES))
        if len(stage_nc) != len(STAGE_SIZES) or any(c not in (num_classes, 1) for c in stage_nc):
            raise ValueError(f"stage_num_classes must be 4 entries of {num_classes} or 1, got {stage_nc}")
        self.stage_num_classes = stage_nc
        self.instance_convs = nn.ModuleList([ConvAct(256, 256, 3) for _ in range(2)])
        self.semantic_convs = nn.ModuleList([ConvAct(256, 256, 3) for _ in range(4)])
        stages = []
        ch = 256
        for size, nc in zip(STAGE_SIZES[:-1], stage_nc):
            stages.append(SFMStage(ch, size, nc))
            ch //= 2
        self.stages = nn.ModuleList(stages)
        self.final_instance_logits = nn.Conv2d(ch, stage_nc[-1], 1)
        self.semantic_logits = nn.Conv2d(256, 1, 1)
        _init_conv(self.final_instance_logits)
        _init_conv(self.semantic_logits)

    def forward_semantic(self, p2: Tensor) -> SemanticContext:
        """Semantic branch on the whole P2 map ``[B,256,h,w]`` (run once per batch, shared by all chunks)."""
        feat = p2
        for conv in self.semantic_convs:
            feat = conv(feat)
        pred = self.semantic_logits(feat)
        maps = [cast(SFMStage, stage).semantic_map(feat) for stage in self.stages]
        return SemanticContext(feat=feat, pred=pred, stage_maps=maps)

    def forward_instance(self, roi_feats: Tensor, ctx: SemanticContext, rois: Tensor, labels: Tensor) -> list[Tensor]:
        """Instance branch.

        Args:
            roi_feats: ``[n,256,14,14]`` mask RoI features.
            ctx: result of :meth:`forward_semantic` for the batch the RoIs belong to.
            rois: ``[n,5]`` (batch index, x1, y1, x2, y2) in the resized (network input) image.
            labels: ``[n]`` 0-based class ids.

        Returns:
            the raw logits of each RoI's class at 14, 28, 56 and 112 px, each ``[n,1,s,s]``.
        """
        labels = labels.long()
        x = roi_feats
        for conv in self.instance_convs:
            x = conv(x)
        semantic_prob = ctx.pred.sigmoid()  # mask_use_sigmoid=True
        preds = []
        for stage, sem_map in zip(self.stages, ctx.stage_maps):
            logits, x = stage(x, sem_map, semantic_prob, rois, labels)
            preds.append(logits)
        preds.append(select_class_logits(self.final_instance_logits, x, labels))
        return preds

    def forward(self, roi_feats: Tensor, p2: Tensor, rois: Tensor, labels: Tensor) -> tuple[list[Tensor], Tensor]:
        """Official-style forward: stage logits (14/28/56/112) and the semantic logits ``[B,1,h,w]``."""
        ctx = self.forward_semantic(p2)
        return self.forward_instance(roi_feats, ctx, rois, labels), ctx.pred
