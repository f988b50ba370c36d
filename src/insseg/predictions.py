"""The one prediction record and the one reader/writer of predictions.json.

Every path produces :class:`ImagePrediction` records: the inference loop (evaluate.py, training-time
evaluation, predict.py, the Segmenter API), the prediction cache and ``eval.predictions=<file>`` all hand the
evaluators the same thing. Scores and boxes are float32 and are written with the shortest text that reads back
to the same float32, so a record read from a file equals the record that was written: a fresh run, a cache hit
and a later ``eval.predictions=`` run score the same numbers without any write-then-parse round trip.

File layout (COCO results plus the image and category tables, so the file stands alone)::

    {"info": {"score_threshold": 0.05, ...},
     "images": [{"id", "file_name", "height", "width"}],
     "annotations": [{"id", "image_id", "category_id", "score", "bbox": [x, y, w, h],
                      "segmentation": {"size": [h, w], "counts": str}}],
     "categories": [{"id", "name"}]}

Category ids are the model's labels (1-based, 0 is background) unless ``category_ids`` says otherwise (a
COCO-format dataset's own ids); names bridge models and datasets.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from insseg.errors import InssegError
from insseg.io.rle import encode_masks as encode_masks  # re-exported: a prediction record's mask encoding
from insseg.io.rle import segmentation_rle
from insseg.utils.atomic import atomic_write_json


@dataclass
class ImageTiming:
    """Seconds spent on one image: decoding (data), the forward pass (model), binarise/encode (postprocess)."""

    data: float = 0.0
    model: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.data + self.model + self.postprocess

    def to_dict(self) -> dict[str, float]:
        return {"data": self.data, "model": self.model, "postprocess": self.postprocess}

    @staticmethod
    def from_dict(d: dict[str, float]) -> ImageTiming:
        return ImageTiming(float(d["data"]), float(d["model"]), float(d["postprocess"]))


@dataclass
class ImagePrediction:
    """Detections for one image at its original size, in descending score order.

    boxes: float32 [N, 4] xyxy pixels; scores: float32 [N]; labels: int64 [N] model labels (1-based, label k
    is ``class_names[k - 1]``); rles: COCO RLEs (``counts`` as str); masks: bool [N, H, W] when kept decoded
    (predict keeps them for overlays; evaluation keeps only RLEs so memory stays flat). image_id: the dataset's
    own id of the image when it has one (COCO-format data).
    """

    file_name: str
    height: int
    width: int
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    rles: list[dict[str, Any]]
    masks: np.ndarray | None = None
    class_names: Sequence[str] = ()
    timing: ImageTiming | None = None
    image_id: int | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def names(self) -> list[str]:
        """The class name of each detection."""
        return [class_name(self.class_names, int(k)) for k in self.labels]

    def mask_array(self) -> np.ndarray:
        """bool [N, H, W]: the kept masks, or the RLEs decoded (not cached, so memory stays flat)."""
        if self.masks is not None:
            return self.masks
        if not self.rles:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.moveaxis(mask_utils.decode(self.rles), -1, 0).astype(bool)

    def keep(self, index: np.ndarray) -> ImagePrediction:
        """A new record holding only ``index`` (a boolean mask or integer indices), in that order."""
        idx = np.asarray(index)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        return ImagePrediction(
            self.file_name,
            self.height,
            self.width,
            self.boxes[idx],
            self.scores[idx],
            self.labels[idx],
            [self.rles[i] for i in idx.tolist()],
            None if self.masks is None else self.masks[idx],
            self.class_names,
            self.timing,
            self.image_id,
        )

    def above(self, threshold: float) -> ImagePrediction:
        """Detections with score strictly greater than ``threshold``."""
        return self.keep(self.scores > threshold)

    def without_masks(self) -> ImagePrediction:
        """The same record keeping only RLEs (what a collection of many images holds)."""
        return dataclasses.replace(self, masks=None)


def class_name(class_names: Sequence[str], label: int) -> str:
    return class_names[label - 1] if 1 <= label <= len(class_names) else f"class_{label}"


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    out = np.asarray(boxes, dtype=np.float64).copy().reshape(-1, 4)
    out[:, 2:] -= out[:, :2]
    return out


def _bbox_text(xywh: np.ndarray) -> list[float]:
    """x, y as their shortest float32 text; w, h as the exact float64 differences of float32 corners, so
    :func:`_xyxy_from_text` gives back the very same float32 corners."""
    return [f32(xywh[0]), f32(xywh[1]), float(xywh[2]), float(xywh[3])]


def _xyxy_from_text(bbox: np.ndarray) -> np.ndarray:
    xy = bbox[:, :2].astype(np.float32)
    return np.concatenate([xy, (xy.astype(np.float64) + bbox[:, 2:]).astype(np.float32)], axis=1)


def f32(value: float) -> float:
    """The shortest decimal that reads back to the same float32 (compact JSON, exact round trip)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


