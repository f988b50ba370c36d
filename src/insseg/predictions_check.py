"""Every entry of a predictions file checked before it is scored: a judge refuses garbage instead of averaging it in.

Works on the raw JSON entries of either format (the project's predictions.json ``annotations`` or a COCO results
list) plus the image table (id -> file name, height, width) and the known category ids. A problem is one line
naming the file, the image (file name) and the field. ``strict`` (the default) raises :class:`PredictionsError`
(exit status 2, nothing written); ``lenient`` scores the file as it is and logs one warning per kind of problem.
What cannot be scored at all (an unknown image or category, a segmentation that does not decode) is refused in
both modes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from insseg.errors import InssegError
from insseg.io.rle_counts import compressed_counts_ok, uncompressed_counts_ok
from insseg.utils.logging import log

MODES = ("strict", "lenient")
# Kinds refused even in lenient mode: there is nothing to score.
FATAL = frozenset({"unknown image", "unknown category", "undecodable segmentation"})
BOX_SLACK = 1.0  # pixels a box may stick out of its image
REQUIRED = frozenset({"image_id", "category_id", "score", "segmentation"})


class PredictionsError(InssegError):
    """A predictions file holds an entry that cannot be scored honestly."""


@dataclass(frozen=True)
class ImageEntry:
    file_name: str
    height: int
    width: int


@dataclass
class Findings:
    """Problems found so far; strict mode raises at the first, lenient keeps the first of each kind and a count."""

    source: str
    mode: str = "strict"
    first: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        line = f"predictions file {self.source}: {message}"
        if self.mode == "strict" or kind in FATAL:
            raise PredictionsError(line)
        self.first.setdefault(kind, line)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def warn(self) -> None:
        for kind, line in self.first.items():
            log.warning(
                f"{line} ({self.counts[kind]} entries with this kind of problem ({kind}) are scored as they are: "
                "eval.predictions_check=lenient)"
            )


def image_table(images: Sequence[Mapping[str, Any]], findings: Findings) -> dict[int, ImageEntry]:
    """The image table of a predictions.json ``images`` list; an image listed twice is a problem."""
    table: dict[int, ImageEntry] = {}
    seen: dict[str, int] = {}
    for im in images:
        entry = ImageEntry(str(im.get("file_name")), int(im.get("height", 0)), int(im.get("width", 0)))
        image_id = int(im.get("id", -1))
        if entry.file_name in seen or image_id in table:
            twice = entry.file_name if entry.file_name in seen else table[image_id].file_name
            findings.add("duplicate image", f"image '{twice}': field 'images' lists it twice (id {image_id})")
        seen[entry.file_name] = image_id
        table.setdefault(image_id, entry)
    return table


def check_entries(
    entries: Sequence[Mapping[str, Any]],
    images: Mapping[int, ImageEntry],
    category_ids: Collection[int],
    findings: Findings,
    *,
    bbox_required: bool = True,
    ignored_image_ids: Collection[int] = (),
    left_to_reader: bool = False,
) -> None:
    """Check each detection entry: ``image_id``, ``category_id``, ``score``, ``bbox`` [x, y, w, h], ``segmentation``.

    Entries of ``ignored_image_ids`` (images outside the evaluated split) are not checked; with ``left_to_reader``
    neither are entries lacking a key or naming an unknown image or category (the results-list reader refuses
    those with its own message)."""
    known = set(category_ids)
    compressed: list[tuple[int, str | bytes, ImageEntry]] = []
    for i, ann in enumerate(entries):
        if (left_to_reader and not _complete(ann, images, known)) or ann.get("image_id") in ignored_image_ids:
            continue
        where = _where(ann, i)
        image = images.get(ann.get("image_id"))  # type: ignore[arg-type]
        if image is None:
            findings.add(
                "unknown image", f"{where}: field 'image_id' is {ann.get('image_id')!r}, which is no image of the set"
            )
            continue
        where = f"image '{image.file_name}', {where}"
        if ann.get("category_id") not in known:
            shown = ", ".join(str(c) for c in sorted(known))
            findings.add(
                "unknown category", f"{where}: field 'category_id' is {ann.get('category_id')!r}; known ids: {shown}"
            )
        _check_score(ann.get("score"), where, findings)
        if "bbox" in ann or bbox_required:
            _check_box(ann.get("bbox"), image, where, findings)
        rle = _check_segmentation(ann.get("segmentation"), image, where, findings)
        if rle is not None:
            compressed.append((i, rle, image))
    _check_compressed(entries, compressed, findings)


def _complete(ann: Any, images: Mapping[int, ImageEntry], known: set[int]) -> bool:
    return (
        isinstance(ann, Mapping)
        and ann.keys() >= REQUIRED
        and ann["image_id"] in images
        and ann["category_id"] in known
    )


def _where(ann: Mapping[str, Any], index: int) -> str:
    return f"annotation {ann['id']}" if "id" in ann else f"entry {index}"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_score(score: Any, where: str, findings: Findings) -> None:
    if not _finite(score):
        findings.add("score", f"{where}: field 'score' is {score!r}; it must be a finite number")


def _check_box(box: Any, image: ImageEntry, where: str, findings: Findings) -> None:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_finite(v) for v in box):
        findings.add("box", f"{where}: field 'bbox' is {box!r}; it must be 4 finite numbers [x, y, width, height]")
        return
    x, y, w, h = box
    if w < 0 or h < 0:
        findings.add("box", f"{where}: field 'bbox' is {list(box)}; its width and height must be >= 0")
    elif x < -BOX_SLACK or y < -BOX_SLACK or x + w > image.width + BOX_SLACK or y + h > image.height + BOX_SLACK:
        findings.add(
            "box outside",
            f"{where}: field 'bbox' is {list(box)}, outside the {image.width}x{image.height} image "
            "(by more than a pixel)",
        )


def _check_segmentation(seg: Any, image: ImageEntry, where: str, findings: Findings) -> str | bytes | None:
    """Check the cheap parts; return compressed counts still to be parsed (in one batch), else None."""
    if isinstance(seg, list):
        if not seg or not all(_polygon_ok(p) for p in seg):
            findings.add(
                "undecodable segmentation",
                f"{where}: field 'segmentation' is not a decodable polygon list "
                "(each polygon: at least 3 points as an even count of finite numbers)",
            )
        return None
    if not isinstance(seg, Mapping) or "counts" not in seg or "size" not in seg:
        findings.add(
            "undecodable segmentation", f"{where}: field 'segmentation' is neither an RLE {{size, counts}} nor polygons"
        )
        return None
    size = list(seg["size"]) if isinstance(seg["size"], (list, tuple)) else seg["size"]
    if size != [image.height, image.width]:
        findings.add(
            "RLE size",
            f"{where}: field 'segmentation.size' is {size}, not the image's [height, width] "
            f"[{image.height}, {image.width}]",
        )
        return None
    counts = seg["counts"]
    if isinstance(counts, (str, bytes)):
        return counts
    if not isinstance(counts, list) or not uncompressed_counts_ok(counts, image.height * image.width):
        findings.add("undecodable segmentation", _undecodable(where, image))
    return None


def _polygon_ok(polygon: Any) -> bool:
    return (
        isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0 and all(_finite(v) for v in polygon)
    )


def _undecodable(where: str, image: ImageEntry) -> str:
    return (
        f"{where}: field 'segmentation.counts' does not decode to a {image.height}x{image.width} mask "
        "(its runs must add up to height x width)"
    )


def _check_compressed(
    entries: Sequence[Mapping[str, Any]], compressed: list[tuple[int, str | bytes, ImageEntry]], findings: Findings
) -> None:
    ok = compressed_counts_ok([c for _, c, _ in compressed], [im.height * im.width for _, _, im in compressed])
    for (i, _, image), good in zip(compressed, ok):
        if not good:
            findings.add(
                "undecodable segmentation", _undecodable(f"image '{image.file_name}', {_where(entries[i], i)}", image)
            )


def _findings(source: str, mode: str) -> Findings:
    if mode not in MODES:
        raise InssegError(f"config key 'eval.predictions_check' is '{mode}'; expected one of: {', '.join(MODES)}")
    return Findings(source, mode)


def check_predictions_json(data: Mapping[str, Any], source: str, mode: str = "strict") -> None:
    """Check a predictions.json payload (its own image and category tables) in ``mode`` (strict | lenient)."""
    findings = _findings(source, mode)
    images = image_table(data["images"], findings)
    category_ids = {c.get("id") for c in data["categories"]}
    check_entries(data["annotations"], images, category_ids, findings)
    findings.warn()


def check_results_list(
    entries: Sequence[Mapping[str, Any]],
    images: Mapping[int, ImageEntry],
    category_ids: Collection[int],
    source: str,
    mode: str = "strict",
    ignored_image_ids: Collection[int] = (),
) -> None:
    """Check a COCO results list (``bbox`` optional) against the split's image table and the category ids; items
    of ``ignored_image_ids`` (the dataset's other images) are left to the reader, which skips them."""
    findings = _findings(source, mode)
    check_entries(
        entries,
        images,
        category_ids,
        findings,
        bbox_required=False,
        ignored_image_ids=ignored_image_ids,
        left_to_reader=True,
    )
    findings.warn()
