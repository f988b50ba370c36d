"""Boundaries of COCO RLE masks without decoding the whole image (the fast path of Boundary AP).

A mask's boundary (the official ``mask_to_boundary``: the mask minus its erosion by a (2d+1)-pixel square,
with zero padding at the image border) lies inside the mask's bounding box, and the erosion of a pixel in the
box only looks at pixels within ``d`` of it: the ones outside the box are 0, as are the ones outside the
image. So eroding the box alone, padded with one pixel of zeros, gives exactly the official boundary (the pad
stands for every 0 beyond the box). Here the box is cut straight from the RLE's runs (the compressed string is
decoded with numpy, no full-image decode), eroded with OpenCV in column-major layout (the square kernel is
symmetric, so the transposed box erodes the same), and the boundary's runs go back into an RLE: per mask a few
small arrays the size of its box, instead of two passes over the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

_KERNEL = np.ones((3, 3), np.uint8)
DEFAULT_DILATION_RATIO: float = 0.02


def boundary_dilation(height: int, width: int, ratio: float = DEFAULT_DILATION_RATIO) -> int:
    """The official erosion count of an image: ``max(1, int(round(ratio * diagonal)))``, Python's ``round``
    (halves to even: a 72x21 image, diagonal 75, ratio 0.02 -> round(1.5) = 2)."""
    return max(1, int(round(ratio * math.sqrt(height * height + width * width))))


def rle_counts(rle: dict[str, Any]) -> np.ndarray:
    """The run lengths (int64) of an RLE: uncompressed ``counts`` as they are, a compressed string decoded as
    pycocotools' ``rleFrString`` does (5-bit groups, 0x20 continues, 0x10 of the last group is the sign,
    counts after the second coded as the difference to the count two before)."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return np.asarray(counts, np.int64)
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    c = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if not c.size:
        return np.zeros(0, np.int64)
    ends = np.flatnonzero((c & 0x20) == 0)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    shift = 5 * (np.arange(c.size) - np.repeat(starts, ends - starts + 1))
    x = np.add.reduceat((c & 0x1F) << shift, starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * (ends[negative] - starts[negative] + 1))
    x[1::2] = np.cumsum(x[1::2])
    x[2::2] = np.cumsum(x[2::2])
    return x


def _box_of_runs(counts: np.ndarray, height: int) -> tuple[np.ndarray, int, int] | None:
    """The mask's bounding box, transposed ([columns, rows], uint8), with its first column and row; None when
    the mask is empty."""
    ends = np.cumsum(counts)
    run_start, run_end = ends[0::2][: len(ends[1::2])], ends[1::2]  # foreground runs [start, end), column-major
    filled = run_end > run_start
    run_start, run_end = run_start[filled], run_end[filled]
    if not run_start.size:
        return None
    x0, x1 = int(run_start[0] // height), int((run_end[-1] - 1) // height) + 1
    offset = x0 * height
    delta = np.zeros((x1 - x0) * height + 1, np.int8)
    delta[run_start - offset] = 1
    delta[run_end - offset] -= 1  # 0 where a run ends as the next starts (an empty background run between)
    strip = np.cumsum(delta[:-1], dtype=np.int8).reshape(x1 - x0, height)
    rows = np.flatnonzero(strip.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    return np.ascontiguousarray(strip[:, y0:y1], dtype=np.uint8), x0, y0


def erode_boundary(box: np.ndarray, dilation: int) -> np.ndarray:
    """Boundary (uint8 0/1) of a mask cut to its bounding box: the box minus its erosion by a 3x3 square
    ``dilation`` times, the box padded with one pixel of zeros (exact: module docstring)."""
    padded = cv2.copyMakeBorder(box, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, _KERNEL, iterations=dilation)[1:-1, 1:-1]
    return box & (1 - eroded)


def _runs_of_box(boundary_t: np.ndarray, x0: int, y0: int, height: int, width: int) -> list[int]:
    """Uncompressed RLE counts of the whole image holding ``boundary_t`` (transposed box) at (x0, y0)."""
    cols, rows = boundary_t.shape
    padded = np.zeros((cols, rows + 2), np.int8)
    padded[:, 1:-1] = boundary_t
    step = np.diff(padded, axis=1)  # +1: a run starts at that row, -1: one ends there
    col, row = np.nonzero(step)
    pos = (x0 + col) * height + y0 + row
    if pos.size:  # a run that goes on into the next column ends and starts at the same place: one run
        dup = pos[1:] == pos[:-1]
        keep = np.ones(pos.size, bool)
        keep[1:] &= ~dup
        keep[:-1] &= ~dup
        pos = pos[keep]
    return np.diff(pos, prepend=0, append=height * width).tolist()


def boundary_rles(rles: Sequence[dict[str, Any]], dilation: int) -> list[dict[str, Any]]:
    """Compressed RLEs of the boundaries (official ``mask_to_boundary``) of ``rles`` (compressed or
    uncompressed RLEs, each with its ``size`` [height, width]); every mask eroded ``dilation`` times."""
    uncompressed = []
    for rle in rles:
        height, width = (int(v) for v in rle["size"])
        found = _box_of_runs(rle_counts(rle), height)
        if found is None:
            counts = [height * width]
        else:
            box, x0, y0 = found
            counts = _runs_of_box(erode_boundary(box, dilation), x0, y0, height, width)
        uncompressed.append({"size": [height, width], "counts": counts})
    sizes = {tuple(u["size"]) for u in uncompressed}
    if len(sizes) == 1:  # one call for all (the usual case: the masks of one image)
        return mask_utils.frPyObjects(uncompressed, *sizes.pop())
    return [mask_utils.frPyObjects(u, *u["size"]) for u in uncompressed]
