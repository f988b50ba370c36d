"""Loading the official RefineMask checkpoints (mmdetection 2.3 / mmcv 1.0.5 layout).

A released file is a dict ``{'meta': {'CLASSES': names, 'config': text, ...}, 'state_dict': tensors}`` (418
tensors for ResNet-50, 724 for ResNet-101; possibly an ``optimizer`` entry, ignored). Our module tree uses the
same names, so loading is a strict ``load_state_dict`` after checking that every key is consumed and every
parameter filled.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from insseg.errors import CheckpointError

from .zoo import missing_checkpoint_message

log = logging.getLogger(__name__)

# Layers whose shape depends on the number of classes; re-initialised when fine-tuning on another class set.
CLASS_SPECIFIC_PREFIXES = (
    "roi_head.bbox_head.fc_cls.",
    "roi_head.bbox_head.fc_reg.",
    "roi_head.mask_head.stages.0.instance_logits.",
    "roi_head.mask_head.stages.1.instance_logits.",
    "roi_head.mask_head.stages.2.instance_logits.",
    "roi_head.mask_head.final_instance_logits.",
)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a checkpoint file; raises CheckpointError with a fix when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(missing_checkpoint_message(path))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):
            raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
        # A genuine checkpoint whose 'meta' holds objects outside torch's safe list; the user named the file.
        warnings.warn(f"{path}: 'meta' holds non-tensor objects; loading with weights_only=False", stacklevel=2)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:  # noqa: BLE001
            raise CheckpointError(f"cannot read checkpoint {path}: {e2}") from None
    except Exception as e:  # noqa: BLE001 - truncated/corrupt files, wrong format
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if isinstance(ckpt, Mapping) and "state_dict" in ckpt:
        sd, meta = ckpt["state_dict"], dict(ckpt.get("meta") or {})
    elif isinstance(ckpt, Mapping) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd, meta = ckpt, {}
    else:
        raise CheckpointError(f"checkpoint {path} holds no 'state_dict' (expected mmdetection's layout)")
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
    return sd, meta


def _fmt(keys: list[str], limit: int = 25) -> str:
    if not keys:
        return "none"
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_and_load(
    model: nn.Module, sd: Mapping[str, torch.Tensor], source: str, skip_prefixes: tuple[str, ...] = ()
) -> None:
    """Strict load: every checkpoint key consumed, every model tensor filled, all shapes equal.

    Keys starting with ``skip_prefixes`` are left out on both sides (they keep the model's initialisation).
    """
    own = model.state_dict()

    def keep(k: str) -> bool:
        return not k.startswith(skip_prefixes)

    own_keys = {k for k in own if keep(k)}
    ck_keys = {k for k in sd if keep(k)}
    missing = sorted(own_keys - ck_keys)
    unexpected = sorted(ck_keys - own_keys)
    wrong = sorted(
        f"{k} (checkpoint {tuple(sd[k].shape)}, model {tuple(own[k].shape)})"
        for k in own_keys & ck_keys
        if tuple(sd[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {source} does not fit the RefineMask {_describe(model)} model: "
            f"{len(missing)} missing keys: {_fmt(missing)}; {len(unexpected)} unexpected keys: {_fmt(unexpected)}"
            + (f"; {len(wrong)} shape mismatches: {_fmt(wrong)}" if wrong else "")
        )
    filtered = {k: sd[k] for k in ck_keys}
    result = model.load_state_dict(filtered, strict=False)
    left = [k for k in result.missing_keys if keep(k)]
    if left or result.unexpected_keys:  # cannot happen after the checks above; be loud if it does
        raise CheckpointError(f"checkpoint {source}: missing {left}, unexpected {result.unexpected_keys}")


def _describe(model: nn.Module) -> str:
    depth = getattr(getattr(model, "backbone", None), "depth", None)
    return f"R{depth}-FPN" if depth else "R50-FPN"


def class_count_error(source: str, ckpt_classes: int, asked: int, meta: Mapping[str, Any]) -> CheckpointError:
    names = [str(c) for c in meta.get("CLASSES") or ()]
    shown = f" ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})" if names else ""
    return CheckpointError(
        f"checkpoint {source} holds a detector for {ckpt_classes} classes{shown}, but a model with {asked} "
        "classes was asked for. For inference keep the checkpoint's classes (do not set num_classes); to train "
        "on a dataset with other classes, fine-tune (the class-specific layers are then re-initialised)"
    )


def load_state(
    model: nn.Module, sd: Mapping[str, torch.Tensor], meta: Mapping[str, Any], source: str, fine_tune: bool = False
) -> None:
    """Load ``sd`` into ``model`` (a RefineMaskDetector) strictly.

    A checkpoint for another class count is an error, except when fine-tuning: then the class-specific layers
    (``fc_cls``, ``fc_reg``, the mask head's ``*instance_logits``) keep their fresh initialisation, which is
    logged, and everything else is loaded strictly.
    """
    num_classes = int(getattr(model, "num_classes", 80))
    cls_w = sd.get("roi_head.bbox_head.fc_cls.weight")
    ckpt_classes = int(cls_w.shape[0]) - 1 if cls_w is not None else num_classes
    skip: tuple[str, ...] = ()
    if ckpt_classes != num_classes:
        if not fine_tune:
            raise class_count_error(source, ckpt_classes, num_classes, meta)
        skip = CLASS_SPECIFIC_PREFIXES
        log.warning(
            "%s: fine-tuning from %d to %d classes; re-initialised the class-specific layers "
            "(bbox fc_cls, fc_reg, mask-head instance logits); every other tensor is loaded",
            source,
            ckpt_classes,
            num_classes,
        )
    check_and_load(model, sd, source, skip_prefixes=skip)


def load_official_checkpoint(model: nn.Module, path: str | Path, fine_tune: bool = False) -> dict[str, Any]:
    """Read ``path`` and load it into ``model`` (see :func:`load_state`); returns the checkpoint's meta.

    Without fine-tuning, ``model.class_names`` becomes ``meta['CLASSES']`` when the checkpoint has them.
    """
    sd, meta = read_checkpoint(path)
    load_state(model, sd, meta, str(path), fine_tune=fine_tune)
    classes = meta.get("CLASSES")
    num_classes = int(getattr(model, "num_classes", 80))
    if classes is not None and len(classes) == num_classes and hasattr(model, "class_names"):
        setattr(model, "class_names", [str(c) for c in classes])  # noqa: B010 (nn.Module's typed __setattr__)
    return meta
