"""Benchmark 7 (CUDA): Mask R-CNN R50-FPN training images/s with AMP (the project's trainer) against the
torchvision tutorial's fp32 training loop, and their loss curves over the first 200 iterations.

Both runs start from the same weights, see the same batches in the same order (a seeded sampler; the same
worker seeds, hence the same flips) with the same SGD settings and linear warm-up. Project:
``insseg.engine.trainer.train_one_epoch`` with ``train.amp=true`` (float16 and a GradScaler, the default).
Baseline: the tutorial's ``train_one_epoch`` (forward, sum of losses, backward, step) in fp32. Images/s are
measured after the first 20 iterations (CUDA synchronised). "Same loss curve within noise": in each block of
50 iterations the mean losses differ by at most 3 standard errors, the noise being each curve's scatter
around its own 11-iteration moving average.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from benchmarks.fixtures import config, generated, maskrcnn_weights, run_on_cuda
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import sync
from insseg.data import build_dataset, collate
from insseg.engine.loggers.base import RunLogger
from insseg.engine.optim import build_lr_scheduler, build_schedule
from insseg.engine.trainer import train_one_epoch
from insseg.models import build_model

BLOCK = 50

DRY_RUN_OVERRIDES = [
    "model.min_size=96",
    "model.max_size=128",
    "model.rpn_pre_nms_top_n_train=100",
    "model.rpn_post_nms_top_n_train=50",
    "model.box_batch_size_per_image=32",
]


class Recorder(RunLogger):
    """Stands in for the trainer's run logger: the total loss and a synchronised timestamp per step."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.losses: list[float] = []
        self.times: list[float] = []

    def log_step(self, values: dict[str, float], step: int) -> None:
        if "train/loss/total" in values:
            sync(self.device)
            self.losses.append(float(values["train/loss/total"]))
            self.times.append(time.perf_counter())


def tutorial_epoch(
    model, optimizer, loader, device, warmup_factor: float, warmup_iters: int, recorder: Recorder
) -> None:
    """The torchvision detection tutorial's ``train_one_epoch`` (epoch 0, fp32)."""
    model.train()
    iters = min(warmup_iters, len(loader) - 1)
    lr_scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=warmup_factor, total_iters=iters)
    for images, targets in loader:
        images = [image.to(device) for image in images]
        targets = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets]
        loss_dict = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        loss_value = losses.item()
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
        lr_scheduler.step()
        recorder.log_step({"train/loss/total": loss_value}, 0)


