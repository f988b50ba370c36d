"""See what the model will be trained on:
``python -m insseg.data.preview data=<any> [data.augment=...] [num=8] [seed=0] out=DIR``.

Draws ``num`` training samples through the training pipeline (``data.augment``, ``train.hflip_prob``, the sizes of
``model=``), as the trainer would, and writes ``DIR/samples.json`` (per sample: ``file_name``, ``scale`` (the
resize factor applied), ``size`` ([height, width] after augmentation), ``boxes`` (xyxy), ``labels`` (class ids,
1-based), ``classes`` (their names), ``masks`` (COCO RLE)) and ``DIR/<k>_<image stem>.png``, each sample's
overlay. Sample k is image k (in order, cycling) drawn with seed ``seed + k``. Exits 2 with one line on bad
input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image

from insseg.data.augment import AugmentPipeline
from insseg.data.build import build_dataset
from insseg.data.check import compose_data_config, split_arg, split_out
from insseg.errors import ConfigError, InssegError
from insseg.io.rle import encode_masks
from insseg.utils.atomic import atomic_path, atomic_write_json
from insseg.utils.overlay import draw_overlay


def preview_samples(cfg: Any, num: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """``num`` (uint8 image [H, W, 3], bool masks [N, H, W], sample record) of the training split of ``cfg``
    (train.py's config); the record holds the masks as RLEs."""
    sizes = (cfg.model.get("min_size"), cfg.model.get("max_size"))
    dataset = build_dataset(cfg.data, "train", cfg.train.hflip_prob, sizes)
    pipeline = cast(AugmentPipeline | None, dataset.transforms)
    dataset.transforms = None
    names = list(dataset.class_names)
    out = []
    for k in range(num):
        i = k % len(dataset)
        image, target = dataset[i]
        torch.manual_seed(seed + k)
        scale = 1.0
        if pipeline is not None:
            image, target, scale = pipeline.apply(image, target)
        masks = target["masks"].numpy().astype(bool)
        labels = [int(v) for v in target["labels"]]
        record = {
            "file_name": dataset.file_name(i),
            "scale": float(scale),
            "size": [int(image.shape[-2]), int(image.shape[-1])],
            "boxes": [[float(v) for v in box] for box in target["boxes"].tolist()],
            "labels": labels,
            "classes": [names[v - 1] for v in labels],
            "masks": encode_masks(masks),
        }
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        out.append((pixels, masks, record))
    return out


def write_preview(cfg: Any, out: str | Path, num: int = 8, seed: int = 0) -> Path:
    """Write the overlays and ``samples.json`` into ``out``; returns the JSON's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for k, (pixels, masks, record) in enumerate(preview_samples(cfg, num, seed)):
        drawn = draw_overlay(pixels, masks, np.asarray(record["boxes"]).reshape(-1, 4), record["classes"])
        record["overlay"] = f"{k:03d}_{Path(record['file_name']).stem}.png"
        with atomic_path(out / record["overlay"]) as tmp:
            Image.fromarray(drawn).save(tmp, format="PNG")
        records.append(record)
    path = out / "samples.json"
    augment = cfg.data.augment
    atomic_write_json(
        path, {"augment": augment if isinstance(augment, str) else list(augment), "seed": seed, "samples": records}
    )
    return path


def _int_arg(argv: list[str], key: str, default: int) -> tuple[int, list[str]]:
    """``key=N`` (ours, not a Hydra override) apart from the rest."""
    text, rest = split_arg(argv, key)
    if text is None:
        return default, rest
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{key}={text} is not a whole number") from None
    if value < (1 if key == "num" else 0):
        raise ConfigError(f"{key}={value} must be {'> 0' if key == 'num' else '>= 0'}")
    return value, rest


def main(argv: Sequence[str] | None = None) -> int:
    out, rest = split_out(sys.argv[1:] if argv is None else argv)
    try:
        num, rest = _int_arg(rest, "num", 8)
        seed, rest = _int_arg(rest, "seed", 0)
        if not out:
            raise ConfigError("no output folder given: pass out=<dir>")
        cfg = compose_data_config(rest)
        path = write_preview(cfg, out, num, seed)
    except InssegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    augment = cfg.data.augment if isinstance(cfg.data.augment, str) else ",".join(cfg.data.augment)
    print(f"{num} training samples (data.augment={augment}) -> {path}, one overlay PNG per sample beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
