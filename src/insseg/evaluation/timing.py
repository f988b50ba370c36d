"""Inference timing per image and per ground-truth object, from the records' timings.

The inference loop (:mod:`insseg.inference.loop`) measures data / model / postprocess time per image with the
device synchronised at each boundary and leaves the warm-up batches untimed; this evaluator sums them.
"""

from __future__ import annotations

from insseg.evaluation.sample import ImageSample
from insseg.predictions import ImageTiming

SECTIONS = ("data", "model", "postprocess")


class TimingEvaluator:
    """Milliseconds per image (each section and total) and per ground-truth object, images per second."""

    def reset(self) -> None:
        self.num_images = 0
        self.num_objects = 0
        self.sums = {s: 0.0 for s in SECTIONS}

    def __init__(self) -> None:
        self.reset()

    def process(self, sample: ImageSample) -> None:
        timing = sample.pred.timing
        if timing is None:
            return
        self.num_images += 1
        self.num_objects += len(sample.gt)
        for s in SECTIONS:
            self.sums[s] += getattr(timing, s)

    def evaluate(self, coco: object = None) -> dict[str, float]:
        if self.num_images == 0:
            return {}
        total = sum(self.sums.values())
        out = {f"time_{s}_ms_per_image": 1000 * self.sums[s] / self.num_images for s in SECTIONS}
        out["time_total_ms_per_image"] = 1000 * total / self.num_images
        out["time_total_ms_per_object"] = 1000 * total / self.num_objects if self.num_objects else 0.0
        out["images_per_second"] = self.num_images / total if total > 0 else 0.0
        out["timed_images"] = self.num_images
        return out


def per_object_ms(timing: ImageTiming | None, num_objects: int) -> float | None:
    """The harness's ``mean inference time for each object``: the image's time over its objects, in ms."""
    if timing is None or num_objects == 0:
        return None
    return 1000 * timing.total / num_objects