def _noise(losses: np.ndarray) -> float:
    """Scatter of a loss curve around its own 11-iteration moving average."""
    k = 11
    if len(losses) < k + 2:
        return float(np.std(losses))
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    return float(np.std(losses[k // 2 : k // 2 + len(smooth)] - smooth))


def compare_curves(a: list[float], b: list[float], block: int = BLOCK) -> dict:
    """Block means of two loss curves and the largest |difference| in standard errors."""
    a_, b_ = np.asarray(a), np.asarray(b)
    n = min(len(a_), len(b_))
    block = max(1, min(block, n))
    se = math.sqrt((_noise(a_) ** 2 + _noise(b_) ** 2) / block)
    blocks = []
    for s in range(0, n - block + 1, block):
        ma, mb = float(a_[s : s + block].mean()), float(b_[s : s + block].mean())
        blocks.append({"iterations": [s, s + block], "amp": ma, "fp32": mb, "z": (ma - mb) / se if se > 0 else 0.0})
    return {"blocks": blocks, "standard_error": se, "max_abs_z": max(abs(x["z"]) for x in blocks)}


def measure(
    device: torch.device, quick: bool, out_dir: Path, overrides: list[str] = (), dry_run: bool = False
) -> BenchResult:
    iters, skip = (60, 10) if quick else (200, 20)
    if dry_run:
        iters, skip = 6, 2
    root = generated(out_dir, "voc", 64, 375, 500, 6, seed=4)
    weights, desc = maskrcnn_weights()
    work = out_dir / "_work" / "gpu_training"
    cfg = config(
        "train",
        [
            "model=maskrcnn",
            f"model.weights={'null' if weights is None else weights}",
            "data=voc",
            f"data.root={root}",
            "data.max_train_images=null",
            f"device={device.type}",
            f"paths.log_dir={work}",
            *overrides,
        ],
        work / "run",
    )
    train_set = build_dataset(cfg.data, "train", hflip_prob=cfg.train.hflip_prob)
    bs = cfg.train.batch_size
    torch.manual_seed(cfg.seed)
    initial = copy.deepcopy(build_model(cfg.model, list(train_set.class_names), fit_to_dataset=True).state_dict())

    def setup():
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, list(train_set.class_names), fit_to_dataset=True)
        model.load_state_dict(initial)
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            params, lr=cfg.train.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay
        )
        g = torch.Generator().manual_seed(cfg.seed)
        sampler = RandomSampler(train_set, replacement=True, num_samples=iters * bs, generator=g)
        loader = DataLoader(
            train_set,
            batch_size=bs,
            sampler=sampler,
            num_workers=cfg.data.num_workers,
            collate_fn=collate,
            generator=g,
            pin_memory=device.type == "cuda",
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        return model, optimizer, loader

    runs: dict[str, Recorder] = {}
    peak_mem: dict[str, float] = {}
    model, optimizer, loader = setup()
    runs["fp32"] = Recorder(device)
    tutorial_epoch(model, optimizer, loader, device, cfg.train.warmup_factor, cfg.train.warmup_iters, runs["fp32"])
    peak_mem["fp32"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    del model, optimizer, loader

    model, optimizer, loader = setup()
    runs["amp"] = Recorder(device)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and cfg.train.amp)
    # The trainer's own schedule (the tutorial's warm-up; one epoch of `iters`, so no step yet).
    lr_scheduler = build_lr_scheduler(optimizer, build_schedule(cfg.train, 1, iters))
    train_one_epoch(model, optimizer, loader, device, 0, scaler, cfg, runs["amp"], False, lr_scheduler)
    peak_mem["amp"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    del model, optimizer, loader

    return _report(cfg, runs, peak_mem, iters, skip, desc, device, dry_run)


def _report(
    cfg: Any,
    runs: dict[str, Recorder],
    peak_mem: dict[str, float],
    iters: int,
    skip: int,
    desc: str,
    device: torch.device,
    dry_run: bool,
) -> BenchResult:
    """The table: images/s after ``skip`` iterations, loss curves compared block by block, peak memory."""
    bs = cfg.train.batch_size
    rate = {k: (len(r.times) - skip) * bs / (r.times[-1] - r.times[skip - 1]) for k, r in runs.items()}
    curves = compare_curves(runs["amp"].losses, runs["fp32"].losses)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run: figures meaningless)"
    result = BenchResult(
        "gpu_training",
        f"Mask R-CNN R50-FPN training, AMP vs fp32, {iters} iterations on {name}",
        project=f"trainer.train_one_epoch, train.amp=true ({cfg.device.amp_dtype}, GradScaler)",
        baseline="torchvision tutorial train_one_epoch in fp32",
        settings={
            "iterations": iters,
            "timed_after": skip,
            "batch_size": bs,
            "image_size": "500x375 (model 800x1066)",
            "weights": desc,
            "lr": cfg.train.lr,
            "warmup_iters": cfg.train.warmup_iters,
            "device": name,
            "num_workers": cfg.data.num_workers,
        },
        raw={
            "losses": {k: r.losses for k, r in runs.items()},
            "images_per_s": rate,
            "curves": curves,
            "peak_memory_gib": peak_mem,
        },
    )
    result.add("training images/s", rate["amp"], rate["fp32"], "img/s", rate["amp"] / rate["fp32"], Target(">=", 1.8))
    result.add(
        f"loss curves: largest block difference ({BLOCK}-iteration blocks)",
        None,
        None,
        "",
        curves["max_abs_z"],
        Target("<=", 3, " SE"),
        note="block means (amp / fp32): "
        + ", ".join(
            f"{b['iterations'][0]}-{b['iterations'][1]}: {b['amp']:.3f} / {b['fp32']:.3f}" for b in curves["blocks"]
        ),
    )
    result.add("peak GPU memory", peak_mem["amp"], peak_mem["fp32"], "GiB")
    if dry_run:
        result.notes.append(
            "dry run on CPU with tiny inputs (no AMP on CPU): checks that the code runs; the figures mean nothing"
        )
    return result


def run(quick: bool = False, out_dir: Path = Path("bench_results"), dry_run: bool = False) -> BenchResult:
    return run_on_cuda(
        "gpu_training",
        "Mask R-CNN R50-FPN training, AMP vs fp32 (CUDA)",
        measure,
        quick,
        out_dir,
        dry_run,
        DRY_RUN_OVERRIDES,
    )
