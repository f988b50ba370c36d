"""mmdet's ``DeltaXYWHBBoxCoder`` (mmdet 2.3): box <-> (dx, dy, dw, dh) deltas, no +1 in widths.

Decoding denormalises with ``deltas * stds + means``, clamps dw/dh to ``|log(16/1000)|``, moves the centre
by ``addcmul`` (as mmdet does) and clips to ``max_shape`` (``(h, w)`` of the resized image) when given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

WH_RATIO_CLIP = 16 / 1000


class DeltaXYWHBBoxCoder:
    def __init__(self, means: Sequence[float] = (0.0, 0.0, 0.0, 0.0), stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0)):
        self.means = tuple(float(m) for m in means)
        self.stds = tuple(float(s) for s in stds)

    def encode(self, proposals: Tensor, gt: Tensor) -> Tensor:
        """Regression targets ``[n, 4]`` taking ``proposals`` to ``gt`` (both ``[n, 4]`` xyxy)."""
        proposals = proposals.float()
        gt = gt.float()
        px = (proposals[:, 0] + proposals[:, 2]) * 0.5
        py = (proposals[:, 1] + proposals[:, 3]) * 0.5
        pw = proposals[:, 2] - proposals[:, 0]
        ph = proposals[:, 3] - proposals[:, 1]
        gx = (gt[:, 0] + gt[:, 2]) * 0.5
        gy = (gt[:, 1] + gt[:, 3]) * 0.5
        gw = gt[:, 2] - gt[:, 0]
        gh = gt[:, 3] - gt[:, 1]
        deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
        means = deltas.new_tensor(self.means)
        stds = deltas.new_tensor(self.stds)
        return (deltas - means) / stds

    def decode(self, rois: Tensor, deltas: Tensor, max_shape: tuple[int, int] | None = None) -> Tensor:
        """Boxes ``[n, 4k]`` from ``rois`` ``[n, 4]`` and ``deltas`` ``[n, 4k]`` (k classes, class-major)."""
        k = deltas.shape[1] // 4
        means = deltas.new_tensor(self.means).repeat(1, k)
        stds = deltas.new_tensor(self.stds).repeat(1, k)
        denorm = deltas * stds + means
        dx = denorm[:, 0::4]
        dy = denorm[:, 1::4]
        max_ratio = abs(math.log(WH_RATIO_CLIP))
        dw = denorm[:, 2::4].clamp(min=-max_ratio, max=max_ratio)
        dh = denorm[:, 3::4].clamp(min=-max_ratio, max=max_ratio)
        px = ((rois[:, 0] + rois[:, 2]) * 0.5).unsqueeze(1).expand_as(dx)
        py = ((rois[:, 1] + rois[:, 3]) * 0.5).unsqueeze(1).expand_as(dy)
        pw = (rois[:, 2] - rois[:, 0]).unsqueeze(1).expand_as(dw)
        ph = (rois[:, 3] - rois[:, 1]).unsqueeze(1).expand_as(dh)
        gw = pw * dw.exp()
        gh = ph * dh.exp()
        gx = torch.addcmul(px, pw, dx)
        gy = torch.addcmul(py, ph, dy)
        x1 = gx - gw * 0.5
        y1 = gy - gh * 0.5
        x2 = gx + gw * 0.5
        y2 = gy + gh * 0.5
        if max_shape is not None:
            h, w = int(max_shape[0]), int(max_shape[1])
            x1 = x1.clamp(min=0, max=w)
            y1 = y1.clamp(min=0, max=h)
            x2 = x2.clamp(min=0, max=w)
            y2 = y2.clamp(min=0, max=h)
        return torch.stack([x1, y1, x2, y2], dim=-1).view(deltas.shape)
