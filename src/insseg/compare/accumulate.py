"""COCO AP of a multiset of images, re-accumulated from one evaluation's per-image results, vectorised.

``COCOeval.evaluate`` leaves one ``evalImgs`` entry per (category, area range, image): which detections matched
at each IoU threshold (``dtMatches``), which are ignored (``dtIgnore``, matched to a crowd region), their
scores, and which ground truth is ignored. ``accumulate`` then concatenates the entries of the images, sorts the
detections by score (stable: image order, then the image's own order) and turns cumulative true and false
positives into the interpolated precision at 101 recall points. A bootstrap resample is a multiset of images
(an image drawn twice counts twice), so its AP is that same accumulate over the drawn images' entries: nothing
is matched again.

:class:`DetectionTable` keeps, per category, the detections in pycocotools' order over all images, and
:meth:`DetectionTable.precision` repeats each image's detections as often as the image is drawn and
re-accumulates every category and IoU threshold at once (cumulative sums, one ``searchsorted`` and one
``maximum.reduceat``), at all areas and 100 detections. It equals pycocotools' ``eval["precision"][..., all,
100]`` bit for bit on the multiset whose copies of an image follow each other, in image order (ties between the
copies of one image keep pycocotools' order: copy by copy); tests/test_compare.py checks this against COCOeval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = np.spacing(1)  # what pycocotools adds to every precision denominator


@dataclass
class DetectionTable:
    """One evaluation's detections, category by category, in the order ``accumulate`` sorts them.

    ``tp``/``fp`` [T, D]: per IoU threshold, whether detection d is a true / false positive (neither when
    ignored). Runs of detections of one image with equal scores form groups (``group_*``), which a multiset
    repeats as a block. ``npig`` [K, images]: non-ignored ground truth per category and image. Images are
    numbered by ``image_index`` (the caller's order), weights are given in that numbering.
    """

    cat_ids: list[int]
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    group_start: np.ndarray
    group_len: np.ndarray
    group_image: np.ndarray
    group_cat: np.ndarray
    npig: np.ndarray

    @property
    def num_categories(self) -> int:
        return int(self.npig.shape[0])

    @classmethod
    def from_cocoeval(cls, ev: Any, image_index: Sequence[int], num_images: int) -> DetectionTable:
        """From an evaluated ``COCOeval`` (``evaluate()`` run). ``image_index[i]``: the caller's number of the
        image ``ev.params.imgIds[i]``."""
        p = ev.params
        n_img, n_area = len(p.imgIds), len(p.areaRng)
        area = p.areaRngLbl.index("all")
        max_det = p.maxDets[-1]
        image_index = np.asarray(image_index, np.int64)
        npig = np.zeros((len(p.catIds), num_images), np.int64)
        tps, fps, scores, images, cats = [], [], [], [], []
        for k in range(len(p.catIds)):
            base = k * n_area * n_img + area * n_img
            entries = [(i, ev.evalImgs[base + i]) for i in range(n_img) if ev.evalImgs[base + i] is not None]
            for i, e in entries:
                npig[k, image_index[i]] += int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
            if not entries:
                continue
            s = np.concatenate([np.asarray(e["dtScores"][:max_det], np.float64) for _, e in entries])
            img = np.concatenate([np.full(len(e["dtScores"][:max_det]), image_index[i]) for i, e in entries])
            dtm = np.concatenate([e["dtMatches"][:, :max_det] for _, e in entries], axis=1)
            dtig = np.concatenate([e["dtIgnore"][:, :max_det] for _, e in entries], axis=1)
            order = np.argsort(-s, kind="mergesort")  # as accumulate sorts
            tps.append(((dtm != 0) & ~dtig.astype(bool))[:, order])
            fps.append(((dtm == 0) & ~dtig.astype(bool))[:, order])
            scores.append(s[order])
            images.append(img[order].astype(np.int64))
            cats.append(np.full(len(s), k, np.int64))
        t = len(p.iouThrs)
        tp = np.concatenate(tps, axis=1) if tps else np.zeros((t, 0), bool)
        fp = np.concatenate(fps, axis=1) if fps else np.zeros((t, 0), bool)
        groups = _groups(
            np.concatenate(scores) if scores else np.zeros(0),
            np.concatenate(images) if images else np.zeros(0, np.int64),
            np.concatenate(cats) if cats else np.zeros(0, np.int64),
        )
        return cls(list(p.catIds), np.asarray(p.iouThrs), np.asarray(p.recThrs), tp, fp, *groups, npig)

    def precision(self, weights: np.ndarray) -> np.ndarray:
        """[T, R, K]: pycocotools' interpolated precision (all areas, 100 detections) of the multiset that takes
        image j ``weights[j]`` times; -1 for categories without ground truth in it."""
        t, r, k = len(self.iou_thrs), len(self.rec_thrs), self.num_categories
        weights = np.asarray(weights, np.int64)
        npig = self.npig @ weights
        out = np.full((t, r, k), -1.0)
        copies = weights[self.group_image] * self.group_len  # detections each group contributes
        per_cat = np.bincount(self.group_cat, weights=copies, minlength=k).astype(np.int64)
        n = int(per_cat.sum())
        has_gt = npig > 0
        if n == 0:
            out[:, :, has_gt] = 0.0
            return out
        member = _expand(self.group_start, self.group_len, copies)
        seg = np.repeat(np.arange(k), per_cat)  # category of each expanded position
        start = np.cumsum(per_cat) - per_cat
        tp = _segment_cumsum(self.tp[:, member], start, per_cat)
        fp = _segment_cumsum(self.fp[:, member], start, per_cat)
        tpf = tp.astype(np.float64)
        pr = tpf / (fp.astype(np.float64) + tpf + EPS)
        # searchsorted(rc, recThrs, side="left") of every row at once, in integers: rc = tp / npig reaches a
        # threshold exactly when tp reaches the smallest count whose quotient does; rows are kept apart by
        # offsets of B, larger than any count.
        kmin = _min_counts(self.rec_thrs, np.where(has_gt, npig, 1))  # [K, R]
        big = max(n, int(npig.max(initial=0))) + 2
        row = np.arange(t)[:, None] * k + seg[None, :]
        keys = (tp + row * big).ravel()
        rows = np.arange(t)[:, None] * k + np.arange(k)[None, :]  # [T, K]
        pos = np.searchsorted(keys, (kmin[None] + rows[..., None] * big).ravel(), side="left").reshape(t, k, r)
        row_start = np.arange(t)[:, None] * n + start[None, :]  # [T, K] flat position of each row
        inds = pos - row_start[..., None]
        valid = inds < per_cat[None, :, None]
        # The envelope (precision made non-increasing from the right) at each of those positions: the maximum
        # of each piece between consecutive positions, then a running maximum from the right over the pieces.
        last = np.maximum(per_cat - 1, 0)[None, :, None]
        bounds = np.concatenate([row_start[..., None], row_start[..., None] + np.where(valid, inds, last)], axis=-1)
        pieces = np.maximum.reduceat(pr.ravel(), np.minimum(bounds, t * n - 1).ravel()).reshape(t, k, r + 1)
        envelope = np.maximum.accumulate(pieces[..., ::-1], axis=-1)[..., ::-1][..., 1:]
        q = np.where(valid, envelope, 0.0).transpose(0, 2, 1)  # [T, R, K]
        out[:, :, has_gt] = q[:, :, has_gt]
        return out


def _groups(scores: np.ndarray, images: np.ndarray, cats: np.ndarray) -> tuple[np.ndarray, ...]:
    """Start, length, image and category of each run of equal (category, image, score) in table order."""
    d = len(scores)
    if d == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z
    new = np.ones(d, bool)
    new[1:] = (scores[1:] != scores[:-1]) | (images[1:] != images[:-1]) | (cats[1:] != cats[:-1])
    start = np.flatnonzero(new)
    length = np.diff(np.append(start, d))
    return start, length, images[start], cats[start]


def _expand(group_start: np.ndarray, group_len: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """Table index of every detection of the multiset, in order: each group's members, block after block."""
    if len(group_len) == 0 or group_len.max() == 1:
        return np.repeat(group_start, copies)
    total = int(copies.sum())
    first = np.repeat(np.cumsum(copies) - copies, copies)
    offset = np.arange(total) - first
    return np.repeat(group_start, copies) + offset % np.repeat(group_len, copies)


def _segment_cumsum(flags: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Cumulative sums of bool [T, N] restarting at each segment (``start``, ``length``): int64 [T, N]."""
    cum = np.cumsum(flags, axis=1, dtype=np.int64)
    before = np.concatenate([np.zeros((cum.shape[0], 1), np.int64), cum], axis=1)[:, start]  # [T, K]
    return cum - np.repeat(before, length, axis=1)


def _min_counts(thresholds: np.ndarray, npig: np.ndarray) -> np.ndarray:
    """[K, R]: the smallest integer c with ``c / npig[k] >= thresholds[r]`` in float64, as pycocotools
    divides (so ``searchsorted(tp / npig, thr, "left") == searchsorted(tp, c, "left")``)."""
    n = npig.astype(np.float64)[:, None]
    thr = np.asarray(thresholds, np.float64)[None, :]
    c = np.ceil(thr * n)
    while True:
        lower = (c > 0) & ((c - 1) / n >= thr)
        if not lower.any():
            break
        c = np.where(lower, c - 1, c)
    while True:
        higher = c / n < thr
        if not higher.any():
            break
        c = np.where(higher, c + 1, c)
    return c.astype(np.int64)


def mean_valid(precision: np.ndarray) -> float:
    """``summarize``'s mean: over the entries that are not -1; NaN when there are none."""
    valid = precision[precision > -1]
    return float(np.mean(valid)) if valid.size else float("nan")


def ap_stats(precision: np.ndarray, iou_thrs: np.ndarray) -> tuple[float, float, float]:
    """AP, AP50 and AP75 of a [T, R, K] precision array, exactly as ``COCOeval.summarize`` computes them."""
    out = [mean_valid(precision)]
    for iou in (0.5, 0.75):
        out.append(mean_valid(precision[np.where(iou == iou_thrs)[0]]))
    return out[0], out[1], out[2]


def per_class_ap(precision: np.ndarray) -> np.ndarray:
    """[K]: each category's AP (mean over IoU thresholds and recall points), NaN without ground truth."""
    valid = precision[0, 0] > -1
    out = np.full(precision.shape[2], np.nan)
    out[valid] = precision[:, :, valid].mean(axis=(0, 1))
    return out
