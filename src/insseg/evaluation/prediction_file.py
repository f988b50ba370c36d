"""``eval.predictions=<file>``: a predictions.json, or a COCO results list (:mod:`insseg.results_list`), read
back and lined up with the evaluated split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insseg.data.coco_ids import coco_category_ids, coco_image_id
from insseg.data.dataset import InstanceSegmentationDataset
from insseg.errors import InssegError
from insseg.io.images import image_size
from insseg.predictions import PredictionSet, read_predictions
from insseg.predictions_check import ImageEntry, check_results_list
from insseg.results_list import ImageRef, is_results_list_file, read_results_list, results_to_predictions
from insseg.utils.logging import log


def _shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def records_for_split(
    path: str | Path, dataset: InstanceSegmentationDataset, model_cfg: Any = None, check: str = "strict"
) -> PredictionSet:
    """The file's records of the split's images, in split order.

    Images of the file that the split does not hold are ignored with a warning (so ``predict.py`` on a whole
    folder followed by ``evaluate.py eval.predictions=`` works); images of the split missing from the file are
    an error. A file whose detections were cut above the model's floor gets a warning: COCO AP ranks every
    detection, so a cut biases it low. A results list (a JSON array) goes to :func:`results_list_for_split`.
    ``check``: eval.predictions_check (strict | lenient), how :mod:`insseg.predictions_check` treats a bad entry.
    """
    if is_results_list_file(path):
        return results_list_for_split(path, dataset, check)
    predictions = read_predictions(path, check)
    by_name = {rec.file_name: rec for rec in predictions.images}
    split_names = [dataset.file_name(i) for i in range(len(dataset))]
    missing = [n for n in split_names if n not in by_name]
    if missing:
        raise InssegError(
            f"predictions file {path} has no entry for {len(missing)} of the {len(split_names)} images of the "
            f"evaluation split of {dataset.reader.root}: {_shown(missing)}. Check data=..., data.root and eval.split"
        )
    extra = sorted(set(by_name) - set(split_names))
    if extra:
        log.warning(
            f"predictions file {path}: ignoring {len(extra)} image(s) that the evaluation split does not hold: "
            f"{_shown(extra)}"
        )
    predictions.images = [by_name[n] for n in split_names]
    _warn_if_cut(path, predictions, model_cfg)
    return predictions


def _warn_if_cut(path: str | Path, predictions: PredictionSet, model_cfg: Any) -> None:
    cut = predictions.info.get("score_threshold")
    floor = getattr(model_cfg, "box_score_thresh", None) if model_cfg is not None else None
    if cut is None or cut <= (floor if floor is not None else 0.0):
        return
    log.warning(
        f"predictions file {path} holds only detections scoring above {cut} (its info.score_threshold), "
        f"above the model's floor{'' if floor is None else f' of {floor}'}: COCO AP ranks every detection, so it is "
        "biased low. Write the file with predict.py predict.score_threshold=0 for unbiased AP; metrics.json "
        "records the lowest score present"
    )


def results_list_for_split(
    path: str | Path, dataset: InstanceSegmentationDataset, check: str = "strict"
) -> PredictionSet:
    """A COCO results list's records of the split's images, in split order, by the dataset's COCO ids (the
    file's own for COCO-format data, else those of ``python -m insseg.data.export_coco``); an image without an
    entry has no detection. Items of the dataset's other images are ignored with a warning."""
    items = read_results_list(path)
    reader = dataset.reader
    refs = [_image_ref(reader, j) for j in dataset.indices]
    split_ids = {ref.image_id for ref in refs}
    others = {coco_image_id(reader, j) for j in range(len(reader))} - split_ids
    table = {ref.image_id: ImageEntry(ref.file_name, ref.height, ref.width) for ref in refs}
    category_ids = coco_category_ids(reader)
    check_results_list(items, table, category_ids, str(path), check, ignored_image_ids=others)
    predictions = results_to_predictions(items, str(path), refs, category_ids, list(dataset.class_names), others)
    outside = sum(1 for item in items if item.get("image_id") in others)
    if outside:
        log.warning(f"results file {path}: ignoring {outside} item(s) of images outside the evaluation split")
    return predictions


def _image_ref(reader: Any, index: int) -> ImageRef:
    entry = reader.image_entry(index) if hasattr(reader, "image_entry") else None
    h, w = (int(entry["height"]), int(entry["width"])) if entry else image_size(reader.image_path(index))
    return ImageRef(coco_image_id(reader, index), reader.file_name(index), h, w)
