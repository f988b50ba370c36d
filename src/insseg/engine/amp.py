"""Mixed precision for training: whether AMP is on, the autocast context, and the scaled optimizer step."""

from __future__ import annotations

import contextlib

import torch
from omegaconf import DictConfig


def training_amp(cfg: DictConfig, device: torch.device) -> bool:
    """``train.amp`` on CUDA: float16/bfloat16 autocast (``device.amp_dtype``) and a GradScaler."""
    return bool(cfg.train.amp) and device.type == "cuda"


def train_autocast(cfg: DictConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if not training_amp(cfg, device):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.device.amp_dtype == "bfloat16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: torch.Tensor,
    clip_grad_norm: float | None,
) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
