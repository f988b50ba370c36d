"""RefineMask mask inference: RoIs from final boxes, head forward, boundary-aware merge, paste.

Follows the official ``RefineRoIHead.simple_test_mask`` with ``rescale=True``:

1. mask RoIs are the final (original-image) boxes times the float32 ``scale_factor`` ``[w, h, w, h]``;
2. the head runs on chunks of 100 RoIs (memory bound; results do not depend on the chunking);
3. test-time merge, 28 -> 56 -> 112: the finer logits are kept only on the boundary (width 1) of the coarser
   binary prediction, elsewhere they are replaced by the bilinearly (align_corners=True) upsampled coarser
   logits. Done in order, so the 56 -> 112 step uses the already merged 56 px prediction. The 14 px stage
   does not take part;
4. the 112 px probabilities are pasted onto the original image with the box ``(rois / scale_factor)``
   (recomputed in float32 as the official code does, so it can differ from the input box in the last bit).

Unlike the official code (one image per call), several images are handled at once; each RoI carries its
image's batch index everywhere, including the semantic-mask sampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from insseg.models.refinemask.mask_boundary import mask_boundary
from insseg.models.refinemask.mask_head import RefineMaskHead
from insseg.models.refinemask.mask_roi_extract import extract_roi_feats
from insseg.models.refinemask.paste import paste_masks

ROI_CHUNK = 100  # the official ``interval``


def scale_factor_tensor(img_meta: Mapping[str, Any], device: torch.device | str) -> Tensor:
    """``img_meta['scale_factor']`` as a float32 ``[4]`` tensor ``[w, h, w, h]`` (a float is broadcast)."""
    sf = img_meta["scale_factor"]
    if isinstance(sf, Tensor):
        t = sf.detach().to(device=device, dtype=torch.float32)
    else:
        t = torch.as_tensor(np.asarray(sf, dtype=np.float32), device=device)
    if t.numel() == 1:
        t = t.reshape(1).expand(4)
    if t.numel() != 4:
        raise ValueError(f"scale_factor must be a float or [w, h, w, h], got {tuple(t.shape)}")
    return t.reshape(4)


def build_mask_rois(det_bboxes_list: Sequence[Tensor], scale_factors: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """RoIs ``[n,5]`` (batch index + resized xyxy) and the resized boxes ``[n,4]`` for all images."""
    rois, boxes = [], []
    for i, (b, sf) in enumerate(zip(det_bboxes_list, scale_factors)):
        # float32 boxes times the float32 scale factor, as the official rescale=True path (float64 boxes stay
        # float64 by type promotion, as there).
        resized = b[:, :4] * sf
        boxes.append(resized)
        rois.append(torch.cat([resized.new_full((resized.shape[0], 1), float(i)), resized], dim=1))
    return torch.cat(rois, 0), torch.cat(boxes, 0)


def merge_stage_preds(stage_preds: Sequence[Tensor]) -> Tensor:
    """Boundary-aware test-time merge of the 28/56/112 logits (``stage_preds[1:]``); returns 112 px logits.

    The inputs are not modified.
    """
    preds = list(stage_preds[1:])
    for i in range(len(preds) - 1):
        coarse, fine = preds[i], preds[i + 1]
        size = fine.shape[-2:]
        binary = coarse[:, 0].sigmoid() >= 0.5
        keep_coarse = (~mask_boundary(binary, width=1)).unsqueeze(1).float()
        keep_coarse = F.interpolate(keep_coarse, size, mode="bilinear", align_corners=True) >= 0.5
        up = F.interpolate(coarse, size, mode="bilinear", align_corners=True)
        preds[i + 1] = torch.where(keep_coarse, up, fine)
    return preds[-1]


@torch.no_grad()
def refine_mask_test_batch(
    head: RefineMaskHead,
    feats: Sequence[Tensor],
    det_bboxes_list: Sequence[Tensor],
    det_labels_list: Sequence[Tensor],
    img_metas: Sequence[Mapping[str, Any]],
    mask_thr: float = 0.5,
    return_logits: bool = False,
) -> list[Tensor] | tuple:
    """Binary masks for the detections of a batch of images.

    Args:
        head: the mask head.
        feats: P2..P5 (more levels are ignored), each ``[B,256,h,w]``.
        det_bboxes_list: per image ``[N_i,4]`` (or ``[N_i,5]`` with score) xyxy boxes in ORIGINAL-image pixels.
        det_labels_list: per image ``[N_i]`` 0-based class ids.
        img_metas: per image ``ori_shape`` ``(H, W, ...)`` and ``scale_factor`` (float32 ``[w, h, w, h]``).
        mask_thr: probability threshold (``>=``), the config's ``mask_thr_binary``.
        return_logits: also return ``(stage_preds, refined_112, semantic_pred, rois)`` for inspection, with
            ``stage_preds`` the raw 14/28/56/112 logits of all RoIs in order.

    Returns:
        per image a bool ``[N_i, H_ori, W_ori]`` tensor (plus the debug tuple when ``return_logits``).
    """
    num_imgs = len(img_metas)
    if not (len(det_bboxes_list) == len(det_labels_list) == num_imgs):
        raise ValueError("det_bboxes_list, det_labels_list and img_metas must have one entry per image")
    p2 = feats[0]
    if p2.shape[0] != num_imgs:
        raise ValueError(f"features hold {p2.shape[0]} images but {num_imgs} img_metas were given")
    device = p2.device
    sfs = [scale_factor_tensor(m, device) for m in img_metas]
    det_bboxes_list = [b.to(device) for b in det_bboxes_list]
    labels = (
        torch.cat([lb.to(device).long() for lb in det_labels_list])
        if num_imgs
        else torch.zeros(0, dtype=torch.long, device=device)
    )
    rois, boxes = build_mask_rois(det_bboxes_list, sfs)
    counts = [int(b.shape[0]) for b in det_bboxes_list]
    n = rois.shape[0]

    ctx = head.forward_semantic(p2) if n else None
    refined, stage_chunks = _refined_logits(head, feats, rois, labels, ctx, return_logits)
    masks = _paste_per_image(refined.sigmoid(), boxes, sfs, counts, img_metas, mask_thr)
    if not return_logits:
        return masks
    stage_preds = [
        torch.cat([c[k] for c in stage_chunks], 0) if stage_chunks else refined.new_zeros((0, 1, s, s))
        for k, s in enumerate((14, 28, 56, 112))
    ]
    sem = ctx.pred if ctx is not None else None
    return masks, (stage_preds, refined, sem, rois)


def _refined_logits(
    head: RefineMaskHead, feats: Sequence[Tensor], rois: Tensor, labels: Tensor, ctx: Any, keep_stages: bool
) -> tuple[Tensor, list[list[Tensor]]]:
    """The head over the RoIs in chunks of ``ROI_CHUNK``: the merged 112x112 logits (float32 under AMP) and,
    with ``keep_stages``, each chunk's raw stage logits."""
    refined_chunks: list[Tensor] = []
    stage_chunks: list[list[Tensor]] = []
    for start in range(0, rois.shape[0], ROI_CHUNK):
        sl = slice(start, start + ROI_CHUNK)
        roi_feats = extract_roi_feats(feats, rois[sl])
        assert ctx is not None  # computed when there are RoIs
        preds = head.forward_instance(roi_feats, ctx, rois[sl], labels[sl])
        refined_chunks.append(merge_stage_preds(preds))
        if keep_stages:
            stage_chunks.append(preds)
    refined = torch.cat(refined_chunks, 0) if refined_chunks else feats[0].new_zeros((0, 1, 112, 112))
    if refined.dtype not in (torch.float32, torch.float64):
        refined = refined.float()  # AMP: threshold and paste in float32
    return refined, stage_chunks


