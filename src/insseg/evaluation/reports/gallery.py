"""Gallery: where the model goes wrong, as pictures. gallery/ in the run dir.

For the ``n`` images with the lowest mean IoU (images with ground truth; ties by order) and ``n`` more chosen
at random (seeded, among the others), an overlay of the image with the predictions above the score threshold
and the ground truth, in three colours:

- true positive (a prediction paired with an object at IoU >= 0.5, as the matching metrics count it): its
  mask, labelled ``class score IoU`` (``(gt <class>)`` added when the object's class differs);
- false positive (a prediction without such a pair): its mask, labelled ``class score IoU`` with its best IoU
  against any object;
- missed object (ground truth without such a pair): its mask, labelled ``missed class IoU`` with its best IoU.

Per image only the candidates are kept (references, no pixels decoded); each selected image is loaded and
drawn once, at the end. Files: ``gallery/worst/<image stem>.png``, ``gallery/random/<image stem>.png`` and
``gallery/gallery.json`` (one entry per picture: group, file, image, mean IoU, TP/FP/missed counts).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from insseg.data.annotations import Annotation
from insseg.errors import InssegError
from insseg.evaluation.matching import TP_IOU, ImageMatch, iou_f1_matrices
from insseg.evaluation.sample import ImageSample
from insseg.predictions import ImagePrediction, class_name
from insseg.utils.atomic import atomic_path, atomic_write_json
from insseg.utils.overlay import draw_overlay

DIR_NAME = "gallery"
# Okabe-Ito colours (told apart with the common colour-vision deficiencies).
TP_COLOR = (0, 158, 115)  # bluish green
FP_COLOR = (213, 94, 0)  # vermillion
FN_COLOR = (86, 180, 233)  # sky blue

ImageLoader = Callable[[str], np.ndarray]


@dataclass
class Candidate:
    index: int
    gt: Annotation
    kept: ImagePrediction  # the predictions above the threshold (RLEs)
    match: ImageMatch


@dataclass
class Outcome:
    """Per object and per prediction: paired at IoU >= 0.5 or not."""

    tp_pred: np.ndarray  # prediction indices of true positives
    tp_gt: np.ndarray  # their objects
    fp: np.ndarray  # prediction indices
    fn: np.ndarray  # object indices


def outcome(match: ImageMatch) -> Outcome:
    hit = (match.matched >= 0) & (match.iou >= TP_IOU)
    tp_gt = np.flatnonzero(hit)
    tp_pred = match.matched[tp_gt]
    fp = np.setdiff1d(np.arange(match.num_predictions), tp_pred)
    return Outcome(tp_pred, tp_gt, fp, np.flatnonzero(~hit))


def _mask_boxes(masks: np.ndarray) -> np.ndarray:
    """xyxy pixel extents (x2 = last column + 1) of bool masks [N, H, W]."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if ys.size:
            boxes[k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def _name(class_names: Sequence[str], label: int) -> str:
    return "unmapped" if label == 0 else class_name(class_names, label)


def render(
    image: np.ndarray,
    gt: Annotation,
    kept: ImagePrediction,
    match: ImageMatch,
    class_names: Sequence[str],
    void_as_background: bool = False,
    alpha: float = 0.5,
) -> np.ndarray:
    """The gallery overlay of one image (uint8 [H, W, 3]); missed objects first, then false positives, then
    true positives, so a true positive shows where it overlaps its object. ``kept``'s labels are dataset
    labels (names from ``class_names``); best IoUs count void as the matching did."""
    o = outcome(match)
    gt_masks, pred_masks = gt.masks(), kept.mask_array()
    counted = pred_masks if void_as_background else pred_masks & ~gt.void()[None]
    iou = iou_f1_matrices(gt_masks, counted)[0]
    pred_names = [_name(class_names, int(k)) for k in kept.labels]
    gt_names = [_name(class_names, int(k)) for k in gt.labels]
    layers: list[tuple[np.ndarray, np.ndarray, str, tuple[int, int, int]]] = []
    for i in o.fn.tolist():
        best = float(iou[i].max(initial=0.0))
        layers.append(
            (gt_masks[i], _mask_boxes(gt_masks[i : i + 1])[0], f"missed {gt_names[i]} IoU {best:.2f}", FN_COLOR)
        )
    for j in o.fp.tolist():
        best = float(iou[:, j].max(initial=0.0))
        layers.append((pred_masks[j], kept.boxes[j], f"{pred_names[j]} {kept.scores[j]:.2f} IoU {best:.2f}", FP_COLOR))
    for i, j in zip(o.tp_gt.tolist(), o.tp_pred.tolist()):
        other = f" (gt {gt_names[i]})" if gt_names[i] != pred_names[j] else ""
        label = f"{pred_names[j]} {kept.scores[j]:.2f} IoU {match.iou[i]:.2f}{other}"
        layers.append((pred_masks[j], kept.boxes[j], label, TP_COLOR))
    if not layers:
        return np.ascontiguousarray(image).copy()
    masks, boxes, labels, colors = zip(*layers)
    return draw_overlay(image, np.stack(masks), np.stack(boxes), list(labels), alpha=alpha, colors=list(colors))


class GalleryEvaluator:
    """Keeps the gallery's candidates per image (from the sample's one-to-one match) and draws the selected ones
    when evaluated. ``load_image(file_name)`` gives the image as uint8 [H, W, 3]."""

    def __init__(
        self,
        load_image: ImageLoader,
        class_names: Sequence[str],
        out_dir: str | Path,
        num_images: int = 8,
        seed: int = 0,
    ) -> None:
        self.load_image = load_image
        self.class_names = list(class_names)
        self.out_dir = Path(out_dir)
        self.num_images = int(num_images)
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.seen = 0
        self._worst: list[tuple[float, int, Candidate]] = []  # max-heap on (mean IoU, index) via negation
        self._sample: list[Candidate] = []  # reservoir of 2n, so n remain after removing the worst
        self._rng = np.random.default_rng(self.seed)
        self.void_as_background = False  # the pass's setting, taken from the samples

    def process(self, sample: ImageSample) -> None:
        gt, kept, match = sample.gt, sample.kept, sample.match
        self.void_as_background = sample.settings.void_as_background
        index, self.seen = self.seen, self.seen + 1
        n = self.num_images
        if n <= 0:
            return
        cand: Candidate | None = None
        if match.mean_iou is not None:
            key = (-match.mean_iou, -index)
            if len(self._worst) < n or key > self._worst[0][:2]:
                cand = Candidate(index, gt, kept.without_masks(), match)
                heapq.heappush(self._worst, (*key, cand))
                if len(self._worst) > n:
                    heapq.heappop(self._worst)
        slot = index if index < 2 * n else int(self._rng.integers(0, index + 1))
        if slot < 2 * n:  # reservoir sampling: every image seen so far equally likely to be held
            cand = cand or Candidate(index, gt, kept.without_masks(), match)
            if slot == len(self._sample):
                self._sample.append(cand)
            else:
                self._sample[slot] = cand

    def selection(self) -> dict[str, list[Candidate]]:
        """``worst`` (lowest mean IoU first) and ``random`` (in image order), disjoint."""
        worst = [c for _, _, c in sorted(self._worst, key=lambda e: (-e[0], -e[1]))]
        taken = {c.index for c in worst}
        rest = [c for c in self._sample if c.index not in taken]
        order = np.random.default_rng(self.seed).permutation(len(rest))
        chosen = sorted((rest[k] for k in order[: self.num_images]), key=lambda c: c.index)
        return {"worst": worst, "random": chosen}

    def evaluate(self, coco: object = None) -> dict[str, Any]:
        if self.num_images <= 0:
            return {}
        entries = []
        for group, cands in self.selection().items():
            for c in cands:
                entries.append(self._draw(group, c))
        root = self.out_dir / DIR_NAME
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(root / "gallery.json", entries)
        return {}

    def _draw(self, group: str, c: Candidate) -> dict[str, Any]:
        image = np.asarray(self.load_image(c.gt.file_name))
        if image.shape[:2] != (c.gt.height, c.gt.width):
            raise InssegError(
                f"gallery: image {c.gt.file_name} is {image.shape[1]}x{image.shape[0]} but its "
                f"annotation is {c.gt.width}x{c.gt.height}"
            )
        picture = render(image, c.gt, c.kept, c.match, self.class_names, self.void_as_background)
        rel = Path(DIR_NAME) / group / f"{Path(c.gt.file_name).stem}.png"
        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(picture).save(tmp, format="PNG")
        o = outcome(c.match)
        return {
            "group": group,
            "file": rel.as_posix(),
            "image": c.gt.file_name,
            "mean_iou": c.match.mean_iou,
            "true_positives": len(o.tp_pred),
            "false_positives": len(o.fp),
            "missed": len(o.fn),
        }
