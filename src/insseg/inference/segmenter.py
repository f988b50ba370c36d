"""The Python API: masks, boxes, labels and scores for any image, no Hydra needed.

    from insseg.inference import Segmenter
    seg = Segmenter.from_config(["model=maskrcnn", "model.weights=outputs/.../best.pt"])
    result = seg.predict("photo.jpg")      # a path, a PIL image or an HxWx3 uint8 RGB array
    result.masks[0]                        # HxW bool at the original size, highest score first

Detections are kept when their score is strictly greater than ``score_threshold`` (0.5 by default, as the
original RefineMask wrapper did).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from insseg.errors import ConfigError
from insseg.io.images import ImageLike, load_image_rgb
from insseg.predictions import ImagePrediction


@dataclass
class Segmentation:
    """Kept detections of one image, sorted by descending score.

    mask_array: bool [N, H, W] at the original image size (``masks`` gives the same as a list of [H, W]);
    boxes: float32 [N, 4] (x1, y1, x2, y2) pixels; labels: int64 [N] class ids (1-based);
    scores: float32 [N]; class_names: the N instances' class names; height, width: the image size.
    """

    mask_array: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    class_names: list[str]
    height: int
    width: int

    @property
    def masks(self) -> list[np.ndarray]:
        """One HxW bool array per instance (views into ``mask_array``)."""
        return list(self.mask_array)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to_prediction(self) -> ImagePrediction:
        """The record :class:`~insseg.predictions.PredictionsWriter` takes."""
        return ImagePrediction(boxes=self.boxes, scores=self.scores, labels=self.labels, masks=self.mask_array)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _as_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was requested but no CUDA device is available; use 'cpu' or 'auto'")
    return dev


@contextlib.contextmanager
def score_floor(model: nn.Module, threshold: float) -> Iterator[None]:
    """Let the detector drop boxes with score <= ``threshold`` itself, before NMS and mask computation.

    The kept detections are exactly those a filter after the model would keep (the detectors' own test is
    also strictly greater, and NMS only lets higher scores suppress lower ones), but far fewer masks are
    computed and pasted at full image size. Works on torchvision's ``roi_heads.score_thresh`` and
    RefineMask's ``score_thresh``; other models are left alone.
    """
    owner = getattr(model, "roi_heads", None)
    if not isinstance(getattr(owner, "score_thresh", None), (int, float)):
        owner = model
    old = getattr(owner, "score_thresh", None)
    if not isinstance(old, (int, float)) or isinstance(old, bool) or old >= threshold:
        yield
        return
    owner.score_thresh = threshold
    try:
        yield
    finally:
        owner.score_thresh = old


class Segmenter:
    """Wraps a detector from :func:`insseg.models.build_model` (or any model with the same interface).

    device: ``'auto'`` (CUDA when present), ``'cpu'``, ``'cuda'``, ``'cuda:1'`` or a :class:`torch.device`.
    amp: mixed precision on CUDA (ignored on CPU). batch_size: images per forward pass in
    :meth:`predict_batch` (default 4 on CUDA, 1 on CPU, where batching rarely helps). num_threads: CPU
    threads for torch (default: every core this process may use; note that this is process-wide).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        score_threshold: float = 0.5,
        amp: bool = False,
        batch_size: int | None = None,
        class_names: Sequence[str] | None = None,
        amp_dtype: str | torch.dtype = "float16",
        num_threads: int | None = None,
    ) -> None:
        if not 0.0 <= float(score_threshold) < 1.0:
            raise ConfigError(f"score_threshold is {score_threshold}; it must be in [0, 1)")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size is {batch_size}; it must be > 0")
        self.device = _as_device(device)
        self.score_threshold = float(score_threshold)
        names = class_names if class_names is not None else getattr(model, "class_names", None)
        if names is None:
            raise ValueError("the model has no class_names; pass class_names=[...] (label k is class_names[k - 1])")
        self.class_names = list(names)
        self.amp = bool(amp) and self.device.type == "cuda"
        if isinstance(amp_dtype, str):
            amp_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[amp_dtype]
        self.amp_dtype = amp_dtype
        self.batch_size = batch_size or (4 if self.device.type == "cuda" else 1)
        if self.device.type == "cpu":
            threads = num_threads or available_cpus()
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_config(
        cls, config: Any = None, *, output_dir: str | os.PathLike | None = None, **kwargs: Any
    ) -> "Segmenter":
        """A Segmenter from the composed ``predict`` config, or from a list of overrides composed here
        (``["model=maskrcnn", "model.weights=best.pt", "device=cpu"]``). Keyword arguments override what the
        config says (``score_threshold=0.3``, ``device='cpu'``, ...)."""
        from insseg.config import compose_config
        from insseg.models import build_model
        from insseg.utils.device import amp_enabled, configure_runtime, resolve_device

        if config is None or isinstance(config, (list, tuple)):
            cfg = compose_config("predict", list(config or ()), output_dir=output_dir)
        else:
            cfg = config
        device = _as_device(kwargs["device"]) if "device" in kwargs else resolve_device(cfg.device)
        configure_runtime(cfg.device, device)
        model = build_model(cfg.model, dataset_classes=untrained_class_names(cfg), fit_to_dataset=False)
        params: dict[str, Any] = dict(
            device=device,
            score_threshold=cfg.predict.score_threshold,
            amp=amp_enabled(cfg.device, device),
            amp_dtype=cfg.device.amp_dtype,
            batch_size=cfg.predict.batch_size,
            num_threads=cfg.device.num_threads,
        )
        params.update(kwargs)
        return cls(model, **params)

    # -- the API -------------------------------------------------------------------------------------------

    def predict(self, image: ImageLike) -> Segmentation:
        """Kept detections for one image (a path, a PIL image or an HxWx3 uint8 RGB array)."""
        return self.predict_batch([image], batch_size=1)[0]

    def predict_batch(self, images: Sequence[ImageLike], batch_size: int | None = None) -> list[Segmentation]:
        """:meth:`predict` for many images, ``batch_size`` (default ``self.batch_size``) per forward pass."""
        size = batch_size or self.batch_size
        results: list[Segmentation] = []
        for start in range(0, len(images), size):
            arrays = [load_image_rgb(im) for im in images[start : start + size]]
            results.extend(self.postprocess(self.forward(arrays), [a.shape[:2] for a in arrays]))
        return results

    # -- the stages, for callers that time them (predict.py) ---------------------------------------------------

    def forward(self, arrays: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """Raw model outputs for uint8 [H, W, 3] RGB arrays; returns once the device has finished."""
        with torch.inference_mode():
            tensors = [self._to_tensor(a) for a in arrays]
            with self._autocast(), score_floor(self.model, self.score_threshold):
                outputs = self.model(tensors)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        return outputs

    def postprocess(
        self, outputs: Sequence[dict[str, torch.Tensor]], sizes: Sequence[tuple[int, int]]
    ) -> list[Segmentation]:
        """Threshold (score strictly greater), sort by score, binarise masks (> 0.5) and move to numpy.
        ``sizes``: each image's (height, width)."""
        return [self._postprocess_one(out, int(h), int(w)) for out, (h, w) in zip(outputs, sizes)]

    def _postprocess_one(self, out: dict[str, torch.Tensor], h: int, w: int) -> Segmentation:
        with torch.inference_mode():
            scores = out["scores"].float()
            keep = torch.nonzero(scores > self.score_threshold).flatten()
            keep = keep[torch.argsort(scores[keep], descending=True, stable=True)]
            masks = out["masks"][keep]
            if masks.ndim == 4:
                masks = masks[:, 0]
            if keep.numel() == 0:
                mask_array = np.zeros((0, h, w), dtype=bool)
            elif tuple(masks.shape[-2:]) != (h, w):
                raise RuntimeError(f"the model returned masks of size {tuple(masks.shape[-2:])} for a {h}x{w} image")
            else:
                mask_array = (masks > 0.5).cpu().numpy()
            boxes = out["boxes"][keep].float().cpu().numpy().astype(np.float32)
            labels = out["labels"][keep].cpu().numpy().astype(np.int64)
            kept_scores = scores[keep].cpu().numpy().astype(np.float32)
        names = [self.class_name(int(k)) for k in labels]
        return Segmentation(mask_array, boxes, labels, kept_scores, names, h, w)

    def class_name(self, label: int) -> str:
        return self.class_names[label - 1] if 1 <= label <= len(self.class_names) else f"class_{label}"

    def _to_tensor(self, arr: np.ndarray) -> torch.Tensor:
        if not arr.flags.writeable:
            arr = arr.copy()
        # Move uint8 (a quarter of the bytes of float) and convert on the device.
        t = torch.from_numpy(arr).to(self.device, non_blocking=True)
        return t.permute(2, 0, 1).float().div_(255.0)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)


def untrained_class_names(cfg: Any) -> list[str] | None:
    """With ``model.weights=null`` the heads are sized for the configured dataset's classes (as a model
    trained on it would be); otherwise the weights decide (``None``)."""
    if cfg.model.weights is not None:
        return None
    from insseg.data.readers import PennFudanReader, VOCReader

    return list(VOCReader.class_names if cfg.data.layout == "voc" else PennFudanReader.class_names)
