"""Per-class AP, PR curves and the confusion matrix on designed cases with hand-computed answers."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval
from reports_cases import annotation, prediction

from insseg.evaluation.coco import CocoEvaluator, CocoMetrics
from insseg.evaluation.evaluator import Evaluators
from insseg.evaluation.matching import MatchingEvaluator
from insseg.evaluation.reports.confusion import ConfusionEvaluator, confusion_counts
from insseg.evaluation.reports.per_class import PerClassEvaluator, format_table, per_class_metrics
from insseg.evaluation.reports.pr_curves import PRCurveEvaluator, pr_curve
from insseg.evaluation.reports.tensorboard_summaries import (
    pr_curve_counts,
    tensorboard_per_class,
    tensorboard_pr_curves,
)
from insseg.evaluation.sample import MatchSettings

CLASSES = ("cat", "dog", "bird")
H, W = 60, 80


def scene():
    """cat: 2 objects, one found (0.8), one missed -> recall 0.5 at precision 1: AP = 51/101 (the recall points
    0, 0.01, ..., 0.50). dog: 1 object found (0.6) below a false positive (0.9) -> precision 0.5 at every
    recall point: AP 0.5. bird: no ground truth (a false positive only) -> null."""
    a = annotation("a.png", H, W, [((5, 5, 25, 25), 1), ((30, 40, 55, 70), 1)])
    b = annotation("b.png", H, W, [((10, 10, 40, 30), 2)])
    pa = prediction("a.png", H, W, [((5, 5, 25, 25), 1, 0.8), ((40, 5, 50, 20), 3, 0.7)], CLASSES)
    pb = prediction("b.png", H, W, [((10, 10, 40, 30), 2, 0.6), ((45, 50, 58, 75), 2, 0.9)], CLASSES)
    return [(a, pa), (b, pb)]


def evaluated_coco() -> CocoEvaluator:
    coco = CocoEvaluator(CLASSES)
    for gt, pred in scene():
        coco.process(gt, pred)
    coco.evaluate()
    return coco


def single_class_stats(coco: CocoEvaluator, iou_type: str, cat_id: int) -> np.ndarray:
    """pycocotools' own summary, run on one category alone."""
    ev = COCOeval(coco.evals[iou_type].cocoGt, coco.evals[iou_type].cocoDt, iouType=iou_type)
    ev.params.catIds = [cat_id]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_per_class_ap_hand_computed_and_equal_to_pycocotools_per_category():
    coco = evaluated_coco()
    per_class = per_class_metrics(coco)
    assert per_class["bird"] is None
    cat, dog = per_class["cat"], per_class["dog"]
    for t in ("segm", "bbox"):
        for key in ("AP", "AP50", "AP75"):
            assert cat[f"{t}_{key}"] == pytest.approx(51 / 101, abs=1e-9)
            assert dog[f"{t}_{key}"] == pytest.approx(0.5, abs=1e-9)
        for name, cat_id in (("cat", 1), ("dog", 2)):
            stats = single_class_stats(coco, t, cat_id)
            assert [per_class[name][f"{t}_{k}"] for k in ("AP", "AP50", "AP75")] == pytest.approx(
                stats[:3].tolist(), abs=1e-9
            )
    assert (cat["num_gt"], cat["num_predictions"], dog["num_gt"], dog["num_predictions"]) == (2, 1, 1, 2)
    # summarize's dataset AP is the mean over the classes with ground truth
    assert coco.summarize()["segm_AP"] == pytest.approx((51 / 101 + 0.5) / 2, abs=1e-9)
    table = format_table(per_class)
    assert "bird" in table and "0.5050" in table


def test_per_class_evaluator_after_coco_in_one_pass():
    evs = Evaluators([CocoMetrics(), PerClassEvaluator()], coco=CocoEvaluator(CLASSES))
    for gt, pred in scene():
        evs.process(gt, pred)
    metrics = evs.evaluate()
    assert metrics["per_class"]["dog"]["bbox_AP"] == pytest.approx(0.5, abs=1e-9)
    assert json.loads(json.dumps(metrics["per_class"]))["bird"] is None


def test_pr_curves_hand_computed_and_average_to_ap(tmp_path):
    coco = evaluated_coco()
    ev = coco.evals["segm"]
    recall = ev.params.recThrs
    cat = pr_curve(ev, 0.5, ev.params.catIds.index(1))
    np.testing.assert_allclose(cat, np.where(recall <= 0.5 + 1e-9, 1.0, 0.0), atol=1e-9)
    np.testing.assert_allclose(pr_curve(ev, 0.75, ev.params.catIds.index(2)), 0.5, atol=1e-9)
    assert pr_curve(ev, None, ev.params.catIds.index(3)) is None  # bird: no ground truth
    overall = pr_curve(ev, None)
    assert overall.mean() == pytest.approx(coco.summarize()["segm_AP"], abs=1e-9)

    PRCurveEvaluator(tmp_path).evaluate(coco.results())
    files = sorted(p.name for p in (tmp_path / "pr_curves").iterdir())
    assert files == ["bbox.png", "bbox_per_class.png", "pr_curves.json", "segm.png", "segm_per_class.png"]
    data = json.loads((tmp_path / "pr_curves" / "pr_curves.json").read_text())
    assert data["segm"]["classes"]["bird"]["IoU 0.50"] is None
    assert np.mean(data["bbox"]["classes"]["dog"]["IoU 0.50:0.95"]) == pytest.approx(0.5, abs=1e-6)


