"""Benchmark 8 (CUDA): RefineMask R50-FPN inference images/s against Mask R-CNN R50-FPN on the same GPU.

The RefineMask paper reports 11.4 vs 15.7 FPS (ratio 0.73) on its 2021 GPU; the target is to keep that ratio
or better it. Two settings, both models on the same in-memory VOC-size images (500x375, resized to 800/1333):

* per image, fp32 with TF32 off (RefineMask's reference numerics), ``model([x])``: the paper's way of timing;
* the project's fast path: :class:`insseg.inference.Segmenter` with batch 8 and AMP (float16).

Weights: the official RefineMask checkpoint and torchvision's COCO weights when they are on disk; a model
without them gets random weights with its class logits shifted so that every proposal is detected (both
models then return ``detections_per_img`` = 100 detections per image, the COCO evaluation regime). The
detection counts are reported, since the mask heads' cost grows with them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from benchmarks.fixtures import config, force_detections, image_arrays, maskrcnn_weights, run_on_cuda
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import median, repeat
from insseg.inference import Segmenter
from insseg.models import build_model

PAPER_RATIO = 11.4 / 15.7
BATCH_SIZE = 8
DRY_RUN_OVERRIDES = [
    "model.min_size=96",
    "model.max_size=128",
    "model.detections_per_img=5",
    "model.rpn_pre_nms_top_n_test=100",
    "model.rpn_post_nms_top_n_test=20",
]


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def build(
    name: str, device: torch.device, out_dir: Path, overrides: list[str], dry_run: bool
) -> tuple[torch.nn.Module, str]:
    work = out_dir / "_work" / "gpu_refinemask"
    if name == "maskrcnn":
        weights, desc = maskrcnn_weights()
    else:
        default = config("predict", ["model=refinemask"], work).model.weights
        weights, desc = (default, "official r50-coco-2x.pth") if Path(default).is_file() else (None, "random weights")
    cfg = config(
        "predict", [f"model={name}", f"model.weights={'null' if weights is None else weights}", *overrides], work
    )
    torch.manual_seed(0)
    model = build_model(cfg.model)
    if weights is None:
        force_detections(model)
        desc += " (no checkpoint on disk), class logits shifted so that every proposal is detected"
    if dry_run and name == "refinemask":
        model.img_scale = (128, 96)  # RefineMask's test scale is not a config key
    return model.to(device).eval(), desc


def _one_image_at_a_time(model: torch.nn.Module, tensors: list[torch.Tensor], device: torch.device) -> None:
    with torch.no_grad(), no_tf32():
        for t in tensors:
            model([t.to(device).float().div_(255.0)])


def measure(
    device: torch.device, quick: bool, out_dir: Path, overrides: Sequence[str] = (), dry_run: bool = False
) -> BenchResult:
    num_images, repeats = (16, 2) if quick else (48, 3)
    if dry_run:
        num_images, repeats = 2, 1
    arrays = image_arrays(out_dir, num_images)
    tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
    rates: dict[str, dict[str, float]] = {}
    raw: dict[str, dict] = {}
    weights: dict[str, str] = {}
    detections: dict[str, float] = {}
    for name in ("maskrcnn", "refinemask"):
        model, weights[name] = build(name, device, out_dir, list(overrides), dry_run)
        per_image = functools.partial(_one_image_at_a_time, model, tensors, device)
        if name == "refinemask":
            model.amp = device.type == "cuda"  # its own float16 autocast, used with the Segmenter's
        seg = Segmenter(
            model, device=device, score_threshold=0.05, amp=True, amp_dtype="float16", batch_size=BATCH_SIZE
        )
        batched = functools.partial(seg.predict_batch, arrays)
        model.amp = False
        t_fp32 = repeat(per_image, repeats, warmup=1, device=device)
        model.amp = name == "refinemask" and device.type == "cuda"
        t_amp = repeat(batched, repeats, warmup=1, device=device)
        model.amp = False
        with torch.no_grad(), no_tf32():
            outs = [model([t.to(device).float().div_(255.0)])[0] for t in tensors[:4]]
        detections[name] = sum(len(o["scores"]) for o in outs) / len(outs)
        rates[name] = {"fp32": num_images / median(t_fp32), "amp": num_images / median(t_amp)}
        raw[name] = {"fp32_s": t_fp32, "amp_batched_s": t_amp}
        del model, seg
        if device.type == "cuda":
            torch.cuda.empty_cache()

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run: figures meaningless)"
    result = BenchResult(
        "gpu_refinemask",
        f"RefineMask vs Mask R-CNN (R50-FPN) inference images/s on {dev_name}",
        project="RefineMask R50-FPN (insseg.models.refinemask)",
        baseline="Mask R-CNN R50-FPN (torchvision)",
        settings={
            "images": num_images,
            "repeats": repeats,
            "image_size": "500x375 (model input 800x1066)",
            "weights": weights,
            "detections_per_image": detections,
            "device": dev_name,
            "paper_ratio": round(PAPER_RATIO, 3),
        },
        raw={"images_per_s": rates, "seconds": raw},
    )
    for key, label in (("fp32", "per image, fp32 (TF32 off)"), ("amp", f"Segmenter batch {BATCH_SIZE}, AMP fp16")):
        rm, mr = rates["refinemask"][key], rates["maskrcnn"][key]
        result.add(f"images/s, {label}", rm, mr, "img/s", rm / mr, Target(">=", round(PAPER_RATIO, 3)))
    result.add("detections per image", detections["refinemask"], detections["maskrcnn"], "")
    result.notes.append(f"target: RefineMask / Mask R-CNN at least the paper's 11.4 / 15.7 FPS = {PAPER_RATIO:.3f}")
    if dry_run:
        result.notes.append("dry run on CPU with tiny inputs: checks that the code runs; the figures mean nothing")
    return result


def run(quick: bool = False, out_dir: Path = Path("bench_results"), dry_run: bool = False) -> BenchResult:
    return run_on_cuda(
        "gpu_refinemask",
        "RefineMask vs Mask R-CNN inference images/s (CUDA)",
        measure,
        quick,
        out_dir,
        dry_run,
        DRY_RUN_OVERRIDES,
    )
