"""Overlays: each instance's mask, box, class name and score drawn on the image in its own colour."""

from __future__ import annotations

import colorsys
import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

_GOLDEN = 0.618033988749895


def instance_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct, saturated colours: hues spread by the golden ratio, so neighbours differ most."""
    colors = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((0.1 + i * _GOLDEN) % 1.0, 0.85, 1.0 if i % 2 == 0 else 0.8)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors


@functools.lru_cache(maxsize=1)
def _label_font() -> str | None:
    """A scalable TrueType font (DejaVu Sans ships with matplotlib); None falls back to Pillow's default."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


def draw_overlay(
    image: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    alpha: float = 0.5,
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """``image`` (uint8 [H, W, 3]) with ``masks`` (bool [N, H, W]), ``boxes`` ([N, 4] xyxy) and one text
    label per instance drawn; instance k gets ``colors[k]`` (default ``instance_colors(N)[k]``); where masks
    overlap, the later one shows. Returns a new uint8 [H, W, 3]."""
    n = len(labels)
    if n == 0:
        return image.copy()
    h, w = image.shape[:2]
    colors = list(colors) if colors is not None else instance_colors(n)
    image = np.ascontiguousarray(image)
    canvas = torch.from_numpy(image if image.flags.writeable else image.copy()).permute(2, 0, 1)
    mask_tensor = torch.from_numpy(np.asarray(masks, dtype=bool))
    canvas = draw_segmentation_masks(canvas, mask_tensor, alpha=alpha, colors=colors)
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).clone()
    b[:, 0::2] = b[:, 0::2].clamp(0, w - 1)
    b[:, 1::2] = b[:, 1::2].clamp(0, h - 1)
    b[:, 2:] = torch.maximum(b[:, 2:], b[:, :2])
    # Lines and text grow with the image, so they stay readable on a 6000x4000 photo and small on 200x200.
    scale = max(h, w)
    font = _label_font()
    canvas = draw_bounding_boxes(
        canvas,
        b,
        labels=list(labels),
        colors=colors,
        width=max(1, round(scale / 400)),
        font=font,
        font_size=max(10, round(scale / 60)) if font else None,
        fill_labels=True,  # text on a patch of the instance's colour: readable on any background
    )
    return np.ascontiguousarray(canvas.permute(1, 2, 0).numpy())
