"""Cityscapes instance AP as an evaluator: each image's predictions are written in the format cityscapesScripts
reads (and the benchmark server takes), then :func:`~insseg.evaluation.cityscapes_protocol.run_official` scores
them against the dataset's ``*_gtFine_instanceIds.png`` files, as detectron2's ``CityscapesInstanceEvaluator``.

Written under ``<run dir>/cityscapes_results/<city>/`` (a temporary folder without a run dir): per image
``<frame>_pred.txt``, one line ``<mask png> <label id> <score>`` per detection (the mask path relative to the
txt), and the masks ``<frame>_<k>_<class>.png`` (1-bit, nonzero = the instance). Every detection of one of the 8
classes is written (no score threshold: AP ranks them). ``<run dir>/cityscapes_matches.json`` is the official
per-image matching. Metrics: ``cityscapes_AP`` (mean over classes of AP averaged over IoU 0.5:0.95:0.05),
``cityscapes_AP50`` and ``per_class[name]["cityscapes_AP"]`` / ``["cityscapes_AP50"]``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from insseg.data.cityscapes import CITYSCAPES_CLASSES, IMAGE_SUFFIX, CityscapesReader
from insseg.evaluation.cityscapes_protocol import run_official
from insseg.evaluation.coco import CocoResults
from insseg.evaluation.sample import ImageSample
from insseg.predictions import ImagePrediction

RESULTS_DIR = "cityscapes_results"
MATCHES_FILE = "cityscapes_matches.json"
LABEL_ID = dict(CITYSCAPES_CLASSES)


def write_image_results(results_dir: Path, file_name: str, pred: ImagePrediction, class_names: Sequence[str]) -> Path:
    """The txt and mask PNGs of one image (``pred`` in labels of ``class_names``; classes the benchmark does not
    score are left out); returns the txt. An image without detections gets an empty txt, as the script wants."""
    city, frame = Path(file_name).parent.name, Path(file_name).name.removesuffix(IMAGE_SUFFIX)
    folder = Path(results_dir) / city
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (rle, score, label) in enumerate(zip(pred.rles, pred.scores.tolist(), pred.labels.tolist())):
        name = class_names[label - 1] if 1 <= label <= len(class_names) else None
        label_id = LABEL_ID.get(name) if name is not None else None
        if label_id is None:
            continue
        png = f"{frame}_{k}_{name}.png"
        Image.fromarray(mask_utils.decode(rle).astype(bool)).save(folder / png)
        lines.append(f"{png} {label_id} {float(score)!r}\n")
    txt = folder / f"{frame}_pred.txt"
    txt.write_text("".join(lines))
    return txt


class CityscapesEvaluator:
    """cityscapesScripts' AP over the images it is given. ``class_names``: the dataset's classes (predictions
    arrive in its labels); ``gt_files``: file_name -> its ``*_gtFine_instanceIds.png``; ``out_dir``: the run dir
    (None: a temporary folder, removed after ``evaluate``)."""

    def __init__(self, class_names: Sequence[str], gt_files: Mapping[str, Path], out_dir: Path | None) -> None:
        self.class_names = list(class_names)
        self.gt_files = dict(gt_files)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.reset()

    def reset(self) -> None:
        if getattr(self, "_tmp", None) is not None:
            self._tmp.cleanup()  # type: ignore[union-attr]
        self._pairs: list[tuple[Path, Path]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.out_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="insseg_cs_results_")
        base = self.out_dir if self.out_dir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.results_dir = base / RESULTS_DIR
        shutil.rmtree(self.results_dir, ignore_errors=True)  # no stale txt of an earlier run in a submission
        self.results_dir.mkdir(parents=True)
        self.matches_file = base / MATCHES_FILE if self.out_dir is not None else None

    def process(self, sample: ImageSample) -> None:
        txt = write_image_results(self.results_dir, sample.gt.file_name, sample.pred, self.class_names)
        self._pairs.append((txt, self.gt_files[sample.gt.file_name]))

    def evaluate(self, coco: CocoResults | None = None) -> dict[str, Any]:
        """The official numbers (``coco`` is not read: this protocol has its own matching)."""
        try:
            if not self._pairs:
                return {"cityscapes_AP": math.nan, "cityscapes_AP50": math.nan}
            txts, gts = zip(*self._pairs)
            result = run_official(list(txts), list(gts), self.results_dir, self.matches_file)
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
        return cityscapes_metrics(result["averages"], self.class_names)


def cityscapes_metrics(averages: Mapping[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    """metrics.json's keys from the official ``averages`` (NaN where it is undefined)."""
    per_class = {
        name: {"cityscapes_AP": _float(row["ap"]), "cityscapes_AP50": _float(row["ap50%"])}
        for name, row in averages["classes"].items()
        if name in class_names
    }
    return {
        "cityscapes_AP": _float(averages["allAp"]),
        "cityscapes_AP50": _float(averages["allAp50%"]),
        "per_class": per_class,
    }


def _float(value: Any) -> float:
    return float(np.asarray(value, dtype=np.float64))


def benchmark_evaluators(dataset: Any, out_dir: Path | None) -> list[Any]:
    """The evaluators of the dataset's own benchmark protocol: cityscapesScripts' AP on Cityscapes data."""
    reader = dataset.reader
    if not isinstance(reader, CityscapesReader):
        return []
    gt_files = {dataset.file_name(i): reader.gt_path(dataset.indices[i]) for i in range(len(dataset))}
    return [CityscapesEvaluator(dataset.class_names, gt_files, out_dir)]
