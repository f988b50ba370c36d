"""The one place that builds the optimizer and the learning-rate schedule.

SGD as in torchvision's detection reference. ``train.lr`` is the rate for a total batch of
:data:`REFERENCE_BATCH` images (the tutorial's); by default it is scaled linearly with the total batch
(processes x ``train.batch_size``), as the reference documents (0.02 for 8 GPUs x 2 images).
The schedule is one per-iteration multiplier: a linear warm-up over the first iterations of epoch 0
(every schedule has it) times ``step`` (x ``lr_gamma`` every ``lr_step_size`` epochs), ``multistep``
(x ``lr_gamma`` at each epoch in ``lr_milestones``) or ``cosine`` (half a cosine from the full rate to 0
over all iterations, detectron2's ``WarmupCosineLR``). Stepping once per iteration keeps resume exact: the
scheduler state is just the iteration count.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

REFERENCE_BATCH = 2
SCHEDULES = ("step", "multistep", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Everything the learning rate depends on, resolved for one run."""

    base_lr: float
    kind: str
    epochs: int
    iters_per_epoch: int
    warmup_iters: int
    warmup_factor: float
    step_size: int
    gamma: float
    milestones: tuple[int, ...]

    @property
    def total_iters(self) -> int:
        return self.epochs * self.iters_per_epoch

    def factor(self, it: int) -> float:
        """Multiplier of ``base_lr`` at global iteration ``it`` (0-based)."""
        epoch = it // self.iters_per_epoch
        if self.kind == "step":
            main = self.gamma ** (epoch // self.step_size)
        elif self.kind == "multistep":
            main = self.gamma ** bisect.bisect_right(self.milestones, epoch)
        elif self.kind == "cosine":
            main = 0.5 * (1.0 + math.cos(math.pi * min(it, self.total_iters) / self.total_iters))
        else:
            raise ValueError(f"unknown lr schedule {self.kind!r}; expected one of {SCHEDULES}")
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            main *= self.warmup_factor * (1.0 - alpha) + alpha
        return main

    def lr_at(self, it: int) -> float:
        return self.base_lr * self.factor(it)

    def describe(self) -> str:
        """One line per setting, and the rate at the start of every epoch (after warm-up)."""
        shape = {
            "step": f"x{self.gamma:g} every {self.step_size} epochs",
            "multistep": f"x{self.gamma:g} at epochs {list(self.milestones)}",
            "cosine": "cosine to 0 over all iterations",
        }[self.kind]
        warm = (
            f"linear warm-up over {self.warmup_iters} iterations from {self.warmup_factor:g}x"
            if self.warmup_iters
            else "no warm-up"
        )
        per_epoch = ", ".join(
            f"{self.lr_at(max(e * self.iters_per_epoch, self.warmup_iters)):.3g}" for e in range(self.epochs)
        )
        return (
            f"schedule: {self.kind} ({shape}); {self.epochs} epochs x {self.iters_per_epoch} iterations; {warm}\n"
            f"lr at the start of each epoch (epoch 0: after warm-up): {per_epoch}"
        )


def effective_lr(train_cfg: Any, world_size: int) -> float:
    """``train.lr`` scaled to the total batch (unless ``train.scale_lr=false``)."""
    if not train_cfg.scale_lr:
        return float(train_cfg.lr)
    return float(train_cfg.lr) * world_size * train_cfg.batch_size / REFERENCE_BATCH


def build_schedule(train_cfg: Any, world_size: int, iters_per_epoch: int) -> Schedule:
    """The schedule of a run (``train_cfg`` already validated: see insseg.config.validate)."""
    return Schedule(
        base_lr=effective_lr(train_cfg, world_size),
        kind=train_cfg.lr_schedule,
        epochs=int(train_cfg.epochs),
        iters_per_epoch=max(1, iters_per_epoch),
        warmup_iters=min(int(train_cfg.warmup_iters), iters_per_epoch),
        warmup_factor=float(train_cfg.warmup_factor),
        step_size=int(train_cfg.lr_step_size),
        gamma=float(train_cfg.lr_gamma),
        milestones=tuple(int(m) for m in train_cfg.lr_milestones or ()),
    )


def build_optimizer(params: Iterable[torch.nn.Parameter], train_cfg: Any, schedule: Schedule) -> torch.optim.SGD:
    """SGD over the trainable ``params`` (as torchvision's detection reference)."""
    return torch.optim.SGD(
        [p for p in params if p.requires_grad],
        lr=schedule.base_lr,
        momentum=train_cfg.momentum,
        weight_decay=train_cfg.weight_decay,
    )


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule, start_iter: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped once per iteration, positioned at ``start_iter`` (resume: epochs done x iterations).

    The position comes from the epoch count, not from a saved scheduler state, so a resumed run follows the
    schedule of its own config (e.g. more epochs, or another number of processes).
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = schedule.base_lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor, last_epoch=start_iter - 1)


def describe_optimizer(train_cfg: Any, world_size: int, schedule: Schedule) -> str:
    total = world_size * train_cfg.batch_size
    scaled = (
        f"train.lr {train_cfg.lr:g} x total batch {total} ({world_size} process(es) x {train_cfg.batch_size}) "
        f"/ {REFERENCE_BATCH}"
        if train_cfg.scale_lr
        else f"train.lr {train_cfg.lr:g}, train.scale_lr=false"
    )
    return (
        f"optimizer: SGD lr {schedule.base_lr:.4g} ({scaled}), momentum {train_cfg.momentum:g}, "
        f"weight decay {train_cfg.weight_decay:g}\n{schedule.describe()}"
    )
