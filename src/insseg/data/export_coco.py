"""Write any dataset we read as COCO-format data: ``python -m insseg.data.export_coco data=<any> out=<dir>``.

``<dir>`` gets the COCO 2017 layout that ``data=coco`` reads by default: ``annotations/instances_train2017.json``
+ ``train2017/`` for the training split and ``annotations/instances_val2017.json`` + ``val2017/`` for the
evaluation split (PennFudanPed: the seeded split of ``data.num_test``/``data.split_seed``; VOC: the
``data.train_split``/``data.eval_split`` lists). Images are copied byte for byte; masks are compressed RLEs with
``area`` their pixel count and ``bbox`` pycocotools' ``toBbox``, so ``evaluate.py data=coco data.root=<dir>``
scores the same numbers as the original dataset (PennFudanPed). VOC's void band has no COCO counterpart: it
becomes background (a warning says so), so VOC scores change slightly. COCO-format input keeps its image and
category ids and its crowd regions. Ids: :mod:`insseg.data.coco_ids` (the ids a COCO results list of this
dataset must use).
category ids and its crowd regions; LVIS input keeps its image lists and category frequencies (each image gets a
``file_name``, so ``data=lvis data.eval_json=annotations/instances_val2017.json data.eval_images=val2017`` reads
the export with the LVIS protocol).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from insseg.data.build import build_reader
from insseg.data.check import compose_data_config, split_out
from insseg.data.coco_ids import coco_category_ids, coco_image_id
from insseg.data.lvis import LvisReader
from insseg.errors import ConfigError, InssegError
from insseg.io.rle import encode_masks
from insseg.utils.atomic import atomic_write_json
from insseg.utils.logging import ensure_console_logging, log

SPLIT_NAMES = {"train": "train2017", "eval": "val2017"}
# LVIS input keeps what its protocol reads (and its categories' frequency): the export is still an LVIS file.
LVIS_IMAGE_KEYS = ("neg_category_ids", "not_exhaustive_category_ids", "coco_url")


def _entries(
    rles: list[dict[str, Any]], category_ids: list[int], crowd: bool, first_id: int, image_id: int
) -> list[dict[str, Any]]:
    areas = mask_utils.area(rles).tolist() if rles else []
    boxes = mask_utils.toBbox(rles).tolist() if rles else []
    return [
        {
            "id": first_id + k,
            "image_id": image_id,
            "category_id": int(c),
            "segmentation": {"size": [int(s) for s in r["size"]], "counts": _text(r["counts"])},
            "area": float(a),
            "bbox": b,
            "iscrowd": int(crowd),
        }
        for k, (r, c, a, b) in enumerate(zip(rles, category_ids, areas, boxes))
    ]


def _text(counts: str | bytes) -> str:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def export_split(reader: Any, indices: Sequence[int], out: Path, split: str) -> Path:
    """Copy the images of ``indices`` into ``out/<split>2017/`` and write their annotation file; returns it."""
    images_dir, name = out / SPLIT_NAMES[split], SPLIT_NAMES[split]
    ids = coco_category_ids(reader)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    voids = 0
    for i in indices:
        ann = reader.annotation(i)
        image_id = coco_image_id(reader, i)
        target = images_dir / reader.file_name(i)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(reader.image_path(i), target)
        entry = {"id": image_id, "file_name": reader.file_name(i), "height": ann.height, "width": ann.width}
        extra = getattr(ann, "image_entry", None) or {}
        images.append({**entry, **{k: v for k, v in extra.items() if k in LVIS_IMAGE_KEYS}})
        if ann.coco_entries is None:
            voids += bool(ann.void().any())
            rles, crowd = encode_masks(ann.masks()), []
        else:
            rles, crowd = ann.rles, ann.crowd_rles
        labels = [ids[int(k) - 1] for k in ann.labels.tolist()]
        annotations += _entries(rles, labels, False, len(annotations) + 1, image_id)
        crowd_cats = [e["category_id"] for e in (ann.coco_entries or []) if e.get("iscrowd", 0)]
        annotations += _entries(crowd, crowd_cats, True, len(annotations) + 1, image_id)
    if voids:
        log.warning(
            f"{voids} image(s) of the {split} split have void (255) pixels, which COCO cannot express: they "
            "are background in the export"
        )
    path = out / "annotations" / f"instances_{name}.json"
    categories = [{"id": int(c), "name": n} for c, n in zip(ids, reader.class_names)]
    if isinstance(reader, LvisReader):
        categories = reader.categories
    atomic_write_json(
        path,
        {
            "info": {"description": f"exported by insseg from {reader.root}"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        },
        indent=None,
    )
    return path


def export_coco(data_cfg: Any, out: str | Path) -> dict[str, Path]:
    """Both splits of ``data_cfg`` as COCO-format data under ``out``; returns the annotation file of each."""
    out = Path(out)
    written = {}
    for split in SPLIT_NAMES:
        reader, indices = build_reader(data_cfg, split)
        written[split] = export_split(reader, indices, out, split)
        log.info(f"{split}: {len(indices)} images -> {written[split]}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ensure_console_logging()
    out, overrides = split_out(sys.argv[1:] if argv is None else argv)
    try:
        if not out:
            raise ConfigError("no output folder given: pass out=<dir>")
        cfg = compose_data_config(overrides)
        export_coco(cfg.data, out)
    except InssegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"COCO-format data written to {out}; use it with: python evaluate.py data=coco data.root={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
