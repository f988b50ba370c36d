"""eval.coco_backend: faster-coco-eval against pycocotools on designed cases, and the backend selection.

The COCO objects are built directly from dicts (ground truth and detections as RLE masks with boxes), so the
comparison does not depend on how CocoEvaluator builds them. Known difference, checked cell for cell:
pycocotools divides by ``tp + fp + np.spacing(1)``, so its precision after a single true positive is
``1 / (1 + 2^-52)`` where faster-coco-eval has exactly 1.0; everything else must be equal bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import sys
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from insseg.config.schema import EvalConfig
from insseg.config.validate import CHOICES
from insseg.errors import ConfigError
from insseg.evaluation.coco import CocoEvaluator
from insseg.evaluation.coco_backend import BACKENDS, DEFAULT_BACKEND, coco_classes
from insseg.evaluation.reports.per_class import per_class_metrics

pytest.importorskip("faster_coco_eval")

ONE_MINUS_EPS = 1.0 / (1.0 + np.spacing(1))  # pycocotools' precision of 1 tp out of 1 detection


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _blob(rng: np.random.Generator, h: int, w: int, size: float) -> np.ndarray:
    """A rectangle or an ellipse of about ``size`` pixels side, inside an h x w image."""
    bh, bw = [max(2, int(min(dim - 1, size * rng.uniform(0.6, 1.4)))) for dim in (h, w)]
    y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    mask = np.zeros((h, w), bool)
    if rng.random() < 0.5:
        mask[y : y + bh, x : x + bw] = True
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        mask[((yy - y - bh / 2) / (bh / 2)) ** 2 + ((xx - x - bw / 2) / (bw / 2)) ** 2 <= 1] = True
    return mask


def _ann(mask: np.ndarray, **fields: Any) -> dict[str, Any]:
    rle = _rle(mask)
    return {"segmentation": rle, "bbox": mask_utils.toBbox(rle).tolist(), "area": float(mask.sum()), **fields}


def make_case(
    seed: int,
    num_images: int = 6,
    num_classes: int = 3,
    objects: tuple[int, int] = (0, 5),
    sizes: tuple[float, ...] = (12, 50, 130),
    crowd: float = 0.0,
    detections: bool = True,
    ground_truth: bool = True,
    extra_detections: int = 3,
) -> dict[str, Any]:
    """Images of varied sizes; per object a near copy (sometimes of the wrong class) and a partial copy as
    detections, plus false positives. Scores come from a small set, so ties occur."""
    rng = np.random.default_rng(seed)
    images, gts, dts = [], [], []
    for image_id in range(1, num_images + 1):
        h, w = int(rng.integers(60, 300)), int(rng.integers(60, 300))
        images.append({"id": image_id, "height": h, "width": w, "file_name": f"{image_id}.png"})
        masks = []
        for _ in range(int(rng.integers(objects[0], objects[1] + 1)) if ground_truth else 0):
            mask = _blob(rng, h, w, float(rng.choice(sizes)))
            label = int(rng.integers(1, num_classes + 1))
            masks.append((mask, label))
            gts.append(
                _ann(mask, id=len(gts) + 1, image_id=image_id, category_id=label, iscrowd=int(rng.random() < crowd))
            )
        if not detections:
            continue
        candidates = []
        for mask, label in masks:
            shifted = np.roll(mask, tuple(int(s) for s in rng.integers(-4, 5, size=2)), axis=(0, 1))
            candidates.append((shifted, label if rng.random() < 0.8 else int(rng.integers(1, num_classes + 1))))
            candidates.append((mask & (np.arange(w)[None, :] < w // 2), label))
        for _ in range(extra_detections):
            candidates.append((_blob(rng, h, w, float(rng.choice(sizes))), int(rng.integers(1, num_classes + 1))))
        for mask, label in candidates:
            if mask.any():
                score = float(rng.choice([0.3, 0.5, 0.7, 0.9, rng.uniform(0.05, 1.0)]))
                dts.append(_ann(mask, id=len(dts) + 1, image_id=image_id, category_id=label, score=score, iscrowd=0))
    categories = [{"id": k, "name": f"class{k}"} for k in range(1, num_classes + 1)]
    return {"images": images, "gt": gts, "dt": dts, "categories": categories}


CASES = {
    "crowd": dict(seed=1, crowd=0.3, objects=(1, 6)),
    "empty_gt_images": dict(seed=2, objects=(0, 2)),
    "no_ground_truth_at_all": dict(seed=3, ground_truth=False),
    "no_predictions": dict(seed=4, detections=False),
    "many_classes": dict(seed=5, num_images=10, num_classes=40, objects=(2, 8)),
    "sizes_and_over_100_detections": dict(
        seed=6, num_images=3, objects=(10, 14), sizes=(8, 20, 40, 90, 160), extra_detections=90
    ),
}


def score(backend: str, case: dict[str, Any], iou_type: str) -> Any:
    coco_cls, cocoeval_cls = coco_classes(backend)

    def index(annotations: list[dict[str, Any]]) -> Any:
        anns = copy.deepcopy(annotations)
        if iou_type == "bbox":
            for a in anns:
                a["area"] = float(a["bbox"][2] * a["bbox"][3]) if "score" in a else a["area"]
        coco = coco_cls()
        coco.dataset = {
            "images": copy.deepcopy(case["images"]),
            "annotations": anns,
            "categories": copy.deepcopy(case["categories"]),
        }
        coco.createIndex()
        return coco

    with contextlib.redirect_stdout(io.StringIO()):
        ev = cocoeval_cls(index(case["gt"]), index(case["dt"]), iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
@pytest.mark.parametrize("name", list(CASES))
def test_faster_coco_eval_matches_pycocotools(name, iou_type):
    case = make_case(**CASES[name])
    ref = score("pycocotools", case, iou_type)
    fast = score("faster_coco_eval", case, iou_type)

    assert np.array_equal(fast.eval["recall"], ref.eval["recall"])
    assert np.array_equal(fast.eval["scores"], ref.eval["scores"])
    p_ref, p_fast = ref.eval["precision"], fast.eval["precision"]
    assert p_ref.shape == p_fast.shape and p_fast.dtype == p_ref.dtype
    assert np.array_equal(p_fast, np.where(p_ref == ONE_MINUS_EPS, 1.0, p_ref)), "precision differs"
    stats_ref, stats_fast = np.asarray(ref.stats), np.asarray(fast.stats)
    assert stats_fast.shape == (12,)
    assert np.array_equal(stats_fast == -1, stats_ref == -1)
    assert np.abs(stats_fast - stats_ref).max() <= 2 * np.spacing(1)  # the same eps, through a mean
    assert np.array_equal(np.round(stats_fast, 12), np.round(stats_ref, 12))  # what CocoEvaluator reports


def test_designed_cases_exercise_what_they_claim():
    """Guards the parity test: each case really contains what its name says."""
    crowd = make_case(**CASES["crowd"])
    assert any(a["iscrowd"] for a in crowd["gt"]) and not all(a["iscrowd"] for a in crowd["gt"])
    empty = make_case(**CASES["empty_gt_images"])
    assert {i["id"] for i in empty["images"]} - {a["image_id"] for a in empty["gt"]}
    assert make_case(**CASES["no_ground_truth_at_all"])["gt"] == []
    assert make_case(**CASES["no_predictions"])["dt"] == []
    many = make_case(**CASES["many_classes"])
    assert len({a["category_id"] for a in many["gt"]}) >= 20
    big = make_case(**CASES["sizes_and_over_100_detections"])
    areas = [a["area"] for a in big["gt"]]
    assert min(areas) < 32**2 and max(areas) > 96**2 and any(32**2 <= a <= 96**2 for a in areas)
    per_image = np.bincount([a["image_id"] for a in big["dt"]])
    assert per_image.max() > 100  # maxDets=100 cuts
    fast = score("faster_coco_eval", crowd, "segm")
    assert (fast.eval["precision"] == 1.0).any()  # the eps difference is really exercised


def test_perfect_detections_score_one_with_both_backends():
    case = make_case(seed=7, objects=(1, 4), detections=False)
    case["dt"] = [{**copy.deepcopy(a), "score": 0.9} for a in case["gt"]]
    for backend in BACKENDS:
        ev = score(backend, case, "segm")
        assert ev.stats[0] == pytest.approx(1.0, abs=1e-15)
        assert ev.stats[8] == 1.0  # AR100


def _instance_scene() -> list[tuple[Any, Any]]:
    from insseg.data.annotations import InstanceAnnotation
    from insseg.predictions import ImagePrediction, encode_masks

    rng = np.random.default_rng(0)
    out = []
    for k in range(4):
        m = np.zeros((60, 80), np.uint8)
        m[5:30, 5 + k : 40] = 1
        m[35:55, 20 : 70 - k] = 2
        ann = InstanceAnnotation(f"{k}.png", 60, 80, m, np.array([1, 2], np.int64), np.array([1, 2], np.int64))
        masks = np.stack([np.roll(ann.masks()[i], int(rng.integers(-3, 4)), axis=1) for i in range(2)])
        boxes = np.array([[5, 5, 40, 30], [20, 35, 70, 55]], np.float32)
        out.append(
            (
                ann,
                ImagePrediction(
                    f"{k}.png",
                    60,
                    80,
                    boxes=boxes,
                    scores=np.array([0.9, 0.6], np.float32),
                    labels=np.array([1, 2], np.int64),
                    rles=encode_masks(masks),
                ),
            )
        )
    return out


def test_coco_evaluator_reports_the_same_metrics_with_either_backend():
    results = {}
    for backend in BACKENDS:
        ev = CocoEvaluator(["cat", "dog"], backend=backend)
        for ann, pred in _instance_scene():
            ev.process(ann, pred)
        results[backend] = (ev.evaluate(), per_class_metrics(ev))
        assert ev.backend == backend
        assert "Average Precision" in ev.tables["segm"] and "Average Recall" in ev.tables["bbox"]
    (m_ref, pc_ref), (m_fast, pc_fast) = results["pycocotools"], results["faster_coco_eval"]
    assert m_ref.keys() == m_fast.keys()
    for key in m_ref:
        assert (math.isnan(m_ref[key]) and math.isnan(m_fast[key])) or m_ref[key] == m_fast[key], key
    assert pc_ref == pc_fast
    assert 0 < m_ref["segm_AP"] < 1  # a non-trivial score


def test_backend_names_are_one_list():
    assert EvalConfig().coco_backend == DEFAULT_BACKEND
    assert CHOICES["eval.coco_backend"] == BACKENDS


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="eval.coco_backend.*nonesuch"):
        coco_classes("nonesuch")


def test_missing_package_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match="faster-coco-eval"):
        CocoEvaluator(["cat"], backend="faster_coco_eval")


def test_evaluate_records_the_backend_and_scores_alike(tmp_path):
    """evaluate.py end to end from a predictions file (shifted ground truth): metrics.json names the backend,
    and every other value is the same with either backend."""
    import json

    from insseg.config import compose_config
    from insseg.data import build_dataset
    from insseg.evaluation.pipeline import run_evaluation
    from insseg.predictions import ImagePrediction, PredictionSet, encode_masks

    base = [
        "experiment=smoke",
        "model.weights=null",
        "device=cpu",
        "data.synthetic.num_images=8",
        "data.num_test=4",
        "data.synthetic.height=64",
        "data.synthetic.width=80",
        "eval.save_masks=false",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    dataset = build_dataset(compose_config("evaluate", base, output_dir=tmp_path / "x").data, "eval")
    predictions = PredictionSet(list(dataset.class_names))
    for i in range(len(dataset)):
        ann = dataset.annotation(i)
        masks = np.roll(ann.masks(), 2, axis=2)
        boxes = np.array(
            [
                [c[0], r[0], c[-1] + 1, r[-1] + 1]
                for m in masks
                for r, c in [(np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0)))]
            ],
            np.float32,
        )
        predictions.images.append(
            ImagePrediction(
                dataset.file_name(i),
                ann.height,
                ann.width,
                boxes.reshape(-1, 4),
                np.linspace(0.9, 0.5, len(ann)).astype(np.float32),
                ann.labels.astype(np.int64),
                encode_masks(masks),
            )
        )
    predictions.write(tmp_path / "preds.json")

    runs = {}
    for backend in BACKENDS:
        cfg = compose_config(
            "evaluate",
            [*base, f"eval.predictions={tmp_path / 'preds.json'}", f"eval.coco_backend={backend}"],
            output_dir=tmp_path / backend,
        )
        run_evaluation(cfg)
        runs[backend] = json.loads((tmp_path / backend / "metrics.json").read_text())
        assert runs[backend]["coco_backend"] == backend
    ref, fast = (dict(runs[b]) for b in BACKENDS)
    ref.pop("coco_backend"), fast.pop("coco_backend")
    assert fast == ref
    assert 0 < ref["segm_AP"] < 1
