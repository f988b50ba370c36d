"""The evaluation pass: evaluators stand alone (any subset, any order, same numbers) and a metric key produced
twice is an error naming the key and both evaluators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from reports_cases import annotation, prediction

from insseg.evaluation.boundary_matching import BoundaryMatchingEvaluator
from insseg.evaluation.coco import CocoEvaluator, CocoMetrics
from insseg.evaluation.evaluator import Evaluators
from insseg.evaluation.excel_report import ExcelReport
from insseg.evaluation.mask_export import MaskExporter
from insseg.evaluation.matching import MatchingEvaluator
from insseg.evaluation.reports import build_report_evaluators
from insseg.evaluation.sample import MatchSettings
from insseg.evaluation.timing import TimingEvaluator

CLASSES = ("cat", "dog")
H, W = 60, 80


def scene():
    """Two images: cat found (0.9), dog found below a false positive; a missed cat; an image without objects."""
    a = annotation("a.png", H, W, [((5, 5, 25, 25), 1), ((30, 40, 55, 70), 2), ((5, 50, 20, 75), 1)])
    pa = prediction(
        "a.png",
        H,
        W,
        [((5, 5, 25, 25), 1, 0.9), ((30, 42, 55, 70), 2, 0.6), ((40, 5, 50, 20), 2, 0.8), ((0, 0, 4, 4), 1, 0.2)],
        CLASSES,
    )
    b = annotation("b.png", H, W, [])
    pb = prediction("b.png", H, W, [((10, 10, 20, 20), 1, 0.7)], CLASSES)
    return [(a, pa), (b, pb)]


def all_evaluators(out_dir: Path) -> list:
    reports = OmegaConf.create(
        {"per_class": True, "pr_curves": True, "confusion": True, "gallery": 0, "gallery_seed": 0}
    )
    return [
        CocoMetrics(),
        MatchingEvaluator(),
        BoundaryMatchingEvaluator(),
        TimingEvaluator(),
        ExcelReport(boundary=True),
        MaskExporter(out_dir / "masks"),
        *build_report_evaluators(reports, CLASSES, out_dir),
    ]


def run(evaluators: list, class_aware: bool = False) -> dict:
    settings = MatchSettings(0.5, class_aware=class_aware, boundary_dilation_ratio=0.02)
    evs = Evaluators(evaluators, settings, CocoEvaluator(CLASSES, boundary_dilation_ratio=0.02))
    for gt, pred in scene():
        evs.process(gt, pred)
    metrics = json.loads(json.dumps(evs.evaluate(), default=str))
    for e in evaluators:
        if isinstance(e, ExcelReport):
            e.discard()
    return metrics


@pytest.mark.parametrize("class_aware", [False, True])
def test_any_subset_in_any_order_gives_the_same_numbers(tmp_path, class_aware):
    full = run(all_evaluators(tmp_path / "full"), class_aware)
    assert full["segm_AP50"] is not None and full["num_objects"] == 3 and full["true_positives"] == 2
    assert full["boundary_AP"] is not None and 0 < full["mean_boundary_iou"] < full["mean_iou"]
    assert full["per_class"]["cat"]["segm_AP50"] == pytest.approx(
        51 / 101
    )  # one of two cats found, first: recall 0..0.5
    rng = np.random.default_rng(0)
    for trial in range(6):
        evaluators = all_evaluators(tmp_path / f"t{trial}")
        chosen = [evaluators[k] for k in rng.permutation(len(evaluators))[: rng.integers(1, len(evaluators) + 1)]]
        metrics = run(chosen, class_aware)
        assert metrics == {k: full[k] for k in metrics}
        names = {type(e).__name__ for e in chosen}
        if "MatchingEvaluator" in names:
            assert metrics["mean_iou"] == full["mean_iou"]
        if "CocoMetrics" not in names and "PerClassEvaluator" not in names:
            assert "segm_AP" not in metrics


def test_reports_alone_need_no_matching_or_coco_evaluator_before_them(tmp_path):
    reports = build_report_evaluators(
        OmegaConf.create({"per_class": True, "pr_curves": True, "confusion": True, "gallery": 0, "gallery_seed": 0}),
        CLASSES,
        tmp_path,
    )
    metrics = run(list(reversed(reports)))
    assert set(metrics) == {"per_class"}
    assert (tmp_path / "pr_curves" / "segm.png").is_file() and (tmp_path / "confusion_matrix.png").is_file()


def test_a_metric_key_produced_twice_is_an_error_naming_both():
    with pytest.raises(ValueError, match=r"'mean_iou'.*MatchingEvaluator and MatchingEvaluator"):
        run([MatchingEvaluator(), MatchingEvaluator()])

    class Shadow:
        def reset(self):
            pass

        def process(self, sample):
            pass

        def evaluate(self, coco):
            return {"segm_AP": 1.0}

    with pytest.raises(ValueError, match=r"'segm_AP'.*CocoMetrics and Shadow"):
        run([CocoMetrics(), Shadow()])


def test_the_match_is_computed_once_per_image(monkeypatch, tmp_path):
    import insseg.evaluation.sample as sample_module

    calls = []
    real = sample_module.match_image
    monkeypatch.setattr(sample_module, "match_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    run(
        [
            MatchingEvaluator(),
            ExcelReport(),
            *build_report_evaluators(
                OmegaConf.create(
                    {"per_class": False, "pr_curves": False, "confusion": True, "gallery": 0, "gallery_seed": 0}
                ),
                CLASSES,
                tmp_path,
            ),
        ]
    )
    assert len(calls) == 2  # two images, one match each, shared by three evaluators
