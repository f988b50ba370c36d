"""Ground truth of one image as the evaluators see it, in one of two forms with one interface.

- :class:`InstanceAnnotation` (PennFudanPed, VOC, the synthetic sets): an instance-id map. Instances cannot
  overlap; VOC's 255 band is void. Keeping the map (rather than N full-size masks) keeps memory flat.
- :class:`RleAnnotation` (COCO-format data): one RLE per instance, decoded on demand. Instances may overlap;
  crowd regions (``iscrowd: 1``) are not instances: the matching metrics leave their pixels (outside every
  instance) out, as VOC's void, and COCO AP handles them as pycocotools does (the user's own annotation entries
  travel along).

Both give ``masks()`` (one bool mask per instance), ``labels`` (1-based into the dataset's class names),
``ignore()`` (pixels the matching metrics leave out), ``void()`` (pixels also cut from predictions for COCO AP:
VOC's band; never crowd, which pycocotools handles itself) and ``background()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

VOID_ID = 255


@dataclass
class InstanceAnnotation:
    """file_name: the image's file name in the dataset; instance_map: [H, W] ints, 0 background,
    255 void (VOC), any other value an instance id (ids need not be contiguous); instance_ids: the ids
    present, ascending; labels: class id (1-based into the dataset's class_names) of each instance."""

    file_name: str
    height: int
    width: int
    instance_map: np.ndarray
    instance_ids: np.ndarray
    labels: np.ndarray
    # Map-based data has no ids of its own and no user-written COCO entries.
    image_id: int | None = None
    coco_entries: list[dict[str, Any]] | None = None
    category_ids: tuple[int, ...] = ()

    def __len__(self) -> int:
        return int(self.instance_ids.shape[0])

    def masks(self) -> np.ndarray:
        """bool [N, H, W], one mask per instance id, in ``instance_ids`` order."""
        return self.instance_map[None, :, :] == self.instance_ids[:, None, None]

    def void(self) -> np.ndarray:
        """bool [H, W]: pixels that no metric counts (VOC's 255 band)."""
        return self.instance_map == VOID_ID

    def ignore(self) -> np.ndarray:
        """bool [H, W]: pixels the matching metrics leave out (here: the void band)."""
        return self.void()

    def background(self) -> np.ndarray:
        """bool [H, W]: pixels of no instance that are not ignored."""
        return self.instance_map == 0

    def areas(self) -> np.ndarray:
        """Pixel count of each instance, in ``instance_ids`` order."""
        counts = np.bincount(self.instance_map.ravel(), minlength=256)
        return counts[self.instance_ids].astype(np.int64)


@dataclass
class RleAnnotation:
    """COCO-format ground truth of one image.

    rles: compressed RLEs (``counts`` bytes or str) of the instances (non-crowd, non-empty), labels their
    classes (1-based); crowd_rles: the crowd regions. image_id: the file's image id; coco_entries: the file's
    own annotation dicts of this image (crowd included), as COCO AP takes them; category_ids: the file's id of
    each label (label k is ``category_ids[k - 1]``); annotation_ids: the file's id of each instance;
    image_entry: the file's image entry where a protocol needs more of it (LVIS: ``neg_category_ids``,
    ``not_exhaustive_category_ids``), else None.
    """

    file_name: str
    height: int
    width: int
    rles: list[dict[str, Any]]
    labels: np.ndarray
    crowd_rles: list[dict[str, Any]] = field(default_factory=list)
    image_id: int | None = None
    coco_entries: list[dict[str, Any]] | None = None
    annotation_ids: list[int] = field(default_factory=list)
    category_ids: tuple[int, ...] = ()
    image_entry: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.rles)

    def masks(self) -> np.ndarray:
        """bool [N, H, W], decoded now (not kept: memory stays flat)."""
        return _decode(self.rles, self.height, self.width)

    def void(self) -> np.ndarray:
        """Nothing is cut from predictions for COCO AP: pycocotools handles crowd regions itself."""
        return np.zeros((self.height, self.width), dtype=bool)

    def ignore(self) -> np.ndarray:
        """bool [H, W]: crowd pixels outside every instance, which the matching metrics leave out like void."""
        if not self.crowd_rles:
            return np.zeros((self.height, self.width), dtype=bool)
        return _union(self.crowd_rles, self.height, self.width) & ~_union(self.rles, self.height, self.width)

    def background(self) -> np.ndarray:
        return ~_union(self.rles + self.crowd_rles, self.height, self.width)

    def areas(self) -> np.ndarray:
        return np.asarray(mask_utils.area(self.rles), dtype=np.int64) if self.rles else np.zeros(0, np.int64)


Annotation = InstanceAnnotation | RleAnnotation


def _decode(rles: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    if not rles:
        return np.zeros((0, height, width), dtype=bool)
    return np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)


def _union(rles: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    if not rles:
        return np.zeros((height, width), dtype=bool)
    return mask_utils.decode(mask_utils.merge(rles, intersect=False)).astype(bool)
