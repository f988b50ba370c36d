"""Synthetic datasets written in the real on-disk layouts, so tests and the quickstart exercise the real
readers: PennFudanPed (RGB PNGs + palette instance-id PNGs) and VOC 2012 (JPEGs, palette PNGs with the
255 void band, split lists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from insseg.data.annotations import VOID_ID
from insseg.data.voc_palette import VOC_CLASSES, voc_palette


def _draw_scene(rng: np.random.Generator, height: int, width: int, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and an instance-id map (0 background, 1..n objects; later objects occlude earlier)."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(40, 110, size=3)
    image = base + rng.normal(0, 12, size=(height, width, 3))
    instance_map = np.zeros((height, width), dtype=np.uint8)
    for k in range(1, num_objects + 1):
        h = rng.integers(height // 5, height // 2)
        w = rng.integers(width // 8, width // 3)
        cy = rng.integers(h // 2, height - h // 2)
        cx = rng.integers(w // 2, width - w // 2)
        if rng.random() < 0.5:
            inside = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1.0
        else:
            inside = (abs(yy - cy) <= h // 2) & (abs(xx - cx) <= w // 2)
        colour = rng.integers(150, 256, size=3)
        image[inside] = colour + rng.normal(0, 10, size=(int(inside.sum()), 3))
        instance_map[inside] = k
    # Drop ids fully hidden by later objects, keeping ids 1..n contiguous as the real datasets do.
    present = [i for i in range(1, num_objects + 1) if (instance_map == i).any()]
    remap = np.zeros(256, dtype=np.uint8)
    for new, old in enumerate(present, start=1):
        remap[old] = new
    return np.clip(image, 0, 255).astype(np.uint8), remap[instance_map]


def _void_band(instance_map: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of an object boundary, as VOC marks them 255."""
    padded = np.pad(instance_map, width, mode="edge")
    h, w = instance_map.shape
    band = np.zeros_like(instance_map, dtype=bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            shifted = padded[width + dy : width + dy + h, width + dx : width + dx + w]
            band |= shifted != instance_map
    return band


def _palette_png(array: np.ndarray, path: Path) -> None:
    im = Image.fromarray(array.astype(np.uint8), mode="P")
    im.putpalette(voc_palette())
    im.save(path)


def generate_pennfudan(
    root: str | Path, num_images: int = 24, height: int = 160, width: int = 224, max_objects: int = 3, seed: int = 0
) -> Path:
    """Write ``root/PNGImages/SynthPedNNNNN.png`` and ``root/PedMasks/SynthPedNNNNN_mask.png``.

    Image 0 has no objects (a negative example); the others have 1..max_objects.
    """
    root = Path(root)
    (root / "PNGImages").mkdir(parents=True, exist_ok=True)
    (root / "PedMasks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        n = 0 if i == 0 or max_objects == 0 else int(rng.integers(1, max_objects + 1))
        image, instance_map = _draw_scene(rng, height, width, n)
        stem = f"SynthPed{i:05d}"
        Image.fromarray(image).save(root / "PNGImages" / f"{stem}.png")
        _palette_png(instance_map, root / "PedMasks" / f"{stem}_mask.png")
    return root


def generate_voc(
    root: str | Path,
    num_images: int = 24,
    height: int = 160,
    width: int = 224,
    max_objects: int = 3,
    seed: int = 0,
    val_fraction: float = 0.34,
) -> Path:
    """Write a VOC2012-layout folder at ``root`` with train/val/trainval split lists.

    Objects get random VOC classes; a 2-pixel void band (255) surrounds every object in both label PNGs.
    """
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(num_images):
        n = 0 if i == 0 or max_objects == 0 else int(rng.integers(1, max_objects + 1))
        image, instance_map = _draw_scene(rng, height, width, n)
        classes = rng.integers(1, len(VOC_CLASSES) + 1, size=n + 1)
        class_map = classes[instance_map].astype(np.uint8)
        class_map[instance_map == 0] = 0
        band = _void_band(instance_map)
        instance_map = instance_map.copy()
        instance_map[band] = VOID_ID
        class_map[band] = VOID_ID
        image_id = f"2099_{i:06d}"
        ids.append(image_id)
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        _palette_png(instance_map, root / "SegmentationObject" / f"{image_id}.png")
        _palette_png(class_map, root / "SegmentationClass" / f"{image_id}.png")
    num_val = max(1, int(round(num_images * val_fraction)))
    splits = {"train": ids[num_val:], "val": ids[:num_val], "trainval": ids}
    for name, names in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("".join(f"{n}\n" for n in names))
    return root
