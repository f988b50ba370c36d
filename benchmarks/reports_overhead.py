"""Benchmark: what the reports (per-class AP, PR curves, confusion matrix, gallery, report.html) add to an
evaluation of VOC-size images from a predictions file.

Both sides are ``run_evaluation(cfg)`` (what evaluate.py runs) with ``eval.predictions=`` the same predictions.json
(written once, from the ground truth of a generated VOC-layout set at 500x375: each object found as a shifted
copy, 80% with the right class, plus false positives): COCO AP, matching, metrics.json, metrics.xlsx, mask PNGs,
predictions.json. The project side has every report on with its defaults (gallery of 8 + 8, report.html); the
baseline turns ``eval.reports.*`` off. Target: at most 1.15x the time without reports. No warm-up round: the
reports side's first run pays matplotlib's import, as a fresh evaluate.py process does. The two sides' metrics
must agree exactly (per_class aside).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fixtures import config, generated
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import interleaved, median
from insseg.config.schema import ReportsConfig
from insseg.data.readers import VOCReader
from insseg.evaluation.pipeline import run_evaluation
from insseg.predictions import ImagePrediction, PredictionSet, encode_masks
from insseg.utils.logging import log

HEIGHT, WIDTH = 375, 500
FULL_IMAGES, QUICK_IMAGES = 1449, 12  # VOC2012 val has 1449 images


def _shifted(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dy, dx = rng.integers(-6, 7, size=2)
    return np.roll(mask, (int(dy), int(dx)), axis=(0, 1))


def make_predictions(reader: VOCReader, path: Path, seed: int = 0) -> None:
    """A predictions.json for every image of ``reader`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    k = len(reader.class_names)
    out = PredictionSet(list(reader.class_names), info={"score_threshold": 0.05})
    for i in range(len(reader)):
        ann = reader.annotation(i)
        masks = [_shifted(m, rng) for m in ann.masks()]
        labels = [int(c) if rng.random() < 0.8 else int(rng.integers(1, k + 1)) for c in ann.labels]
        for _ in range(int(rng.integers(0, 4))):  # false positives
            m = np.zeros((ann.height, ann.width), bool)
            y, x = int(rng.integers(0, ann.height - 40)), int(rng.integers(0, ann.width - 40))
            m[y : y + int(rng.integers(10, 40)), x : x + int(rng.integers(10, 40))] = True
            masks.append(m)
            labels.append(int(rng.integers(1, k + 1)))
        scores = rng.uniform(0.05, 1.0, size=len(masks)).astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        stack = np.stack(masks)[order] if masks else np.zeros((0, ann.height, ann.width), bool)
        boxes = np.array([_extent(m) for m in stack], np.float32).reshape(-1, 4)
        out.images.append(
            ImagePrediction(
                ann.file_name,
                ann.height,
                ann.width,
                boxes,
                scores[order],
                np.array(labels, np.int64)[order],
                encode_masks(stack),
                class_names=list(reader.class_names),
            )
        )
    out.write(path)


def _extent(m: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    return [xs[0], ys[0], xs[-1] + 1, ys[-1] + 1] if ys.size else [0, 0, 0, 0]


def evaluate_file(root: Path, predictions: Path, out_dir: Path, reports: bool) -> dict[str, Any]:
    """``run_evaluation(cfg)`` (evaluate.py) of ``predictions`` on ``root``'s trainval split, reports on or off."""
    shutil.rmtree(out_dir, ignore_errors=True)
    switches = (
        []
        if reports
        else [
            "eval.reports.per_class=false",
            "eval.reports.pr_curves=false",
            "eval.reports.confusion=false",
            "eval.reports.gallery=0",
            "eval.reports.html=false",
        ]
    )
    cfg = config(
        "evaluate",
        [
            "data=voc",
            f"data.root={root}",
            "eval.split=trainval",
            f"eval.predictions={predictions}",
            "eval.cache=false",
            "device=cpu",
            *switches,
        ],
        out_dir,
    )
    return run_evaluation(cfg)


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def run(quick: bool = False, out_dir: Path | None = None) -> BenchResult:
    out_dir = Path(out_dir or "bench_results")
    num_images, repeats = (QUICK_IMAGES, 1) if quick else (FULL_IMAGES, 2)
    root = generated(out_dir, "voc", num_images, HEIGHT, WIDTH, max_objects=4)
    reader = VOCReader(root, "trainval")
    work = out_dir / "_work" / "reports"
    work.mkdir(parents=True, exist_ok=True)
    predictions = work / "predictions.json"
    make_predictions(reader, predictions)
    results: dict[str, dict[str, Any]] = {}

    def side(name: str, reports: bool):
        return lambda: results.__setitem__(name, evaluate_file(root, predictions, work / name, reports))

    quiet = _BelowWarning()
    log.addFilter(quiet)  # no progress lines between the benchmark's tables
    try:
        times = interleaved({"reports": side("reports", True), "baseline": side("baseline", False)}, repeats, warmup=0)
    finally:
        log.removeFilter(quiet)
    with_reports = {k: v for k, v in results["reports"].items() if k != "per_class"}
    assert json.dumps(results["baseline"], sort_keys=True) == json.dumps(with_reports, sort_keys=True), (
        "the reports changed the metrics"
    )
    files = sorted(
        p.relative_to(work / "reports").as_posix()
        for p in (work / "reports").rglob("*")
        if p.is_file() and not p.is_relative_to(work / "reports" / "masks")
    )
    project_s, baseline_s = median(times["reports"]), median(times["baseline"])
    result = BenchResult(
        "reports",
        f"evaluation of {len(reader)} images ({WIDTH}x{HEIGHT}) from a predictions file, with reports",
        project="run_evaluation(cfg) from a predictions file, every report on (the default)",
        baseline="the same with eval.reports.* off",
        settings={
            "images": len(reader),
            "repeats": repeats,
            "height": HEIGHT,
            "width": WIDTH,
            "gallery": ReportsConfig().gallery,
        },
        raw={"project_s": times["reports"], "baseline_s": times["baseline"], "report_files": files},
    )
    result.add("evaluation wall time", project_s, baseline_s, "s", project_s / baseline_s, Target("<=", 1.15))
    result.notes.append(f"identical COCO and matching metrics on both sides; report files: {len(files)}")
    shutil.rmtree(work, ignore_errors=True)
    return result
