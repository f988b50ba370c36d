"""RefineMask mask branch: checkpoint layout, parity with the official golden, batching, training loss."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import refinemask_fixtures as rf
import torch

from insseg.models.refinemask import mask_test
from insseg.models.refinemask.mask_boundary import mask_boundary
from insseg.models.refinemask.mask_head import RefineMaskHead
from insseg.models.refinemask.mask_loss import refine_losses, refine_mask_loss
from insseg.models.refinemask.mask_roi_extract import extract_roi_feats, map_roi_levels
from insseg.models.refinemask.mask_targets import instance_mask_targets, semantic_target
from insseg.models.refinemask.mask_test import refine_mask_test, refine_mask_test_batch
from insseg.models.refinemask.paste import paste_window

GOLDEN = "head_visible.pt"
LOGIT_TOL = 1e-4  # max abs difference allowed on every stage's logits
PROB_TIE = 1e-4  # pixels whose probability is this close to 0.5 may flip


@pytest.fixture(scope="session")
def refinemask_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    return rf.checkpoint_path(tmp_path_factory, seed=0)


@pytest.fixture(scope="module")
def golden():
    return rf.load_golden(GOLDEN)


@pytest.fixture(scope="module")
def head(refinemask_checkpoint) -> RefineMaskHead:
    model = RefineMaskHead(num_classes=80)
    model.load_state_dict(rf.mask_head_state_dict(refinemask_checkpoint), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def golden_run(head, golden):
    inp = golden["inputs"]
    feats = [f.float() for f in inp["fpn_feats"]]
    meta = dict(inp["img_meta"])
    masks, debug = refine_mask_test_batch(
        head, feats, [inp["det_bboxes"]], [inp["det_labels"]], [meta], return_logits=True
    )
    return feats, meta, masks[0], debug


def _unpack_masks(out: dict) -> np.ndarray:
    shape = tuple(out["masks_shape"])
    bits = np.unpackbits(out["masks_packed"].numpy())[: int(np.prod(shape))]
    return bits.reshape(shape).astype(bool)


# --------------------------------------------------------------------------------------------- layout


def test_state_dict_matches_checkpoint_layout():
    mc = rf.make_checkpoint_module()
    expected = {
        k[len(rf.MASK_HEAD_PREFIX) :]: tuple(v) for k, v in mc.model_keys().items() if k.startswith(rf.MASK_HEAD_PREFIX)
    }
    got = {k: tuple(v.shape) for k, v in RefineMaskHead(80).state_dict().items()}
    assert len(expected) == 70
    assert got == expected


def test_checkpoint_weights_match_golden_recipe(head, golden):
    sha = golden["weights_sha256"]
    sd = head.state_dict()
    assert set(sd) == set(sha)
    for k, v in sd.items():
        assert hashlib.sha256(v.float().contiguous().numpy().tobytes()).hexdigest() == sha[k], k


# --------------------------------------------------------------------------------------------- parity


def test_mask_rois_levels_and_features(golden_run, golden):
    feats, _, _, (_, _, _, rois) = golden_run
    out = golden["outputs"]
    assert torch.equal(rois, out["mask_rois"])
    assert torch.equal(map_roi_levels(rois, 4), out["mask_roi_levels"])
    first = extract_roi_feats(feats, rois[:8])
    assert (first - out["mask_roi_feats_first"]).abs().max().item() <= 1e-5


def test_stage_logits_semantic_and_merge_match_golden(golden_run, golden):
    _, _, _, (stages, refined, semantic, _) = golden_run
    out = golden["outputs"]
    for size, mine, ref in zip((14, 28, 56, 112), stages, out["stage_instance_preds_raw"]):
        assert mine.shape == ref.shape
        diff = (mine - ref).abs().max().item()
        assert diff <= LOGIT_TOL, f"stage {size}: max abs diff {diff}"
    assert (semantic - out["semantic_pred"]).abs().max().item() <= LOGIT_TOL
    assert (refined - out["refined_pred_112"]).abs().max().item() <= LOGIT_TOL


def test_final_masks_match_golden(golden_run, golden):
    _, meta, masks, (_, refined, _, rois) = golden_run
    ref = _unpack_masks(golden["outputs"])
    mine = masks.numpy()
    assert mine.dtype == bool and mine.shape == ref.shape
    # Pixels whose pasted probability is within PROB_TIE of 0.5 may legitimately flip.
    h, w = ref.shape[1:]
    sf = mask_test.scale_factor_tensor(meta, "cpu")
    boxes = rois[:, 1:] / sf
    probs = refined.sigmoid()
    for i in range(ref.shape[0]):
        prob = torch.zeros(h, w)
        values, rows, cols = paste_window(probs[i, 0], boxes[i], h, w)
        prob[rows, cols] = values
        differs = mine[i] != ref[i]
        near_tie = (prob - 0.5).abs().numpy() <= PROB_TIE
        assert not (differs & ~near_tie).any(), f"detection {i}: {int((differs & ~near_tie).sum())} pixels differ"


def test_single_image_api_and_empty(head, golden, golden_run):
    inp = golden["inputs"]
    feats, meta, batch_masks, _ = golden_run
    masks = refine_mask_test(head, feats, inp["det_bboxes"][:4, :4], inp["det_labels"][:4], meta)
    assert masks.dtype == torch.bool and masks.shape == (4, 240, 320)
    assert torch.equal(masks, batch_masks[:4])
    empty = refine_mask_test(head, feats, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), meta)
    assert empty.shape == (0, 240, 320) and empty.dtype == torch.bool


def test_batch_of_two_and_chunking_match_single(head, golden, monkeypatch):
    """Two images in one batch, different detections each, RoI chunks straddling the images: every image
    gets the masks it gets alone. Small crops of the golden features keep this cheap."""
    feats = [f.float() for f in golden["inputs"]["fpn_feats"]]
    crop1 = [f[..., : 32 * 4 // s, : 40 * 4 // s] for f, s in zip(feats, (4, 8, 16, 32))]
    crop2 = [
        torch.flip(f[..., -(32 * 4 // s) :, -(40 * 4 // s) :], dims=[-1]) * 0.5 for f, s in zip(feats, (4, 8, 16, 32))
    ]
    meta = {"ori_shape": (76, 96, 3), "scale_factor": np.array([5 / 3, 5 / 3, 5 / 3, 5 / 3], dtype=np.float32)}
    boxes1 = torch.tensor(
        [[0.0, 0.0, 96.0, 76.0], [10.0, 5.0, 40.0, 30.0], [50.3, 20.0, 50.3, 40.0], [80.0, 60.0, 80.6, 60.4]]
    )
    boxes2 = torch.tensor([[5.0, 7.0, 60.0, 70.0], [0.0, 40.0, 12.5, 75.0], [70.2, 0.0, 95.9, 18.0]])
    labels1, labels2 = torch.tensor([3, 0, 79, 12]), torch.tensor([5, 5, 40])
    monkeypatch.setattr(mask_test, "ROI_CHUNK", 3)
    batch = [torch.cat([f, g], 0) for f, g in zip(crop1, crop2)]
    out, (_, refined, semantic, rois) = refine_mask_test_batch(
        head, batch, [boxes1, boxes2], [labels1, labels2], [meta, meta], return_logits=True
    )
    assert semantic.shape[0] == 2 and rois[:4, 0].eq(0).all() and rois[4:, 0].eq(1).all()
    monkeypatch.setattr(mask_test, "ROI_CHUNK", 100)
    for i, (crop, boxes, labels, rows) in enumerate(
        [(crop1, boxes1, labels1, slice(0, 4)), (crop2, boxes2, labels2, slice(4, 7))]
    ):
        alone, (_, alone_refined, _, _) = refine_mask_test_batch(
            head, crop, [boxes], [labels], [meta], return_logits=True
        )
        assert (refined[rows] - alone_refined).abs().max() <= 1e-5
        assert torch.equal(out[i], alone[0])
        assert out[i].shape == (len(boxes), 76, 96)


# --------------------------------------------------------------------------------------------- paste


def test_paste_degenerate_boxes_follow_mmdet():
    centre = torch.zeros(112, 112)
    centre[:, 55:57] = 0.9  # a zero-width box samples the mask's centre line (x = 55.5)
    flat = torch.full((112, 112), 0.9)
    probs = torch.stack([centre, flat])[:, None]
    boxes = torch.tensor(
        [
            [10.0, 5.0, 10.0, 15.0],  # zero width
            [30.2, 20.0, 30.7, 40.0],
        ]
    )  # sub-pixel width
    masks = mask_test.paste_masks(probs, boxes, 50, 60)
    # zero width: infinite grid coordinates become 0 inside the window floor(x0)-1 .. ceil(x1)+1 only
    # (mmdet's CPU path), never a full-width stripe
    assert masks[0].any(0).nonzero().squeeze(1).tolist() == [9, 10]
    assert masks[0].any(1).nonzero().squeeze(1).tolist() == list(range(5, 15))
    # sub-pixel width: only the pixel centre inside the box samples the mask
    assert masks[1].any(0).nonzero().squeeze(1).tolist() == [30]
    assert masks[1].any(1).nonzero().squeeze(1).tolist() == list(range(20, 40))


# --------------------------------------------------------------------------------------------- training


def test_boundary_known_answer():
    mask = torch.tensor(
        [[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1]],
        dtype=torch.bool,
    )
    # width 1: foreground with a background 8-neighbour (outside the mask counts as background) and
    # background with a foreground 8-neighbour.
    expected_w1 = torch.tensor(
        [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0], [1, 1, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
        dtype=torch.bool,
    )
    assert torch.equal(mask_boundary(mask[None], 1)[0], expected_w1)
    assert torch.equal(mask_boundary(mask[None].float(), 1)[0], expected_w1)

    # width 2 (5x5 window) needs at least three opposite pixels (3/25 > 0.1 > 2/25).
    rect = torch.zeros(11, 12)
    rect[2:8, 2:9] = 1
    b = mask_boundary(rect[None], 2)[0]
    assert not b[0, 0]  # background, 1 foreground pixel in its window
    assert not b[0, 1]  # 2
    assert b[0, 2]  # 3
    assert b[1, 1]  # 4
    assert not b[10, 5]  # window rows 8..12: no foreground
    assert b[9, 5]  # window rows 7..11: 5 foreground pixels
    assert b[3, 5]  # foreground, window rows 1..5: row 1 (5 px) is background
    assert not b[4, 5]  # foreground, window rows 2..6 x cols 3..7 all foreground
    assert not b[5, 4]
    full = torch.ones(1, 7, 7)
    fb = mask_boundary(full, 2)[0]
    inner = torch.zeros(7, 7, dtype=torch.bool)
    inner[2:5, 2:5] = True
    assert torch.equal(fb, ~inner)  # outside the mask is background: two outer rings are boundary


def test_instance_and_semantic_targets_known_answer():
    gt = torch.zeros(2, 32, 40, dtype=torch.bool)
    gt[0, :, :16] = True  # left half of the box [0, 0, 32, 32]
    gt[1, 8:24, 20:36] = True
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0], [20.0, 8.0, 36.0, 24.0], [-5.0, -5.0, 32.0, 32.0]])
    targets = instance_mask_targets(boxes, gt, torch.tensor([0, 1, 0]))
    for s, t in zip((14, 28, 56, 112), targets):
        assert t.shape == (3, s, s) and t.dtype == torch.float32
        assert torch.equal(t[0, :, : s // 2], torch.ones(s, s // 2))
        assert not t[0, :, s // 2 :].any()
        # box equals the gt rectangle: all ones except where aligned sampling clips the corners
        assert t[1, 3:-3].all() and t[1, :, 3:-3].all()
        assert torch.equal(t[2], t[0])  # boxes are clipped to the mask first
    sem = semantic_target([gt], (8, 10))
    assert sem.shape == (1, 8, 10)
    # bilinear x1/4 (align_corners=False) samples at 4i + 1.5: the mean of a 2x2 block, kept when >= 0.5
    u = gt.any(0).float()
    mean = (u[1::4, 1::4] + u[1::4, 2::4] + u[2::4, 1::4] + u[2::4, 2::4]) / 4
    assert torch.equal(sem[0], (mean >= 0.5).float())
    assert sem[0].sum() == 8 * 4 + 4 * 4


def test_refine_losses_known_answer():
    torch.manual_seed(0)
    targets = []
    for s in (14, 28, 56, 112):
        t = torch.zeros(2, s, s)
        t[:, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 1
        targets.append(t)
    preds = [torch.zeros(2, 1, s, s) for s in (14, 28, 56, 112)]
    sem_pred, sem_t = torch.zeros(1, 1, 8, 8), torch.zeros(1, 8, 8)
    losses = refine_losses(preds, sem_pred, targets, sem_t)
    # zero logits: every counted pixel costs log 2, whatever the region
    assert math.isclose(losses["loss_instance"].item(), 2.5 * math.log(2), rel_tol=1e-6)
    assert math.isclose(losses["loss_semantic"].item(), math.log(2), rel_tol=1e-6)
    # the two finest stages only see the boundary region (here around the target square and along the border,
    # since zero logits mean "all foreground"): deep inside the square the logits do not matter
    preds[3][:, :, 50:62, 50:62] = -100.0
    preds[2][:, :, 24:32, 24:32] = -100.0
    assert math.isclose(
        refine_losses(preds, sem_pred, targets, sem_t)["loss_instance"].item(), 2.5 * math.log(2), rel_tol=1e-6
    )


def test_refine_mask_loss_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = RefineMaskHead(num_classes=3)
    feats = [torch.randn(2, 256, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    gt = [torch.zeros(2, 64, 64, dtype=torch.bool), torch.zeros(1, 60, 56, dtype=torch.bool)]
    gt[0][0, 10:30, 8:40] = True
    gt[0][1, 35:60, 30:50] = True
    gt[1][0, 5:50, 10:45] = True
    rois = torch.tensor([[0, 6.0, 9.0, 42.0, 31.0], [0, 28.0, 33.0, 52.0, 61.0], [1, 8.0, 3.0, 47.0, 52.0]])
    losses = refine_mask_loss(model, feats, rois, torch.tensor([0, 2, 1]), torch.tensor([0, 1, 0]), gt)
    assert set(losses) == {"loss_instance", "loss_semantic"}
    total = sum(losses.values())
    assert all(torch.isfinite(v) for v in losses.values())
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_refine_mask_loss_without_positives_is_zero_but_differentiable():
    model = RefineMaskHead(num_classes=2)
    feats = [torch.randn(1, 256, 32 // s, 32 // s) for s in (4, 8, 16, 32)]
    losses = refine_mask_loss(
        model,
        feats,
        torch.zeros(0, 5),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        [torch.zeros(0, 32, 32, dtype=torch.bool)],
    )
    assert losses["loss_instance"].item() == 0.0
    (losses["loss_instance"] + losses["loss_semantic"]).backward()
