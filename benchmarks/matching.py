"""Benchmark 1: the per-image IoU matrix + one-to-one assignment of evaluate.py against the original harness's
per-pair numpy IoU loop, on VOC-size images (500x375) with 10 objects and 30 predictions.

Both sides start from the same bool masks and end with the same ``linear_sum_assignment``, so the figure is
the cost of the IoU (and F1) matrix itself plus the assignment. Results must be identical: every IoU and F1
value bit for bit, the same pairs, and ``match_image`` giving each object the IoU of its baseline pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import interleaved, median, repeat
from insseg.data.annotations import VOID_ID, InstanceAnnotation
from insseg.evaluation.matching import iou_f1_matrices, match_image

HEIGHT, WIDTH = 375, 500
NUM_OBJECTS, NUM_PREDICTIONS = 10, 30


@dataclass
class Case:
    annotation: InstanceAnnotation
    gt: np.ndarray  # bool [N, H, W]
    pred: np.ndarray  # bool [M, H, W]


def _shape(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, h: float, w: float
) -> np.ndarray:
    if rng.random() < 0.5:
        return ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1.0
    return (np.abs(yy - cy) <= h / 2) & (np.abs(xx - cx) <= w / 2)


def make_case(seed: int, void_band: bool = True) -> Case:
    """An instance map with exactly ``NUM_OBJECTS`` visible objects (VOC's 2-px void band around them) and
    ``NUM_PREDICTIONS`` predictions: a shifted, resized copy of each object, a partial duplicate of each, and
    false positives elsewhere."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    while True:
        instance_map = np.zeros((HEIGHT, WIDTH), np.uint8)
        params = []
        for k in range(1, NUM_OBJECTS + 1):
            h, w = rng.uniform(40, 180), rng.uniform(30, 160)
            cy, cx = rng.uniform(h / 2, HEIGHT - h / 2), rng.uniform(w / 2, WIDTH - w / 2)
            instance_map[_shape(rng, yy, xx, cy, cx, h, w)] = k
            params.append((cy, cx, h, w))
        counts = np.bincount(instance_map.ravel(), minlength=NUM_OBJECTS + 1)[1:]
        if (counts >= 200).all():
            break
    if void_band:
        padded = np.pad(instance_map, 2, mode="edge")
        band = np.zeros_like(instance_map, dtype=bool)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                band |= padded[2 + dy : 2 + dy + HEIGHT, 2 + dx : 2 + dx + WIDTH] != instance_map
        instance_map[band] = VOID_ID
    ids = np.arange(1, NUM_OBJECTS + 1, dtype=np.int64)
    annotation = InstanceAnnotation("bench.png", HEIGHT, WIDTH, instance_map, ids, np.ones(NUM_OBJECTS, np.int64))
    preds = []
    for cy, cx, h, w in params:  # a near hit and a partial duplicate of every object
        preds.append(
            _shape(
                rng,
                yy,
                xx,
                cy + rng.normal(0, 6),
                cx + rng.normal(0, 6),
                h * rng.uniform(0.85, 1.15),
                w * rng.uniform(0.85, 1.15),
            )
        )
        preds.append(_shape(rng, yy, xx, cy + h / 4, cx - w / 4, h / 2, w / 2))
    while len(preds) < NUM_PREDICTIONS:
        h, w = rng.uniform(20, 120), rng.uniform(20, 120)
        preds.append(_shape(rng, yy, xx, rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH), h, w))
    pred = np.stack(preds[:NUM_PREDICTIONS])
    return Case(annotation, annotation.masks(), pred[rng.permutation(NUM_PREDICTIONS)])


