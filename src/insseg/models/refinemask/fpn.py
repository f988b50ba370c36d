"""mmdet's FPN (``num_outs=5``, no extra convs): 1x1 lateral convs, top-down nearest upsampling to the
finer map's size, 3x3 output convs, and P6 as ``max_pool2d(P5, kernel 1, stride 2)``. No activations.
Module names follow mmcv's ConvModule (``lateral_convs.i.conv``, ``fpn_convs.i.conv``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class _ConvModule(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, k, padding=k // 2)
        nn.init.xavier_uniform_(self.conv.weight)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class FPN(nn.Module):
    def __init__(
        self, in_channels: Sequence[int] = (256, 512, 1024, 2048), out_channels: int = 256, num_outs: int = 5
    ) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(_ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(_ConvModule(out_channels, out_channels, 3) for _ in in_channels)
        self.num_outs = num_outs

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        for _ in range(self.num_outs - len(outs)):
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs
