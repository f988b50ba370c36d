"""LVIS v1 data (``data=lvis``): a COCO-format file with the fields of federated annotation.

An LVIS file is a COCO instances file whose categories carry ``frequency`` (``r``are: in 1-10 training images,
``c``ommon: 11-100, ``f``requent: more) and whose images carry ``neg_category_ids`` (categories verified absent),
``not_exhaustive_category_ids`` (categories present but not every instance annotated) and ``coco_url`` in place of
``file_name``. The COCO-format reader reads it (:class:`~insseg.data.coco.CocoReader`, one reader for both); this
module adds what LVIS adds: an image without ``file_name`` is found at ``<images dir>/<last two parts of
coco_url>`` (``val2017/000000397133.jpg``: the COCO 2017 image folders serve, as detectron2's LVIS loader finds
them), the LVIS fields are checked, and each image's annotation carries its image entry, which the LVIS
protocol (:mod:`insseg.evaluation.lvis_evaluator`) reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insseg.data.annotations import RleAnnotation
from insseg.data.coco import CocoReader, load_coco_json
from insseg.data.problems import ERROR, Problem

FREQUENCIES = ("r", "c", "f")
FREQUENCY_NAMES = {"r": "rare", "c": "common", "f": "frequent"}
IMAGE_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


def image_file_name(entry: dict[str, Any]) -> str | None:
    """``file_name`` if the entry has one, else the last two parts of ``coco_url`` (None when neither)."""
    if isinstance(entry.get("file_name"), str) and entry["file_name"]:
        return entry["file_name"]
    url = entry.get("coco_url")
    if isinstance(url, str) and url.strip("/"):
        return "/".join(url.rstrip("/").split("/")[-2:])
    return None


def lvis_problems(data: dict[str, Any], path: Path) -> list[Problem]:
    """What the LVIS protocol needs and the file lacks: a frequency per category, the two id lists per image
    (naming only known categories), and a way to find the image (``file_name`` or ``coco_url``)."""
    out: list[Problem] = []
    cat_ids = {c["id"] for c in data["categories"] if isinstance(c, dict) and "id" in c}
    for c in data["categories"]:
        if isinstance(c, dict) and c.get("frequency") not in FREQUENCIES:
            out.append(
                Problem(
                    ERROR,
                    "bad_category",
                    str(path),
                    f"category {c.get('id')!r} ({c.get('name')!r}) has frequency {c.get('frequency')!r}; "
                    "an LVIS category needs 'frequency' r, c or f",
                )
            )
    for im in data["images"]:
        if not isinstance(im, dict):
            continue  # the COCO index reports it
        where = f"image id {im.get('id')!r}"
        if image_file_name(im) is None:
            out.append(Problem(ERROR, "bad_type", str(path), f"{where} has neither 'file_name' nor 'coco_url'"))
        for key in IMAGE_LISTS:
            ids = im.get(key)
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                out.append(
                    Problem(
                        ERROR, "bad_type", str(path), f"{where}: '{key}' must be a list of category ids ({ids!r:.40})"
                    )
                )
            elif set(ids) - cat_ids:
                unknown = sorted(set(ids) - cat_ids)[:5]
                out.append(
                    Problem(
                        ERROR, "unknown_category", str(path), f"{where}: '{key}' names unknown categories {unknown}"
                    )
                )
    return out


class LvisReader(CocoReader):
    """The images of one LVIS file. ``images_dir``: the folder that holds ``train2017/`` and ``val2017/`` (the
    last two parts of ``coco_url``), or the folder ``file_name`` is relative to where the file has one.

    ``categories``: the file's category entries by ascending id (with ``frequency``), ``frequencies`` the
    frequency of each class (label k is ``frequencies[k - 1]``)."""

    def _read_json(self) -> dict[str, Any]:
        data = load_coco_json(self.json_path)
        self._lvis_problems = lvis_problems(data, self.json_path)
        for im in data["images"]:
            if isinstance(im, dict) and "file_name" not in im and (name := image_file_name(im)) is not None:
                im["file_name"] = name
        self._categories = [c for c in data["categories"] if isinstance(c, dict)]
        return data

    def __init__(self, json_path: str | Path, images_dir: str | Path) -> None:
        super().__init__(json_path, images_dir)
        self.index.problems.extend(self._lvis_problems)
        by_id = {c.get("id"): c for c in self._categories}
        self.categories: list[dict[str, Any]] = [by_id[i] for i in self.category_ids]
        self.frequencies: tuple[str, ...] = tuple(str(c.get("frequency")) for c in self.categories)

    def annotation(self, index: int, image_hw: tuple[int, int] | None = None) -> RleAnnotation:
        ann = super().annotation(index, image_hw)
        ann.image_entry = self.index.images[index]
        return ann
