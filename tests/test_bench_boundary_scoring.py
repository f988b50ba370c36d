"""The Boundary AP scoring benchmark: its reference implementation agrees with boundary_cocoeval on a small
generated set, and the agreement check catches a difference. No timing assertions."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import boundary_scoring
from benchmarks.coco_scoring import make_dataset

pytest.importorskip("faster_coco_eval")


def test_boundary_ap_agrees_with_the_reference_on_the_generated_set():
    data = make_dataset(num_images=6, detections=12, seed=5)
    runs = {run: boundary_scoring.score(*run, data)[1] for run in boundary_scoring.RUNS}
    boundary_scoring.check_agreement(runs)
    boundary, segm = runs["boundary", "pycocotools"]["stats"][0], runs["segm", "pycocotools"]["stats"][0]
    assert 0 < boundary < segm  # non-trivial, and lower than mask AP on jittered copies

    off = dict(runs)
    off["boundary", "pycocotools"] = dict(runs["boundary", "pycocotools"])
    recall = off["boundary", "pycocotools"]["recall"].copy()
    recall[tuple(np.argwhere(recall > 0)[0])] = 0.0
    off["boundary", "pycocotools"]["recall"] = recall
    with pytest.raises(AssertionError, match="recall"):
        boundary_scoring.check_agreement(off)
