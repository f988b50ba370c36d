"""The predictions file shared by evaluate.py and predict.py, and the per-image prediction record.

Layout (COCO results plus the image and category tables, so the file stands alone)::

    {"images": [{"id", "file_name", "height", "width"}],
     "annotations": [{"image_id", "category_id", "score", "bbox": [x, y, w, h],
                      "segmentation": {"size": [h, w], "counts": str}}],
     "categories": [{"id", "name"}]}

Category ids are the model's class ids (1-based, 0 is background); names bridge models and datasets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from insseg.errors import InssegError
from insseg.utils.atomic import atomic_write_json


@dataclass
class ImagePrediction:
    """Detections for one image at its original size.

    boxes: float32 [N, 4] xyxy pixels; scores: float32 [N]; labels: int64 [N] model class ids (1-based);
    masks: bool [N, H, W], or None when only RLEs are kept (``rles``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    rles: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def keep(self, index: np.ndarray) -> "ImagePrediction":
        """A new prediction holding only ``index`` (a boolean mask or integer indices)."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return ImagePrediction(
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            labels=self.labels[idx],
            masks=None if self.masks is None else self.masks[idx],
            rles=None if self.rles is None else [self.rles[i] for i in idx.tolist()],
        )

    def above(self, threshold: float) -> "ImagePrediction":
        """Detections with score strictly greater than ``threshold``."""
        return self.keep(self.scores > threshold)

    def get_rles(self) -> list[dict[str, Any]]:
        if self.rles is None:
            if self.masks is None:
                raise ValueError("prediction has neither masks nor RLEs")
            self.rles = encode_masks(self.masks)
        return self.rles

    def get_masks(self, height: int, width: int) -> np.ndarray:
        if self.masks is None:
            if self.rles is None or len(self.rles) == 0:
                return np.zeros((0, height, width), dtype=bool)
            self.masks = np.moveaxis(mask_utils.decode(self.rles), -1, 0).astype(bool)
        return self.masks

    @staticmethod
    def from_model_output(output: dict[str, Any], mask_threshold: float = 0.5) -> "ImagePrediction":
        """From a torchvision-style detection output (tensors, masks [N, 1, H, W] probabilities > threshold)."""
        masks = output["masks"]
        if masks.dim() == 4:
            masks = masks[:, 0]
        return ImagePrediction(
            boxes=output["boxes"].detach().float().cpu().numpy().astype(np.float32),
            scores=output["scores"].detach().float().cpu().numpy().astype(np.float32),
            labels=output["labels"].detach().cpu().numpy().astype(np.int64),
            masks=(masks > mask_threshold).cpu().numpy(),
        )

    @staticmethod
    def empty(height: int, width: int) -> "ImagePrediction":
        return ImagePrediction(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            labels=np.zeros((0,), np.int64),
            masks=np.zeros((0, height, width), dtype=bool),
        )


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """COCO RLEs (counts as str) for bool masks [N, H, W]."""
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.moveaxis(masks.astype(np.uint8), 0, -1)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _counts_str(counts: str | bytes) -> str:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    out = np.asarray(boxes, dtype=np.float64).copy()
    out[:, 2:] -= out[:, :2]
    return out


class PredictionsWriter:
    """Collects per-image predictions as RLEs (small) and writes the file atomically at the end."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.categories = [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, file_name: str, height: int, width: int, pred: ImagePrediction) -> int:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width)})
        rles = pred.get_rles()
        for box, score, label, rle in zip(xyxy_to_xywh(pred.boxes), pred.scores, pred.labels, rles):
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "score": round(float(score), 6),
                    # 5 decimals: sub-pixel boxes (a few hundredths of a pixel wide) keep their IoU.
                    "bbox": [round(float(v), 5) for v in box],
                    "segmentation": {"size": [int(s) for s in rle["size"]], "counts": _counts_str(rle["counts"])},
                }
            )
        return image_id

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "annotations": self.annotations, "categories": self.categories}

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict(), indent=None)


@dataclass
class LoadedPredictions:
    """A predictions file read back: class names and one ImagePrediction (RLE-backed) per file name."""

    class_names: list[str]
    category_ids: list[int]
    by_file_name: dict[str, ImagePrediction]
    sizes: dict[str, tuple[int, int]]

    def name_of(self, category_id: int) -> str:
        return self.class_names[self.category_ids.index(category_id)]


def load_predictions(path: str | Path) -> LoadedPredictions:
    """Read and validate a predictions file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise InssegError(f"predictions file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InssegError(f"predictions file {path} is not valid JSON: {e}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or key not in data:
            raise InssegError(f"predictions file {path} has no '{key}' list; expected keys images, annotations, categories")
    categories = sorted(data["categories"], key=lambda c: c["id"])
    cat_ids = [int(c["id"]) for c in categories]
    names = [str(c["name"]) for c in categories]
    images = {int(im["id"]): im for im in data["images"]}
    grouped: dict[int, list[dict[str, Any]]] = {i: [] for i in images}
    for ann in data["annotations"]:
        if ann["image_id"] not in grouped:
            raise InssegError(f"predictions file {path}: annotation refers to unknown image_id {ann['image_id']}")
        if ann["category_id"] not in cat_ids:
            raise InssegError(f"predictions file {path}: annotation has unknown category_id {ann['category_id']}")
        grouped[ann["image_id"]].append(ann)
    by_name: dict[str, ImagePrediction] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for image_id, im in images.items():
        anns = grouped[image_id]
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        rles = []
        for a in anns:
            seg = a["segmentation"]
            rles.append({"size": list(seg["size"]), "counts": seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"]})
        by_name[im["file_name"]] = ImagePrediction(
            boxes=boxes,
            scores=np.array([a["score"] for a in anns], dtype=np.float32),
            labels=np.array([a["category_id"] for a in anns], dtype=np.int64),
            rles=rles,
        )
        sizes[im["file_name"]] = (int(im["height"]), int(im["width"]))
    return LoadedPredictions(class_names=names, category_ids=cat_ids, by_file_name=by_name, sizes=sizes)
