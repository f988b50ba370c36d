"""mmdet's test pipeline for RefineMask, reproduced exactly, plus a fast on-device variant for training.

Exact path (inference), per image, from a torchvision-style float RGB tensor in [0, 1]:

1. back to the uint8 image: ``round(x * 255)`` (exact for tensors made by ``ToTensor``/``/255``);
2. ``Resize(img_scale=(1333, 800), keep_ratio=True)``: ``s = min(1333 / long, 800 / short)``, new size
   ``int(w * s + 0.5) x int(h * s + 0.5)``, OpenCV ``INTER_LINEAR`` on the uint8 image (OpenCV's fixed-point
   bilinear; a float resize differs by up to one grey level on many pixels); ``scale_factor`` is
   ``float32 [new_w / w, new_h / h, new_w / w, new_h / h]``;
3. ``Normalize``: float32 ``x - mean``, times ``1 / std`` in double rounded to float32 (mmcv + OpenCV 4,
   mean and std as float32 arrays);
4. ``Pad(size_divisor=32)``: zeros bottom/right after normalising.

A batch is padded further (zeros) to its largest member.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
IMG_SCALE = (1333, 800)
SIZE_DIVISOR = 32


def rescale_size(h: int, w: int, scale: tuple[int, int] = IMG_SCALE) -> tuple[int, int]:
    """mmcv ``rescale_size`` with keep-ratio: the resized ``(new_h, new_w)``."""
    max_long, max_short = max(scale), min(scale)
    s = min(max_long / max(h, w), max_short / min(h, w))
    return int(h * float(s) + 0.5), int(w * float(s) + 0.5)


def image_meta(h: int, w: int, new_h: int, new_w: int, divisor: int = SIZE_DIVISOR) -> dict[str, Any]:
    """mmdet's img_meta for one image (``pad_shape`` is the image's own padded shape)."""
    ph = int(np.ceil(new_h / divisor)) * divisor
    pw = int(np.ceil(new_w / divisor)) * divisor
    ws, hs = new_w / w, new_h / h
    return {
        "ori_shape": (h, w, 3),
        "img_shape": (new_h, new_w, 3),
        "pad_shape": (ph, pw, 3),
        "scale_factor": np.array([ws, hs, ws, hs], dtype=np.float32),
    }


def to_uint8(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` float RGB in [0, 1] (or uint8) -> ``H x W x 3`` uint8 RGB array."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image tensor [3, H, W], got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        arr = image
    else:
        arr = image.detach().to("cpu", torch.float32).mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(arr.permute(1, 2, 0).cpu().numpy())


def resize_uint8(img: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    if img.shape[:2] == (new_h, new_w):
        return img.copy()
    return cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def normalize(img: np.ndarray) -> Tensor:
    """mmcv ``imnormalize`` of an RGB uint8 ``H x W x 3`` image -> float32 ``[3, H, W]``.

    mmdet keeps mean and std as float32 arrays; mmcv runs ``cv2.subtract(img_f32, mean)`` and
    ``cv2.multiply(img, 1 / float64(std))``, which OpenCV 4 evaluates in double and rounds once to float32. Done
    here with torch, because OpenCV 5 changed its scalar arithmetic (one float32 ulp off on about a third of the
    pixels); verified against the goldens' ``img_tensor_sum`` (exact).
    """
    x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32).permute(2, 0, 1)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    stdinv = 1 / torch.tensor(STD, dtype=torch.float32).double().view(3, 1, 1)
    return ((x - mean).double() * stdinv).float()


def pad_chw(x: Tensor, h: int, w: int) -> Tensor:
    return F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))


@dataclass
class Batch:
    """Network input ``[B, 3, Hp, Wp]`` and one mmdet-style meta dict per image."""

    tensor: Tensor
    metas: list[dict[str, Any]] = field(default_factory=list)


def preprocess_exact(
    images: list[Tensor],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    resized: list[np.ndarray | None] | None = None,
    scale: tuple[int, int] = IMG_SCALE,
) -> Batch:
    """The official test pipeline for each image, then a zero-padded batch.

    ``resized`` optionally gives, per image, the already-resized uint8 RGB image (e.g. the golden's), which
    then replaces steps 1-2; the meta still comes from the original size. ``scale`` is mmdet's ``img_scale``.
    """
    tensors, metas = [], []
    for i, image in enumerate(images):
        h, w = int(image.shape[-2]), int(image.shape[-1])
        new_h, new_w = rescale_size(h, w, scale)
        given = None if resized is None else resized[i]
        if given is not None:
            if given.shape[:2] != (new_h, new_w):
                raise ValueError(f"resized image {given.shape[:2]} != expected {(new_h, new_w)}")
            img = given
        else:
            img = resize_uint8(to_uint8(image), new_h, new_w)
        metas.append(image_meta(h, w, new_h, new_w))
        tensors.append(normalize(img))
    return _collate(tensors, metas, device, dtype)


def preprocess_fast(
    images: list[Tensor], dtype: torch.dtype = torch.float32, scale: tuple[int, int] = IMG_SCALE
) -> Batch:
    """Training variant on the images' own device: float bilinear resize (no uint8 round trip, no OpenCV).
    Images are float RGB in [0, 1] or uint8 in [0, 255].

    Same sizes, scale factors and normalisation as the exact path; pixel values differ by about one grey
    level, which is irrelevant for training.
    """
    tensors, metas = [], []
    mean = torch.tensor(MEAN, device=images[0].device).view(3, 1, 1)
    std = torch.tensor(STD, device=images[0].device).view(3, 1, 1)
    for image in images:
        h, w = int(image.shape[-2]), int(image.shape[-1])
        new_h, new_w = rescale_size(h, w, scale)
        # uint8 images are already in [0, 255]; float images are in [0, 1] (as in the exact path's to_uint8)
        x = image.float() if image.dtype == torch.uint8 else image.float() * 255.0
        if (new_h, new_w) != (h, w):
            x = F.interpolate(x[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        tensors.append((x - mean) / std)
        metas.append(image_meta(h, w, new_h, new_w))
    return _collate(tensors, metas, images[0].device, dtype)


def _collate(tensors: list[Tensor], metas: list[dict[str, Any]], device, dtype) -> Batch:
    ph = max(m["pad_shape"][0] for m in metas)
    pw = max(m["pad_shape"][1] for m in metas)
    batch = torch.stack([pad_chw(t, ph, pw) for t in tensors])
    return Batch(batch.to(device=device, dtype=dtype), metas)
