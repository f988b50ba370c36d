"""Boundary regions of binary masks, as RefineMask defines them.

The official code builds a "block target" with a Laplacian-like kernel (centre ``k*k - 1``, all other taps
``-1``, ``k = 2 * width + 1``) run over the zero-padded mask and over its complement, and calls a pixel
"boundary" when the clamped response divided by ``k*k`` exceeds 0.1. For a binary mask that response is a
count, so the same region is:

* a foreground pixel whose ``k x k`` window holds more than ``0.1 * k*k`` background pixels, where pixels
  outside the mask count as background (the mask is zero-padded), or
* a background pixel whose window holds more than ``0.1 * k*k`` foreground pixels (outside pixels do not count:
  the complement is padded with ones, i.e. the padding is background there too).

With width 1 (3x3) a single opposite neighbour is enough (1/9 > 0.1); with width 2 (5x5) it takes three
(2/25 < 0.1 < 3/25). We count with an all-ones convolution (exact integers in float32) and keep the official
float32 ``count / k**2 > 0.1`` comparison so the thresholds are the same to the bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mask_boundary(masks: Tensor, width: int) -> Tensor:
    """Boundary region of binary masks.

    Args:
        masks: ``[N, H, W]`` binary masks (bool, or float/int holding 0 and 1).
        width: boundary width (1 at test time, 2 in the training loss).

    Returns:
        bool ``[N, H, W]``: True on the boundary (the official block target's value 1).
    """
    if masks.dim() != 3:
        raise ValueError(f"mask_boundary expects [N, H, W] masks, got shape {tuple(masks.shape)}")
    fg = masks > 0.5 if masks.dtype.is_floating_point else masks.bool()
    k = 2 * width + 1
    area = float(k * k)
    x = fg.to(torch.float32).unsqueeze(1)
    ones = torch.ones(1, 1, k, k, dtype=torch.float32, device=masks.device)
    # Number of foreground pixels in each k x k window; outside the mask counts as background.
    fg_count = F.conv2d(x, ones, padding=width).squeeze(1)
    bg_count = area - fg_count
    pos = fg & (bg_count / area > 0.1)
    neg = ~fg & (fg_count / area > 0.1)
    return pos | neg
