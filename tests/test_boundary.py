"""Boundary IoU and Boundary AP (insseg.evaluation.boundary) against the official boundary-iou-api's figures
(tests/fixtures/boundary, README there) and designed masks with hand-computed answers."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from insseg.data.annotations import RleAnnotation
from insseg.evaluation.boundary import (
    DEFAULT_DILATION_RATIO,
    boundary_cocoeval,
    boundary_dilation,
    boundary_iou_f1,
    boundary_rles,
    mask_to_boundary,
)
from insseg.evaluation.boundary_rle import _all_counts, boundary_boxes, box_ious
from insseg.evaluation.coco import STAT_NAMES
from insseg.evaluation.coco_backend import BACKENDS, coco_classes
from insseg.evaluation.matching import match_image

FIXTURES = Path(__file__).parent / "fixtures" / "boundary"
OFFICIAL = json.loads((FIXTURES / "official.json").read_text())


def official_mask_to_boundary(mask: np.ndarray, dilation: int) -> np.ndarray:
    """The official definition on the whole image: pad 1 px of zeros, erode 3x3 ``dilation`` times, subtract."""
    h, w = mask.shape
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1 : h + 1, 1 : w + 1]
    return (mask.astype(np.uint8) - eroded).astype(bool)


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": rle["counts"].decode("ascii")}


def _uncompressed(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed RLE (``counts`` a list, column-major, starting with background) of a bool mask."""
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


# --- the dilation and the boundary of one mask ---------------------------------------------------------------


def test_dilation_is_the_official_rounding():
    assert boundary_dilation(480, 640) == 16  # 0.02 * 800
    assert boundary_dilation(375, 500) == 12  # 12.5: Python's round goes to even
    assert boundary_dilation(21, 72) == 2  # diagonal 75: 1.5 -> 2 (faster-coco-eval's C++ makes it 1)
    assert boundary_dilation(105, 140) == 4  # 3.5 -> 4
    assert boundary_dilation(10, 10) == 1  # round(0.28) = 0, at least 1
    assert boundary_dilation(480, 640, 0.01) == 8
    assert DEFAULT_DILATION_RATIO == 0.02


def test_eroded_copy_has_high_mask_iou_and_low_boundary_iou():
    """A 100x100 square G and its one-pixel erosion P (98x98), boundaries 2 px wide (d=2):
    mask IoU 9604/10000; Gb = 100^2 - 96^2 = 784, Pb = 98^2 - 94^2 = 768, Gb & Pb = 98^2 - 96^2 = 388,
    Gb | Pb = 100^2 - 94^2 = 1164: boundary IoU 388/1164 = 1/3, boundary F1 776/1552 = 1/2."""
    g = np.zeros((1, 128, 128), bool)
    g[0, 10:110, 10:110] = True
    p = np.zeros_like(g)
    p[0, 11:109, 11:109] = True
    assert (g & p).sum() / (g | p).sum() == pytest.approx(0.9604)
    assert mask_to_boundary(g, 2).sum() == 784 and mask_to_boundary(p, 2).sum() == 768
    iou, f1 = boundary_iou_f1(g, p, 2)
    assert iou.dtype == np.float64 and iou.shape == (1,)
    assert iou[0] == pytest.approx(1 / 3, abs=1e-15) and f1[0] == pytest.approx(0.5, abs=1e-15)


def test_thin_object_is_all_boundary():
    """Width <= 2d: the erosion removes everything, the boundary is the whole mask; width 2d+1 keeps the middle
    line of the bar (length L - 2d) inside."""
    m = np.zeros((60, 60), bool)
    m[5:55, 20:24] = True  # 4 px wide, d = 2
    assert np.array_equal(mask_to_boundary(m, 2), m)
    wide = np.zeros((60, 60), bool)
    wide[5:55, 20:25] = True  # 5 px wide: the centre column, rows 7..52, stays inside
    inner = np.zeros_like(wide)
    inner[7:53, 22] = True
    assert np.array_equal(mask_to_boundary(wide, 2), wide & ~inner)


def test_border_counts_as_boundary():
    """Zero padding: a mask cut by the image border has its boundary along the border."""
    m = np.zeros((40, 40), bool)
    m[10:30, 0:20] = True
    b = mask_to_boundary(m, 1)
    assert b[10:30, 0].all() and b.sum() == 400 - 18 * 18
    full = np.ones((30, 50), bool)
    assert mask_to_boundary(full, 3).sum() == 30 * 50 - 24 * 44


