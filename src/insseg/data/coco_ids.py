"""The COCO ids of any dataset's images and classes: what ``python -m insseg.data.export_coco`` writes and what a
COCO results list (``eval.predictions=results.json``) must use.

COCO-format data keeps its file's own ids. Every other layout numbers an image by its position in the reader
(the whole image list of the layout, before any split) + 1, so an image has the same id in every split's export,
and its classes 1..K in the dataset's class order.
"""

from __future__ import annotations

from typing import Any


def coco_image_id(reader: Any, index: int) -> int:
    """The COCO image id of ``reader``'s image ``index``: the file's own id, else ``index + 1``."""
    own = getattr(reader, "image_id", None)
    return int(own(index)) if own is not None else index + 1


def coco_category_ids(reader: Any) -> list[int]:
    """The COCO category id of each class of ``reader``, in class order: the file's own, else 1..K."""
    return [int(c) for c in getattr(reader, "category_ids", range(1, len(reader.class_names) + 1))]
