"""What a RefineMask model is: architecture and test settings, read from a released checkpoint.

A released mmdet-2.3 checkpoint says everything about itself: the state dict's shapes give the ResNet depth,
the class count and which mask stages are class-agnostic; ``meta['config']`` (the config text mmdet's
``train.py`` stores, Python syntax) gives the test scale, the score threshold, the detections per image and the
box loss. The text is read with :mod:`ast` (literals, ``dict(...)``, lists and tuples only, never executed).
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from insseg.errors import CheckpointError

log = logging.getLogger(__name__)

RESNET_LAYER3_BLOCKS = {6: 50, 23: 101}  # layer3 block count -> depth (torchvision/mmdet ResNet)
BBOX_LOSSES = ("l1", "smooth_l1")


@dataclass(frozen=True)
class RefineMaskSpec:
    """Defaults: the official ``r50-refinemask-2x`` COCO config."""

    depth: int = 50
    num_classes: int = 80
    # Outputs of the four mask-stage classifiers (14/28/56/112 px): num_classes, or 1 for a class-agnostic stage.
    stage_num_classes: tuple[int, ...] | None = None
    img_scale: tuple[int, int] = (1333, 800)  # mmdet's (long, short) test and training scale
    score_thr: float = 0.05
    max_per_img: int = 100
    nms_thr: float = 0.5
    mask_thr: float = 0.5
    bbox_loss: str = "l1"  # RCNN box loss: l1 | smooth_l1
    bbox_loss_beta: float = 1.0

    @property
    def stages(self) -> tuple[int, ...]:
        return self.stage_num_classes or (self.num_classes,) * 4

    def with_classes(self, num_classes: int) -> RefineMaskSpec:
        """The same model for another class set (class-agnostic stages stay class-agnostic)."""
        stages = tuple(1 if c == 1 and self.num_classes != 1 else num_classes for c in self.stages)
        return replace(self, num_classes=num_classes, stage_num_classes=stages)


# ----------------------------------------------------------------------------------------- config text
def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        return -value if isinstance(value, (int, float)) else None
    return None  # anything else (range(...), names) is not needed


def parse_config_text(text: str) -> dict[str, Any]:
    """Top-level assignments of an mmcv config text as plain Python values ({} when it is not one)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    out: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            out[stmt.targets[0].id] = _literal(stmt.value)
    return out


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _test_scale(cfg: Mapping[str, Any]) -> tuple[int, int] | None:
    pipeline = cfg.get("test_pipeline") or _get(cfg, "data", "test", "pipeline") or []
    for step in pipeline if isinstance(pipeline, list) else []:
        scale = step.get("img_scale") if isinstance(step, Mapping) else None
        if isinstance(scale, (list, tuple)) and len(scale) == 2 and all(isinstance(v, int) for v in scale):
            return int(scale[0]), int(scale[1])
    return None


def settings_from_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The RefineMaskSpec fields an mmdet config sets (only those found)."""
    bbox = _get(cfg, "model", "roi_head", "bbox_head") or {}
    rcnn = _get(cfg, "test_cfg", "rcnn") or {}
    found = {
        "depth": _get(cfg, "model", "backbone", "depth"),
        "num_classes": bbox.get("num_classes"),
        "stage_num_classes": _get(cfg, "model", "roi_head", "mask_head", "stage_num_classes"),
        "img_scale": _test_scale(cfg),
        "score_thr": rcnn.get("score_thr"),
        "max_per_img": rcnn.get("max_per_img"),
        "nms_thr": _get(rcnn, "nms", "iou_threshold"),
        "mask_thr": rcnn.get("mask_thr_binary"),
    }
    loss = bbox.get("loss_bbox")
    if isinstance(loss, Mapping) and loss.get("type") in ("L1Loss", "SmoothL1Loss"):
        found["bbox_loss"] = "smooth_l1" if loss["type"] == "SmoothL1Loss" else "l1"
        if loss["type"] == "SmoothL1Loss":
            found["bbox_loss_beta"] = float(loss.get("beta", 1.0))
    if isinstance(found["stage_num_classes"], (list, tuple)):
        found["stage_num_classes"] = tuple(int(c) for c in found["stage_num_classes"])
    return {k: v for k, v in found.items() if v is not None}


# ----------------------------------------------------------------------------------------- state dict
def settings_from_state_dict(sd: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Depth, class count and stage classifiers from the checkpoint's tensors."""
    found: dict[str, Any] = {}
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
    if blocks:
        if len(blocks) not in RESNET_LAYER3_BLOCKS:
            raise CheckpointError(
                f"checkpoint {source}: its ResNet has {len(blocks)} blocks in layer3; only ResNet-50 (6) and "
                f"ResNet-101 (23) RefineMask models exist"
            )
        found["depth"] = RESNET_LAYER3_BLOCKS[len(blocks)]
    cls_w = sd.get("roi_head.bbox_head.fc_cls.weight")
    if cls_w is not None:
        found["num_classes"] = int(cls_w.shape[0]) - 1
    keys = [f"roi_head.mask_head.stages.{i}.instance_logits.weight" for i in range(3)]
    keys.append("roi_head.mask_head.final_instance_logits.weight")
    if all(k in sd for k in keys):
        found["stage_num_classes"] = tuple(int(sd[k].shape[0]) for k in keys)
    return found


def spec_from_checkpoint(sd: Mapping[str, Any], meta: Mapping[str, Any], source: str) -> RefineMaskSpec:
    """The model a checkpoint holds; the tensors decide the architecture, the config text the test settings.

    A config text that contradicts the tensors (another depth or class count) is an error: the file was
    assembled from two models.
    """
    text = meta.get("config")
    from_cfg = settings_from_config(parse_config_text(text)) if isinstance(text, str) else {}
    if isinstance(text, str) and not from_cfg:
        log.info(
            "checkpoint %s: meta['config'] holds no mmdet config; official r50-coco defaults assumed "
            "for the test settings",
            source,
        )
    from_sd = settings_from_state_dict(sd, source)
    for key in ("depth", "num_classes", "stage_num_classes"):
        if key in from_cfg and key in from_sd and from_cfg[key] != from_sd[key]:
            raise CheckpointError(
                f"checkpoint {source}: its config says {key}={from_cfg[key]} but its tensors hold {from_sd[key]}"
            )
    spec = RefineMaskSpec(**{**from_cfg, **from_sd})
    for c in spec.stages:
        if c not in (spec.num_classes, 1):
            raise CheckpointError(
                f"checkpoint {source}: mask stage classifiers {spec.stages} fit neither "
                f"{spec.num_classes} classes nor a class-agnostic stage"
            )
    return spec
