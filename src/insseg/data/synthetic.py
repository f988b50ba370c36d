"""Synthetic datasets written in the real on-disk layouts, so tests and the quickstart exercise the real
readers: PennFudanPed (RGB PNGs + palette instance-id PNGs), VOC 2012 (JPEGs, palette PNGs with the
255 void band, split lists) and COCO-format data (JPEGs + instances JSON in the COCO 2017 layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

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


# COCO layout: category ids that are neither contiguous nor 1-based, as users' files often have.
COCO_CATEGORIES = ({"id": 3, "name": "ellipse"}, {"id": 7, "name": "rectangle"})
# Segmentation form of the k-th object, in turn: what real files hold.
COCO_FORMS = ("polygon", "polygon", "parts", "rle", "polygon", "rle_list")


def _shape_polygons(rng: np.random.Generator, height: int, width: int, ellipse: bool, parts: bool) -> list[list[float]]:
    """Polygon parts of one random ellipse (32 vertices) or rectangle; ``parts``: split in two by a gap, as an
    object seen on both sides of a pole."""
    h = float(rng.integers(height // 5, height // 2))
    w = float(rng.integers(width // 8, width // 3))
    cy = float(rng.integers(int(h) // 2 + 1, height - int(h) // 2 - 1))
    cx = float(rng.integers(int(w) // 2 + 1, width - int(w) // 2 - 1))
    if ellipse and not parts:
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        xy = np.stack([cx + w / 2 * np.cos(t), cy + h / 2 * np.sin(t)], axis=1)
        return [np.round(xy, 2).ravel().tolist()]
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    if not parts:
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]
    gap = max(2.0, w / 6)
    return [[x0, y0, cx - gap, y0, cx - gap, y1, x0, y1], [cx + gap, y0, x1, y0, x1, y1, cx + gap, y1]]


def _coco_segmentation(form: str, parts: list[list[float]], mask_rle: dict, height: int, width: int) -> object:
    if form in ("polygon", "parts"):
        return parts
    if form == "rle":
        return {"size": [height, width], "counts": mask_rle["counts"].decode("ascii")}
    return {"size": [height, width], "counts": _uncompressed_counts(mask_utils.decode(mask_rle))}


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths in column-major order, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] == 1 else runs


def _coco_image(
    rng: np.random.Generator, i: int, negative: bool, height: int, width: int, max_objects: int, counter: list[int]
):
    """The RGB image and annotation dicts (no ids yet) of image i: objects placed without overlap, every 4th
    image with a crowd region (a patch of small blobs, one ``iscrowd: 1`` uncompressed RLE)."""
    image = rng.integers(40, 110, size=3) + rng.normal(0, 12, size=(height, width, 3))
    taken = np.zeros((height, width), dtype=bool)
    anns = []
    n = 0 if negative or max_objects == 0 else int(rng.integers(1, max_objects + 1))
    for _ in range(n):
        form = COCO_FORMS[counter[0] % len(COCO_FORMS)]
        for _attempt in range(20):
            ellipse = bool(rng.random() < 0.5) and form != "parts"
            parts = _shape_polygons(rng, height, width, ellipse, form == "parts")
            rle = mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
            mask = mask_utils.decode(rle).astype(bool)
            if mask.any() and not (mask & taken).any():
                break
        else:
            continue
        counter[0] += 1
        taken |= mask
        image[mask] = rng.integers(150, 256, size=3) + rng.normal(0, 10, size=(int(mask.sum()), 3))
        anns.append(
            {
                "category_id": COCO_CATEGORIES[0 if ellipse else 1]["id"],
                "iscrowd": 0,
                "rle": rle,
                "segmentation": _coco_segmentation(form, parts, rle, height, width),
            }
        )
    if i % 4 == 3:
        crowd = np.zeros((height, width), dtype=bool)
        y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
        for _ in range(12):
            y, x = y0 + int(rng.integers(0, height // 3)), x0 + int(rng.integers(0, width // 3))
            crowd[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = True
        crowd &= ~taken
        if crowd.any():
            image[crowd] = (220, 220, 60)
            rle = mask_utils.encode(np.asfortranarray(crowd.astype(np.uint8)))
            anns.append(
                {
                    "category_id": COCO_CATEGORIES[0]["id"],
                    "iscrowd": 1,
                    "rle": rle,
                    "segmentation": {"size": [height, width], "counts": _uncompressed_counts(crowd)},
                }
            )
    return np.clip(image, 0, 255).astype(np.uint8), anns


def _save_coco_image(image: np.ndarray, path: Path, exif_rotated: bool) -> None:
    """A JPEG; ``exif_rotated``: stored turned a quarter with EXIF orientation 6, so a viewer (and the loader)
    shows ``image`` upright, as phones write photos."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(image)
    if not exif_rotated:
        im.save(path, quality=95)
        return
    exif = Image.Exif()
    exif[0x0112] = 6
    im.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)


def _coco_annotation(ann_id: int, image_id: int, ann: dict[str, Any]) -> dict[str, Any]:
    """``ann`` (its ``rle`` taken out) as a file's annotation record, with the area and box of that RLE."""
    rle = ann.pop("rle")
    area, bbox = float(mask_utils.area(rle)), mask_utils.toBbox(rle).tolist()
    return {"id": ann_id, "image_id": image_id, **ann, "area": area, "bbox": bbox}


def _write_coco_json(
    path: Path, description: str, licenses: list[dict[str, Any]], images: list, annotations: list, categories: list
) -> None:
    """A COCO-format annotation file (COCO and LVIS share it) at ``path``."""
    data = {
        "info": {"description": description},
        "licenses": licenses,
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _write_coco_split(root: Path, split: str, images: list[tuple[str, np.ndarray, list]], first_image_id: int) -> None:
    entries: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, (file_name, image, anns) in enumerate(images):
        image_id = first_image_id + 10 * n  # the file's own ids: neither positions nor contiguous
        _save_coco_image(image, root / f"{split}2017" / file_name, exif_rotated=n == 1)
        entries.append({"id": image_id, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]})
        for ann in anns:
            annotations.append(_coco_annotation(1000 + len(annotations) * 3, image_id, ann))
    categories = [dict(c) for c in COCO_CATEGORIES]
    path = root / "annotations" / f"instances_{split}2017.json"
    _write_coco_json(path, "insseg synthetic COCO-format data", [], entries, annotations, categories)


def generate_coco(
    root: str | Path,
    num_images: int = 24,
    height: int = 160,
    width: int = 224,
    max_objects: int = 3,
    seed: int = 0,
    val_fraction: float = 0.34,
) -> Path:
    """Write a COCO 2017-layout folder at ``root``: ``annotations/instances_{train,val}2017.json`` and the JPEGs
    in ``train2017/`` and ``val2017/``, with every form real files hold: polygons (one or two parts),
    compressed and uncompressed RLE, crowd regions, category ids 3 and 7, a negative (the first image of
    each split), file names in a sub-folder (every third image) and an EXIF-rotated photo (the second)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    counter = [0]
    scenes = []
    num_val = max(1, int(round(num_images * val_fraction)))
    for i in range(num_images):
        image, anns = _coco_image(rng, i, i in (0, num_val), height, width, max_objects, counter)
        name = f"synth{i:05d}.jpg"
        scenes.append((f"sub/{name}" if i % 3 == 2 else name, image, anns))
    val, train = scenes[:num_val], scenes[num_val:]
    _write_coco_split(root, "val", val, first_image_id=5)
    _write_coco_split(root, "train", train, first_image_id=100005)
    return root
