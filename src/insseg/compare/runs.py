"""Each run's evaluation rebuilt once, per image, from its config and predictions.json.

The rebuild is evaluate.py's own pass (:func:`~insseg.evaluation.pipeline.score_records` over
:func:`~insseg.evaluation.pipeline.build_evaluators`, the same dataset, class bridge, void handling and score
threshold), with one more evaluator that keeps what the bootstrap needs per image: the one-to-one match and a
digest of the ground truth. The COCO evaluations' per-image arrays (``evalImgs``) become
:class:`~insseg.compare.accumulate.DetectionTable` s. The rebuilt metrics must equal the run's metrics.json, so
that the intervals are about the numbers the run reported.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from insseg.compare.accumulate import DetectionTable
from insseg.compare.run_config import load_run_config
from insseg.data.annotations import Annotation, InstanceAnnotation
from insseg.data.lvis import LvisReader
from insseg.errors import InssegError
from insseg.evaluation.class_mapping import ClassBridge, bridge_classes
from insseg.evaluation.coco import IOU_TYPES, CocoEvaluator
from insseg.evaluation.evaluator import Evaluators
from insseg.evaluation.matching import ImageMatch
from insseg.evaluation.pipeline import build_evaluators, score_records
from insseg.evaluation.prediction_file import records_for_split
from insseg.evaluation.sample import ImageSample
from insseg.evaluation.split import eval_dataset
from insseg.predictions import ImagePrediction, PredictionSet
from insseg.utils.logging import log

# Matching metrics rebuilt by summing floats in another order may differ from metrics.json in the last bits.
MATCHING_TOLERANCE = 1e-9


@dataclass
class PreparedRun:
    """A run dir read, not yet scored: its config, dataset, predictions and metrics.json."""

    run_dir: Path
    cfg: DictConfig
    dataset: Any
    predictions: PredictionSet
    metrics: dict[str, Any]

    @cached_property
    def file_names(self) -> list[str]:
        """Read once: the checks, the rebuild and the result all ask for it."""
        return [self.dataset.file_name(i) for i in range(len(self.dataset))]

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)


@dataclass
class RunData:
    """A run's evaluation, rebuilt: per image its match and ground-truth digest; per COCO IoU type its table."""

    prepared: PreparedRun
    bridge: ClassBridge
    coco: CocoEvaluator | None  # None: an LVIS-protocol run (no COCO arrays to re-accumulate)
    matches: list[ImageMatch]
    digests: list[str]
    rebuilt: dict[str, Any]
    boundary: list[tuple[float, float]] | None = None  # per image: summed boundary IoU and F1 of its objects
    tables: dict[str, DetectionTable] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.prepared.run_dir

    @property
    def metrics(self) -> dict[str, Any]:
        return self.prepared.metrics

    @property
    def evals(self) -> dict[str, Any]:
        """The evaluated ``COCOeval`` per IoU type (none for an LVIS-protocol run)."""
        return dict(self.coco.evals) if self.coco is not None else {}

    def category_name(self, cat_id: int) -> str:
        """The class name of a COCO category id of the run's tables."""
        assert self.coco is not None
        return self.coco.class_names[self.coco.category_ids.index(cat_id)]

    def kept(self, index: int) -> ImagePrediction:
        """Image ``index``'s detections as its matching saw them: in dataset labels, above the threshold."""
        rec = self.bridge.to_dataset(self.prepared.predictions.images[index])
        return rec.above(float(self.prepared.cfg.eval.score_threshold))


def prepare_run(run_dir: str | Path) -> PreparedRun:
    """Read a run dir: its config, the dataset split it evaluated, its predictions.json and metrics.json."""
    cfg = load_run_config(run_dir)
    run_dir = Path(cfg.paths.output_dir)
    dataset, _ = eval_dataset(cfg)
    predictions = records_for_split(cfg.eval.predictions, dataset, cfg.model)
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except ValueError as e:
        raise InssegError(f"{run_dir / 'metrics.json'}: not valid JSON ({e})") from e
    if "boundary_AP" not in metrics and "boundary" in cfg.eval:  # a run from before boundary metrics
        cfg.eval.boundary = False
    return PreparedRun(run_dir, cfg, dataset, predictions, metrics)


