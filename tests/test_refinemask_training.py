"""RefineMask's training path against the official formulas (zhanggang001/RefineMask at 633ed2b, mmdet 2.3),
each on a designed case with a hand-computed answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from insseg.models.refinemask.anchors import AnchorGenerator
from insseg.models.refinemask.bbox_head import Shared2FCBBoxHead, box_regression_loss
from insseg.models.refinemask.detector import scale_polygons
from insseg.models.refinemask.mask_head import RefineMaskHead
from insseg.models.refinemask.mask_loss import refine_mask_loss
from insseg.models.refinemask.mask_targets import instance_mask_targets, polygon_mask_targets, polygon_to_bitmap
from insseg.models.refinemask.preprocess import MEAN, STD, preprocess_fast
from insseg.models.refinemask.rpn import RPNHead
from insseg.models.refinemask.sampling import MaxIoUAssigner, RandomSampler, assign_and_sample


# ------------------------------------------------------------------------------ RCNN assignment order
def test_rcnn_assigns_proposals_before_adding_the_ground_truths() -> None:
    """gt A = [0,0,10,14] (area 140), gt B = [0,0,10,10] (100), proposal P = [0,0,10,15] (150):
    IoU(P, A) = 140/150 = 0.933, IoU(P, B) = 100/150 = 0.667. Official order: P is assigned among the
    proposals alone, where B's best IoU is 0.667 >= min_pos_iou 0.5 and P holds it, so the low-quality pass
    (later ground truths win) gives P to B. Prepending the ground truths first would give B its own copy
    (IoU 1) as best match and leave P with A."""
    gts = torch.tensor([[0.0, 0.0, 10.0, 14.0], [0.0, 0.0, 10.0, 10.0]])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 15.0]])
    assigner = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5)
    sampler = RandomSampler(num=512, pos_fraction=0.25, add_gt_as_proposals=True)
    boxes, assigned, pos, neg = assign_and_sample(assigner, sampler, proposals, gts)
    assert boxes.tolist() == [*gts.tolist(), *proposals.tolist()]
    assert assigned.gt_inds.tolist() == [1, 2, 2]  # each gt to itself, P to B
    torch.testing.assert_close(assigned.max_overlaps, torch.tensor([1.0, 1.0, 140 / 150]))
    assert sorted(pos.tolist()) == [0, 1, 2] and neg.numel() == 0
    # the previous order (gts prepended, then assigned) is what the official code does NOT do:
    assert assigner.assign(boxes, gts).gt_inds[2].item() == 1


# ------------------------------------------------------------------------------ RPN
def test_anchor_valid_flags_cover_the_image_own_padded_shape() -> None:
    """mmdet's valid_flags: rows < min(ceil(pad_h / s), h), cols < min(ceil(pad_w / s), w), all anchors of a
    cell alike. Feature map 4x4 at stride 4, pad shape 8x12 -> rows 0-1, cols 0-2."""
    gen = AnchorGenerator(strides=(4,))
    flags = gen.valid_flags([(4, 4)], (8, 12))[0].view(4, 4, 3)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:2, :3] = True
    assert torch.equal(flags, expected[:, :, None].expand(4, 4, 3))
    # a padded shape beyond the feature map is capped at its size; 9 px at stride 4 needs 3 cells
    assert gen.valid_flags([(2, 2)], (64, 64))[0].all()
    assert gen.valid_flags([(4, 4)], (9, 16))[0].view(4, 4, 3)[:, 0, 0].tolist() == [True, True, True, False]


def _rpn_case() -> tuple[RPNHead, list[torch.Tensor], list[tuple[int, int]], list[dict]]:
    """A batch padded to 64x64 (P2..P6: 16, 8, 4, 2, 1 cells; 1023 anchors); image 0's own pad is 32x32."""
    head = RPNHead()
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    anchors = head.anchor_generator.grid_anchors(sizes)
    metas = [{"pad_shape": (32, 32, 3)}, {"pad_shape": (64, 64, 3)}]
    return head, anchors, sizes, metas


def test_rpn_samples_only_valid_anchors_and_uses_the_official_normaliser() -> None:
    """Image 0 (no ground truth, pad 32x32): valid cells 8x8 + 4x4 + 2x2 + 1 + 1 = 86, 258 anchors; 256
    sampled negatives; it adds max(0, 1) + max(256, 1) = 257 to the normaliser. Image 1 (no ground truth,
    pad 64x64) the same: 514 in all, not 512."""
    torch.manual_seed(0)
    head, anchors, sizes, metas = _rpn_case()
    labels, label_w, _, box_w, normaliser = head.targets(anchors, sizes, [torch.zeros(0, 4)] * 2, metas)
    n = sum(a.shape[0] for a in anchors)
    assert n == 1023 and normaliser == 514
    valid0 = torch.cat(head.anchor_generator.valid_flags(sizes, (32, 32)))
    assert int(valid0.sum()) == 258
    w0 = label_w[:n]
    assert w0.sum() == 256 and w0[~valid0].sum() == 0  # never an anchor outside image 0's padded shape
    assert label_w[n:].sum() == 256 and labels.sum() == 0 and box_w.sum() == 0
    # the loss divides by that normaliser: zero logits give BCE log(2) on each of the 512 samples
    scores = [torch.zeros(2, 3, h, w) for h, w in sizes]
    deltas = [torch.zeros(2, 12, h, w) for h, w in sizes]
    losses = head.loss(scores, deltas, anchors, [torch.zeros(0, 4)] * 2, metas)
    assert losses["loss_rpn_cls"].item() == pytest.approx(512 * math.log(2) / 514, rel=1e-6)
    assert losses["loss_rpn_bbox"].item() == 0