@dataclass
class PredictionSet:
    """The predictions of one run: the model's class names and one record per image, in run order.

    ``category_ids[k - 1]`` is the file's category id of label k (default: k). ``info`` travels in the file's
    ``info`` (e.g. ``score_threshold``: detections at or below it were not kept).
    """

    class_names: list[str]
    images: list[ImagePrediction] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    category_ids: list[int] | None = None
    # Wall seconds the model run took to produce the records (all processes together); not written to the file.
    run_seconds: float | None = None

    def ids(self) -> list[int]:
        return list(self.category_ids) if self.category_ids is not None else list(range(1, len(self.class_names) + 1))

    def to_dict(self) -> dict[str, Any]:
        ids = self.ids()
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for n, rec in enumerate(self.images, start=1):
            image_id = rec.image_id if rec.image_id is not None else n
            images.append(
                {"id": image_id, "file_name": rec.file_name, "height": int(rec.height), "width": int(rec.width)}
            )
            for box, score, label, rle in zip(xyxy_to_xywh(rec.boxes), rec.scores, rec.labels, rec.rles):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": ids[int(label) - 1],
                        "score": f32(score),
                        "bbox": _bbox_text(box),
                        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"]},
                    }
                )
        categories = [{"id": i, "name": n} for i, n in zip(ids, self.class_names)]
        return {"info": dict(self.info), "images": images, "annotations": annotations, "categories": categories}

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict(), indent=None)

    @property
    def lowest_score(self) -> float | None:
        scores = [float(r.scores.min()) for r in self.images if len(r)]
        return min(scores) if scores else None


def read_predictions(path: str | Path, check: str | None = "strict") -> PredictionSet:
    """Read and validate a predictions file; errors name the file and the problem.

    ``check``: strict | lenient | None, how :mod:`insseg.predictions_check` treats a bad entry (None: not checked,
    for the project's own cache files)."""
    path = Path(path)
    if not path.is_file():
        raise InssegError(f"predictions file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InssegError(f"predictions file {path} is not valid JSON: {e}") from None
    return predictions_from_dict(data, str(path), check)


def predictions_from_dict(data: Any, source: str, check: str | None = None) -> PredictionSet:
    """The :class:`PredictionSet` of a predictions.json payload (``source`` names it in errors), its entries
    checked first when ``check`` is strict or lenient."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise InssegError(
                f"predictions file {source} has no '{key}' list; expected keys images, annotations, categories"
            )
    if check is not None:
        from insseg.predictions_check import check_predictions_json

        check_predictions_json(data, source, check)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    label_of = {int(c["id"]): k for k, c in enumerate(categories, start=1)}
    names = [str(c["name"]) for c in categories]
    grouped: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in data["images"]}
    for ann in data["annotations"]:
        if ann.get("image_id") not in grouped:
            raise InssegError(
                f"predictions file {source}: annotation {ann.get('id')} refers to unknown "
                f"image_id {ann.get('image_id')}"
            )
        if ann.get("category_id") not in label_of:
            raise InssegError(
                f"predictions file {source}: annotation {ann.get('id')} has unknown "
                f"category_id {ann.get('category_id')}"
            )
        grouped[int(ann["image_id"])].append(ann)
    result = PredictionSet(names, info=dict(data.get("info") or {}), category_ids=sorted(label_of))
    for im in data["images"]:
        result.images.append(_record(im, grouped[int(im["id"])], label_of, names))
    return result


def _record(
    im: dict[str, Any], anns: list[dict[str, Any]], label_of: dict[int, int], names: list[str]
) -> ImagePrediction:
    anns = sorted(anns, key=lambda a: -a["score"])
    boxes = _xyxy_from_text(np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4))
    rles = [segmentation_rle(a["segmentation"], int(im["height"]), int(im["width"])) for a in anns]
    return ImagePrediction(
        file_name=im["file_name"],
        height=int(im["height"]),
        width=int(im["width"]),
        boxes=boxes,
        scores=np.array([a["score"] for a in anns], dtype=np.float32),
        labels=np.array([label_of[int(a["category_id"])] for a in anns], dtype=np.int64),
        rles=rles,
        class_names=names,
        image_id=int(im["id"]),
    )
