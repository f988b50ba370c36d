"""Boundaries of COCO RLE masks without decoding the whole image (the fast path of Boundary AP).

A mask's boundary (the official ``mask_to_boundary``: the mask minus its erosion by a (2d+1)-pixel square,
with zero padding at the image border) lies inside the mask's bounding box, and the erosion of a pixel in the
box only looks at pixels within ``d`` of it: the ones outside the box are 0, as are the ones outside the
image. So eroding the box alone, with zeros beyond it, gives exactly the official boundary (the zeros stand
for every 0 beyond the box and for the official one-pixel pad). The erosion by a square is an erosion along
the columns, then along the rows (``d`` iterations of a 3x3 square = one (2d+1) square); along a column it is
exact on the RLE's runs themselves (each run loses ``d`` pixels at both ends), so only the erosion along the
rows is left to OpenCV. The compressed strings are decoded with numpy, all the masks of a call at once, and
their boxes (column-major, as the RLE runs) filled with ``np.repeat`` of the alternating runs: per mask a few
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


def erode_boundary(box: np.ndarray, dilation: int) -> np.ndarray:
    """Boundary (uint8 0/1) of a mask cut to its bounding box: the box minus its erosion by a 3x3 square
    ``dilation`` times, the box padded with one pixel of zeros (exact: module docstring)."""
    padded = cv2.copyMakeBorder(box, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, _KERNEL, iterations=dilation)[1:-1, 1:-1]
    return cv2.subtract(box, eroded)  # the erosion lies inside the box


def _runs_of_box(boundary_t: np.ndarray, x0: int, y0: int, height: int, width: int) -> list[int]:
    """Uncompressed RLE counts of the whole image holding ``boundary_t`` (transposed box) at (x0, y0)."""
    cols, rows = boundary_t.shape
    padded = np.zeros((cols, rows + 1), np.int8)  # a 0 after each column: every run ends inside its column
    padded[:, :rows] = boundary_t
    change = np.flatnonzero(np.diff(padded.ravel(), prepend=0))
    col, row = np.divmod(change, rows + 1)
    pos = (x0 + col) * height + y0 + row
    if y0 == 0 and rows == height:  # a run that goes on into the next column ends and starts at one place
        dup = pos[1:] == pos[:-1]
        keep = np.ones(pos.size, bool)
        keep[1:] &= ~dup
        keep[:-1] &= ~dup
        pos = pos[keep]
    return np.diff(pos, prepend=0, append=height * width).tolist()


def boundary_rles(rles: Sequence[dict[str, Any]], dilation: int) -> list[dict[str, Any]]:
    """Compressed RLEs of the boundaries (official ``mask_to_boundary``) of ``rles`` (compressed or
    uncompressed RLEs, each with its ``size`` [height, width]); every mask eroded ``dilation`` times."""
    out = []
    for rle, b in zip(rles, boundary_boxes(rles, dilation)):
        height, width = (int(v) for v in rle["size"])
        counts = _runs_of_box(b.box.view(np.uint8), b.x0, b.y0, height, width) if b.pixels else [height * width]
        out.append(mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width))
    return out


class BoundaryBox:
    """The boundary of one mask as its bounding box (transposed: [columns, rows], bool) at column ``x0`` and
    row ``y0``, and its pixel count; what the Boundary AP evaluator keeps per annotation instead of an RLE."""

    __slots__ = ("box", "x0", "y0", "pixels")

    def __init__(self, box: np.ndarray, x0: int, y0: int) -> None:
        self.box, self.x0, self.y0 = box, x0, y0
        self.pixels = int(np.count_nonzero(box))

    @classmethod
    def empty(cls) -> BoundaryBox:
        return cls(np.zeros((0, 0), bool), 0, 0)

    @classmethod
    def of_box(cls, boundary_t: np.ndarray, x0: int, y0: int) -> BoundaryBox:
        return cls(boundary_t.view(bool), x0, y0)


def box_ious(dt: Sequence[BoundaryBox], gt: Sequence[BoundaryBox]) -> np.ndarray:
    """IoU [D, G] of boundaries given as :class:`BoundaryBox`: the same exact counts, and the same division
    (``intersection / union`` in doubles), as pycocotools' ``mask.iou`` of their RLEs (non-crowd); 0 where both
    are empty."""
    out = np.zeros((len(dt), len(gt)))
    for i, d in enumerate(dt):
        dx1, dy1 = d.x0 + d.box.shape[0], d.y0 + d.box.shape[1]
        for j, g in enumerate(gt):
            x0, x1 = max(d.x0, g.x0), min(dx1, g.x0 + g.box.shape[0])
            y0, y1 = max(d.y0, g.y0), min(dy1, g.y0 + g.box.shape[1])
            inter = 0
            if x0 < x1 and y0 < y1:
                a = d.box[x0 - d.x0 : x1 - d.x0, y0 - d.y0 : y1 - d.y0]
                b = g.box[x0 - g.x0 : x1 - g.x0, y0 - g.y0 : y1 - g.y0]
                inter = int(np.count_nonzero(a & b))
            union = d.pixels + g.pixels - inter
            out[i, j] = inter / union if union else 0.0
    return out


def _segment_cumsum(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each segment (consecutive ``lengths``)."""
    total = np.cumsum(values)
    lengths = lengths[lengths > 0]
    first = np.cumsum(lengths) - lengths
    return total - np.repeat(total[first] - values[first], lengths)