def annotation_digest(gt: Annotation) -> str:
    """A digest of one image's ground truth as the metrics see it (size, instances, classes, void/crowd)."""
    h = hashlib.sha1(f"{type(gt).__name__} {gt.height} {gt.width}".encode())
    if isinstance(gt, InstanceAnnotation):
        h.update(np.ascontiguousarray(gt.instance_map).tobytes())
        h.update(np.asarray(gt.labels, np.int64).tobytes())
    else:
        entries = gt.coco_entries if gt.coco_entries is not None else [gt.rles, gt.crowd_rles, gt.labels.tolist()]
        h.update(json.dumps(entries, sort_keys=True, default=str).encode())
    return h.hexdigest()


class PerImageRecorder:
    """Keeps each image's :class:`ImageMatch` (the pass's, shared with the matching metrics) and ground-truth
    digest. Adds no metrics."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.matches: list[ImageMatch] = []
        self.digests: list[str] = []
        self.boundary: list[tuple[float, float]] | None = []

    def process(self, sample: ImageSample) -> None:
        self.matches.append(sample.match)
        self.digests.append(annotation_digest(sample.gt))
        scores = getattr(sample, "boundary", None)  # per object (IoU, F1) when the pass scores boundaries
        if scores is None or self.boundary is None:
            self.boundary = None
        else:
            self.boundary.append((float(scores[0].sum()), float(scores[1].sum())))

    def evaluate(self, coco: object = None) -> dict[str, Any]:
        return {}


def score_run(prepared: PreparedRun, header: str = "rebuild") -> RunData:
    """evaluate.py's pass over the run's predictions, keeping the per-image results."""
    cfg = prepared.cfg
    bridge = bridge_classes(prepared.predictions.class_names, prepared.class_names, cfg.eval.keep_unmapped)
    reader = prepared.dataset.reader
    lvis = reader.categories if isinstance(reader, LvisReader) else None  # as run_evaluation chooses
    built = build_evaluators(cfg.eval, prepared.class_names, None, lvis_categories=lvis)
    recorder = PerImageRecorder()
    evaluators = Evaluators([*built, recorder], built.settings, built.coco)
    rebuilt = score_records(prepared.dataset, prepared.predictions.images, evaluators, bridge, header=header)
    coco = evaluators.coco
    boundary = recorder.boundary if recorder.matches and recorder.boundary else None
    data = RunData(prepared, bridge, coco, recorder.matches, recorder.digests, rebuilt, boundary)
    if coco is None:
        log.warning(
            f"{prepared.run_dir}: its AP is the LVIS protocol's (lvis-api), which the bootstrap does not "
            "re-accumulate; only the matching metrics are compared"
        )
    elif len(coco):
        index = {im["id"]: k for k, im in enumerate(coco.images)}
        for iou_type, ev in coco.evals.items():
            image_index = [index[i] for i in ev.params.imgIds]
            data.tables[iou_type] = DetectionTable.from_cocoeval(ev, image_index, len(coco.images))
    check_rebuilt(data)
    return data


def _same(rebuilt: Any, recorded: Any, exact: bool) -> bool:
    if recorded is None or rebuilt is None or (isinstance(rebuilt, float) and math.isnan(rebuilt)):
        return recorded is None and (rebuilt is None or math.isnan(rebuilt))
    if exact:
        return rebuilt == recorded
    return abs(float(rebuilt) - float(recorded)) <= MATCHING_TOLERANCE * max(1.0, abs(float(recorded)))


def check_rebuilt(data: RunData) -> None:
    """An error naming the first metric the rebuild does not reproduce (the data, the predictions file or
    the code changed since the run)."""
    coco_keys = tuple(f"{t}_{s}" for t in (*IOU_TYPES, *data.tables) for s in ("AP", "AP50", "AP75"))
    matching_keys = ("mean_iou", "mean_f1", "mean_boundary_iou", "instance_precision", "instance_recall", "num_images")
    for key in coco_keys + matching_keys:
        if key not in data.metrics:
            continue
        if not _same(data.rebuilt.get(key), data.metrics[key], key in coco_keys or key.startswith("num_")):
            raise InssegError(
                f"{data.run_dir}: its predictions.json scored again gives {key} {data.rebuilt.get(key)} but its "
                f"metrics.json says {data.metrics[key]}: the dataset, the predictions file or the scoring code "
                "changed since the run; evaluate it again"
            )
