"""``eval.predictions=<file>``: a predictions.json read back and lined up with the evaluated split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.errors import InssegError
from insseg.predictions import PredictionSet, read_predictions
from insseg.utils.logging import log


def _shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def records_for_split(path: str | Path, dataset: InstanceSegmentationDataset, model_cfg: Any = None) -> PredictionSet:
    """The file's records of the split's images, in split order.

    Images of the file that the split does not hold are ignored with a warning (so ``predict.py`` on a whole
    folder followed by ``evaluate.py eval.predictions=`` works); images of the split missing from the file are
    an error. A file whose detections were cut above the model's floor gets a warning: COCO AP ranks every
    detection, so a cut biases it low.
    """
    predictions = read_predictions(path)
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
