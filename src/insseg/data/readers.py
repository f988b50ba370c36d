"""Readers for the on-disk dataset layouts. A reader lists images and turns each into an RGB array and an
:class:`InstanceAnnotation`; it knows nothing about tensors, splits or augmentation.

PennFudanPed: ``PNGImages/<stem>.png`` + ``PedMasks/<stem>_mask.png`` (instance ids 1..N, 0 background).
VOC 2012: ``JPEGImages/<id>.jpg``, ``SegmentationObject/<id>.png`` (instance ids, 255 void),
``SegmentationClass/<id>.png`` (class ids 1..20, 255 void), ``ImageSets/Segmentation/<split>.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from insseg.data.annotations import VOID_ID, Annotation, InstanceAnnotation
from insseg.data.label_png import read_index_png
from insseg.data.problems import ERROR, Problem, raise_on_errors
from insseg.data.voc_palette import VOC_CLASSES
from insseg.errors import DatasetError, ImageLoadError
from insseg.io.images import image_size, load_image_rgb, stored_size


class InstanceReader(Protocol):
    class_names: tuple[str, ...]
    root: Path

    def __len__(self) -> int: ...
    def file_name(self, index: int) -> str: ...
    def image_path(self, index: int) -> Path: ...
    def load_image(self, index: int) -> np.ndarray: ...
    def annotation(self, index: int, image_hw: tuple[int, int] | None = None) -> Annotation: ...
    def file_problems(self, indices: list[int] | None = None) -> list[Problem]: ...
    def verify(self, indices: list[int] | None = None) -> None: ...


def _instance_ids(instance_map: np.ndarray) -> np.ndarray:
    ids = np.unique(instance_map)
    return ids[(ids != 0) & (ids != VOID_ID)].astype(np.int64)


def _size_problem(mask: Path, mask_hw: tuple[int, ...], image: Path, image_hw: tuple[int, ...]) -> str | None:
    """Masks must have the size of the image as it is shown (EXIF orientation applied)."""
    if tuple(mask_hw) == tuple(image_hw):
        return None
    if tuple(stored_size(image)) == tuple(mask_hw):
        return (
            f"mask {mask} is {mask_hw[1]}x{mask_hw[0]}, the size of image {image} as stored, but the image's EXIF "
            f"orientation turns it to {image_hw[1]}x{image_hw[0]} (as every viewer and this toolkit show it); "
            "draw the mask on the upright image, or remove the orientation tag from the image"
        )
    return (
        f"mask {mask} is {mask_hw[1]}x{mask_hw[0]} but image {image} is {image_hw[1]}x{image_hw[0]}; "
        "masks must have the image's size"
    )


def _check_size(mask: Path, mask_hw: tuple[int, ...], image: Path, image_hw: tuple[int, ...]) -> None:
    message = _size_problem(mask, mask_hw, image, image_hw)
    if message:
        raise DatasetError(message)


class _Reader:
    """Shared logic: subclasses provide ``_image_paths``, ``_mask_paths`` and ``_labels_for``."""

    class_names: tuple[str, ...] = ()

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._image_paths: list[Path] = []
        self._mask_paths: list[Path] = []

    def __len__(self) -> int:
        return len(self._image_paths)

    def file_name(self, index: int) -> str:
        return self._image_paths[index].name

    def image_path(self, index: int) -> Path:
        return self._image_paths[index]

    def load_image(self, index: int) -> np.ndarray:
        return load_image_rgb(self._image_paths[index])

    def _read_instance_map(self, index: int) -> np.ndarray:
        return read_index_png(self._mask_paths[index])

    def _labels_for(self, index: int, instance_map: np.ndarray, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def annotation(self, index: int, image_hw: tuple[int, int] | None = None) -> InstanceAnnotation:
        instance_map = self._read_instance_map(index)
        if image_hw is None:
            image_hw = image_size(self._image_paths[index])
        _check_size(self._mask_paths[index], instance_map.shape, self._image_paths[index], tuple(image_hw))
        ids = _instance_ids(instance_map)
        return InstanceAnnotation(
            file_name=self.file_name(index),
            height=int(instance_map.shape[0]),
            width=int(instance_map.shape[1]),
            instance_map=instance_map,
            instance_ids=ids,
            labels=self._labels_for(index, instance_map, ids),
        )

    def file_problems(self, indices: list[int] | None = None) -> list[Problem]:
        """Unreadable images and label PNGs, and sizes that differ (file headers only: fast)."""
        problems = []
        for i in range(len(self)) if indices is None else indices:
            image = self._image_paths[i]
            try:
                image_hw = image_size(image)
                for path in self._label_paths(i):
                    message = _size_problem(path, stored_size(path), image, image_hw)
                    if message:
                        problems.append(Problem(ERROR, "size_mismatch", str(path), message))
            except ImageLoadError as e:
                kind = "missing_image" if not Path(e.path).exists() else "unreadable_image"
                problems.append(Problem(ERROR, kind, e.path, e.reason))
        return problems

    def verify(self, indices: list[int] | None = None) -> None:
        """Cheap up-front check (file headers only) so bad files fail before training starts."""
        raise_on_errors(self.file_problems(indices), f"dataset {self.root}")

    def _label_paths(self, index: int) -> list[Path]:
        return [self._mask_paths[index]]


class PennFudanReader(_Reader):
    class_names: tuple[str, ...] = ("person",)

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        images_dir, masks_dir = self.root / "PNGImages", self.root / "PedMasks"
        for d in (images_dir, masks_dir):
            if not d.is_dir():
                raise DatasetError(
                    f"PennFudanPed folder {self.root} has no {d.name}/; data.root must be the folder holding "
                    "PNGImages/ and PedMasks/"
                )
        self._image_paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() == ".png")
        if not self._image_paths:
            raise DatasetError(f"PennFudanPed folder {images_dir} holds no .png images")
        self._mask_paths = [masks_dir / f"{p.stem}_mask.png" for p in self._image_paths]
        missing = [str(m) for m in self._mask_paths if not m.is_file()]
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) in {images_dir} have no mask in {masks_dir}: {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else "")
            )

    def _labels_for(self, index: int, instance_map: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.ones(len(ids), dtype=np.int64)


class VOCReader(_Reader):
    class_names = VOC_CLASSES

    def __init__(self, root: str | Path, split: str) -> None:
        super().__init__(root)
        list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetError(
                f"VOC split file {list_file} does not exist; data.root must be the VOC2012 folder holding "
                "JPEGImages/, SegmentationObject/, SegmentationClass/ and ImageSets/Segmentation/"
            )
        ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise DatasetError(f"VOC split file {list_file} lists no images")
        self._image_paths = [self.root / "JPEGImages" / f"{i}.jpg" for i in ids]
        self._mask_paths = [self.root / "SegmentationObject" / f"{i}.png" for i in ids]
        self._class_paths = [self.root / "SegmentationClass" / f"{i}.png" for i in ids]
        for kind, paths in (
            ("image", self._image_paths),
            ("mask", self._mask_paths),
            ("class mask", self._class_paths),
        ):
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise DatasetError(
                    f"{len(missing)} {kind} file(s) listed in {list_file} are missing: {', '.join(missing[:5])}"
                    + (" ..." if len(missing) > 5 else "")
                )

    def _label_paths(self, index: int) -> list[Path]:
        return [self._mask_paths[index], self._class_paths[index]]

    def _labels_for(self, index: int, instance_map: np.ndarray, ids: np.ndarray) -> np.ndarray:
        class_map = read_index_png(self._class_paths[index])
        if class_map.shape != instance_map.shape:
            raise DatasetError(
                f"class mask {self._class_paths[index]} and instance mask {self._mask_paths[index]} differ in size"
            )
        labels = np.zeros(len(ids), dtype=np.int64)
        for k, inst_id in enumerate(ids):
            values = class_map[instance_map == inst_id]
            values = values[(values != 0) & (values != VOID_ID)]
            if values.size == 0 or values.max() > len(VOC_CLASSES):
                raise DatasetError(
                    f"instance {inst_id} in {self._mask_paths[index]} has no valid class (1..20) under its pixels "
                    f"in {self._class_paths[index]}"
                )
            labels[k] = int(np.bincount(values).argmax())
        return labels
