"""Honest inference timing, in the manner of detectron2's ``inference_on_dataset``.

Warm-up iterations run before the timed loop and are not counted; the device is synchronised at every section
boundary so GPU time is charged to the section that queued it. Three sections per image:

- preprocess: read the image from disk, make the float tensor, move it to the device;
- model: the forward pass (the model's own resize, normalisation and mask pasting happen inside it);
- postprocess: binarise masks at 0.5, copy to the host, encode RLEs.

A batch's time is split evenly over its images. Per object = the image's total over its ground-truth objects.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterator

import torch

from insseg.utils.device import synchronize

SECTIONS = ("preprocess", "model", "postprocess")


@dataclass
class ImageTiming:
    preprocess: float = 0.0  # seconds
    model: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.model + self.postprocess

    def to_dict(self) -> dict[str, float]:
        return {"preprocess": self.preprocess, "model": self.model, "postprocess": self.postprocess}

    @staticmethod
    def from_dict(d: dict[str, float]) -> "ImageTiming":
        return ImageTiming(float(d["preprocess"]), float(d["model"]), float(d["postprocess"]))


class SectionTimer:
    """``with timer.section('model'): ...`` adds synchronised wall time to the current batch's sections."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.current: dict[str, float] = {}

    def reset(self) -> None:
        self.current = {s: 0.0 for s in SECTIONS}

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - start

    def split(self, batch_size: int) -> ImageTiming:
        """The current batch's sections divided evenly over its images."""
        k = max(batch_size, 1)
        return ImageTiming(*(self.current.get(s, 0.0) / k for s in SECTIONS))


class TimingStats:
    """Dataset-level sums; :meth:`summary` gives milliseconds per image and per ground-truth object."""

    def __init__(self) -> None:
        self.num_images = 0
        self.num_objects = 0
        self.sums = {s: 0.0 for s in SECTIONS}

    def add(self, timing: ImageTiming | None, num_objects: int) -> None:
        if timing is None:
            return
        self.num_images += 1
        self.num_objects += num_objects
        for s in SECTIONS:
            self.sums[s] += getattr(timing, s)

    def summary(self) -> dict[str, float]:
        if self.num_images == 0:
            return {}
        total = sum(self.sums.values())
        out = {f"time_{s}_ms_per_image": 1000 * self.sums[s] / self.num_images for s in SECTIONS}
        out["time_total_ms_per_image"] = 1000 * total / self.num_images
        out["time_total_ms_per_object"] = 1000 * total / self.num_objects if self.num_objects else 0.0
        out["images_per_second"] = self.num_images / total if total > 0 else 0.0
        return out


def per_object_ms(timing: ImageTiming | None, num_objects: int) -> float | None:
    """The harness's ``mean inference time for each object``: the image's time over its objects, in ms."""
    if timing is None or num_objects == 0:
        return None
    return 1000 * timing.total / num_objects