def _all_counts(rles: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths of several RLEs at once (rle_counts vectorised over their strings): the counts one after
    another, and how many each RLE has."""
    raws = []
    for rle in rles:
        counts = rle["counts"]
        if isinstance(counts, list):
            h, w = (int(v) for v in rle["size"])
            counts = mask_utils.frPyObjects(rle, h, w)["counts"]
        raws.append(counts.encode("ascii") if isinstance(counts, str) else bytes(counts))
    c = np.frombuffer(b"".join(raws), np.uint8).astype(np.int64) - 48
    ends = np.flatnonzero((c & 0x20) == 0)
    starts = np.empty_like(ends)
    starts[:1], starts[1:] = 0, ends[:-1] + 1
    digits = ends - starts + 1
    x = np.add.reduceat((c & 0x1F) << (5 * (np.arange(c.size) - np.repeat(starts, digits))), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * digits[negative])
    per_rle = np.bincount(np.searchsorted(np.cumsum([len(r) for r in raws]), ends, side="right"), minlength=len(raws))
    j = np.arange(x.size) - np.repeat(np.cumsum(per_rle) - per_rle, per_rle)  # index within its RLE
    # counts after the second are differences to the count two before: cumulative sums along each parity
    odd, even = (j & 1) == 1, ((j & 1) == 0) & (j > 0)
    x = np.where(odd, _segment_cumsum(np.where(odd, x, 0), per_rle), x)
    x = np.where(even, _segment_cumsum(np.where(even, x, 0), per_rle), x)
    return x, per_rle


def _foreground_pieces(rles: Sequence[dict[str, Any]]) -> tuple[np.ndarray, ...]:
    """Every foreground run of every RLE, cut at column ends: its RLE, column, first row and last row + 1, in
    the RLEs' order; two runs of one column never touch."""
    counts, per_rle = _all_counts(rles)
    heights = np.array([int(r["size"][0]) for r in rles], np.int64)
    ends = _segment_cumsum(counts, per_rle)
    owner = np.repeat(np.arange(len(rles)), per_rle)
    j = np.arange(counts.size) - np.repeat(np.cumsum(per_rle) - per_rle, per_rle)
    odd = np.flatnonzero(j & 1)  # foreground runs: [end of the run before, own end)
    start, end, owner = ends[odd - 1], ends[odd], owner[odd]
    filled = end > start
    start, end, owner = start[filled], end[filled], owner[filled]
    touch = (start[1:] == end[:-1]) & (owner[1:] == owner[:-1])
    if touch.any():  # an empty background run between two runs: one run (the erosion needs whole runs)
        first = np.flatnonzero(np.concatenate([[True], ~touch]))
        last = np.append(first[1:], start.size) - 1
        start, end, owner = start[first], end[last], owner[first]
    height = heights[owner]
    col, last = start // height, (end - 1) // height
    if (last > col).any():  # runs that go on into the next column(s): one piece per column
        pieces = last - col + 1
        which = np.repeat(np.arange(col.size), pieces)
        col = col[which] + np.arange(which.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        height, owner = height[which], owner[which]
        start, end = np.maximum(start[which], col * height), np.minimum(end[which], (col + 1) * height)
    return owner, col, start - col * height, end - col * height


def _fill(starts: np.ndarray, ends: np.ndarray, total: int) -> np.ndarray:
    """uint8 [total]: 1 on each [starts[i], ends[i]) (sorted, disjoint), 0 elsewhere."""
    edges = np.empty(2 * starts.size + 2, np.int64)
    edges[0], edges[-1] = 0, total
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    return np.repeat((np.arange(edges.size - 1) & 1).astype(np.uint8), np.diff(edges))


def boundary_boxes(rles: Sequence[dict[str, Any]], dilation: int) -> list[BoundaryBox]:
    """:class:`BoundaryBox` of each of ``rles`` (RLEs with their ``size``), eroded ``dilation`` times: the
    strings decoded and the boxes filled for all masks at once, the masks and their erosions along the columns
    from the runs, then each box eroded along its rows (module docstring)."""
    out = [BoundaryBox.empty() for _ in rles]
    if not rles:
        return out
    owner, col, row0, row1 = _foreground_pieces(rles)
    if not owner.size:
        return out
    present, first = np.unique(owner, return_index=True)
    x0, x1 = col[first], np.maximum.reduceat(col, first) + 1
    y0, y1 = np.minimum.reduceat(row0, first), np.maximum.reduceat(row1, first)
    width, height = x1 - x0, y1 - y0
    size = width * height
    offset = np.cumsum(size) - size
    k = np.repeat(np.arange(present.size), np.diff(np.append(first, owner.size)))
    base = offset[k] + (col - x0[k]) * height[k] - y0[k]  # each box [width, height], one after another
    total = int(size.sum())
    masks = _fill(base + row0, base + row1, total)
    thick = row1 - row0 > 2 * dilation  # the runs that keep pixels when eroded along their column
    cores = _fill((base + row0 + dilation)[thick], (base + row1 - dilation)[thick], total)
    kernel = np.ones((2 * dilation + 1, 1), np.uint8)  # along the rows: axis 0 of the transposed box
    for i, r in enumerate(present.tolist()):
        shape, part = (int(width[i]), int(height[i])), slice(int(offset[i]), int(offset[i] + size[i]))
        eroded = cv2.erode(cores[part].reshape(shape), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        out[r] = BoundaryBox.of_box(cv2.subtract(masks[part].reshape(shape), eroded), int(x0[i]), int(y0[i]))
    return out
