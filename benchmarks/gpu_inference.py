"""Benchmark 6 (CUDA): Mask R-CNN R50-FPN inference at 800/1333, the project's fast path (batched, AMP in
bfloat16, channels_last) against the torchvision tutorial's per-image fp32 loop, same weights, same images.

Project: :class:`insseg.inference.Segmenter` (``predict_batch``: to device, forward, threshold, binarise, masks
to the host) with ``batch_size`` 8, ``amp=True`` (bf16) and the model in channels_last. Baseline: per image,
``model([x])`` in fp32 under ``no_grad`` (outputs left on the device). Both get the same in-memory VOC-size
images (500x375, resized by the model to 800x1066); the score floor is the model's own (0.05), so both compute
the same detections. FLOPs per image are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls
and convolutions) and set against a measured bf16 matmul rate: the fraction of the GPU's dense bf16 throughput
that the measured images/s implies.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.fixtures import config, force_detections, image_arrays, maskrcnn_weights, run_on_cuda
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import median, repeat
from insseg.inference import Segmenter
from insseg.inference.loop import to_tensor
from insseg.models import build_model
from insseg.utils.device import autocast_for

BATCH_SIZE = 8
# --cpu-dry-run: a model small enough to run the code path on a CPU in seconds
DRY_RUN_OVERRIDES = [
    "model.min_size=96",
    "model.max_size=128",
    "model.detections_per_img=5",
    "model.rpn_pre_nms_top_n_test=100",
    "model.rpn_post_nms_top_n_test=20",
]


def matmul_rate(device: torch.device, dtype: torch.dtype = torch.bfloat16, n: int = 8192, reps: int = 20) -> float:
    """Measured dense matmul throughput, FLOP/s (2 n^3 per product)."""
    if device.type != "cuda":
        n, reps = 512, 3
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def products() -> None:
        for _ in range(reps):
            torch.mm(a, b)

    seconds = median(repeat(products, repeats=5, warmup=1, device=device))
    return 2 * n**3 * reps / seconds


def flops_per_image(model: torch.nn.Module, image: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model([image])
    return int(counter.get_total_flops())


def build(device: torch.device, overrides: list[str], out_dir: Path) -> tuple[torch.nn.Module, str]:
    weights, desc = maskrcnn_weights()
    cfg = config(
        "predict",
        ["model=maskrcnn", f"model.weights={'null' if weights is None else weights}", *overrides],
        out_dir / "_work" / "gpu_inference",
    )
    torch.manual_seed(0)
    model = build_model(cfg.model)
    if weights is None:
        force_detections(model)
        desc += ", class logits shifted so that every proposal is detected"
    return model.to(device).eval(), desc


def measure(
    device: torch.device, quick: bool, out_dir: Path, overrides: list[str] = (), dry_run: bool = False
) -> BenchResult:
    num_images, repeats = (16, 2) if quick else (64, 3)
    if dry_run:
        num_images, repeats = 2, 1
    arrays = image_arrays(out_dir, num_images)
    tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
    baseline_model, weights_desc = build(device, list(overrides), out_dir)
    project_model = copy.deepcopy(baseline_model).to(memory_format=torch.channels_last)
    amp_dtype = torch.bfloat16
    seg = Segmenter(
        project_model, device=device, score_threshold=0.05, amp=True, amp_dtype=amp_dtype, batch_size=BATCH_SIZE
    )

    def baseline() -> None:
        with torch.no_grad():
            for t in tensors:
                x = t.to(device).float().div_(255.0)
                baseline_model([x])

    def project() -> None:
        seg.predict_batch(arrays)

    def project_forward() -> None:  # the same forward passes without the host-side postprocessing, for the split
        with torch.inference_mode(), autocast_for(seg.precision, device):
            for s in range(0, len(arrays), BATCH_SIZE):
                seg.model([to_tensor(a, device) for a in arrays[s : s + BATCH_SIZE]])

    times = {
        "baseline": repeat(baseline, repeats, warmup=1, device=device),
        "project": repeat(project, repeats, warmup=1, device=device),
        "project_forward": repeat(project_forward, repeats, warmup=1, device=device),
    }
    rate = {k: num_images / median(v) for k, v in times.items()}
    x0 = tensors[0].to(device).float().div_(255.0)
    flops = flops_per_image(baseline_model, x0)
    with torch.no_grad():
        detections = [len(o["scores"]) for o in baseline_model([t.to(device).float().div_(255.0) for t in tensors[:4]])]
    peak = matmul_rate(device, amp_dtype)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run: figures meaningless)"
    result = BenchResult(
        "gpu_inference",
        f"Mask R-CNN R50-FPN inference at 800/1333 on {name}",
        project=f"Segmenter.predict_batch: batch {BATCH_SIZE}, AMP bf16, channels_last (masks to host included)",
        baseline="tutorial loop: model([x]) per image, fp32, no_grad",
        settings={
            "images": num_images,
            "repeats": repeats,
            "image_size": "500x375 (model input 800x1066)",
            "weights": weights_desc,
            "detections_per_image": detections,
            "device": name,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        },
        raw={"seconds": times, "flops_per_image": flops, "bf16_matmul_flops_per_s": peak},
    )
    result.add(
        "images/s", rate["project"], rate["baseline"], "img/s", rate["project"] / rate["baseline"], Target(">=", 3)
    )
    result.add(
        "images/s, forward only (no host postprocess)",
        rate["project_forward"],
        rate["baseline"],
        "img/s",
        rate["project_forward"] / rate["baseline"],
    )
    result.add("model GFLOP per image (FlopCounterMode)", flops / 1e9, None, "GFLOP")
    result.add("measured bf16 matmul rate", peak / 1e12, None, "TFLOP/s")
    result.add(
        "fraction of bf16 matmul rate implied",
        100 * flops * rate["project"] / peak,
        100 * flops * rate["baseline"] / peak,
        "%",
    )
    if dry_run:
        result.notes.append("dry run on CPU with tiny inputs: checks that the code runs; the figures mean nothing")
    return result


def run(quick: bool = False, out_dir: Path = Path("bench_results"), dry_run: bool = False) -> BenchResult:
    return run_on_cuda(
        "gpu_inference",
        "Mask R-CNN R50-FPN inference at 800/1333 (CUDA)",
        measure,
        quick,
        out_dir,
        dry_run,
        DRY_RUN_OVERRIDES,
    )