def baseline_matrices(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original harness's way: per (object, prediction) pair, in a Python loop,
    ``np.sum(np.logical_and(g, p)) / np.sum(np.logical_or(g, p))``. F1 comes free from the same two counts
    (|g| + |p| = intersection + union), so the baseline does no work beyond the IoU loop."""
    iou = np.zeros((len(gt), len(pred)))
    f1 = np.zeros((len(gt), len(pred)))
    for i in range(len(gt)):
        for j in range(len(pred)):
            intersection = np.sum(np.logical_and(gt[i], pred[j]))
            union = np.sum(np.logical_or(gt[i], pred[j]))
            iou[i, j] = intersection / union if union > 0 else 0.0
            f1[i, j] = 2 * intersection / (intersection + union) if union > 0 else 0.0
    return iou, f1


def assign(iou: np.ndarray) -> list[tuple[int, int]]:
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if iou[r, c] > 0]


def project_path(case: Case) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    iou, f1 = iou_f1_matrices(case.gt, case.pred)
    return iou, f1, assign(iou)


def baseline_path(case: Case) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    iou, f1 = baseline_matrices(case.gt, case.pred)
    return iou, f1, assign(iou)


def check_identical(case: Case) -> dict[str, int]:
    """Raises AssertionError unless the project's results equal the baseline's exactly."""
    p_iou, p_f1, p_pairs = project_path(case)
    b_iou, b_f1, b_pairs = baseline_path(case)
    assert np.array_equal(p_iou, b_iou), f"IoU matrices differ (max |diff| {np.abs(p_iou - b_iou).max()})"
    assert np.array_equal(p_f1, b_f1), f"F1 matrices differ (max |diff| {np.abs(p_f1 - b_f1).max()})"
    assert p_pairs == b_pairs, f"assignments differ: {p_pairs} vs {b_pairs}"
    # The full per-image matcher (the harness's void handling: void counts as background) gives every object
    # the IoU and F1 of its baseline pair, 0 when unmatched.
    match = match_image(case.annotation, case.pred, void_as_background=True)
    want_iou, want_f1 = np.zeros(NUM_OBJECTS), np.zeros(NUM_OBJECTS)
    for r, c in b_pairs:
        want_iou[r], want_f1[r] = b_iou[r, c], b_f1[r, c]
    assert np.array_equal(match.iou, want_iou), "match_image per-object IoU differs from the baseline's"
    assert np.array_equal(match.f1, want_f1), "match_image per-object F1 differs from the baseline's"
    return {"pairs": len(b_pairs), "objects": NUM_OBJECTS, "predictions": NUM_PREDICTIONS}


def run(quick: bool = False, out_dir: Path | None = None) -> BenchResult:
    num_images, repeats = (2, 3) if quick else (8, 7)
    cases = [make_case(seed) for seed in range(num_images)]
    checks = [check_identical(c) for c in cases]  # before timing: a wrong result is a failure, not a figure

    times: dict[str, list[float]] = {"project": [], "baseline": []}
    full: list[float] = []
    for case in cases:
        contenders = {"project": partial(project_path, case), "baseline": partial(baseline_path, case)}
        t = interleaved(contenders, repeats)
        for k in times:
            times[k].append(median(t[k]))  # per image: the median of its repeats
        full.append(median(repeat(partial(match_image, case.annotation, case.pred), repeats)))
    project_ms, baseline_ms = 1000 * median(times["project"]), 1000 * median(times["baseline"])

    result = BenchResult(
        "matching",
        f"per-image IoU matrix + assignment ({WIDTH}x{HEIGHT}, {NUM_OBJECTS} objects, {NUM_PREDICTIONS} predictions)",
        project="insseg.evaluation.matching.iou_f1_matrices + linear_sum_assignment",
        baseline="per-pair numpy IoU/F1 loop of the original harness + the same linear_sum_assignment",
        settings={
            "images": num_images,
            "repeats": repeats,
            "height": HEIGHT,
            "width": WIDTH,
            "objects": NUM_OBJECTS,
            "predictions": NUM_PREDICTIONS,
        },
        raw={
            "project_s_per_image": times["project"],
            "baseline_s_per_image": times["baseline"],
            "match_image_s_per_image": full,
            "identical": checks,
        },
    )
    result.add(
        "IoU+F1 matrix + assignment", project_ms, baseline_ms, "ms/image", baseline_ms / project_ms, Target(">=", 20)
    )
    result.add(
        "match_image (whole image: masks, void, bg)",
        1000 * median(full),
        None,
        "ms/image",
        note="the full per-image matcher evaluate.py runs, for reference; no baseline",
    )
    result.notes.append(
        f"identical results on all {num_images} images: IoU and F1 matrices bit for bit, the same "
        f"{sum(c['pairs'] for c in checks)} pairs, match_image's per-object IoU/F1 equal to the baseline's"
    )
    result.raw["identical_results"] = True
    return result
