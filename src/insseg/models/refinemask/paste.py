"""Pasting RoI mask probabilities into the image, exactly as mmdet's ``_do_paste_mask`` does on CPU.

For every pixel centre ``(x + 0.5, y + 0.5)`` the box-relative coordinate ``(x + 0.5 - x0) / (x1 - x0) * 2 - 1``
is sampled from the RoI mask with ``grid_sample`` (bilinear, zero padding, align_corners=False), then
thresholded with ``>=``. Differences from torchvision's ``paste_masks_in_image`` (which resizes the mask to
the integer box) are about 1% of foreground pixels, more on small boxes.

mmdet pastes box by box on CPU (``skip_empty=True``: only the window ``[floor(x0) - 1, ceil(x1) + 1)`` and
likewise for y, clipped to the image) and whole-image chunks on GPU. The two agree except on degenerate
boxes: for a zero-width or zero-height box the coordinate is infinite and mmdet replaces it by 0 (the mask's
centre line), so the whole-image variant paints a full-width/-height stripe while the windowed one paints a
few pixels. The goldens come from the CPU path, so we always paste window by window, on every device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def paste_window(prob: Tensor, box: Tensor, img_h: int, img_w: int) -> tuple[Tensor, slice, slice]:
    """Probabilities of one RoI mask pasted into its window of the image.

    Args:
        prob: ``[h, w]`` mask probabilities (already sigmoid-ed).
        box: ``[4]`` xyxy box in the output image's coordinates (float32 as in mmdet; float64 is kept).
        img_h, img_w: output image size.

    Returns:
        ``(values, rows, cols)``: ``values`` ``[len(rows), len(cols)]`` for ``image[rows, cols]``.
    """
    dtype = torch.float64 if box.dtype == torch.float64 else torch.float32
    box = box.to(dtype)
    x0_int = int(torch.clamp(box[0].floor() - 1, min=0))
    y0_int = int(torch.clamp(box[1].floor() - 1, min=0))
    x1_int = int(torch.clamp(box[2].ceil() + 1, max=img_w))
    y1_int = int(torch.clamp(box[3].ceil() + 1, max=img_h))
    if y1_int <= y0_int or x1_int <= x0_int:
        return prob.new_zeros((0, 0), dtype=dtype), slice(0, 0), slice(0, 0)
    dev = prob.device
    img_y = torch.arange(y0_int, y1_int, device=dev, dtype=torch.float32).to(dtype) + 0.5
    img_x = torch.arange(x0_int, x1_int, device=dev, dtype=torch.float32).to(dtype) + 0.5
    img_y = (img_y - box[1]) / (box[3] - box[1]) * 2 - 1
    img_x = (img_x - box[0]) / (box[2] - box[0]) * 2 - 1
    # Degenerate (zero-size) boxes: mmdet maps infinite coordinates to the mask centre (0). A pixel centre
    # exactly on such a box gives 0/0 = NaN, which mmdet leaves as is; so do we.
    img_x = torch.where(torch.isinf(img_x), torch.zeros_like(img_x), img_x)
    img_y = torch.where(torch.isinf(img_y), torch.zeros_like(img_y), img_y)
    gx = img_x[None, :].expand(img_y.numel(), img_x.numel())
    gy = img_y[:, None].expand(img_y.numel(), img_x.numel())
    grid = torch.stack([gx, gy], dim=2)[None]
    values = F.grid_sample(prob.to(dtype)[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return values[0, 0], slice(y0_int, y1_int), slice(x0_int, x1_int)


def paste_masks(probs: Tensor, boxes: Tensor, img_h: int, img_w: int, threshold: float = 0.5) -> Tensor:
    """Binary image masks ``bool [N, img_h, img_w]`` from RoI probabilities ``[N, 1, h, w]`` (or ``[N, h, w]``).

    ``boxes`` ``[N, 4]`` float32 xyxy in the output image; a pixel is foreground when its pasted probability
    is ``>= threshold`` (mmdet's ``mask_thr_binary``, 0.5).
    """
    if probs.dim() == 4:
        probs = probs[:, 0]
    out = torch.zeros((probs.shape[0], img_h, img_w), dtype=torch.bool, device=probs.device)
    for i in range(probs.shape[0]):
        values, rows, cols = paste_window(probs[i], boxes[i], img_h, img_w)
        if values.numel():
            out[i, rows, cols] = values >= threshold
    return out
