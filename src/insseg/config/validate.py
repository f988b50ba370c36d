"""Range and choice checks that the type system cannot express; errors name the full key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from insseg.config.eval_boundary import boundary_dilation_ratio
from insseg.errors import ConfigError

CHOICES: dict[str, tuple[str, ...]] = {
    "data.name": ("pennfudan", "voc", "coco", "lvis", "cityscapes", "synthetic"),
    "data.layout": ("pennfudan", "voc", "coco", "lvis", "cityscapes"),
    "model.name": ("maskrcnn", "refinemask"),
    "model.backbone": ("resnet50", "resnet18"),
    "model.bbox_loss": ("l1", "smooth_l1"),
    "device.type": ("auto", "cpu", "cuda"),
    "device.amp_dtype": ("float16", "bfloat16"),
    "eval.predictions_check": ("strict", "lenient"),  # = insseg.predictions_check.MODES
    "eval.coco_backend": ("pycocotools", "faster_coco_eval"),  # = insseg.evaluation.coco_backend.BACKENDS
    "train.lr_schedule": ("step", "multistep", "cosine"),
    "logger.name": ("tensorboard", "mlflow", "csv"),
}


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def _unit(v: Any) -> bool:
    return 0.0 <= v <= 1.0


def _unit_open_right(v: Any) -> bool:
    return 0.0 <= v < 1.0


RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (_non_negative, ">= 0"),
    "data.num_test": (_non_negative, ">= 0"),
    "data.split_seed": (_non_negative, ">= 0"),
    "data.max_train_images": (_positive, "> 0 (or null for all images)"),
    "data.max_eval_images": (_positive, "> 0 (or null for all images)"),
    "data.num_workers": (_non_negative, ">= 0"),
    "data.multiscale_max_size": (lambda v: v >= 32, ">= 32 (or null: model.max_size)"),
    "data.lsj_size": (lambda v: v >= 32, ">= 32 (or null: model.min_size)"),
    "data.repeat_factor_threshold": (lambda v: 0 < v <= 1, "in (0, 1] (or null: no repeat-factor sampling)"),
    "data.detections_per_img": (_positive, "> 0"),
    "data.synthetic.num_images": (_positive, "> 0"),
    "data.synthetic.height": (lambda v: v >= 32, ">= 32"),
    "data.synthetic.width": (lambda v: v >= 32, ">= 32"),
    "data.synthetic.max_objects": (_non_negative, ">= 0"),
    "model.depth": (lambda v: v in (50, 101), "50 or 101 (or null: the checkpoint's)"),
    "model.trainable_backbone_layers": (lambda v: 0 <= v <= 5, "between 0 and 5"),
    "model.min_size": (lambda v: v >= 32, ">= 32"),
    "model.max_size": (lambda v: v >= 32, ">= 32"),
    "model.box_score_thresh": (_unit_open_right, "in [0, 1)"),
    "model.box_nms_thresh": (_unit, "in [0, 1]"),
    "model.detections_per_img": (_positive, "> 0"),
    "model.rpn_pre_nms_top_n_test": (_positive, "> 0"),
    "model.rpn_post_nms_top_n_test": (_positive, "> 0"),
    "model.rpn_pre_nms_top_n_train": (_positive, "> 0"),
    "model.rpn_post_nms_top_n_train": (_positive, "> 0"),
    "model.box_batch_size_per_image": (_positive, "> 0"),
    "device.num_threads": (_positive, "> 0 (or null for all cores)"),
    "train.epochs": (_positive, "> 0"),
    "train.batch_size": (_positive, "> 0"),
    "train.lr": (_positive, "> 0"),
    "train.momentum": (_unit_open_right, "in [0, 1)"),
    "train.weight_decay": (_non_negative, ">= 0"),
    "train.warmup_iters": (_non_negative, ">= 0"),
    "train.warmup_factor": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "train.lr_step_size": (_positive, "> 0"),
    "train.lr_gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "train.hflip_prob": (_unit, "in [0, 1]"),
    "train.eval_every": (_positive, "> 0"),
    "train.early_stopping": (_positive, "> 0 evaluations (or null: never stop early)"),
    "train.print_freq": (_positive, "> 0"),
    "train.num_overlays": (_non_negative, ">= 0"),
    "train.clip_grad_norm": (_positive, "> 0 (or null)"),
    "eval.score_threshold": (_unit_open_right, "in [0, 1)"),
    "eval.batch_size": (_positive, "> 0"),
    "eval.warmup_iters": (_non_negative, ">= 0"),
    "eval.reports.gallery": (_non_negative, ">= 0 (0: no gallery)"),
    "eval.reports.gallery_seed": (_non_negative, ">= 0"),
    "predict.score_threshold": (_unit_open_right, "in [0, 1)"),
    "predict.batch_size": (_positive, "> 0 (or null: 4 on CUDA, 1 on CPU)"),
    "predict.warmup_iters": (_non_negative, ">= 0"),
}


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the key for any out-of-range or unknown value."""
    for key, choices in CHOICES.items():
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if value is not None and value not in choices:
            raise ConfigError(f"config key '{key}' is '{value}'; expected one of: {', '.join(choices)}")
    for key, (ok, expected) in RANGES.items():
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if value is not None and not ok(value):
            raise ConfigError(f"config key '{key}' is {value}; it must be {expected}")
    _check_milestones(cfg)
    _check_maskrcnn_variant(cfg)
    _check_augment(cfg)
    if OmegaConf.select(cfg, "eval", default=None) is not None:
        boundary_dilation_ratio(cfg.eval)
    layout = OmegaConf.select(cfg, "data.layout", default=None)
    repeat = OmegaConf.select(cfg, "data.repeat_factor_threshold", default=None)
    if repeat is not None and layout not in ("coco", "lvis"):
        raise ConfigError(
            f"config key 'data.repeat_factor_threshold' needs COCO-format data (data.layout=coco or lvis), whose file "
            f"lists each image's categories; data.layout is {layout}: set it to null"
        )
    min_size, max_size = OmegaConf.select(cfg, "model.min_size"), OmegaConf.select(cfg, "model.max_size")
    if min_size is not None and max_size is not None and min_size > max_size:
        raise ConfigError(
            f"config key 'model.min_size' ({cfg.model.min_size}) is larger than 'model.max_size' ({cfg.model.max_size})"
        )


