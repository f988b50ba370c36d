"""RefineMask's test path: images grouped by padded size, then backbone, RPN proposals, box head detections
and the RefineMask head's masks for each preprocessed batch (the official pipeline, ``docs/refinemask.md``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from .mask_test import refine_mask_test_batch
from .preprocess import Batch, preprocess_exact, rescale_size

if TYPE_CHECKING:
    from .detector import RefineMaskDetector


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    """Full-precision float32 matmuls/convolutions on CUDA for the duration (restores the flags)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def inference_autocast(amp: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """float16 autocast with ``amp`` on CUDA; otherwise full float32 (no TF32) on CUDA."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if device.type == "cuda":
        return _no_tf32()
    return contextlib.nullcontext()


def predict_images(model: RefineMaskDetector, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
    """Detections for a list of images (eval mode semantics whatever the module's mode)."""
    images = list(images)
    for im in images:
        if not isinstance(im, Tensor) or im.dim() != 3 or im.shape[0] != 3:
            raise ValueError(f"expected images as [3, H, W] tensors, got {getattr(im, 'shape', type(im))}")
    results: list[dict[str, Tensor] | None] = [None] * len(images)
    # group by padded size: each image then sees exactly the input it would see alone
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        nh, nw = rescale_size(int(im.shape[-2]), int(im.shape[-1]), model.img_scale)
        groups.setdefault((-(-nh // 32) * 32, -(-nw // 32) * 32), []).append(i)
    param = next(model.parameters())
    for idxs in groups.values():
        batch = preprocess_exact(
            [images[i] for i in idxs], device=param.device, dtype=param.dtype, scale=model.img_scale
        )
        for i, r in zip(idxs, model.run_batch(batch)):
            results[i] = r
    return results  # type: ignore[return-value]


def detect_batch(
    model: RefineMaskDetector, batch: Batch, debug: dict[str, Any] | None = None, with_masks: bool = True
) -> list[dict[str, Tensor]]:
    """Inference on a preprocessed batch; ``debug`` (a dict) receives the intermediate results.
    ``with_masks=False`` skips the mask branch (no ``masks`` key)."""
    x = batch.tensor
    metas = batch.metas
    with inference_autocast(model.amp, x.device):
        feats = model.extract_feats(x)
        cls_scores, bbox_preds = model.rpn_head(feats)
        anchors = model.rpn_head.anchors_for(feats)
        proposals = model.rpn_head.get_proposals(cls_scores, bbox_preds, metas, anchors)
        rois, dets = _detections(model, feats, proposals, metas)
        if debug is not None:
            debug.update(img_tensor=x, feats=feats, proposals=proposals, dets=dets)
        masks: list[Tensor | None] = [None] * len(metas)
        if with_masks:
            mask_out = refine_mask_test_batch(
                model.roi_head.mask_head,
                feats[:4],
                [d[0] for d in dets],
                [d[2] for d in dets],
                metas,
                mask_thr=model.mask_thresh,
                return_logits=debug is not None,
            )
            masks = cast("list[Tensor | None]", mask_out[0] if debug is not None else mask_out)
            if debug is not None:
                debug["mask_debug"] = mask_out[1]
    return [_result(d, m) for d, m in zip(dets, masks)]


def _detections(
    model: RefineMaskDetector, feats: Any, proposals: list[dict[str, Tensor]], metas: Any
) -> tuple[Tensor, list[tuple[Tensor, Tensor, Tensor]]]:
    """The bbox head over every image's proposals at once, then each image's boxes, scores and labels (NMS)."""
    rois = torch.cat(
        [
            torch.cat([p["boxes"].new_full((p["boxes"].shape[0], 1), float(i)), p["boxes"]], 1)
            for i, p in enumerate(proposals)
        ]
    )
    cls_score, bbox_pred = model.roi_head.bbox_head.forward_rois(feats, rois)
    dets = []
    start = 0
    for i, meta in enumerate(metas):
        sl = slice(start, start + proposals[i]["boxes"].shape[0])
        start = sl.stop
        dets.append(
            model.roi_head.bbox_head.get_detections(
                rois[sl],
                cls_score[sl],
                bbox_pred[sl],
                meta,
                score_thr=model.score_thresh,
                nms_thr=model.nms_thresh,
                max_per_img=model.detections_per_img,
            )
        )
    return rois, dets


def _result(det: tuple[Tensor, Tensor, Tensor], mask: Tensor | None) -> dict[str, Tensor]:
    """One image's detections in torchvision's output format (1-based labels; masks [N, 1, H, W])."""
    boxes, scores, labels = det
    r = {"boxes": boxes.to(torch.float32), "labels": labels.to(torch.int64) + 1, "scores": scores.to(torch.float32)}
    if mask is not None:
        r["masks"] = mask.to(torch.float32).unsqueeze(1)
    return r
