"""Multi-level RoI feature extraction as mmdet's ``SingleRoIExtractor`` does it (mask branch: 14x14).

Each RoI goes to one FPN level by its size, ``floor(log2(sqrt(w * h) / 56 + 1e-6))`` clamped to the
available levels, and is pooled there with RoIAlign (sampling_ratio 0, aligned=True), which is
``torchvision.ops.roi_align`` with the same arguments. Zero-area RoIs land on the finest level and are still
pooled (aligned RoIAlign gives them the bilinear samples along the degenerate box).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align

FPN_STRIDES = (4, 8, 16, 32)
FINEST_SCALE = 56


def map_roi_levels(rois: Tensor, num_levels: int, finest_scale: int = FINEST_SCALE) -> Tensor:
    """Level index (0 = finest) of each RoI ``[n,5]``; same float32 arithmetic as mmdet."""
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return levels.clamp(min=0, max=num_levels - 1).long()


def extract_roi_feats(
    feats: Sequence[Tensor], rois: Tensor, output_size: int = 14, strides: Sequence[int] = FPN_STRIDES
) -> Tensor:
    """Pool ``[n, C, output_size, output_size]`` features for ``rois`` ``[n,5]`` from ``feats`` (P2..P5).

    ``feats`` must hold one tensor per stride (only the first ``len(strides)`` are used, as mmdet's
    ``num_inputs``); RoI coordinates are in the network-input (resized) image.
    """
    feats = list(feats)[: len(strides)]
    if len(feats) != len(strides):
        raise ValueError(f"expected {len(strides)} feature maps (P2..P5), got {len(feats)}")
    # Pool in float32 (float64 when the features are double), like mmdet's force_fp32 on this extractor:
    # half-precision box coordinates would move RoIs by up to a pixel.
    dtype = torch.float64 if feats[0].dtype == torch.float64 else torch.float32
    rois = rois.to(dtype)
    out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1], output_size, output_size), dtype=dtype)
    if rois.shape[0] == 0:
        return out
    levels = map_roi_levels(rois, len(feats))
    for lvl, (feat, stride) in enumerate(zip(feats, strides)):
        idx = torch.nonzero(levels == lvl, as_tuple=False).squeeze(1)
        if idx.numel() == 0:
            continue
        pooled = roi_align(
            feat.to(dtype),
            rois[idx],
            (output_size, output_size),
            spatial_scale=1.0 / stride,
            sampling_ratio=0,
            aligned=True,
        )
        out = out.index_copy(0, idx, pooled)
    return out