def _check_maskrcnn_variant(cfg: DictConfig) -> None:
    """``model.variant`` means v1|v2 for model=maskrcnn (RefineMask's variants are checked by its zoo)."""
    if OmegaConf.select(cfg, "model.name", default=None) != "maskrcnn":
        return
    variant = OmegaConf.select(cfg, "model.variant", default="v1")
    if variant not in ("v1", "v2"):  # = insseg.models.maskrcnn.VARIANTS
        raise ConfigError(f"config key 'model.variant' is '{variant}'; expected one of: v1, v2")


# = insseg.data.augment.PIPELINES and RESIZING (tests/test_augment.py checks that they agree)
AUGMENT_PIPELINES = ("hflip", "multiscale", "lsj", "photometric", "none")
RESIZING_PIPELINES = ("multiscale", "lsj")


def _check_augment(cfg: DictConfig) -> None:
    value = OmegaConf.select(cfg, "data.augment", default=None)
    if value is None:
        return
    names = [value] if isinstance(value, str) else list(value)
    unknown = [n for n in names if n not in AUGMENT_PIPELINES]
    if unknown:
        raise ConfigError(
            f"config key 'data.augment' names {unknown}; expected a name or a list of: {', '.join(AUGMENT_PIPELINES)}"
        )
    resizing = [n for n in names if n in RESIZING_PIPELINES]
    if len(resizing) > 1:
        raise ConfigError(f"config key 'data.augment' combines {' and '.join(resizing)}; pick one")
    if resizing and OmegaConf.select(cfg, "model.name", default="maskrcnn") != "maskrcnn":
        raise ConfigError(
            f"data.augment={resizing[0]} sets the training scale, which model={cfg.model.name} fixes itself; "
            "use it with model=maskrcnn"
        )
    sizes = OmegaConf.select(cfg, "data.multiscale_sizes", default=None)
    if sizes is not None and (not sizes or any(v < 32 for v in sizes)):
        raise ConfigError(f"config key 'data.multiscale_sizes' is {list(sizes)}; it must be a list of sizes >= 32")
    jitter = OmegaConf.select(cfg, "data.lsj_scale_range", default=None)
    if jitter is not None and (len(jitter) != 2 or not 0 < jitter[0] <= jitter[1]):
        raise ConfigError(
            f"config key 'data.lsj_scale_range' is {list(jitter)}; it must be [low, high] with 0 < low <= high"
        )


def _check_milestones(cfg: DictConfig) -> None:
    milestones = list(OmegaConf.select(cfg, "train.lr_milestones", default=None) or [])
    if milestones != sorted(set(milestones)) or any(m <= 0 for m in milestones):
        raise ConfigError(f"config key 'train.lr_milestones' is {milestones}; it must be increasing epoch numbers > 0")
    if OmegaConf.select(cfg, "train.lr_schedule", default=None) == "multistep" and not milestones:
        raise ConfigError(
            "train.lr_schedule=multistep needs config key 'train.lr_milestones', e.g. train.lr_milestones=[8,11]"
        )
