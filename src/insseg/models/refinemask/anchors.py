"""mmdet 2.3 ``AnchorGenerator`` for the RPN: base size = stride, centre offset 0, no rounding.

Base anchors of a level (scale-major order, ratios (0.5, 1, 2), scale 8)::

    h_ratio = sqrt(ratio); w_ratio = 1 / h_ratio
    w = stride * w_ratio * scale; h = stride * h_ratio * scale
    base = (-w/2, -h/2, w/2, h/2)

shifted by ``(x * stride, y * stride)`` for every feature-map cell, ordered cell-major then anchor (the
order of ``conv_output.permute(1, 2, 0).reshape(-1)``). Strides are the fixed 4, 8, 16, 32, 64, not derived
from the padded image size as torchvision does.

In training, an anchor is valid only on the cells that cover the image's OWN padded shape (``valid_flags``):
in a batch padded to its largest member, a smaller image's anchors beyond its padded size are left out of
assignment, sampling and the loss (the RPN's ``allowed_border=-1`` keeps every other anchor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class AnchorGenerator:
    def __init__(
        self,
        strides: Sequence[int] = (4, 8, 16, 32, 64),
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        scales: Sequence[float] = (8.0,),
    ):
        self.strides = tuple(int(s) for s in strides)
        self.ratios = tuple(float(r) for r in ratios)
        self.scales = tuple(float(s) for s in scales)
        self._cache: dict[tuple, list[Tensor]] = {}

    @property
    def num_anchors(self) -> int:
        return len(self.ratios) * len(self.scales)

    def base_anchors(self, stride: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
        # computed in the working dtype from the start (float32 as in mmdet; float64 for double-precision checks)
        ratios = torch.tensor(self.ratios, dtype=dtype, device=device)
        scales = torch.tensor(self.scales, dtype=dtype, device=device)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (stride * w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (stride * h_ratios[:, None] * scales[None, :]).view(-1)
        base = torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)
        return base

    def grid_anchors(
        self, featmap_sizes: Sequence[tuple[int, int]], dtype: torch.dtype = torch.float32, device=None
    ) -> list[Tensor]:
        """One ``[h * w * A, 4]`` tensor per level."""
        key = (tuple(tuple(int(v) for v in s) for s in featmap_sizes), dtype, str(device))
        if key in self._cache:
            return self._cache[key]
        out = []
        for (h, w), stride in zip(featmap_sizes, self.strides):
            base = self.base_anchors(stride, dtype, device)
            shift_x = torch.arange(0, w, device=device) * stride
            shift_y = torch.arange(0, h, device=device) * stride
            xx = shift_x.repeat(len(shift_y))
            yy = shift_y.view(-1, 1).repeat(1, len(shift_x)).view(-1)
            shifts = torch.stack([xx, yy, xx, yy], dim=-1).to(dtype)
            out.append((base[None, :, :] + shifts[:, None, :]).view(-1, 4))
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = out
        return out

    def valid_flags(
        self, featmap_sizes: Sequence[tuple[int, int]], pad_shape: Sequence[int], device=None
    ) -> list[Tensor]:
        """mmdet's ``valid_flags``: per level a bool ``[h * w * A]``, true on the cells of the first
        ``min(ceil(pad_h / stride), h)`` rows and ``min(ceil(pad_w / stride), w)`` columns."""
        pad_h, pad_w = int(pad_shape[0]), int(pad_shape[1])
        out = []
        for (h, w), stride in zip(featmap_sizes, self.strides):
            valid_h = min(math.ceil(pad_h / stride), h)
            valid_w = min(math.ceil(pad_w / stride), w)
            valid_y = torch.zeros(h, dtype=torch.bool, device=device)
            valid_x = torch.zeros(w, dtype=torch.bool, device=device)
            valid_y[:valid_h] = True
            valid_x[:valid_w] = True
            cells = (valid_y[:, None] & valid_x[None, :]).reshape(-1)
            out.append(cells[:, None].expand(cells.numel(), self.num_anchors).reshape(-1))
        return out
