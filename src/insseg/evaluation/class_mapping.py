"""Class names bridge models and datasets.

A model keeps the classes of its weights (COCO for torchvision's weights and RefineMask's checkpoint); a
dataset has its own (VOC's 20, PennFudanPed's ``person``). Each model class is mapped onto the dataset class of
the same name, through a few known aliases (COCO ``airplane`` is VOC ``aeroplane``, ...). Model classes without
a counterpart are dropped, or kept with ``keep_unmapped`` (they then take part in class-agnostic matching).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from insseg.errors import InssegError
from insseg.predictions import ImagePrediction

# COCO name -> VOC name, where they differ by more than spaces.
COCO_TO_VOC: dict[str, str] = {
    "airplane": "aeroplane",
    "motorcycle": "motorbike",
    "couch": "sofa",
    "dining table": "diningtable",
    "potted plant": "pottedplant",
    "tv": "tvmonitor",
}
ALIASES: dict[str, str] = {**COCO_TO_VOC, **{v: k for k, v in COCO_TO_VOC.items()}}


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass
class ClassBridge:
    """How the labels of a model (1-based into ``model_names``) become dataset labels.

    ``dataset_label[k]``: the dataset label (1-based) of model label k + 1, or 0 when it has none.
    ``names_for_dataset[k]``: the dataset's name for model label k + 1, or the model's own name when it has
    none (such names match no dataset class, so :class:`~insseg.evaluation.coco.CocoEvaluator` drops them).
    """

    model_names: list[str]
    dataset_names: list[str]
    dataset_label: np.ndarray
    names_for_dataset: list[str]
    keep_unmapped: bool = False

    @property
    def unmapped(self) -> list[str]:
        return [
            n
            for n, d in zip(self.model_names, self.dataset_label.tolist())
            if d == 0 and n not in ("N/A", "__background__")
        ]

    @property
    def is_identity(self) -> bool:
        return self.model_names == self.dataset_names

    def to_dataset(self, pred: ImagePrediction) -> ImagePrediction:
        """``pred`` with labels in the dataset's numbering; unmapped detections dropped, or kept with label 0
        when ``keep_unmapped`` (they never pair with ground truth under class-aware matching)."""
        labels = pred.labels.astype(np.int64)
        valid = (labels >= 1) & (labels <= len(self.model_names))
        mapped = np.zeros_like(labels)
        mapped[valid] = self.dataset_label[labels[valid] - 1]
        keep = np.ones(len(labels), bool) if self.keep_unmapped else mapped > 0
        out = pred.keep(keep)
        out.labels = mapped[keep]
        return out


def bridge_classes(
    model_names: Sequence[str], dataset_names: Sequence[str], keep_unmapped: bool = False
) -> ClassBridge:
    """Map model classes onto dataset classes by name (exact, then ignoring case/spaces, then aliases).

    Raises :class:`InssegError` when no model class has a counterpart (the model cannot be scored).
    """
    model_names = [str(n) for n in model_names]
    dataset_names = [str(n) for n in dataset_names]
    by_exact = {n: k + 1 for k, n in enumerate(dataset_names)}
    by_norm = {_normalise(n): k + 1 for k, n in enumerate(dataset_names)}
    labels = np.zeros(len(model_names), dtype=np.int64)
    names: list[str] = []
    for k, name in enumerate(model_names):
        target: int | None = by_exact.get(name)
        if target is None:
            target = by_norm.get(_normalise(name))
        if target is None and name.lower() in ALIASES:
            target = by_norm.get(_normalise(ALIASES[name.lower()]))
        if name in ("N/A", "__background__"):
            target = None
        labels[k] = target or 0
        names.append(dataset_names[target - 1] if target else name)
    if not (labels > 0).any():
        raise InssegError(
            f"none of the model's {len(model_names)} classes ({', '.join(model_names[:8])}"
            f"{', ...' if len(model_names) > 8 else ''}) matches a dataset class ({', '.join(dataset_names[:8])}"
            f"{', ...' if len(dataset_names) > 8 else ''}); pick weights trained for these classes"
        )
    return ClassBridge(model_names, dataset_names, labels, names, keep_unmapped)