def test_empty_masks():
    empty = np.zeros((2, 20, 30), bool)
    assert not mask_to_boundary(empty, 3).any()
    some = empty.copy()
    some[1, 5:10, 5:10] = True
    iou, f1 = boundary_iou_f1(empty, some, 1)
    assert iou.tolist() == [1.0, 0.0] and f1.tolist() == [1.0, 0.0]  # both empty: perfect agreement
    assert mask_utils.area(boundary_rles([_rle(empty[0])], 3)).tolist() == [0]
    iou, f1 = boundary_iou_f1(np.zeros((0, 4, 4), bool), np.zeros((0, 4, 4), bool), 1)
    assert iou.shape == f1.shape == (0,)


def _random_masks(rng: np.random.Generator, h: int, w: int, n: int) -> list[np.ndarray]:
    masks = []
    for k in range(n):
        m = np.zeros((h, w), np.uint8)
        cx, cy = rng.integers(-5, w + 5), rng.integers(-5, h + 5)
        cv2.ellipse(m, (int(cx), int(cy)), (int(rng.integers(1, w)), int(rng.integers(1, h))), 30.0 * k, 0, 360, 1, -1)
        m[rng.random((h, w)) < 0.02] ^= 1  # holes and specks
        masks.append(m.astype(bool))
    full_height = np.zeros((h, w), bool)
    full_height[:, 3 : w // 2] = True  # runs that go on from one column into the next
    return [*masks, full_height, np.ones((h, w), bool)]


@pytest.mark.parametrize("size", [(37, 53), (64, 48), (21, 72)])
def test_rle_boundaries_equal_the_official_definition(size):
    h, w = size
    rng = np.random.default_rng(h * w)
    masks = _random_masks(rng, h, w, 12)
    for dilation in (1, 2, boundary_dilation(h, w), 9):
        want = [official_mask_to_boundary(m, dilation) for m in masks]
        assert np.array_equal(mask_to_boundary(np.stack(masks), dilation), np.stack(want))
        rles = [_rle(m) for m in masks]
        rles[1]["counts"] = rles[1]["counts"].encode("ascii")  # as pycocotools returns it
        rles[2] = _uncompressed(masks[2])
        got = mask_utils.decode(boundary_rles(rles, dilation)).transpose(2, 0, 1).astype(bool)
        assert np.array_equal(got, np.stack(want))


def test_counts_decode_the_compressed_strings():
    rng = np.random.default_rng(3)
    masks = _random_masks(rng, 40, 70, 6)
    rles = [_rle(m) for m in masks]
    counts, per_rle = _all_counts(rles)
    assert per_rle.sum() == counts.size
    for rle, c in zip(rles, np.split(counts, np.cumsum(per_rle)[:-1])):
        again = mask_utils.frPyObjects({"size": [40, 70], "counts": c.tolist()}, 40, 70)
        assert again["counts"].decode("ascii") == rle["counts"] and int(c.sum()) == 40 * 70


def test_boundary_boxes_hold_the_official_boundary():
    rng = np.random.default_rng(8)
    masks = _random_masks(rng, 50, 45, 8) + [np.zeros((50, 45), bool)]
    boxes = boundary_boxes([_rle(m) for m in masks], 3)
    for m, b in zip(masks, boxes):
        want = official_mask_to_boundary(m, 3)
        got = np.zeros_like(want)
        got[b.y0 : b.y0 + b.box.shape[1], b.x0 : b.x0 + b.box.shape[0]] = b.box.T
        assert np.array_equal(got, want) and b.pixels == want.sum()


def test_boundary_boxes_join_runs_that_touch():
    """An RLE may hold an empty background run inside a run (a 7-pixel run of a column given as 3, 0, 4): the
    boundary is the whole run's, as the official decodes it."""
    mask = np.zeros((10, 8), bool)
    mask[2:9, 1:6] = True
    counts = _uncompressed(mask)["counts"]
    k = 5  # the run of column 3 (counts: background, then a run of 7 per column from column 1 on)
    assert counts[k] == 7
    counts[k : k + 1] = [3, 0, 4]
    rle = mask_utils.frPyObjects({"size": [10, 8], "counts": counts}, 10, 8)
    assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
    for dilation in (1, 2):
        (b,) = boundary_boxes([rle], dilation)
        got = np.zeros_like(mask)
        got[b.y0 : b.y0 + b.box.shape[1], b.x0 : b.x0 + b.box.shape[0]] = b.box.T
        assert np.array_equal(got, official_mask_to_boundary(mask, dilation))


# --- the official figures --------------------------------------------------------------------------------------


def _to_rle(seg: Any, h: int, w: int) -> dict[str, Any]:
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        return seg
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _fixture_results(images: dict[int, dict]) -> list[dict[str, Any]]:
    """results.json as CocoEvaluator's detections: RLE segmentations, no ``bbox`` (areas from the masks)."""
    out = []
    for item in json.loads((FIXTURES / "data" / "results.json").read_text()):
        im = images[item["image_id"]]
        item = {k: v for k, v in item.items() if k != "bbox"}
        item["segmentation"] = _to_rle(item["segmentation"], im["height"], im["width"])
        out.append(item)
    return out


@pytest.fixture(scope="module")
def fixture_set() -> tuple[dict, list]:
    gt = json.loads((FIXTURES / "data" / "annotations" / "instances_val.json").read_text())
    return gt, _fixture_results({im["id"]: im for im in gt["images"]})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("images_kept", [64, 1])
def test_boundary_ap_equals_the_official_api(fixture_set, backend, images_kept, monkeypatch):
    """images_kept=1: boundaries of earlier images are dropped at once (and computed again when needed)."""
    monkeypatch.setattr("insseg.evaluation.boundary_cocoeval._IMAGES_KEPT", images_kept)
    gt_json, results = fixture_set
    coco, _ = coco_classes(backend)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco()
        gt.dataset = copy.deepcopy(gt_json)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        ev = boundary_cocoeval(gt, dt, OFFICIAL["dilation_ratio"], backend=backend)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    want = OFFICIAL["boundary"]
    np.testing.assert_allclose(ev.stats, [want["stats"][n] for n in STAT_NAMES], rtol=0, atol=1e-12)
    names = {c["id"]: c["name"] for c in gt_json["categories"]}
    for k, cat_id in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        assert abs(p[p > -1].mean() - want["per_class"][names[cat_id]]) <= 1e-12
    assert ev.iou_type == "boundary" and ev.dilation_ratio == OFFICIAL["dilation_ratio"]


def test_boundary_ap_is_below_segm_ap_where_boundaries_are_off(fixture_set):
    """On the same files the official segm AP is higher: boundary AP sees what area overlap does not."""
    assert OFFICIAL["boundary"]["stats"]["AP"] < OFFICIAL["pycocotools"]["segm"]["stats"]["AP"]


def _annotation(gt_json: dict, image: dict) -> RleAnnotation:
    h, w = image["height"], image["width"]
    anns = [a for a in gt_json["annotations"] if a["image_id"] == image["id"]]
    cats = sorted(c["id"] for c in gt_json["categories"])
    inst = [a for a in anns if not a["iscrowd"]]
    return RleAnnotation(
        file_name=image["file_name"],
        height=h,
        width=w,
        rles=[_to_rle(a["segmentation"], h, w) for a in inst],
        labels=np.array([cats.index(a["category_id"]) + 1 for a in inst], np.int64),
        crowd_rles=[_to_rle(a["segmentation"], h, w) for a in anns if a["iscrowd"]],
        image_id=image["id"],
        annotation_ids=[a["id"] for a in inst],
    )


def test_per_object_boundary_iou_and_f1_equal_the_official(fixture_set):
    """The matched pairs of the project's matching (scores > 0.5, crowd pixels outside every instance left out)
    give the official per-object mask IoU, and boundary_iou_f1 of each pair the official Boundary IoU and F1."""
    gt_json, results = fixture_set
    got: dict[int, tuple[float, float, float]] = {}
    for image in gt_json["images"]:
        ann = _annotation(gt_json, image)
        preds = [r for r in results if r["image_id"] == image["id"] and r["score"] > 0.5]
        h, w = ann.height, ann.width
        masks = np.zeros((len(preds), h, w), bool)
        for k, r in enumerate(preds):
            masks[k] = mask_utils.decode(r["segmentation"]).astype(bool)
        match = match_image(ann, masks)
        counted = masks & ~ann.ignore()[None]
        gt_masks = ann.masks()
        pairs = [(i, j) for i, j in enumerate(match.matched.tolist()) if j >= 0]
        dilation = boundary_dilation(h, w, OFFICIAL["dilation_ratio"])
        b_iou, b_f1 = boundary_iou_f1(
            gt_masks[[i for i, _ in pairs]].reshape(-1, h, w),
            counted[[j for _, j in pairs]].reshape(-1, h, w),
            dilation,
        )
        for (i, _), bi, bf in zip(pairs, b_iou.tolist(), b_f1.tolist()):
            got[ann.annotation_ids[i]] = (float(match.iou[i]), bi, bf)
        for i in range(len(ann)):
            got.setdefault(ann.annotation_ids[i], (0.0, 0.0, 0.0))
    assert len(got) == len(OFFICIAL["objects"])
    for obj in OFFICIAL["objects"]:
        iou, b_iou, b_f1 = got[obj["annotation_id"]]
        assert abs(iou - obj["iou"]) <= 1e-12, obj
        assert abs(b_iou - obj["boundary_iou"]) <= 1e-12, obj
        assert abs(b_f1 - obj["boundary_f1"]) <= 1e-12, obj
    mean = np.mean([got[o["annotation_id"]][1] for o in OFFICIAL["objects"]])
    assert abs(mean - OFFICIAL["mean_boundary_iou"]) <= 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_predictions_score_boundary_ap_one(fixture_set, backend):
    gt_json, _ = fixture_set
    images = {im["id"]: im for im in gt_json["images"]}
    results = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "score": 0.9,
            "segmentation": _to_rle(a["segmentation"], images[a["image_id"]]["height"], images[a["image_id"]]["width"]),
        }
        for a in gt_json["annotations"]
        if not a["iscrowd"]
    ]
    coco, _ = coco_classes(backend)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco()
        gt.dataset = copy.deepcopy(gt_json)
        gt.createIndex()
        ev = boundary_cocoeval(gt, gt.loadRes(results), backend=backend)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_pixel_dilation_rounds_as_the_official(backend):
    """A 72x21 image: 0.02 x diagonal 75 = 1.5, which the official rounds to 2 (faster-coco-eval's own boundary
    mode makes it 1). The IoU matrix of both backends is min(mask IoU, boundary IoU at d = 2)."""
    h, w = 21, 72
    g = np.zeros((h, w), bool)
    g[3:18, 10:60] = True
    p = np.zeros((h, w), bool)
    p[4:18, 12:61] = True
    crowd = np.zeros((h, w), bool)
    crowd[0:6, 50:72] = True
    gt_json = {
        "images": [{"id": 7, "file_name": "a.jpg", "height": h, "width": w}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "segmentation": _rle(g), "area": float(g.sum()),
             "bbox": [10, 3, 50, 15], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "segmentation": _rle(crowd), "area": float(crowd.sum()),
             "bbox": [50, 0, 22, 6], "iscrowd": 1},
        ],
    }  # fmt: skip
    coco, _ = coco_classes(backend)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco()
        gt.dataset = gt_json
        gt.createIndex()
        dt = gt.loadRes([{"image_id": 7, "category_id": 1, "score": 0.8, "segmentation": _rle(p)}])
        ev = boundary_cocoeval(gt, dt, backend=backend)
        ev.evaluate()
    gb, pb = official_mask_to_boundary(g, 2), official_mask_to_boundary(p, 2)
    mask_iou = (g & p).sum() / (g | p).sum()
    b_iou = (gb & pb).sum() / (gb | pb).sum()
    g1, p1 = official_mask_to_boundary(g, 1), official_mask_to_boundary(p, 1)
    assert b_iou < mask_iou and abs(b_iou - (g1 & p1).sum() / (g1 | p1).sum()) > 0.05
    crowd_iou = (crowd & p).sum() / p.sum()  # a crowd region keeps pycocotools' mask IoU
    assert crowd_iou > 0
    np.testing.assert_allclose(np.asarray(ev.ious[7, 1]), [[b_iou, crowd_iou]], rtol=0, atol=1e-15)


def test_box_ious_equal_pycocotools_iou_of_boundary_rles():
    rng = np.random.default_rng(11)
    masks = _random_masks(rng, 60, 80, 7)
    rles = [_rle(m) for m in masks]
    boxes = boundary_boxes(rles, 4)
    rle_b = boundary_rles(rles, 4)
    want = np.asarray(mask_utils.iou(rle_b[:5], rle_b[3:], [0] * (len(rle_b) - 3)))
    assert np.array_equal(box_ious(boxes[:5], boxes[3:]), want)  # bit for bit
