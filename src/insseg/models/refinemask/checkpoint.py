"""Loading the official RefineMask checkpoint (mmdetection 2.3 / mmcv 1.0.5 layout).

The released file is a dict ``{'meta': {..., 'CLASSES': (80 names)}, 'state_dict': {418 tensors}}`` (possibly
with an ``optimizer`` entry, ignored). Our module tree uses the same names, so loading is a strict
``load_state_dict`` after checking that every key is consumed and every parameter filled.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from insseg.errors import CheckpointError

OFFICIAL_URL = "https://drive.google.com/file/d/1-UuTjM9b3EfINqgGH0jyJ9uWJ3P2_wgy/view?usp=sharing"
DEFAULT_PATH = "models/r50-coco-2x.pth"

# Layers whose shape depends on the number of classes; re-initialised when fine-tuning on another class set.
CLASS_SPECIFIC_PREFIXES = (
    "roi_head.bbox_head.fc_cls.",
    "roi_head.bbox_head.fc_reg.",
    "roi_head.mask_head.stages.0.instance_logits.",
    "roi_head.mask_head.stages.1.instance_logits.",
    "roi_head.mask_head.stages.2.instance_logits.",
    "roi_head.mask_head.final_instance_logits.",
)


def missing_checkpoint_message(path: str | Path) -> str:
    return (
        f"RefineMask checkpoint {path} not found. Download 'RefineMask R50-FPN 2x' (COCO) from the official "
        f"README (https://github.com/zhanggang001/RefineMask, Results on COCO table): {OFFICIAL_URL} "
        f"and save it as {DEFAULT_PATH} (or point model.weights at the file)."
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
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    return sd, meta


def _fmt(keys: list[str], limit: int = 25) -> str:
    if not keys:
        return "none"
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_and_load(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str,
                   skip_prefixes: tuple[str, ...] = ()) -> None:
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
    wrong = sorted(f"{k} (checkpoint {tuple(sd[k].shape)}, model {tuple(own[k].shape)})"
                   for k in own_keys & ck_keys if tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {source} does not fit the RefineMask R50-FPN model: "
            f"{len(missing)} missing keys: {_fmt(missing)}; {len(unexpected)} unexpected keys: {_fmt(unexpected)}"
            + (f"; {len(wrong)} shape mismatches: {_fmt(wrong)}" if wrong else ""))
    filtered = {k: sd[k] for k in ck_keys}
    result = model.load_state_dict(filtered, strict=False)
    left = [k for k in result.missing_keys if keep(k)]
    if left or result.unexpected_keys:  # cannot happen after the checks above; be loud if it does
        raise CheckpointError(f"checkpoint {source}: missing {left}, unexpected {result.unexpected_keys}")


def load_official_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load the official RefineMask checkpoint into ``model`` (a RefineMaskDetector) and return its meta.

    With the model's class count equal to the checkpoint's, the load is strict and ``model.class_names``
    becomes ``meta['CLASSES']``. With another class count (fine-tuning), the class-specific layers (``fc_cls``,
    ``fc_reg``, the mask head's ``*instance_logits``) keep their fresh initialisation and everything else is
    loaded strictly.
    """
    sd, meta = read_checkpoint(path)
    num_classes = int(getattr(model, "num_classes", 80))
    cls_w = sd.get("roi_head.bbox_head.fc_cls.weight")
    ckpt_classes = int(cls_w.shape[0]) - 1 if cls_w is not None else None
    skip: tuple[str, ...] = ()
    if ckpt_classes is not None and ckpt_classes != num_classes:
        skip = CLASS_SPECIFIC_PREFIXES
    check_and_load(model, sd, str(path), skip_prefixes=skip)
    classes = meta.get("CLASSES")
    if not skip and classes is not None:
        classes = [str(c) for c in classes]
        if len(classes) != num_classes:
            raise CheckpointError(f"checkpoint {path}: meta CLASSES has {len(classes)} names for {num_classes} classes")
        if hasattr(model, "class_names"):
            model.class_names = classes
    return meta
