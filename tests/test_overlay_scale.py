"""Overlay labels and lines grow with the image: readable at 300 px and at 4,000 px (predict.py overlays, the
gallery and the contact sheet all draw through insseg.utils.overlay.draw_overlay)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from insseg.utils.overlay import draw_overlay


@functools.lru_cache
def label_and_line(size: int) -> tuple[int, int]:
    """(height of the label patch, width of the box line) in pixels on an image ``size`` wide (a panorama strip
    for the large one: the scale follows the longer side, and a strip draws fast): the rows where the labelled
    drawing differs from the unlabelled one, and the box's left edge measured on a row below the label."""
    h, w = min(size, 400), size
    image = np.zeros((h, w, 3), np.uint8)
    masks = np.zeros((1, h, w), bool)
    box = np.array([[w // 4, h // 4, 3 * w // 4, 3 * h // 4 + 10]], np.float32)
    labelled = draw_overlay(image, masks, box, ["person 0.99"], colors=[(255, 255, 0)])
    plain = draw_overlay(image, masks, box, [""], colors=[(255, 255, 0)])
    rows = np.flatnonzero((labelled != plain).any(axis=(1, 2)))
    row = plain[3 * h // 4, :, 0]  # near the bottom of the box, below the label
    line = np.flatnonzero(row[: w // 2] > 0)
    return int(rows.max() - rows.min() + 1), int(line.size)


@pytest.mark.parametrize("size", [300, 4000])
def test_labels_and_lines_scale_with_the_image(size):
    text, line = label_and_line(size)
    # The font is max(10, size / 60) px: about 10 px at 300 px, 67 px at 4,000 px; the patch adds a little margin.
    assert max(10, size / 60) * 0.9 <= text <= max(10, size / 60) * 1.6, text
    assert line == max(1, round(size / 400))


def test_a_large_image_gets_proportionally_larger_labels():
    small, _ = label_and_line(300)
    large, _ = label_and_line(4000)
    assert large / small > 5  # 4000 / 300 = 13x the pixels; the label at least 5x taller, never a fixed size
