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


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
@pytest.mark.parametrize("evaluated_before", [False, True])
def test_other_params_agree_with_the_reference(backend, evaluated_before):
    """useCats=0, a stricter lowest IoU threshold and other maxDets: the same evalImgs as the reference; also
    when the evaluator ran with the default parameters before (nothing of that run is reused)."""
    import contextlib
    import io

    from insseg.evaluation.boundary import boundary_cocoeval
    from insseg.evaluation.coco_backend import coco_classes

    data = make_dataset(num_images=5, detections=15, seed=9)

    def run(make, coco_cls, before=False):
        with contextlib.redirect_stdout(io.StringIO()):
            cocos = []
            for anns in ([dict(a) for a in data["gt"]], [dict(a) for a in data["dt"]]):
                coco = coco_cls()
                coco.dataset = {"images": data["images"], "annotations": anns, "categories": data["categories"]}
                coco.createIndex()
                cocos.append(coco)
            ev = make(*cocos)
            if before:
                ev.evaluate()
            ev.params.useCats = 0
            ev.params.iouThrs = np.array([0.6, 0.7, 0.8])
            ev.params.maxDets = [1, 4, 8]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev

    from pycocotools.coco import COCO

    ref = run(boundary_scoring._reference_class(), COCO)
    ours = run(lambda g, d: boundary_cocoeval(g, d, backend=backend), coco_classes(backend)[0], evaluated_before)
    np.testing.assert_allclose(ours.eval["recall"], ref.eval["recall"], rtol=0, atol=0)
    np.testing.assert_allclose(ours.eval["precision"], ref.eval["precision"], rtol=0, atol=1e-15)
    assert ((ref.eval["precision"] > 0) & (ref.eval["precision"] < 1)).any()  # non-trivial
