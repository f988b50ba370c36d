"""The Python API: masks, boxes, labels and scores for any image, no Hydra needed.

    from insseg.inference import Segmenter
    seg = Segmenter.from_config(["model=maskrcnn", "model.weights=outputs/.../best.pt"])
    result = seg.predict("photo.jpg")      # an ImagePrediction (insseg.predictions): the one record
    result.masks[0]                        # HxW bool at the original size, highest score first
    result.names, result.scores, result.boxes

Detections are kept when their score is strictly greater than ``score_threshold`` (0.5 by default, as the
original RefineMask wrapper did).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import nn

from insseg.errors import ConfigError
from insseg.inference.loop import InferenceLoop
from insseg.inference.sources import MemorySource
from insseg.io.images import ImageLike
from insseg.predictions import ImagePrediction


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
        cls,
        config: Any = None,
        *,
        output_dir: str | os.PathLike | None = None,
        explicit_model_keys: Collection[str] | None = None,
        **kwargs: Any,
    ) -> Segmenter:
        """A Segmenter from the composed ``predict`` config, or from a list of overrides composed here
        (``["model=maskrcnn", "model.weights=best.pt", "device=cpu"]``). Keyword arguments override what the
        config says (``score_threshold=0.3``, ``device='cpu'``, ...).

        A project checkpoint rebuilds the model it was trained with; only the model keys given explicitly win
        (``explicit_model_keys``; by default those named in the list of overrides)."""
        from insseg.config import compose_config
        from insseg.models import build_model
        from insseg.models.checkpoint_settings import explicit_model_keys as keys_of
        from insseg.models.checkpoint_settings import with_checkpoint_model
        from insseg.utils.device import amp_enabled, configure_runtime, resolve_device

        if config is None or isinstance(config, (list, tuple)):
            cfg = compose_config("predict", list(config or ()), output_dir=output_dir)
            if explicit_model_keys is None:
                explicit_model_keys = keys_of(config or ())
        else:
            cfg = config
        cfg = with_checkpoint_model(cfg, explicit_model_keys or ())
        device = _as_device(kwargs["device"]) if "device" in kwargs else resolve_device(cfg.device)
        configure_runtime(cfg.device, device)
        model = build_model(cfg.model, dataset_classes=untrained_class_names(cfg), fit_to_dataset=False)
        params: dict[str, Any] = dict(
            device=device,
            score_threshold=cfg.predict.score_threshold,
            amp=amp_enabled(cfg.device, device),  # device.amp: off (float32) unless asked for
            amp_dtype=cfg.device.amp_dtype,
            batch_size=cfg.predict.batch_size,
            num_threads=cfg.device.num_threads,
        )
        params.update(kwargs)
        return cls(model, **params)

    # -- the API -------------------------------------------------------------------------------------------

    def predict(self, image: ImageLike) -> ImagePrediction:
        """Kept detections for one image (a path, a PIL image or an HxWx3 uint8 RGB array)."""
        return self.predict_batch([image], batch_size=1)[0]

    def predict_batch(self, images: Sequence[ImageLike], batch_size: int | None = None) -> list[ImagePrediction]:
        """:meth:`predict` for many images, ``batch_size`` (default ``self.batch_size``) per forward pass."""
        loop = InferenceLoop(
            self.model,
            MemorySource(images),
            self.device,
            self.precision,
            batch_size or self.batch_size,
            score_threshold=self.score_threshold,
            keep_masks=True,
        )
        return list(loop)

    @property
    def precision(self) -> str:
        return str(self.amp_dtype).removeprefix("torch.") if self.amp else "float32"


def untrained_class_names(cfg: Any) -> list[str] | None:
    """With ``model.weights=null`` the heads are sized for the configured dataset's classes (as a model
    trained on it would be); otherwise the weights decide (``None``)."""
    if cfg.model.weights is not None:
        return None
    from insseg.data.readers import PennFudanReader, VOCReader

    return list(VOCReader.class_names if cfg.data.layout == "voc" else PennFudanReader.class_names)
