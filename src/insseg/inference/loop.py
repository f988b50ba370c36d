"""The one inference loop: model + images + batch size + device + precision -> one record per image.

Training-time evaluation, evaluate.py, predict.py and the Segmenter API all run models through
:class:`InferenceLoop`. Images are decoded one batch ahead in a background thread (PIL and numpy release the
GIL), so decoding overlaps the forward pass. Each record gets its share of its batch's time in three sections,
synchronised on CUDA so GPU time lands in the section that queued it:

- data: waiting for the decoded image and moving it to the device;
- model: the forward pass (the model's own resize, normalisation and mask pasting happen inside it);
- postprocess: score threshold, sort, binarise masks at 0.5, copy to the host, RLE-encode.

The first ``warmup_iters`` batches are processed like the others but their records carry no timing, so the
figures describe the steady state (detectron2's ``inference_on_dataset`` does the same).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from insseg.errors import ImageLoadError, InssegError
from insseg.inference.sources import ImageSource
from insseg.predictions import ImagePrediction, ImageTiming, encode_masks
from insseg.utils.device import autocast_for, synchronize


@dataclass
class LoadFailure:
    """An input that produced no record: which one and why."""

    index: int
    name: str
    reason: str


@dataclass
class InferenceLoop:
    """Iterate to get one :class:`ImagePrediction` per readable image, in source order.

    score_threshold: keep detections scoring strictly above it, and let the detector drop the others before
    NMS and mask computation; None keeps everything above the model's own floor (evaluation).
    skip_failures: unreadable images (and images that do not fit in memory even alone) are listed in
    :attr:`failures` instead of ending the run (predict.py); otherwise they raise.
    keep_masks: records keep their decoded masks besides the RLEs (overlays, mask PNGs).
    """

    model: nn.Module
    source: ImageSource
    device: torch.device
    precision: str = "float32"
    batch_size: int = 1
    warmup_iters: int = 0
    score_threshold: float | None = None
    skip_failures: bool = False
    keep_masks: bool = False
    failures: list[LoadFailure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self) -> Iterator[ImagePrediction]:
        for record, _ in self.with_images():
            yield record

    def with_images(self) -> Iterator[tuple[ImagePrediction, np.ndarray]]:
        """(record, decoded uint8 [H, W, 3] image) pairs, for callers that draw on the image (no second decode)."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield from self._batches()
        finally:
            self.model.train(was_training)

    def _batches(self) -> Iterator[tuple[ImagePrediction, np.ndarray]]:
        batch: list[tuple[int, np.ndarray]] = []
        wait = 0.0
        num_batches = 0
        for i, item in prefetch(self.source, depth=self.batch_size + 1):
            start = time.perf_counter()
            try:
                batch.append((i, item.result()))
            except ImageLoadError as e:
                self._fail(i, e.reason, e)
            wait += time.perf_counter() - start
            if len(batch) == self.batch_size or (batch and i == len(self.source) - 1):
                timed = num_batches >= self.warmup_iters
                yield from self._run(batch, wait, timed)
                batch, wait, num_batches = [], 0.0, num_batches + 1
        if batch:
            yield from self._run(batch, wait, num_batches >= self.warmup_iters)

    def _fail(self, index: int, reason: str, error: InssegError | None = None) -> None:
        name = self.source.name(index)
        if not self.skip_failures:
            raise error or InssegError(f"cannot process image {name}: {reason}")
        self.failures.append(LoadFailure(index, name, reason))

    def _run(
        self, batch: list[tuple[int, np.ndarray]], wait: float, timed: bool
    ) -> list[tuple[ImagePrediction, np.ndarray]]:
        """Forward and postprocess one batch. Out of memory: the images are retried one by one, and an image
        that does not fit alone becomes a failure."""
        try:
            return self._forward(batch, wait, timed)
        except (torch.cuda.OutOfMemoryError, MemoryError):
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        if len(batch) > 1:
            return [rec for item in batch for rec in self._run([item], 0.0, timed)]
        ((i, arr),) = batch
        self._fail(i, f"out of memory while segmenting this {arr.shape[1]}x{arr.shape[0]} image on {self.device}")
        return []

    @torch.inference_mode()
    def _forward(
        self, batch: list[tuple[int, np.ndarray]], wait: float, timed: bool
    ) -> list[tuple[ImagePrediction, np.ndarray]]:
        t0 = time.perf_counter()
        tensors = [to_tensor(arr, self.device) for _, arr in batch]
        synchronize(self.device)
        t1 = time.perf_counter()
        with autocast_for(self.precision, self.device), score_floor(self.model, self.score_threshold):
            outputs = self.model(tensors)
        synchronize(self.device)
        t2 = time.perf_counter()
        records = [self._record(i, arr, out) for (i, arr), out in zip(batch, outputs)]
        t3 = time.perf_counter()
        if timed:
            k = len(batch)
            timing = ImageTiming((wait + t1 - t0) / k, (t2 - t1) / k, (t3 - t2) / k)
            for rec in records:
                rec.timing = timing
        return [(rec, arr) for rec, (_, arr) in zip(records, batch)]

    def _record(self, index: int, image: np.ndarray, output: dict[str, torch.Tensor]) -> ImagePrediction:
        h, w = image.shape[:2]
        return to_record(
            output,
            self.source.name(index),
            h,
            w,
            list(getattr(self.model, "class_names", ())),
            self.score_threshold,
            self.keep_masks,
            self.source.image_id(index),
        )


