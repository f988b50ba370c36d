"""A project checkpoint rebuilds the model it was trained with: input sizes, detection limits, thresholds, variant.

The checkpoint records the whole model config of its training run (``model_cfg``). evaluate.py, predict.py and
the Segmenter take every setting from there, except the keys given explicitly (on the command line, or in the list
a Python caller passes): those win and are logged where they differ from the checkpoint's. An experiment's
defaults never override the checkpoint, so ``model.weights=best.pt`` alone evaluates the model that was trained.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from insseg.config.validate import validate_config
from insseg.models.weights_file import is_insseg_checkpoint
from insseg.utils.logging import log

# Where the weights come from is never the checkpoint's business.
NOT_FROM_CHECKPOINT = frozenset({"name", "weights", "backbone_weights"})


def explicit_model_keys(overrides: Iterable[str]) -> set[str]:
    """The ``model.<key>`` settings in command-line overrides (``model.min_size=256``, ``+model.x=1``,
    ``~model.x``); a group choice (``model=maskrcnn``) or an experiment sets no key explicitly."""
    keys = set()
    for override in overrides:
        name = override.split("=", 1)[0].lstrip("+~")
        if name.startswith("model.") and len(name) > len("model."):
            keys.add(name[len("model.") :].split(".", 1)[0])
    return keys


def checkpoint_model_cfg(weights: Any) -> dict[str, Any] | None:
    """The model config a project checkpoint was trained with; None for other weights (or none recorded)."""
    if not isinstance(weights, str) or weights == "DEFAULT" or not Path(weights).is_file():
        return None
    try:  # mmap: the tensors are not read, only the small metadata
        ckpt = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None  # not a zip checkpoint: the factory reports what is wrong with it
    if not isinstance(ckpt, dict) or not is_insseg_checkpoint(ckpt):
        return None
    return ckpt.get("model_cfg")


def model_settings_from_checkpoint(
    model_cfg: DictConfig, trained: dict[str, Any], explicit: Collection[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """The settings to change in ``model_cfg`` so it builds the trained model, and the explicit keys that differ
    from the checkpoint's (``"min_size: checkpoint 256, given 800"``). Keys the config does not know are skipped."""
    changes: dict[str, Any] = {}
    differing: list[str] = []
    given = cast(dict[str, Any], OmegaConf.to_container(model_cfg, resolve=True))
    for key, value in trained.items():
        if key in NOT_FROM_CHECKPOINT or key not in given:
            continue
        current = given[key]
        if current == value:
            continue
        if key in explicit:
            differing.append(f"model.{key}: checkpoint {value}, given {current}")
        else:
            changes[key] = value
    return changes, differing


def with_checkpoint_model(cfg: DictConfig, explicit: Collection[str] = ()) -> DictConfig:
    """``cfg`` with ``cfg.model`` set to the checkpoint's model settings (a copy; ``cfg`` itself when the weights
    are not a project checkpoint or the model differs, which the factory reports)."""
    trained = checkpoint_model_cfg(cfg.model.weights)
    if not trained or trained.get("name", cfg.model.name) != cfg.model.name:
        return cfg
    changes, differing = model_settings_from_checkpoint(cfg.model, trained, explicit)
    for line in differing:
        log.warning(f"{line} on the command line: the model runs with the given value, not the one it was trained with")
    if not changes:
        return cfg
    log.info(
        f"model settings from checkpoint {cfg.model.weights} (the model as trained): "
        + ", ".join(f"model.{k}={v}" for k, v in changes.items())
    )
    out = cfg.copy()
    for key, value in changes.items():
        OmegaConf.update(out, f"model.{key}", value, merge=False)
    validate_config(out)  # e.g. a given max_size below the checkpoint's min_size
    return out