class FakeWriter:
    def __init__(self):
        self.scalars, self.curves = {}, {}

    def add_scalar(self, tag, value, step):
        self.scalars[tag] = (value, step)

    def add_pr_curve_raw(self, tag, global_step, num_thresholds, **counts):
        self.curves[tag] = (global_step, num_thresholds, counts)


def test_tensorboard_per_class_and_pr_curve():
    coco = evaluated_coco()
    w = FakeWriter()
    assert tensorboard_per_class(w, per_class_metrics(coco), 3) == 12  # 2 classes x 6 APs; bird has none
    assert w.scalars["per_class/segm_AP50/dog"] == (pytest.approx(0.5), 3)
    assert tensorboard_pr_curves(w, coco, 3) == 2
    step, n, c = w.curves["pr/segm_IoU0.50"]
    assert (step, n) == (3, 101)
    assert c["recall"][0] == 1.0 and c["recall"][-1] == 0.0  # increasing threshold: decreasing recall
    tp, fp = c["true_positive_counts"], c["false_positive_counts"]
    has = (tp + fp) > 0
    np.testing.assert_allclose(tp[has] / (tp[has] + fp[has]), c["precision"][has])
    np.testing.assert_allclose(tp + c["false_negative_counts"], 3)  # 3 objects in all


def test_pr_curve_counts_at_precision_one_half():
    counts = pr_curve_counts(np.array([0.5, 0.5]), np.array([0.0, 1.0]), 4)
    np.testing.assert_allclose(counts["true_positive_counts"], [4, 0])
    np.testing.assert_allclose(counts["false_positive_counts"], [4, 0])
    np.testing.assert_allclose(counts["false_negative_counts"], [0, 4])


# Confusion matrix: classes cat (1), dog (2).
CM_CLASSES = ("cat", "dog")


def confusion_scene():
    """cat A found as cat; cat B found as dog; dog C overlapped at IoU 0.25 only (missed, and its
    prediction is background); dog D found only below the threshold (missed; ignored); a cat false positive.
    Hand count: cat row [1, 1 | missed 0]; dog row [0, 0 | 2]; background row [cat 1 (the false positive),
    dog 1 (C's prediction)]."""
    gt = annotation(
        "c.png", 100, 100, [((0, 0, 20, 20), 1), ((0, 30, 20, 50), 1), ((40, 0, 60, 20), 2), ((40, 40, 60, 60), 2)]
    )
    pred = prediction(
        "c.png",
        100,
        100,
        [
            ((0, 0, 20, 20), 1, 0.9),  # A -> cat
            ((0, 30, 20, 50), 2, 0.8),  # B -> dog
            ((40, 12, 60, 28), 2, 0.7),  # C: IoU 8*20 / (400 + 320 - 160) = 0.2857 < 0.5
            ((40, 40, 60, 60), 2, 0.3),  # D, below the threshold 0.5
            ((80, 80, 95, 95), 1, 0.95),  # false positive
        ],
        CM_CLASSES,
    )
    return gt, pred


@pytest.mark.parametrize("reuse", [True, False])
def test_confusion_matrix_hand_counted(tmp_path, reuse):
    gt, pred = confusion_scene()
    conf = ConfusionEvaluator(CM_CLASSES, tmp_path)
    # the pass's class-aware match is not what the matrix counts: it matches again without classes
    evs = Evaluators([MatchingEvaluator(), conf], MatchSettings(0.5, class_aware=not reuse))
    evs.process(gt, pred)
    assert evs.evaluate()["true_positives"] == (2 if reuse else 1)  # B pairs only class-agnostically
    rows, cols, counts = conf.matrix.labelled()
    assert rows == ["cat", "dog", "background"] and cols == ["cat", "dog", "missed"]
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 0, 2], [1, 1, 0]])
    np.testing.assert_allclose(conf.matrix.normalised(), [[0.5, 0.5, 0], [0, 0, 1], [0.5, 0.5, 0]])
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    sheet = conf.matrix.sheet_rows()
    assert sheet[1] == ["ground truth \\ predicted", "cat", "dog", "missed"]
    assert sheet[2] == ["cat", 1, 1, 0]


def test_unmapped_predictions_get_their_own_column():
    gt, _ = confusion_scene()
    from reports_cases import rect_mask

    from insseg.evaluation.matching import match_image

    masks = np.stack([rect_mask(100, 100, (40, 40, 60, 60))])
    match = match_image(gt, masks, np.array([0]))
    counts = confusion_counts(match, gt.labels, np.array([0]), 2)
    # dog D paired with an unmapped prediction; A, B, C missed
    np.testing.assert_array_equal(counts, [[0, 0, 0, 2], [0, 0, 1, 1], [0, 0, 0, 0]])