def to_record(
    output: dict[str, torch.Tensor],
    file_name: str,
    height: int,
    width: int,
    class_names: Sequence[str],
    score_threshold: float | None = None,
    keep_masks: bool = False,
    image_id: int | None = None,
) -> ImagePrediction:
    """A torchvision-style output (masks [N, 1, H, W] probabilities) as a record: detections scoring strictly
    above ``score_threshold`` (all when None), by descending score (stable), masks binarised > 0.5."""
    scores = output["scores"].float()
    keep = torch.arange(scores.numel(), device=scores.device)
    if score_threshold is not None:
        keep = torch.nonzero(scores > score_threshold).flatten()
    keep = keep[torch.argsort(scores[keep], descending=True, stable=True)]
    masks = output["masks"][keep]
    if masks.ndim == 4:
        masks = masks[:, 0]
    if keep.numel() and tuple(masks.shape[-2:]) != (height, width):
        raise InssegError(f"the model returned masks of size {tuple(masks.shape[-2:])} for a {height}x{width} image")
    mask_array = (masks > 0.5).cpu().numpy() if keep.numel() else np.zeros((0, height, width), dtype=bool)
    return ImagePrediction(
        file_name=file_name,
        height=int(height),
        width=int(width),
        boxes=output["boxes"][keep].float().cpu().numpy().astype(np.float32).reshape(-1, 4),
        scores=scores[keep].cpu().numpy().astype(np.float32),
        labels=output["labels"][keep].cpu().numpy().astype(np.int64),
        rles=encode_masks(mask_array),
        masks=mask_array if keep_masks else None,
        class_names=list(class_names),
        image_id=image_id,
    )


def to_tensor(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [H, W, 3] -> float [3, H, W] in 0..1 on ``device`` (moved as uint8, a quarter of the bytes)."""
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr).to(device, non_blocking=True).permute(2, 0, 1).float().div_(255.0)


def prefetch(source: ImageSource, depth: int) -> Iterator[tuple[int, Future[np.ndarray]]]:
    """Decode images ``depth`` ahead of the consumer in one background thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="insseg-load") as pool:
        pending: deque[tuple[int, Future]] = deque()
        upcoming = iter(range(len(source)))
        for i in upcoming:
            pending.append((i, pool.submit(source.load, i)))
            if len(pending) >= depth:
                break
        while pending:
            item = pending.popleft()
            nxt = next(upcoming, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(source.load, nxt)))
            yield item


@contextlib.contextmanager
def score_floor(model: nn.Module, threshold: float | None) -> Iterator[None]:
    """Let the detector drop boxes scoring <= ``threshold`` itself, before NMS and mask computation.

    The kept detections are exactly those a filter after the model would keep (the detectors' own test is
    also strictly greater, and NMS only lets higher scores suppress lower ones), but far fewer masks are
    computed and pasted at full image size. Works on torchvision's ``roi_heads.score_thresh`` and
    RefineMask's ``score_thresh``; other models, None and lower thresholds are left alone.
    """
    owner: Any = getattr(model, "roi_heads", None)
    if not isinstance(getattr(owner, "score_thresh", None), (int, float)):
        owner = model
    old = getattr(owner, "score_thresh", None)
    if threshold is None or not isinstance(old, (int, float)) or isinstance(old, bool) or old >= threshold:
        yield
        return
    owner.score_thresh = threshold
    try:
        yield
    finally:
        owner.score_thresh = old
