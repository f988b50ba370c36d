"""One-to-one matching metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from insseg.data.annotations import InstanceAnnotation
from insseg.data.readers import VOCReader
from insseg.data.synthetic import generate_voc
from insseg.errors import InssegError
from insseg.evaluation import matching
from insseg.evaluation.class_mapping import bridge_classes
from insseg.evaluation.matching import MatchingAccumulator, iou_f1_matrices, match_image, overlap_counts
from insseg.predictions import ImagePrediction, encode_masks


def ann(instance_map: np.ndarray, labels: list[int] | None = None, name: str = "x.png") -> InstanceAnnotation:
    ids = np.unique(instance_map)
    ids = ids[(ids != 0) & (ids != 255)].astype(np.int64)
    labels = np.ones(len(ids), np.int64) if labels is None else np.array(labels, np.int64)
    return InstanceAnnotation(name, instance_map.shape[0], instance_map.shape[1], instance_map, ids, labels)


def box_mask(shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[rows, cols] = True
    return m


@pytest.fixture
def two_objects() -> InstanceAnnotation:
    """10x10: object id 1 (rows 0-3, cols 0-3) and id 5 (rows 6-9, cols 6-9); ids are not contiguous."""
    m = np.zeros((10, 10), np.uint8)
    m[0:4, 0:4] = 1
    m[6:10, 6:10] = 5
    return ann(m)


def test_hand_computed_iou_f1_and_background(two_objects):
    p0 = box_mask((10, 10), slice(0, 4), slice(0, 2))  # half of object 1
    p1 = box_mask((10, 10), slice(6, 10), slice(4, 10))  # object 5 plus 8 background pixels
    r = match_image(two_objects, np.stack([p1, p0]))
    assert r.matched.tolist() == [1, 0]
    np.testing.assert_allclose(r.iou, [8 / 16, 16 / 24])
    np.testing.assert_allclose(r.f1, [16 / 24, 32 / 40])
    # Background: 68 pixels in both; 8 of the ground truth's are covered, 8 object pixels are uncovered.
    assert r.bg_iou == pytest.approx(60 / 76)
    assert r.bg_f1 == pytest.approx(120 / 136)
    assert r.mean_iou == pytest.approx((0.5 + 2 / 3) / 2)
    assert r.mean_iou_with_bg == pytest.approx((0.5 + 2 / 3 + 60 / 76) / 3)
    assert r.mean_f1_with_bg == pytest.approx((2 / 3 + 0.8 + 120 / 136) / 3)
    assert r.true_positives == 2  # IoU >= 0.5 counts


def test_fewer_predictions_than_objects(two_objects):
    p1 = box_mask((10, 10), slice(6, 10), slice(4, 10))
    r = match_image(two_objects, p1[None])
    np.testing.assert_allclose(r.iou, [0.0, 2 / 3])
    np.testing.assert_allclose(r.f1, [0.0, 0.8])
    assert r.matched.tolist() == [-1, 0]
    assert r.bg_iou == pytest.approx(60 / 84)  # predicted background 76 px, ground truth 68, 60 shared


def test_no_predictions(two_objects):
    r = match_image(two_objects, np.zeros((0, 10, 10), bool))
    assert r.iou.tolist() == [0.0, 0.0] and r.f1.tolist() == [0.0, 0.0]
    assert r.bg_iou == pytest.approx(68 / 100)
    assert r.bg_f1 == pytest.approx(136 / 168)
    assert r.mean_iou_with_bg == pytest.approx(0.68 / 3)


def test_one_to_one_assignment_maximises_total_iou():
    # One row: A = cols 0-9, B = cols 20-29. X covers A and half of B, Y covers 6 px of A.
    # Greedy would give X to A (0.667) and leave B out; the optimum is X->B (0.25) + Y->A (0.6).
    m = np.zeros((1, 40), np.uint8)
    m[0, 0:10] = 1
    m[0, 20:30] = 2
    x = np.zeros((1, 40), bool)
    x[0, 0:10] = x[0, 25:30] = True
    y = np.zeros((1, 40), bool)
    y[0, 0:6] = True
    r = match_image(ann(m), np.stack([x, y]))
    np.testing.assert_allclose(r.iou, [0.6, 0.25])
    assert r.matched.tolist() == [1, 0]
    assert r.true_positives == 1


def test_duplicate_prediction_is_unmatched(two_objects):
    obj1 = two_objects.instance_map == 1
    r = match_image(two_objects, np.stack([obj1, obj1]))
    assert r.iou.tolist() == [1.0, 0.0]
    assert sorted(r.pred_matched.tolist()) == [-1, 0]
    acc = MatchingAccumulator()
    acc.add(r)
    s = acc.summary()
    assert (s["true_positives"], s["false_positives"], s["false_negatives"]) == (1, 1, 1)
    assert s["instance_precision"] == 0.5 and s["instance_recall"] == 0.5 and s["instance_f1"] == 0.5


def test_prediction_without_overlap_stays_unmatched(two_objects):
    far = box_mask((10, 10), slice(0, 2), slice(7, 10))
    r = match_image(two_objects, far[None])
    assert r.matched.tolist() == [-1, -1] and r.pred_matched.tolist() == [-1]
    assert r.bg_iou == pytest.approx(68 / 100)  # unmatched predictions leave the background alone


@pytest.fixture
def void_ring() -> InstanceAnnotation:
    """6x6: object 1 at rows 1-2, cols 1-2 (4 px), a void ring around it (12 px), 20 background pixels."""
    m = np.zeros((6, 6), np.uint8)
    m[0:4, 0:4] = 255
    m[1:3, 1:3] = 1
    return ann(m)


def test_void_excluded_from_every_count(void_ring):
    pred = box_mask((6, 6), slice(0, 4), slice(0, 4))  # the object and its void ring
    r = match_image(void_ring, pred[None])
    assert r.iou.tolist() == [1.0] and r.f1.tolist() == [1.0]
    assert r.bg_iou == 1.0 and r.bg_f1 == 1.0


def test_void_as_background_reproduces_old_harness(void_ring):
    pred = box_mask((6, 6), slice(0, 4), slice(0, 4))
    r = match_image(void_ring, pred[None], void_as_background=True)
    assert r.iou[0] == pytest.approx(4 / 16) and r.f1[0] == pytest.approx(8 / 20)
    # Ground-truth background = 20 + 12 void pixels; predicted background = 36 - 16.
    assert r.bg_iou == pytest.approx(20 / 32) and r.bg_f1 == pytest.approx(40 / 52)


def test_image_without_objects():
    empty = ann(np.zeros((8, 8), np.uint8))
    r = match_image(empty, np.zeros((0, 8, 8), bool))
    assert r.num_objects == 0 and r.mean_iou is None and r.bg_iou == 1.0 and r.mean_iou_with_bg == 1.0
    fp = match_image(empty, box_mask((8, 8), slice(0, 3), slice(0, 3))[None])
    acc = MatchingAccumulator()
    acc.add(r)
    acc.add(fp)
    s = acc.summary()
    assert s["num_objects"] == 0 and s["num_predictions"] == 1 and s["false_positives"] == 1
    assert s["instance_precision"] == 0.0 and s["instance_recall"] == 0.0 and s["mean_iou"] == 0.0
    assert s["mean_iou_with_bg"] == 1.0


def test_class_aware_matching_pairs_equal_classes_only():
    m = np.zeros((10, 10), np.uint8)
    m[0:4, 0:4] = 1
    m[6:10, 6:10] = 2
    a = ann(m, labels=[1, 2])
    obj1 = m == 1
    agnostic = match_image(a, obj1[None], np.array([2]))
    aware = match_image(a, obj1[None], np.array([2]), class_aware=True)
    assert agnostic.iou.tolist() == [1.0, 0.0]
    assert aware.iou.tolist() == [0.0, 0.0] and aware.pred_matched.tolist() == [-1]
    assert match_image(a, obj1[None], np.array([1]), class_aware=True).iou.tolist() == [1.0, 0.0]


def test_accumulator_means(two_objects):
    p0 = box_mask((10, 10), slice(0, 4), slice(0, 2))
    p1 = box_mask((10, 10), slice(6, 10), slice(4, 10))
    acc = MatchingAccumulator()
    acc.add(match_image(two_objects, np.stack([p0, p1])))
    acc.add(match_image(ann(np.zeros((10, 10), np.uint8)), np.zeros((0, 10, 10), bool)))
    s = acc.summary()
    assert s["mean_iou"] == pytest.approx((0.5 + 2 / 3) / 2)  # over objects
    assert s["mean_iou_with_bg"] == pytest.approx(((0.5 + 2 / 3 + 60 / 76) / 3 + 1.0) / 2)  # over images
    assert s["num_images"] == 2 and s["num_objects"] == 2 and s["num_predictions"] == 2
    assert s["instance_precision"] == 1.0 and s["instance_recall"] == 1.0


def test_perfect_predictions_on_generated_voc(tmp_path):
    root = generate_voc(tmp_path / "voc", num_images=5, height=48, width=64, max_objects=3, seed=2)
    reader = VOCReader(root, "trainval")
    acc = MatchingAccumulator()
    for i in range(len(reader)):
        a = reader.annotation(i)
        for void_as_bg in (False, True):
            r = match_image(a, a.masks()[::-1], void_as_background=void_as_bg)
            assert np.all(r.iou == 1.0) and np.all(r.f1 == 1.0) and r.bg_iou == 1.0
        acc.add(match_image(a, a.masks()))
    s = acc.summary()
    assert s["mean_iou"] == 1.0 and s["mean_iou_with_bg"] == 1.0 and s["instance_f1"] == 1.0


def test_overlap_counts_equal_a_per_pair_loop(monkeypatch):
    rng = np.random.default_rng(0)
    gt = rng.random((7, 33, 41)) > 0.6
    pred = rng.random((5, 33, 41)) > 0.5
    loop = np.array([[np.count_nonzero(g & p) for p in pred] for g in gt])
    monkeypatch.setattr(matching, "_CHUNK_BYTES", 1)  # one object per chunk
    inter, ga, pa = overlap_counts(gt, pred)
    np.testing.assert_array_equal(inter, loop)
    np.testing.assert_array_equal(ga, gt.reshape(7, -1).sum(1))
    np.testing.assert_array_equal(pa, pred.reshape(5, -1).sum(1))
    iou, f1 = iou_f1_matrices(gt, pred)
    np.testing.assert_allclose(iou, loop / (ga[:, None] + pa[None] - loop))
    assert overlap_counts(gt[:0], pred)[0].shape == (0, 5)


def test_class_bridge_coco_to_voc():
    coco = ["person", "airplane", "N/A", "motorcycle", "couch", "dining table", "potted plant", "tv", "giraffe", "car"]
    voc = ["aeroplane", "bicycle", "car", "diningtable", "motorbike", "person", "pottedplant", "sofa", "tvmonitor"]
    b = bridge_classes(coco, voc)
    assert b.names_for_dataset == [
        "person",
        "aeroplane",
        "N/A",
        "motorbike",
        "sofa",
        "diningtable",
        "pottedplant",
        "tvmonitor",
        "giraffe",
        "car",
    ]
    assert b.unmapped == ["giraffe"]
    pred = ImagePrediction(
        "a.png",
        4,
        4,
        boxes=np.zeros((3, 4), np.float32),
        scores=np.array([0.9, 0.8, 0.7], np.float32),
        labels=np.array([2, 9, 10], np.int64),
        rles=encode_masks(np.zeros((3, 4, 4), bool)),
    )
    out = b.to_dataset(pred)
    assert out.labels.tolist() == [1, 3] and out.scores.tolist() == pytest.approx([0.9, 0.7])
    kept = bridge_classes(coco, voc, keep_unmapped=True).to_dataset(pred)
    assert kept.labels.tolist() == [1, 0, 3]
    with pytest.raises(InssegError, match="matches a dataset class"):
        bridge_classes(["giraffe"], voc)


@pytest.mark.parametrize("shape", [(90, 130), (64, 64), (7, 1000)])
def test_overlap_counts_on_many_separate_objects_equal_a_per_pair_loop(monkeypatch, shape):
    """Many small objects, most pairs far apart (skipped by their spans), some side by side in the same rows,
    some touching, empty masks on both sides: every count equals the per-pair loop's, and so do the matrices."""
    rng = np.random.default_rng(1)
    h, w = shape

    def blobs(k: int) -> np.ndarray:
        masks = np.zeros((k, h, w), bool)
        for m in masks[:-1]:  # the last one stays empty
            y, x = rng.integers(0, h), rng.integers(0, w)
            m[y : y + rng.integers(1, 12), x : x + rng.integers(1, 40)] = True
        return masks

    gt, pred = blobs(40), blobs(60)
    pred[:10] = np.roll(gt[:10], 1, axis=2)  # some real overlaps
    pred[10] = gt[0] | gt[1]  # one prediction meeting two objects
    loop = np.array([[np.count_nonzero(g & p) for p in pred] for g in gt])
    assert (loop > 0).sum() >= 10 and (loop == 0).mean() > 0.9
    for chunk in (matching._CHUNK_BYTES, 1):
        monkeypatch.setattr(matching, "_CHUNK_BYTES", chunk)
        inter, ga, pa = overlap_counts(gt, pred)
        np.testing.assert_array_equal(inter, loop)
        np.testing.assert_array_equal(ga, gt.reshape(40, -1).sum(1))
        np.testing.assert_array_equal(pa, pred.reshape(60, -1).sum(1))
    np.testing.assert_array_equal(overlap_counts(gt.reshape(40, -1), pred.reshape(60, -1))[0], loop)
    union = ga[:, None] + pa[None] - loop
    iou, f1 = iou_f1_matrices(gt, pred)
    np.testing.assert_array_equal(iou, np.where(union > 0, loop / np.maximum(union, 1), 0.0))
    np.testing.assert_array_equal(
        f1, np.where(ga[:, None] + pa[None] > 0, 2 * loop / np.maximum(ga[:, None] + pa[None], 1), 0.0)
    )
