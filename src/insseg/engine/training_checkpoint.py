"""Training checkpoints: written atomically, restored whole (model, optimizer, scheduler, scaler, epoch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from insseg.errors import CheckpointError
from insseg.models.weights_file import CHECKPOINT_FORMAT, is_insseg_checkpoint, read_weights_file
from insseg.utils.atomic import atomic_torch_save


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (``.module``), else the model."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    scaler: torch.amp.GradScaler,
    cfg: DictConfig,
    **progress: Any,
) -> None:
    """``progress``: the trainer's state (epoch, best_metric, best_epoch, stale_evals, metrics), stored as keys.

    ``config`` is the whole resolved config, data split settings included (``data.name``, ``data.split_seed``,
    ``data.num_test``), so evaluation can tell whether a split would hold training images.
    """
    net = unwrap(model)
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": net.state_dict(),
            "model_name": cfg.model.name,
            "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
            "class_names": list(cast(Sequence[str], net.class_names)),
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": lr_scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            **progress,
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
        path,
    )


def load_training_state(path: str | Path, class_names: list[str]) -> dict[str, Any]:
    """Read a checkpoint to resume from, checking that it fits the dataset's classes."""
    ckpt = read_weights_file(path)
    if not is_insseg_checkpoint(ckpt) or "optimizer" not in ckpt:
        raise CheckpointError(
            f"{path} is not a training checkpoint of this toolkit (no optimizer state); cannot resume"
        )
    if len(ckpt["class_names"]) != len(class_names):
        shown = ", ".join(ckpt["class_names"][:6])
        raise CheckpointError(
            f"checkpoint {path} was trained for {len(ckpt['class_names'])} classes ({shown}) "
            f"but the dataset has {len(class_names)}; resume with the dataset it was trained on"
        )
    return ckpt


def find_latest_checkpoint(experiment_dir: Path, exclude: Path | None = None) -> Path | None:
    """The most recently written ``checkpoints/last.pt`` among the runs of one experiment."""
    candidates = [
        p
        for p in experiment_dir.glob("*/checkpoints/last.pt")
        if exclude is None or p.resolve().parent.parent != exclude.resolve()
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
