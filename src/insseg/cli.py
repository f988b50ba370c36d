"""Glue shared by the entry scripts: user errors become one clear message and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from insseg.config import validate_config
from insseg.errors import InssegError


def run_entry(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Validate ``cfg`` and call ``fn``; an :class:`InssegError` is printed without a traceback."""
    try:
        validate_config(cfg)
        return fn(cfg)
    except InssegError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def command_line_overrides() -> list[str]:
    """The overrides typed on the command line of this Hydra run (not the experiment's defaults); [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)