def test_rpn_normaliser_with_positives() -> None:
    """With a ground truth in image 1: normaliser = 257 (image 0) + max(pos, 1) + max(neg, 1)."""
    torch.manual_seed(0)
    head, anchors, sizes, metas = _rpn_case()
    gts = [torch.zeros(0, 4), torch.tensor([[8.0, 8.0, 40.0, 40.0]])]
    labels, label_w, _, box_w, normaliser = head.targets(anchors, sizes, gts, metas)
    n = sum(a.shape[0] for a in anchors)
    pos = int(labels[n:].sum())
    neg = int(label_w[n:].sum()) - pos
    assert pos >= 1 and pos + neg == 256 and int(box_w[n:].sum()) == 4 * pos
    assert normaliser == 257 + pos + neg


# ------------------------------------------------------------------------------ box loss
def test_smooth_l1_box_loss_for_the_cityscapes_config() -> None:
    """SmoothL1 (beta 1): 0.5 d^2 for |d| < 1, |d| - 0.5 above; d = (0.5, 0, 0, -2) -> 0.125 + 1.5 = 1.625.
    The head's loss is weight 2 times the sum over the positives divided by the sampled RoIs (2): 1.625."""
    pred, target = torch.tensor([[0.5, 0.0, 0.0, -2.0]]), torch.zeros(1, 4)
    assert box_regression_loss(pred, target, "smooth_l1", 1.0).item() == pytest.approx(1.625)
    assert box_regression_loss(pred, target, "l1").item() == pytest.approx(2.5)
    head = Shared2FCBBoxHead(num_classes=2, bbox_loss="smooth_l1", bbox_loss_beta=1.0)
    bbox_pred = torch.zeros(2, 8)
    bbox_pred[0, 4:] = torch.tensor([0.5, 0.0, 0.0, -2.0])  # RoI 0 is a positive of class 1
    losses = head.loss(
        torch.zeros(2, 3), bbox_pred, torch.tensor([1, 2]), torch.zeros(2, 4), torch.tensor([True, False])
    )
    assert losses["loss_bbox"].item() == pytest.approx(2 * 1.625 / 2)
    assert losses["loss_cls"].item() == pytest.approx(2 * math.log(3))
    with pytest.raises(ValueError, match="bbox_loss"):
        Shared2FCBBoxHead(num_classes=2, bbox_loss="giou")


# ------------------------------------------------------------------------------ preprocessing
def test_training_preprocess_takes_uint8_as_0_255() -> None:
    img = torch.tensor([[[0, 255], [128, 7]]] * 3, dtype=torch.uint8)  # [3, 2, 2]
    batch_u8 = preprocess_fast([img], scale=(2, 2))
    batch_f = preprocess_fast([img.float() / 255.0], scale=(2, 2))
    torch.testing.assert_close(batch_u8.tensor, batch_f.tensor, rtol=0, atol=1e-4)
    assert batch_u8.tensor[0, 0, 0, 1].item() == pytest.approx((255 - MEAN[0]) / STD[0], rel=1e-6)


# ------------------------------------------------------------------------------ polygon targets
def test_polygon_targets_are_drawn_at_each_stage_size() -> None:
    """mmdet's PolygonMasks.crop_and_resize: shift by the box corner, scale by s / max(w, 1), rasterise.
    Square (2,2)-(6,6) in box (0,0,8,8): at 8 px it covers pixels 2..5, at 16 px pixels 4..11 (64)."""
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    square = [[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0]]
    t8, t16 = polygon_mask_targets(boxes, [square], torch.tensor([0]), (8, 16))
    expected8 = torch.zeros(8, 8)
    expected8[2:6, 2:6] = 1
    expected16 = torch.zeros(16, 16)
    expected16[4:12, 4:12] = 1
    assert torch.equal(t8[0], expected8) and torch.equal(t16[0], expected16)
    # box (4,4)-(12,12) crops the square's corner: it covers x, y in [4, 6) -> the top-left quarter at 16 px
    (crop,) = polygon_mask_targets(torch.tensor([[4.0, 4.0, 12.0, 12.0]]), [square], torch.tensor([0]), (16,))
    expected = torch.zeros(16, 16)
    expected[:4, :4] = 1
    assert torch.equal(crop[0], expected)
    # a box thinner than 1 px is scaled as 1 px wide (mmdet's max(w, 1))
    (thin,) = polygon_mask_targets(torch.tensor([[2.0, 2.0, 2.5, 6.0]]), [square], torch.tensor([0]), (8,))
    expected = torch.zeros(8, 8)
    expected[:, :] = 1  # x in [2, 3) of the square spans the whole 8 px target; y [2, 6) likewise
    assert torch.equal(thin[0], expected)


