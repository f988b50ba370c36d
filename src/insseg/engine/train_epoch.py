"""The training loader and one training epoch: forward, loss averaged over the ranks, divergence check,
(scaled) optimizer step, per-step logs."""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from insseg.data import collate
from insseg.data.repeat_factor import RepeatFactorSampler, image_categories, repeat_factors
from insseg.engine.amp import optimizer_step, train_autocast
from insseg.engine.loggers.base import RunLogger
from insseg.errors import InssegError
from insseg.utils.distributed import DistInfo, reduce_mean
from insseg.utils.logging import log
from insseg.utils.progress import MetricLogger


class TrainingDiverged(InssegError):
    pass


def build_train_loader(
    cfg: DictConfig, train_set: Any, device: torch.device, dist_info: DistInfo
) -> tuple[DataLoader, torch.Generator]:
    """Shuffled batches of ``train_set``: a DistributedSampler under torchrun; the generator seeds each epoch.
    With ``data.repeat_factor_threshold`` (LVIS) a :class:`RepeatFactorSampler` draws the images instead."""
    generator = torch.Generator()
    sampler: Sampler = (
        DistributedSampler(train_set, shuffle=True, seed=cfg.seed)
        if dist_info.enabled
        else RandomSampler(train_set, generator=generator)
    )
    if cfg.data.get("repeat_factor_threshold") is not None:  # LVIS: rare categories seen more often
        factors = repeat_factors(
            image_categories(train_set.reader, train_set.indices), cfg.data.repeat_factor_threshold
        )
        sampler = RepeatFactorSampler(factors, cfg.seed, dist_info.world_size, dist_info.rank)
        if dist_info.is_main:
            log.info(f"repeat-factor sampling: {len(sampler)} draws per epoch from {len(factors)} images")
    loader = DataLoader(
        train_set,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        collate_fn=collate,
        generator=generator,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    return loader, generator


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Any,
    device: torch.device,
    epoch: int,
    scaler: torch.amp.GradScaler,
    cfg: DictConfig,
    logger: RunLogger,
    verbose: bool,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    dist_info: DistInfo = DistInfo(),
) -> dict[str, float]:
    """One pass over ``loader``; returns the epoch's mean losses and last learning rate (``epoch/...``).

    Losses are averaged over the ranks before anything reads them, so every rank sees the same values:
    a non-finite loss on one rank stops all of them with the same error, and the logged losses are the
    averaged ones. ``lr_scheduler`` (warm-up included) is stepped once per iteration.
    """
    model.train()
    progress = MetricLogger(enabled=verbose)
    step = epoch * len(loader)
    sums: dict[str, float] = {}
    lr = optimizer.param_groups[0]["lr"]
    for images, targets in progress.log_every(loader, cfg.train.print_freq, header=f"Epoch: [{epoch}]"):
        images = [img.to(device, non_blocking=True) for img in images]
        targets = [
            {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
        ]
        with train_autocast(cfg, device):
            loss_dict = model(images, targets)
            loss = sum(loss_dict.values())
        loss_values = reduce_mean(loss_dict, dist_info)
        loss_value = sum(loss_values.values())
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"training diverged: loss is {loss_value} at epoch {epoch}, iteration {step} ({loss_values}"
                + (f", averaged over {dist_info.world_size} processes" if dist_info.enabled else "")
                + "). Lower train.lr or set train.clip_grad_norm; checkpoints/last.pt holds the last finished epoch."
            )
        optimizer_step(model, optimizer, scaler, loss, cfg.train.clip_grad_norm)
        if lr_scheduler is not None:
            lr_scheduler.step()
        progress.update(loss=loss_value, lr=lr, **loss_values)
        logger.log_step(
            {**{f"train/loss/{k}": v for k, v in loss_values.items()}, "train/loss/total": loss_value, "train/lr": lr},
            step,
        )
        for k, v in {**loss_values, "total": loss_value}.items():
            sums[k] = sums.get(k, 0.0) + v
        lr = optimizer.param_groups[0]["lr"]
        step += 1
    n = max(1, len(loader))
    return {**{f"epoch/loss/{k}": v / n for k, v in sums.items()}, "epoch/lr": lr}
