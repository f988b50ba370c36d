"""Reading weight files: our training checkpoints, torchvision state dicts and RefineMask's official release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from insseg.errors import CheckpointError

CHECKPOINT_FORMAT = "insseg-checkpoint-v1"


def read_weights_file(path: str | Path) -> dict[str, Any]:
    """torch.load with errors that name the file; never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"weights file {path} does not exist. Pass model.weights=<path to a checkpoint>, model.weights=DEFAULT "
            "for pretrained weights, or model.weights=null for random weights."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read weights file {path}: {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"weights file {path} holds a {type(obj).__name__}, not a state dict or checkpoint")
    return obj


def is_insseg_checkpoint(obj: dict[str, Any]) -> bool:
    return obj.get("format") == CHECKPOINT_FORMAT


def is_mmdet_checkpoint(obj: dict[str, Any]) -> bool:
    return "state_dict" in obj and "meta" in obj
