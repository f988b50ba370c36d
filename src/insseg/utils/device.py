"""Device, precision and threads: the one place that decides where and in what precision a model runs.

Evaluation and prediction run float32 on every device unless ``device.amp=true`` opts in to autocast
(``device.amp_dtype``) on CUDA; the precision used is recorded with their results. Training has its own
switch (``train.amp``, on by default, CUDA only).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from insseg.errors import ConfigError


def resolve_device(device_cfg: Any) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, not a silent CPU run."""
    kind = device_cfg.type
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was requested but no CUDA device is available; use device=cpu or device=auto")
    return torch.device(kind)


def configure_runtime(device_cfg: Any, device: torch.device) -> None:
    if device_cfg.num_threads is not None:
        torch.set_num_threads(device_cfg.num_threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = device_cfg.allow_tf32
        torch.backends.cudnn.allow_tf32 = device_cfg.allow_tf32
        torch.backends.cudnn.benchmark = device_cfg.cudnn_benchmark


def inference_precision(device_cfg: Any, device: torch.device) -> str:
    """``float32``, or the autocast dtype (``float16``/``bfloat16``) when ``device.amp`` is on and on CUDA."""
    return str(device_cfg.amp_dtype) if amp_enabled(device_cfg, device) else "float32"


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on CUDA; float32 (or any CPU run) is a no-op."""
    if precision == "float32" or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[precision]
    return torch.autocast(device_type="cuda", dtype=dtype)


def amp_enabled(device_cfg: Any, device: torch.device) -> bool:
    return bool(device_cfg.amp) and device.type == "cuda"


def autocast(device_cfg: Any, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA when ``device.amp``; a no-op elsewhere."""
    if not amp_enabled(device_cfg, device):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if device_cfg.amp_dtype == "bfloat16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
