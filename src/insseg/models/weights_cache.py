"""Pretrained weights from the torch hub cache, failing fast with instructions when offline."""

from __future__ import annotations

import os
import socket
import urllib.error
from pathlib import Path

import torch

from insseg.errors import CheckpointError


def hub_checkpoint_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def ensure_cached(url: str, timeout: float = 20.0) -> Path:
    """The cached file for ``url``, downloading it into the torch cache when missing."""
    cached = hub_checkpoint_path(url)
    if cached.is_file():
        return cached
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), progress=True)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise CheckpointError(
            f"pretrained weights are not in the torch cache ({cached}) and could not be downloaded from {url} "
            f"({getattr(e, 'reason', e)}). Download the file by hand and put it at {cached} (or set TORCH_HOME), "
            "or pass model.weights=null to start from random weights."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return cached


def load_torchvision_weights(url: str, timeout: float = 20.0) -> dict[str, torch.Tensor]:
    """The state dict at ``url``, from the torch cache or downloaded into it."""
    cached = ensure_cached(url, timeout)
    try:
        return torch.load(cached, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file in the cache
        raise CheckpointError(f"cannot load pretrained weights {cached}: {e}. Delete it and try again.") from None
