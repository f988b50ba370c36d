"""The Cityscapes reader: ``leftImg8bit/<split>/<city>/<frame>_leftImg8bit.png`` images with
``gtFine/<split>/<city>/<frame>_gtFine_instanceIds.png`` ground truth (``_labelIds.png`` and ``_polygons.json``
sit beside it; the instance evaluation reads only instanceIds, as does this reader).

An instanceIds value ``v`` >= 1000 is instance ``v % 1000`` of class ``v // 1000``; a value below 1000 is a class
id without an instance: for the 8 instance classes a *group* region (e.g. a row of parked cars), which the
official evaluation neither requires nor penalises. Here such a region is a crowd region of its class: COCO AP
handles it as pycocotools handles ``iscrowd: 1``, the matching metrics leave its pixels out (as VOC's void).

Ids: ``file_name`` is ``<city>/<frame>_leftImg8bit.png``; ``image_id`` is the 1-based position in the split's
sorted file list; categories keep Cityscapes' label ids (person 24 ... bicycle 33), as ``export_coco`` writes
them and as a COCO results list for this data must use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from insseg.data.annotations import RleAnnotation
from insseg.data.label_png import read_id_png
from insseg.data.readers import _check_size, _Reader
from insseg.errors import DatasetError
from insseg.io.images import image_size

# The classes with instances that the evaluation counts (cityscapesscripts' labels.py: hasInstances and not
# ignoreInEval; caravan 29 and trailer 30 have instances but are ignored), with their label ids.
CITYSCAPES_CLASSES = (
    ("person", 24),
    ("rider", 25),
    ("car", 26),
    ("truck", 27),
    ("bus", 28),
    ("train", 31),
    ("motorcycle", 32),
    ("bicycle", 33),
)
LABEL_IDS = tuple(i for _, i in CITYSCAPES_CLASSES)
IMAGE_SUFFIX = "_leftImg8bit.png"
GT_SUFFIXES = ("_gtFine_instanceIds.png", "_gtFine_labelIds.png")
# An annotation id is image_id * ANN_STRIDE + k: unique over the split for COCO AP.
ANN_STRIDE = 10000


def gt_file(root: str | Path, split: str, file_name: str, suffix: str = GT_SUFFIXES[0]) -> Path:
    """The ground-truth file of image ``<city>/<frame>_leftImg8bit.png`` of ``split``."""
    city, name = Path(file_name).parent.name, Path(file_name).name
    return Path(root) / "gtFine" / split / city / (name[: -len(IMAGE_SUFFIX)] + suffix)


class CityscapesReader(_Reader):
    class_names = tuple(n for n, _ in CITYSCAPES_CLASSES)
    category_ids = LABEL_IDS

    def __init__(self, root: str | Path, split: str) -> None:
        super().__init__(root)
        self.split = split
        images_dir = self.root / "leftImg8bit" / split
        if not images_dir.is_dir():
            raise DatasetError(
                f"Cityscapes folder {images_dir} does not exist; data.root must be the folder holding "
                f"leftImg8bit/ and gtFine/ (data.train_split / data.eval_split name the split: train, val, test)"
            )
        self._image_paths = sorted(images_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not self._image_paths:
            raise DatasetError(f"Cityscapes folder {images_dir} holds no <city>/*{IMAGE_SUFFIX} images")
        self._mask_paths = [gt_file(self.root, split, self.file_name(i)) for i in range(len(self))]
        missing = [str(p) for p in self._mask_paths if not p.is_file()]
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) in {images_dir} have no instanceIds file: {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else "")
            )

    @property
    def gt_dir(self) -> Path:
        """``gtFine/<split>``: where the official evaluation finds the ground truth."""
        return self.root / "gtFine" / self.split

    def file_name(self, index: int) -> str:
        path = self._image_paths[index]
        return f"{path.parent.name}/{path.name}"

    def image_id(self, index: int) -> int:
        return index + 1

    def gt_path(self, index: int) -> Path:
        return self._mask_paths[index]

    def _label_paths(self, index: int) -> list[Path]:
        labels = gt_file(self.root, self.split, self.file_name(index), GT_SUFFIXES[1])
        return [self._mask_paths[index]] + ([labels] if labels.is_file() else [])

    def annotation(self, index: int, image_hw: tuple[int, int] | None = None) -> RleAnnotation:  # type: ignore[override]
        path = self._mask_paths[index]
        ids = read_id_png(path)
        if image_hw is None:
            image_hw = image_size(self._image_paths[index])
        _check_size(path, ids.shape, self._image_paths[index], tuple(image_hw))
        return annotation_from_ids(ids, self.file_name(index), self.image_id(index))


def annotation_from_ids(ids: np.ndarray, file_name: str, image_id: int) -> RleAnnotation:
    """The annotation of an instanceIds map: instances (ids >= 1000) and group regions (ids < 1000) of the
    instance classes; every other value (stuff, void) is background."""
    height, width = ids.shape
    rles: list[dict[str, Any]] = []
    crowd: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    labels: list[int] = []
    for value in np.unique(ids).tolist():
        label_id = value // 1000 if value >= 1000 else value
        if label_id not in LABEL_IDS:
            continue
        rle = mask_utils.encode(np.asfortranarray(ids == value, dtype=np.uint8))
        is_crowd = value < 1000
        (crowd if is_crowd else rles).append(rle)
        if not is_crowd:
            labels.append(LABEL_IDS.index(label_id) + 1)
        entries.append(_entry(rle, label_id, is_crowd, image_id, image_id * ANN_STRIDE + len(entries)))
    return RleAnnotation(
        file_name=file_name,
        height=int(height),
        width=int(width),
        rles=rles,
        labels=np.asarray(labels, dtype=np.int64),
        crowd_rles=crowd,
        image_id=image_id,
        coco_entries=entries,
        annotation_ids=[e["id"] for e in entries if not e["iscrowd"]],
        category_ids=LABEL_IDS,
    )


def _entry(rle: dict[str, Any], label_id: int, crowd: bool, image_id: int, ann_id: int) -> dict[str, Any]:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": label_id,
        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
        "area": float(mask_utils.area(rle)),
        "bbox": mask_utils.toBbox(rle).tolist(),
        "iscrowd": int(crowd),
    }
