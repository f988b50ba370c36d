"""The bookkeeping a training run carries between epochs and across a resume: the best evaluation so far,
early stopping, metrics.json, and where a resumed run starts from."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from insseg.engine.training_checkpoint import find_latest_checkpoint, load_training_state
from insseg.utils.atomic import atomic_path, atomic_write_json
from insseg.utils.distributed import DistInfo, broadcast_object
from insseg.utils.json_safe import json_safe
from insseg.utils.logging import log


@dataclass
class TrainState:
    """Progress a checkpoint records besides the weights and optimizer state."""

    epoch: int = -1  # the last finished epoch
    best_metric: float = -math.inf  # segm AP of best.pt (-1: its evaluation had no ground truth to score)
    best_epoch: int | None = None
    stale_evals: int = 0  # evaluations since best.pt was written (early stopping)
    metrics: dict[str, float] = field(default_factory=dict)  # of the last evaluation

    def record(self, epoch: int, score: float) -> bool:
        """Count one evaluation; True when it is the best so far."""
        if score > self.best_metric:
            self.best_metric, self.best_epoch, self.stale_evals = score, epoch, 0
            return True
        self.stale_evals += 1
        return False

    def summary(self) -> dict[str, Any]:
        """metrics.json: the last evaluation and the best one."""
        best = self.best_metric if self.best_metric >= 0 else None
        return json_safe({**self.metrics, "best_segm_AP": best, "best_epoch": self.best_epoch})


def write_metrics(out_dir: Path, cfg: DictConfig, state: TrainState) -> None:
    early = stopped_early(cfg, state) and state.epoch < cfg.train.epochs - 1
    atomic_write_json(out_dir / "metrics.json", {**state.summary(), "early_stopped": early})


def stopped_early(cfg: DictConfig, state: TrainState) -> bool:
    patience = cfg.train.early_stopping
    return patience is not None and state.stale_evals >= patience


def restore_training_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    class_names: list[str],
    ckpt_dir: Path,
    main: bool,
) -> TrainState:
    """Load a training checkpoint; the earlier run's best.pt comes along so best.pt stays the best overall."""
    ckpt = load_training_state(path, class_names)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    state = TrainState(
        epoch=ckpt["epoch"],
        best_metric=ckpt["best_metric"],
        best_epoch=ckpt.get("best_epoch"),
        stale_evals=ckpt.get("stale_evals", 0),
        metrics=dict(ckpt.get("metrics", {})),
    )
    if main:
        log.info(f"resumed from {path} at epoch {state.epoch + 1}")
        earlier_best, best = Path(path).parent / "best.pt", ckpt_dir / "best.pt"
        if earlier_best.is_file() and earlier_best.resolve() != best.resolve():
            with atomic_path(best) as tmp:
                shutil.copyfile(earlier_best, tmp)
        elif not earlier_best.is_file() and state.best_metric > -math.inf:
            log.warning(f"no best.pt beside {path}: best.pt will hold the best evaluation of this run only")
            state.best_metric, state.best_epoch = -math.inf, None
    return state


def resolve_resume(cfg: DictConfig, out_dir: Path, dist_info: DistInfo) -> Path | None:
    resume = cfg.train.resume
    if resume is None:
        return None
    if resume == "auto":
        found = None
        if dist_info.is_main:
            found = find_latest_checkpoint(
                Path(cfg.paths.log_dir) / cfg.task_name / cfg.experiment_name, exclude=out_dir
            )
            if found is None:
                log.info(
                    f"train.resume=auto: no earlier checkpoint of experiment '{cfg.experiment_name}'; starting fresh"
                )
            else:
                log.info(f"train.resume=auto: resuming {found}")
        return broadcast_object(found, dist_info)
    return Path(resume)


def print_summary(state: TrainState, out_dir: Path) -> None:
    last = state.metrics.get("segm_AP", math.nan)
    best = (
        f"best {state.best_metric:.4f} at epoch {state.best_epoch} (checkpoints/best.pt)"
        if state.best_epoch is not None
        else "no evaluation"
    )
    log.info(f"held-out segm AP {last:.4f}, {best}; run dir {out_dir}")
