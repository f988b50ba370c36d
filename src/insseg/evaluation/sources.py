"""Where the predictions of an evaluation come from: the model (timed, batched), or a predictions.json.

Either way the result is a :class:`PredictionSet`: the model's class names and, per image, its detections as
RLEs (masks are binarised and encoded as soon as the model returns them, so memory stays flat) with the
image's timing when a model produced them.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.errors import InssegError
from insseg.evaluation.timing import ImageTiming, SectionTimer
from insseg.predictions import ImagePrediction, load_predictions
from insseg.utils.device import autocast
from insseg.utils.logging import log


@dataclass
class ImageRecord:
    file_name: str
    height: int
    width: int
    prediction: ImagePrediction  # RLE-backed, model labels
    timing: ImageTiming | None = None


@dataclass
class PredictionSet:
    """Per-image predictions in dataset order, with the model's class names (label k is ``class_names[k-1]``)."""

    class_names: list[str]
    records: list[ImageRecord] = field(default_factory=list)
    # Dataset positions of the records (a predictions file may cover only some images).
    indices: list[int] = field(default_factory=list)


class Progress:
    """Plain progress lines through the insseg logger (so Hydra's run log keeps them): count, rate, ETA;
    the first item, then at most one line every ``every_s`` seconds, then the total."""

    def __init__(self, total: int, desc: str, every_s: float = 10.0) -> None:
        self.total, self.desc, self.every_s = total, desc, every_s
        self.done = 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.done == n or now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = datetime.timedelta(seconds=int((self.total - self.done) / rate)) if rate > 0 else "?"
            log.info(f"{self.desc} [{self.done}/{self.total}]  {rate:.2f} img/s  eta: {eta}")

    def close(self) -> None:
        elapsed = time.perf_counter() - self.start
        log.info(
            f"{self.desc} done: {self.done} images in {datetime.timedelta(seconds=int(elapsed))} "
            f"({elapsed / max(self.done, 1):.3f} s/img)"
        )


def progress(total: int, desc: str) -> Progress:
    return Progress(total, desc)


def to_prediction(output: dict[str, torch.Tensor]) -> ImagePrediction:
    """A model output (probability masks [N, 1, H, W]) as an RLE-backed prediction: masks binarised > 0.5."""
    pred = ImagePrediction.from_model_output(output)
    pred.get_rles()
    pred.masks = None
    return pred


def _image_tensor(dataset: InstanceSegmentationDataset, i: int, device: torch.device) -> torch.Tensor:
    image = dataset.load_image(i)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32).div_(255.0)
    return tensor.to(device, non_blocking=True)


@torch.inference_mode()
def run_model(
    model: torch.nn.Module,
    dataset: InstanceSegmentationDataset,
    device: torch.device,
    device_cfg: Any,
    batch_size: int = 1,
    warmup_iters: int = 2,
) -> PredictionSet:
    """Run ``model`` over every image of ``dataset``; ``warmup_iters`` untimed passes over the first batch come
    first. Each image gets its share of its batch's preprocess / model / postprocess time."""
    model.eval().to(device)
    n = len(dataset)
    result = PredictionSet(class_names=list(model.class_names), indices=list(range(n)))
    if n and warmup_iters:
        images = [_image_tensor(dataset, i, device) for i in range(min(batch_size, n))]
        for _ in range(warmup_iters):
            with autocast(device_cfg, device):
                model(images)
        del images
    timer = SectionTimer(device)
    bar = progress(n, "inference")
    for start in range(0, n, batch_size):
        batch = list(range(start, min(start + batch_size, n)))
        timer.reset()
        with timer.section("preprocess"):
            images = [_image_tensor(dataset, i, device) for i in batch]
        with timer.section("model"), autocast(device_cfg, device):
            outputs = model(images)
        with timer.section("postprocess"):
            preds = [to_prediction(o) for o in outputs]
        timing = timer.split(len(batch))
        for i, image, pred in zip(batch, images, preds):
            result.records.append(
                ImageRecord(dataset.file_name(i), int(image.shape[1]), int(image.shape[2]), pred, timing)
            )
        del images, outputs
        bar.update(len(batch))
    bar.close()
    return result


def _names_by_label(class_names: Sequence[str], category_ids: Sequence[int]) -> list[str]:
    """Class names indexed by label (label k -> element k - 1), filling id gaps with 'N/A'."""
    top = max(category_ids, default=0)
    names = ["N/A"] * top
    for cid, name in zip(category_ids, class_names):
        if cid >= 1:
            names[cid - 1] = name
    return names


def from_file(path: str | Path, dataset: InstanceSegmentationDataset) -> PredictionSet:
    """Read a predictions.json and match its images to the dataset by ``file_name``.

    Names the dataset (this split) does not have are an error listing them. Dataset images the file does not
    cover are left out of the evaluation (a warning says how many).
    """
    loaded = load_predictions(path)
    if not loaded.by_file_name:
        raise InssegError(f"predictions file {path} lists no images")
    position = {dataset.file_name(i): i for i in range(len(dataset))}
    unknown = sorted(n for n in loaded.by_file_name if n not in position)
    if unknown:
        shown = ", ".join(unknown[:10]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
        raise InssegError(
            f"predictions file {path} has {len(unknown)} image(s) that the evaluation split of "
            f"{dataset.reader.root} does not hold: {shown}. Check data=..., data.root and eval.split"
        )
    if any(cid < 1 for cid in loaded.category_ids):
        raise InssegError(f"predictions file {path}: category ids must be >= 1 (0 is background)")
    result = PredictionSet(class_names=_names_by_label(loaded.class_names, loaded.category_ids))
    for i in sorted(position[n] for n in loaded.by_file_name):
        name = dataset.file_name(i)
        h, w = loaded.sizes[name]
        result.records.append(ImageRecord(name, h, w, loaded.by_file_name[name], None))
        result.indices.append(i)
    missing = len(dataset) - len(result.records)
    if missing:
        log.warning(
            f"predictions file {path} covers {len(result.records)} of the {len(dataset)} images of the "
            f"evaluation split; the other {missing} are left out"
        )
    return result
