"""torch Dataset over a reader: (image tensor, torchvision detection target) pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from insseg.data.annotations import Annotation
from insseg.data.augment import mask_extents
from insseg.data.readers import InstanceReader

Transform = Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]


def target_from_annotation(ann: Annotation, image_id: int) -> dict[str, Any]:
    """torchvision's target dict. Boxes follow pycocotools' convention (the mask's pixel extent: x2 is the last
    column + 1), the convention of COCO-trained weights and of the evaluation's ground truth."""
    masks = torch.from_numpy(ann.masks()).to(torch.uint8)
    return {
        "boxes": mask_extents(masks),
        "labels": torch.as_tensor(ann.labels, dtype=torch.int64),
        "masks": masks,
        "image_id": image_id,
        "area": masks.flatten(1).sum(1).to(torch.float32),
        "iscrowd": torch.zeros((len(ann),), dtype=torch.int64),
    }


class InstanceSegmentationDataset(Dataset):
    """Images ``indices`` of ``reader``; ``image_id`` is the position in the reader (stable across splits)."""

    def __init__(
        self, reader: InstanceReader, indices: Sequence[int] | None = None, transforms: Transform | None = None
    ):
        self.reader = reader
        self.indices = list(range(len(reader))) if indices is None else list(indices)
        self.transforms = transforms

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.reader.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def file_name(self, i: int) -> str:
        return self.reader.file_name(self.indices[i])

    def annotation(self, i: int) -> Annotation:
        return self.reader.annotation(self.indices[i])

    def load_image(self, i: int) -> np.ndarray:
        return self.reader.load_image(self.indices[i])

    @property
    def category_ids(self) -> tuple[int, ...] | None:
        """The dataset's own category id of each class (COCO-format data), None when the layout has none."""
        return getattr(self.reader, "category_ids", None)

    def image_id(self, i: int) -> int | None:
        """The dataset's own id of the image (COCO-format data), None when the layout has none."""
        own = getattr(self.reader, "image_id", None)
        return own(self.indices[i]) if own is not None else None

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict]:
        index = self.indices[i]
        image = self.reader.load_image(index)
        ann = self.reader.annotation(index, image_hw=image.shape[:2])
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32).div_(255.0)
        target = target_from_annotation(ann, image_id=index)
        if self.transforms is not None:
            tensor, target = self.transforms(tensor, target)
        return tensor, target


def collate(batch: list) -> tuple:
    """Detection batches are lists (images differ in size)."""
    return tuple(zip(*batch))
