"""Benchmark 14: the paired bootstrap of ``python -m insseg.compare`` at VOC val's size.

Two generated runs over 1,449 images and 20 classes (VOC 2012 val's segmentation split: 2.4 objects per image
on average, some images empty; 20 detections per image on average, as Mask R-CNN leaves above its 0.05 floor
once its COCO classes are bridged to VOC's), scored once by pycocotools (``COCOeval.evaluate``, boxes: the
per-image arrays have the same shape for every IoU type). Each run gets three COCO tables (segm, bbox and
boundary AP: the same arrays three times, the work of the three IoU types) and per-image matching sums.

Project: :func:`insseg.compare.bootstrap.coco_distributions` and :meth:`ImageSums.metrics` of both runs on
1,000 seeded resamples (what ``compare_runs`` computes after the rebuild), timed once after a warm-up. Baseline:
pycocotools' own ``COCOeval.accumulate`` on each resampled multiset (its ``evalImgs`` repeated per draw, all
areas and detection caps left out so it does the same work), timed on a few resamples and scaled to 1,000.
Before any figure counts, the precision arrays of those resamples must be equal bit for bit. Target: at most
60 s for the 1,000 resamples (issue 20), on 2 cores; the rebuild of each run (one evaluation pass) is not part
of it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

NUM_IMAGES, NUM_CLASSES, RESAMPLES, BASELINE_RESAMPLES = 1449, 20, 1000, 5
QUICK_IMAGES, QUICK_RESAMPLES, QUICK_BASELINE = 150, 40, 2
MEAN_OBJECTS, MEAN_DETECTIONS = 2.4, 20
IOU_TYPES = ("segm", "bbox", "boundary")


def _run_data(rng: np.random.Generator, num_images: int) -> tuple[list, list, list]:
    """Images, ground truth and one run's detections (jittered copies of the objects, then false positives)."""
    images, gt, dt = [], [], []
    for i in range(1, num_images + 1):
        images.append({"id": i, "height": 375, "width": 500})
        n = int(rng.poisson(MEAN_OBJECTS)) if i % 10 else 0
        boxes = np.column_stack([rng.uniform(0, 400, n), rng.uniform(0, 280, n), rng.uniform(10, 200, (n, 2))])
        labels = rng.integers(1, NUM_CLASSES + 1, n)
        gt += [{"image_id": i, "category_id": int(c), "bbox": b.tolist(), "iscrowd": 0} for b, c in zip(boxes, labels)]
        m = min(100, int(rng.poisson(MEAN_DETECTIONS)))
        src = rng.integers(0, max(n, 1), m)
        jitter = rng.normal(0, 0.15, (m, 4)) * np.r_[50, 50, 50, 50]
        det = np.abs(boxes[src] + jitter) if n else rng.uniform(5, 200, (m, 4))
        hit = (rng.random(m) < 0.5) & (n > 0)
        cats = np.where(hit, labels[src] if n else 1, rng.integers(1, NUM_CLASSES + 1, m))
        scores = np.where(hit, rng.uniform(0.3, 1.0, m), rng.uniform(0.05, 0.6, m)).round(3)
        dt += [
            {"image_id": i, "category_id": int(c), "bbox": b.tolist(), "score": float(s)}
            for b, c, s in zip(det, cats, scores)
        ]
    for k, a in enumerate(gt + dt):
        a["id"], a["area"] = k + 1, float(a["bbox"][2] * a["bbox"][3])
    return images, gt, dt


def _evaluated(images: list, gt: list, dt: list) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cocos = []
    for anns in (gt, dt):
        c = COCO()
        c.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": k} for k in range(1, NUM_CLASSES + 1)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            c.createIndex()
        cocos.append(c)
    ev = COCOeval(*cocos, iouType="bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
    return ev


def _baseline_precision(ev: Any, weights: np.ndarray) -> np.ndarray:
    """pycocotools' accumulate on the multiset (copies in image order), all areas and 100 detections only."""
    p = ev.params
    n_img, n_area = len(p.imgIds), len(p.areaRng)
    area = p.areaRngLbl.index("all")
    copies = np.repeat(np.arange(n_img), weights)  # images are numbered in imgIds order here
    multi = copy.copy(ev)
    multi.params = copy.deepcopy(p)
    multi.params.imgIds = list(range(len(copies)))
    multi.params.areaRng, multi.params.areaRngLbl, multi.params.maxDets = [p.areaRng[area]], ["all"], [100]
    multi._paramsEval = copy.deepcopy(multi.params)
    multi.evalImgs = [ev.evalImgs[k * n_area * n_img + area * n_img + i] for k in range(len(p.catIds)) for i in copies]
    with contextlib.redirect_stdout(io.StringIO()):
        multi.accumulate()
    return multi.eval["precision"][:, :, :, 0, 0]


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> Any:
    from benchmarks.results import BenchResult, Target
    from insseg.compare.accumulate import DetectionTable
    from insseg.compare.bootstrap import ImageSums, coco_distributions, resample_weights

    n, resamples, base_n = (
        (QUICK_IMAGES, QUICK_RESAMPLES, QUICK_BASELINE) if quick else (NUM_IMAGES, RESAMPLES, BASELINE_RESAMPLES)
    )
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(2):
        ev = _evaluated(*_run_data(rng, n))
        table = DetectionTable.from_cocoeval(ev, list(range(n)), n)
        sums = ImageSums(*(rng.integers(0, 5, n) for _ in range(3)), *(rng.random(n) for _ in range(4)))
        runs.append((ev, {t: table for t in IOU_TYPES}, sums))
    weights = resample_weights(n, resamples, seed=0)

    for ev, tables, _ in runs:  # identical results first
        for w in weights[:base_n]:
            assert np.array_equal(tables["segm"].precision(w), _baseline_precision(ev, w)), "precision differs"
    coco_distributions(runs[0][1], weights[:3])  # warm-up
    start = time.perf_counter()
    for _, tables, sums in runs:
        coco_distributions(tables, weights)
        sums.metrics(weights)
    project_s = time.perf_counter() - start
    start = time.perf_counter()
    for ev, _, _ in runs:
        for w in weights[:base_n]:
            for _ in IOU_TYPES:
                _baseline_precision(ev, w)
    baseline_s = (time.perf_counter() - start) * resamples / base_n

    detections = runs[0][1]["segm"].num_detections
    result = BenchResult(
        "compare_bootstrap",
        f"paired bootstrap, {resamples} resamples x 2 runs x 3 COCO IoU types, {n} images x {NUM_CLASSES} classes",
        project="insseg.compare: vectorised re-accumulation (DetectionTable.precision) + matching sums",
        baseline=f"pycocotools COCOeval.accumulate per resampled multiset ({base_n} resamples timed, scaled)",
        settings={"images": n, "classes": NUM_CLASSES, "resamples": resamples, "detections_per_run": detections},
    )
    label = f"{resamples} resamples"
    result.add(label, project_s, baseline_s, "s", baseline_s / project_s, Target(">=", 10))
    if not quick:  # the budget is for VOC val's size
        result.add("  against the 60 s budget", project_s, 60.0, "s", project_s / 60.0, Target("<=", 1, "x of 60 s"))
    result.notes.append(
        f"identical precision arrays on {base_n} resamples per run (bit for bit); figures need a quiet machine"
    )
    return result
