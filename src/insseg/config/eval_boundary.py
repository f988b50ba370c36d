"""``eval.boundary``: whether evaluation scores boundaries (Boundary AP, boundary IoU / F1), and how wide a band.

Two spellings, one meaning each: ``eval.boundary=false`` (or ``true``) switches it as a whole;
``eval.boundary.enabled=false`` does the same and ``eval.boundary.dilation_ratio=0.01`` sets the band's width as
a fraction of the image diagonal (the official boundary-iou-api's ``dilation_ratio``, 0.02 by default). Anything
else is refused with the key named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from insseg.errors import ConfigError

DEFAULT_DILATION_RATIO = 0.02  # = insseg.evaluation.boundary.DEFAULT_DILATION_RATIO (config stays below evaluation)
KEYS = ("enabled", "dilation_ratio")


def boundary_dilation_ratio(eval_cfg: Any) -> float | None:
    """The dilation ratio of ``eval_cfg.boundary``, or None when boundary metrics are off."""
    value = eval_cfg.get("boundary", True) if hasattr(eval_cfg, "get") else getattr(eval_cfg, "boundary", True)
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, bool):
        return DEFAULT_DILATION_RATIO if value else None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"config key 'eval.boundary' is {value!r}; use eval.boundary=true|false, eval.boundary.enabled=true|false "
            "or eval.boundary.dilation_ratio=<fraction of the image diagonal>"
        )
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ConfigError(f"config key 'eval.boundary.{unknown[0]}' is unknown; eval.boundary has {', '.join(KEYS)}")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"config key 'eval.boundary.enabled' is {enabled!r}; it must be true or false")
    ratio = value.get("dilation_ratio", DEFAULT_DILATION_RATIO)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ConfigError(
            f"config key 'eval.boundary.dilation_ratio' is {ratio!r}; it must be in (0, 1) (a fraction of the "
            "image diagonal; 0.02 is the official Boundary IoU setting)"
        )
    return float(ratio) if enabled else None
