"""A synthetic dataset in the real Cityscapes layout (a sibling of :mod:`insseg.data.synthetic`), for tests and
smoke runs of ``data=cityscapes``::

    leftImg8bit/{train,val}/<city>/<city>_<seq>_000019_leftImg8bit.png
    gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_{instanceIds,labelIds}.png (+ _polygons.json)

Every scene has sky (23) over road (7) and a void strip of ego vehicle (1) at the bottom; objects of the 8
instance classes (ids class x 1000 + k, drawn from polygons that the json lists); every third scene also has a
group region (the class id itself, below 1000, as ``cargroup`` in the json); the first scene of each split has
no object.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from insseg.data.cityscapes import CITYSCAPES_CLASSES

CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau")}
SKY, ROAD, EGO_VEHICLE = 23, 7, 1
STUFF_NAMES = {SKY: "sky", ROAD: "road", EGO_VEHICLE: "ego vehicle"}


def _polygon(rng: np.random.Generator, height: int, width: int, ellipse: bool) -> list[tuple[float, float]]:
    h = float(rng.integers(height // 5, height // 2))
    w = float(rng.integers(width // 8, width // 3))
    cy = float(rng.integers(int(h) // 2 + 1, height - int(h) // 2 - 1))
    cx = float(rng.integers(int(w) // 2 + 1, width - int(w) // 2 - 1))
    if ellipse:
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        return [(round(cx + w / 2 * np.cos(a), 1), round(cy + h / 2 * np.sin(a), 1)) for a in t]
    return [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]


def _fill(ids: np.ndarray, polygon: list[tuple[float, float]], value: int) -> np.ndarray:
    canvas = Image.new("L", (ids.shape[1], ids.shape[0]), 0)
    ImageDraw.Draw(canvas).polygon(polygon, fill=1)
    inside = np.asarray(canvas, dtype=bool)
    ids[inside] = value
    return inside


def _scene(rng: np.random.Generator, height: int, width: int, num_objects: int, group: bool):
    """RGB image, instanceIds map and the json's objects of one scene (later objects occlude earlier)."""
    ids = np.zeros((height, width), dtype=np.int32)
    bands = ((SKY, 0, height // 3), (ROAD, height // 3, height), (EGO_VEHICLE, height - max(2, height // 20), height))
    objects = []
    for value, y0, y1 in bands:
        ids[y0:y1] = value
        objects.append({"label": STUFF_NAMES[value], "polygon": [[0, y0], [width, y0], [width, y1], [0, y1]]})
    image = np.where((ids == SKY)[..., None], (90, 130, 180), (70, 70, 70)) + rng.normal(0, 8, (height, width, 3))
    count: dict[int, int] = {}
    # (json label, label id, is a group region): a car group first, so later objects occlude it
    shapes = [("cargroup", 26, True)] if group else []
    for _ in range(num_objects):
        shapes.append((*CITYSCAPES_CLASSES[int(rng.integers(len(CITYSCAPES_CLASSES)))], False))
    for name, label_id, is_group in shapes:
        polygon = _polygon(rng, height, width, ellipse=bool(rng.random() < 0.5))
        if is_group:
            value = label_id
        else:
            count[label_id] = count.get(label_id, -1) + 1
            value = label_id * 1000 + count[label_id]
        inside = _fill(ids, polygon, value)
        colour = (230, 220, 60) if is_group else rng.integers(120, 256, size=3)
        image[inside] = colour + rng.normal(0, 10, size=(int(inside.sum()), 3))
        objects.append({"label": name, "polygon": [[x, y] for x, y in polygon]})
    return np.clip(image, 0, 255).astype(np.uint8), ids, objects


def generate_cityscapes(
    root: str | Path,
    num_images: int = 24,
    height: int = 160,
    width: int = 224,
    max_objects: int = 3,
    seed: int = 0,
    val_fraction: float = 0.34,
) -> Path:
    """Write the train and val splits at ``root`` (cities alternate inside a split)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    num_val = max(1, int(round(num_images * val_fraction)))
    for i in range(num_images):
        split, n = ("val", i) if i < num_val else ("train", i - num_val)
        city = CITIES[split][n % 2]
        count = 0 if n == 0 or max_objects == 0 else int(rng.integers(1, max_objects + 1))
        image, ids, objects = _scene(rng, height, width, count, group=n % 3 == 2)
        stem = f"{city}_{n:06d}_000019"
        image_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_dir / f"{stem}_leftImg8bit.png")
        Image.fromarray(ids.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
        labels = np.where(ids >= 1000, ids // 1000, ids).astype(np.uint8)
        Image.fromarray(labels).save(gt_dir / f"{stem}_gtFine_labelIds.png")
        polygons = {"imgHeight": height, "imgWidth": width, "objects": objects}
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(polygons, indent=1))
    return root