def test_polygon_rasterisation_keeps_detail_a_bitmap_loses() -> None:
    """A ~16 px diamond: the 112 px target drawn from the polygon is the diamond at 112 px; drawing it at 16 px
    and resampling (the bitmap path) gives a staircase. Holes and parts are unions (pycocotools merge)."""
    diamond = [[8.0, 0.0, 16.0, 8.0, 8.0, 16.0, 0.0, 8.0]]
    (t112,) = polygon_mask_targets(torch.tensor([[0.0, 0.0, 16.0, 16.0]]), [diamond], torch.tensor([0]), (112,))
    area = float(t112.sum()) / 112**2
    assert area == pytest.approx(0.5, abs=0.01)  # the diamond covers half its box
    coarse = torch.from_numpy(polygon_to_bitmap(diamond, 16, 16).astype(np.float32))
    up = torch.nn.functional.interpolate(coarse[None, None], size=(112, 112), mode="nearest")[0, 0]
    iou = float((up * t112[0]).sum() / ((up + t112[0]) > 0).sum())
    assert iou < 0.95
    # the box's own square, 32 px at (8, 8): the polygon target is full at 112 px; the bitmap path (RoIAlign
    # aligned, one sample per bin) reads the corner pixel at (7.643, 7.643): 0.643^2 = 0.413 < 0.5, so it
    # loses the 4 corners
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 8:40, 8:40] = True
    box = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    (poly,) = polygon_mask_targets(box, [[[8.0, 8.0, 40.0, 8.0, 40.0, 40.0, 8.0, 40.0]]], torch.tensor([0]), (112,))
    (bits,) = instance_mask_targets(box, masks, torch.tensor([0]), (112,))
    assert poly.sum() == 112**2 and bits.sum() == 112**2 - 4 and bits[0, 0, 0] == 0 and bits[0, -1, -1] == 0
    two = polygon_to_bitmap([[0, 0, 4, 0, 4, 4, 0, 4], [6, 6, 8, 6, 8, 8, 6, 8]], 8, 8)
    assert two.sum() == 16 + 4


def test_polygons_scale_with_the_resize_and_feed_the_mask_loss() -> None:
    """The hook: targets carrying polygons (original pixels) are scaled like mmdet's PolygonMasks.resize and
    become the instance targets; the semantic target still comes from the bitmaps."""
    assert scale_polygons([[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]], 2.0, 0.5) == [[[2.0, 1.0, 6.0, 2.0, 10.0, 3.0]]]
    torch.manual_seed(0)
    head = RefineMaskHead(2)
    feats = [torch.randn(1, 256, 16 // 2**i, 16 // 2**i) for i in range(4)]
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 8:40, 8:40] = True
    rois = torch.tensor([[0.0, 8.0, 8.0, 40.0, 40.0]])
    args = (head, feats, rois, torch.tensor([1]), torch.tensor([0]), [masks])
    triangle = [[[8.0, 8.0, 40.0, 8.0, 8.0, 40.0]]]
    bitmap = refine_mask_loss(*args)
    polygon = refine_mask_loss(*args, gt_polygons=[triangle])
    assert abs(polygon["loss_instance"].item() - bitmap["loss_instance"].item()) > 1e-3
    assert polygon["loss_semantic"].item() == bitmap["loss_semantic"].item()
    with pytest.raises(ValueError, match="gt_polygons"):
        refine_mask_loss(*args, gt_polygons=[[]])


# ------------------------------------------------------------------------------ the official COCO 1x recipe
def test_coco_1x_experiment_is_the_official_recipe() -> None:
    from insseg.config import compose_config
    from insseg.config.schema import TrainConfig

    if "lr_schedule" not in TrainConfig.__dataclass_fields__:
        pytest.skip("needs the trainer's train.lr_schedule / lr_milestones (lr schedules issue)")
    cfg = compose_config("train", ["experiment=coco_1x", "model=refinemask"])
    t = cfg.train
    assert (t.epochs, t.batch_size, t.momentum, t.weight_decay) == (12, 2, 0.9, 1e-4)
    assert t.lr * 16 / 2 == pytest.approx(0.02)  # rate for 2 images, scaled linearly to 16 at 8 x 2
    assert (t.lr_schedule, list(t.lr_milestones), t.lr_gamma) == ("multistep", [8, 11], 0.1)
    assert (t.warmup_iters, t.warmup_factor, t.clip_grad_norm) == (500, 0.001, 35)
    m = cfg.model
    assert (m.weights, m.backbone_weights, m.depth, m.min_size, m.max_size, m.bbox_loss) == (
        None,
        "DEFAULT",
        50,
        800,
        1333,
        "l1",
    )
