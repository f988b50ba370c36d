"""What the inference loop reads images from: files, a dataset split, or images already in memory.

Every source decodes through the one image loader (:func:`insseg.io.images.load_image_rgb`: EXIF orientation
applied, 16-bit scaled, palette/CMYK/alpha handled), so a photo is the same array in training, evaluation and
prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.io.images import ImageLike, load_image_rgb


class ImageSource(Protocol):
    def __len__(self) -> int: ...
    def name(self, index: int) -> str: ...
    def load(self, index: int) -> np.ndarray: ...
    def image_id(self, index: int) -> int | None: ...


class FileSource:
    """Image files, each reported under its name (predict.py: the path relative to the input folder)."""

    def __init__(self, paths: Sequence[Path], names: Sequence[str] | None = None) -> None:
        self.paths = list(paths)
        self.names = list(names) if names is not None else [p.name for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.names[index]

    def load(self, index: int) -> np.ndarray:
        return load_image_rgb(self.paths[index])

    def image_id(self, index: int) -> int | None:
        return None


class MemorySource:
    """Paths, PIL images or arrays handed to the Python API."""

    def __init__(self, images: Sequence[ImageLike]) -> None:
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        image = self.images[index]
        return str(image) if isinstance(image, (str, Path)) else f"image_{index}"

    def load(self, index: int) -> np.ndarray:
        return load_image_rgb(self.images[index])

    def image_id(self, index: int) -> int | None:
        return None


class DatasetSource:
    """The images of a dataset split, under their file names (and the dataset's own ids, when it has them)."""

    def __init__(self, dataset: InstanceSegmentationDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, index: int) -> str:
        return self.dataset.file_name(index)

    def load(self, index: int) -> np.ndarray:
        return self.dataset.load_image(index)

    def image_id(self, index: int) -> int | None:
        return self.dataset.image_id(index)