def _paste_per_image(
    probs: Tensor,
    boxes: Tensor,
    sfs: Sequence[Tensor],
    counts: Sequence[int],
    img_metas: Sequence[Mapping[str, Any]],
    mask_thr: float,
) -> list[Tensor]:
    """Each image's 112x112 probabilities pasted at its original size (the RoIs are in batch order)."""
    masks: list[Tensor] = []
    offset = 0
    for i, meta in enumerate(img_metas):
        h, w = int(meta["ori_shape"][0]), int(meta["ori_shape"][1])
        sl = slice(offset, offset + counts[i])
        offset += counts[i]
        paste_boxes = boxes[sl] / sfs[i]  # back to original pixels, as get_seg_masks does
        masks.append(paste_masks(probs[sl], paste_boxes, h, w, threshold=mask_thr))
    return masks


def refine_mask_test(
    head: RefineMaskHead,
    feats: Sequence[Tensor],
    det_bboxes: Tensor,
    det_labels: Tensor,
    img_meta: Mapping[str, Any],
    mask_thr: float = 0.5,
) -> Tensor:
    """Binary masks ``bool [N, H_ori, W_ori]`` for the detections of ONE image (feats ``[1,256,h,w]``).

    ``det_bboxes`` ``[N,4]`` (or ``[N,5]``) float32 xyxy in original-image pixels, ``det_labels`` ``[N]``
    0-based; ``img_meta`` needs ``ori_shape`` and ``scale_factor``.
    """
    return refine_mask_test_batch(head, feats, [det_bboxes], [det_labels], [img_meta], mask_thr=mask_thr)[0]
