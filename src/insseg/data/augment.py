"""Training augmentation (``data.augment``): named pipelines of ``torchvision.transforms.v2`` on tv_tensors.

The image, its boxes and its masks move together through torchvision's own transforms; afterwards each box is
recomputed as its mask's pixel extent (the convention of :func:`insseg.data.dataset.target_from_annotation`)
and ``SanitizeBoundingBoxes`` drops the objects a crop or a downscale emptied. Pipelines, composable as a list
(``data.augment=[multiscale,photometric]``), as torchvision's detection references define them:

- ``hflip``: horizontal flip with ``train.hflip_prob`` (the tutorial's; every pipeline flips as well).
- ``multiscale``: shorter side drawn from ``data.multiscale_sizes``, longer side capped at
  ``data.multiscale_max_size`` (detectron2's ResizeShortestEdge, torchvision's ``RandomShortestSize``).
- ``lsj``: large-scale jitter: rescale to fit ``data.lsj_size`` squared times a factor from
  ``data.lsj_scale_range`` (``ScaleJitter``), then a random ``lsj_size`` crop, padded where the image is smaller.
- ``photometric``: brightness, contrast, saturation and hue distortion (``RandomPhotometricDistort``).
- ``none``: no augmentation.

``multiscale`` and ``lsj`` choose the training scale themselves, so the model must not resize training images
again (torchvision's references build the model with ``_skip_resize=True`` for them): see :attr:`resizes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2 as T
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from insseg.errors import ConfigError

PIPELINES = ("hflip", "multiscale", "lsj", "photometric", "none")
RESIZING = ("multiscale", "lsj")
# lsj pads with the ImageNet mean (what the models subtract), masks with background.
_PAD_FILL = {tv_tensors.Image: (0.485, 0.456, 0.406), tv_tensors.Mask: 0, "others": 0}


@dataclass(frozen=True)
class AugmentSettings:
    """The pipeline names and the sizes they use (resolved from ``data.*`` and the model's input size)."""

    names: tuple[str, ...]
    hflip_prob: float = 0.5
    multiscale_sizes: tuple[int, ...] = (640, 672, 704, 736, 768, 800)
    multiscale_max_size: int = 1333
    lsj_size: int = 800
    lsj_scale_range: tuple[float, float] = (0.1, 2.0)


def augment_names(value: Any) -> tuple[str, ...]:
    """``data.augment`` as a tuple of known names (a string or a list); ``none`` alone means no augmentation."""
    names = (value,) if isinstance(value, str) else tuple(value or ())
    unknown = [n for n in names if n not in PIPELINES]
    if unknown:
        raise ConfigError(f"config key 'data.augment' names {unknown}; expected names from: {', '.join(PIPELINES)}")
    if sum(n in RESIZING for n in names) > 1:
        raise ConfigError("config key 'data.augment' combines multiscale and lsj; pick one of them")
    return tuple(n for n in names if n != "none")


def augment_settings(data_cfg: Any, hflip_prob: float, min_size: int | None, max_size: int | None) -> AugmentSettings:
    """Settings from the data config; null sizes follow the model's input size (``model.min_size/max_size``)."""
    names = augment_names(data_cfg.get("augment", "hflip"))
    short, long = min_size or 800, max_size or 1333
    sizes = data_cfg.get("multiscale_sizes") or [round(short * (0.8 + 0.04 * k)) for k in range(6)]
    return AugmentSettings(
        names=names,
        hflip_prob=hflip_prob,
        multiscale_sizes=tuple(int(s) for s in sizes),
        multiscale_max_size=int(data_cfg.get("multiscale_max_size") or long),
        lsj_size=int(data_cfg.get("lsj_size") or short),
        lsj_scale_range=tuple(data_cfg.get("lsj_scale_range") or (0.1, 2.0)),
    )


class AugmentPipeline:
    """``(image [3, H, W] float, target) -> (image, target)`` for :class:`InstanceSegmentationDataset`."""

    def __init__(self, settings: AugmentSettings) -> None:
        s = settings
        self.settings = s
        self.photometric = T.RandomPhotometricDistort() if "photometric" in s.names else None
        self.resize: T.Transform | None = None
        self.crop: T.Transform | None = None
        if "multiscale" in s.names:
            self.resize = T.RandomShortestSize(list(s.multiscale_sizes), s.multiscale_max_size, antialias=True)
        elif "lsj" in s.names:
            self.resize = T.ScaleJitter((s.lsj_size, s.lsj_size), s.lsj_scale_range, antialias=True)
            self.crop = T.RandomCrop((s.lsj_size, s.lsj_size), pad_if_needed=True, fill=_PAD_FILL)
        self.flip = T.RandomHorizontalFlip(s.hflip_prob) if s.names and s.hflip_prob > 0 else None
        self.sanitize = T.SanitizeBoundingBoxes(min_size=1)  # finds "labels"; drops their boxes and masks

    @property
    def resizes(self) -> bool:
        """True when the pipeline sets the training scale (the model must then not resize again)."""
        return self.resize is not None

    def stages(self) -> list[Any]:
        return [t for t in (self.photometric, self.resize, self.crop, self.flip) if t is not None]

    def describe(self) -> str:
        names = ", ".join(self.settings.names) or "none"
        steps = [repr(t).replace("\n", " ") for t in self.stages()] + ["boxes from masks", "SanitizeBoundingBoxes"]
        return f"data.augment=[{names}]: " + " -> ".join(steps)

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        image, target, _ = self.apply(image, target)
        return image, target

    def apply(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict, float]:
        """The augmented pair and the scale factor applied (new size / original size, 1.0 without resizing)."""
        height = image.shape[-2]
        img: Any = tv_tensors.Image(image)
        sample: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:])),
            "masks": tv_tensors.Mask(target["masks"]),
            "labels": target["labels"],
        }
        if self.photometric is not None:
            img = self.photometric(img)
        scale = 1.0
        if self.resize is not None:
            img, sample = self.resize(img, sample)
            scale = img.shape[-2] / height
        for step in (self.crop, self.flip):
            if step is not None:
                img, sample = step(img, sample)
        sample["boxes"] = tv_tensors.wrap(mask_extents(sample["masks"]), like=sample["boxes"])
        img, sample = self.sanitize(img, sample)
        masks = sample["masks"].as_subclass(torch.Tensor)
        out = {
            **target,
            "boxes": sample["boxes"].as_subclass(torch.Tensor),
            "labels": sample["labels"],
            "masks": masks,
            "area": masks.flatten(1).sum(1).to(torch.float32),
            "iscrowd": torch.zeros((len(masks),), dtype=torch.int64),
        }
        return img.as_subclass(torch.Tensor).contiguous(), out, scale


def mask_extents(masks: torch.Tensor) -> torch.Tensor:
    """[N, 4] xyxy pixel extents (x2 = last column + 1, pycocotools' toBbox); all zero for an empty mask."""
    boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
    present = (masks.flatten(1) > 0).any(1)
    if present.any():
        found = masks_to_boxes(masks[present])
        found[:, 2:] += 1
        boxes[present] = found
    return boxes


def build_augment(
    data_cfg: Any, hflip_prob: float, model_sizes: Sequence[int | None] = (None, None)
) -> AugmentPipeline | None:
    """The training pipeline of ``data.augment`` (None when it is ``none``)."""
    settings = augment_settings(data_cfg, hflip_prob, *model_sizes)
    if not settings.names or (settings.names == ("hflip",) and hflip_prob == 0):
        return None
    return AugmentPipeline(settings)
