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

from insseg.evaluation.coco import mean_valid

EPS = np.spacing(1)  # what pycocotools adds to every precision denominator


@dataclass
class DetectionTable:
    """One evaluation's detections, category by category, in the order ``accumulate`` sorts them.

    ``tp`` / ``ignored`` [T, D]: per IoU threshold, whether detection d is a true positive / ignored (a false
    positive otherwise). Runs of detections of one image and category with equal scores form groups
    (``group_*``), which a multiset repeats as a block. ``npig`` [K, images]: non-ignored ground truth per
    category and image. Images are numbered by ``image_index`` (the caller's order); weights use that numbering.
    """

    cat_ids: list[int]
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    group_start: np.ndarray
    group_len: np.ndarray
    group_image: np.ndarray
    group_cat: np.ndarray
    npig: np.ndarray

    def __post_init__(self) -> None:
        """Index arrays of the true positives, all thresholds one after another (row ``t * K + category``)."""
        t_count, d = self.tp.shape
        det_group = np.repeat(np.arange(len(self.group_len)), self.group_len)
        member = np.arange(d) - np.repeat(self.group_start, self.group_len)
        tp_t, tp_det = np.nonzero(self.tp)  # sorted by threshold, then table order: rows are contiguous
        self.tp_t, self.tp_group = tp_t, det_group[tp_det]
        self.tp_row = tp_t * self.num_categories + self.group_cat[self.tp_group]
        self.tp_member = member[tp_det]
        self.unit_groups = not len(self.group_len) or int(self.group_len.max()) == 1
        self.any_ignored = bool(self.ignored.any())
        if self.any_ignored:  # ignored members per group, and before each member in its group
            cum = np.cumsum(self.ignored, axis=1)
            before = np.concatenate([np.zeros((t_count, 1), np.int64), cum], axis=1)
            self.group_ignored = before[:, self.group_start + self.group_len] - before[:, self.group_start]
            at_start = before[:, np.repeat(self.group_start, self.group_len)]
            self.tp_ignored_before = (before[:, :-1] - at_start)[tp_t, tp_det]
            new_cat = np.r_[True, self.group_cat[1:] != self.group_cat[:-1]]
            first = np.flatnonzero(new_cat)
            self.cat_first_group = np.repeat(first, np.diff(np.r_[first, len(self.group_len)]))

    @property
    def num_categories(self) -> int:
        return int(self.npig.shape[0])

    @property
    def num_detections(self) -> int:
        return int(self.tp.shape[1])

    @classmethod
    def from_cocoeval(cls, ev: Any, image_index: Sequence[int], num_images: int) -> DetectionTable:
        """From an evaluated ``COCOeval`` (``evaluate()`` run). ``image_index[i]``: the caller's number of the
        image ``ev.params.imgIds[i]``."""
        p = ev.params
        n_img, n_area = len(p.imgIds), len(p.areaRng)
        area = p.areaRngLbl.index("all")
        max_det = p.maxDets[-1]
        index = np.asarray(image_index, np.int64)
        npig = np.zeros((len(p.catIds), num_images), np.int64)
        tps, igs, scores, images, cats = [], [], [], [], []
        for k in range(len(p.catIds)):
            base = k * n_area * n_img + area * n_img
            entries = [(i, ev.evalImgs[base + i]) for i in range(n_img) if ev.evalImgs[base + i] is not None]
            for i, e in entries:
                npig[k, index[i]] += int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
            if not entries:
                continue
            s = np.concatenate([np.asarray(e["dtScores"][:max_det], np.float64) for _, e in entries])
            img = np.concatenate([np.full(len(e["dtScores"][:max_det]), index[i]) for i, e in entries])
            dtm = np.concatenate([e["dtMatches"][:, :max_det] for _, e in entries], axis=1)
            dtig = np.concatenate([e["dtIgnore"][:, :max_det] for _, e in entries], axis=1).astype(bool)
            order = np.argsort(-s, kind="mergesort")  # as accumulate sorts
            tps.append(((dtm != 0) & ~dtig)[:, order])
            igs.append(dtig[:, order])
            scores.append(s[order])
            images.append(img[order].astype(np.int64))
            cats.append(np.full(len(s), k, np.int64))
        t = len(p.iouThrs)
        tp = np.concatenate(tps, axis=1) if tps else np.zeros((t, 0), bool)
        ignored = np.concatenate(igs, axis=1) if igs else np.zeros((t, 0), bool)
        start, length, image, cat = _groups(
            np.concatenate(scores) if scores else np.zeros(0),
            np.concatenate(images) if images else np.zeros(0, np.int64),
            np.concatenate(cats) if cats else np.zeros(0, np.int64),
        )
        iou_thrs, rec_thrs = np.asarray(p.iouThrs), np.asarray(p.recThrs)
        return cls(list(p.catIds), iou_thrs, rec_thrs, tp, ignored, start, length, image, cat, npig)

    def precision(self, weights: np.ndarray) -> np.ndarray:
        """[T, R, K]: pycocotools' interpolated precision (all areas, 100 detections) of the multiset that takes
        image j ``weights[j]`` times; -1 for categories without ground truth in it.

        Only the true positives are visited: precision after the i-th true positive of a row (threshold,
        category) is i / (detections counted so far), and the envelope at any position is the largest such
        value at or after it. ``accumulate``'s ``searchsorted(tp / npig, recThrs)`` is the position of the c-th
        true positive for the smallest c with c / npig >= the recall threshold (:func:`_min_counts`)."""
        t, r, k = len(self.iou_thrs), len(self.rec_thrs), self.num_categories
        weights = np.asarray(weights, np.int64)
        npig = self.npig @ weights
        out = np.full((t, r, k), -1.0)
        has_gt = npig > 0
        pr, row_start, per_row, per_cat = self._tp_precision(weights)
        c = _min_counts(self.rec_thrs, np.where(has_gt, npig, 1))[None]  # [1, K, R]
        row_start, per_row = row_start.reshape(t, k, 1), per_row.reshape(t, k, 1)
        valid = np.where(c >= 1, c <= per_row, per_cat[None, :, None] > 0) & (per_row > 0)
        if pr.size:
            index = row_start + np.clip(c - 1, 0, np.maximum(per_row - 1, 0))
            bounds = np.minimum(np.concatenate([row_start, index], axis=-1), pr.size - 1)
            pieces = np.maximum.reduceat(pr, bounds.ravel()).reshape(t, k, r + 1)
            envelope = np.maximum.accumulate(pieces[..., ::-1], axis=-1)[..., ::-1][..., 1:]
            q = np.where(valid, envelope, 0.0).transpose(0, 2, 1)
        else:
            q = np.zeros((t, r, k))
        out[:, :, has_gt] = q[:, :, has_gt]
        return out

    def _tp_precision(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Precision at every true positive of the multiset, row after row; each row's first index in that
        array and its number of true positives ([T * K]); detections per category ([K])."""
        t, k = len(self.iou_thrs), self.num_categories
        copies = weights[self.group_image]  # how often each group is repeated
        size = copies * self.group_len
        per_cat = np.bincount(self.group_cat, weights=size, minlength=k).astype(np.int64)
        group_pos = np.cumsum(size) - size - (np.cumsum(per_cat) - per_cat)[self.group_cat]
        wd = copies[self.tp_group]  # copies of each true positive
        first = np.cumsum(wd) - wd
        steps = np.arange(int(wd.sum()))
        per_row = np.bincount(self.tp_row, weights=wd, minlength=t * k).astype(np.int64)
        row_start = np.cumsum(per_row) - per_row
        if self.unit_groups and not self.any_ignored:
            counted = np.repeat(group_pos[self.tp_group] - first + 1, wd) + steps  # position + 1
        else:
            copy = steps - np.repeat(first, wd)  # which copy of its group
            length = np.repeat(self.group_len[self.tp_group], wd)
            pos = np.repeat(group_pos[self.tp_group] + self.tp_member, wd) + copy * length
            counted = pos + 1
            if self.any_ignored:
                counted -= self._ignored_before(copies, wd, copy)
            if not self.unit_groups:  # copies of a group interleave: order each row by position
                key = np.repeat(self.tp_row, wd) * (int(per_cat.max(initial=0)) + 1) + pos
                counted = counted[np.argsort(key, kind="stable")]
        rank = steps - np.repeat(row_start[self.tp_row] - 1, wd)  # i for the i-th true positive of its row
        return rank / (counted.astype(np.float64) + EPS), row_start, per_row, per_cat

    def _ignored_before(self, copies: np.ndarray, wd: np.ndarray, copy: np.ndarray) -> np.ndarray:
        """Ignored detections before each true-positive copy in its category (they take no place in the count)."""
        ignored = copies[None, :] * self.group_ignored  # [T, G] ignored copies per group
        before = np.cumsum(ignored, axis=1) - ignored
        before -= before[:, self.cat_first_group]  # counted from the start of the category
        g = self.tp_group
        within = np.repeat(self.group_ignored[self.tp_t, g], wd)
        return np.repeat(before[self.tp_t, g] + self.tp_ignored_before, wd) + copy * within


def _groups(
    scores: np.ndarray, images: np.ndarray, cats: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
