"""Benchmark 5: the training loader's batches/s against the rate at which the model consumes batches.

Loader: the training dataset (generated VOC-layout JPEGs at VOC size, 500x375; targets with full-size masks)
in a ``DataLoader`` built as the trainer builds it (batch size, ``collate``, the configured
``data.num_workers``), iterated alone; the first batch (worker start-up) is left out. Two augmentations: the
default horizontal flip and large-scale jitter (``data.augment=lsj``: scale jitter, crop and pad, flip, boxes from
masks, sanitising, all on full-size masks). Consumption: the trainer's own ``train_one_epoch`` (forward,
backward, SGD step) on batches of the same augmentation already in memory, after a warm-up step (with lsj the
model trains on the 192x192 crops, without resizing them again, as the trainer sets it). The model is the smoke
model (resnet18-FPN, min_size 192), the CPU training configuration: the fastest consumer this machine trains,
hence the hardest case for the loader.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from benchmarks.fixtures import config, generated
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import median
from insseg.data import build_dataset, collate
from insseg.engine.loggers.base import RunLogger
from insseg.engine.optim import build_optimizer, build_schedule
from insseg.engine.train_epoch import train_one_epoch, use_augment_scale
from insseg.models import build_model


def loader_rate(train_set, batch_size: int, num_workers: int, batches: int, seed: int = 0) -> float:
    """Batches/s after the first batch, the trainer's loader settings."""
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(train_set, replacement=True, num_samples=(batches + 1) * batch_size, generator=generator)
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        generator=generator,
    )
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    n = sum(1 for _ in it)
    return n / (time.perf_counter() - start)


def model_rate(cfg, train_set, steps: int) -> float:
    """Training steps/s of the trainer's ``train_one_epoch`` on batches already in memory."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, list(train_set.class_names), fit_to_dataset=True)
    use_augment_scale(model, train_set.transforms, verbose=False)
    optimizer = build_optimizer(model.parameters(), cfg.train, build_schedule(cfg.train, 1, steps))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loader = DataLoader(
        train_set,
        batch_size=cfg.train.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(0),
    )
    batches = []
    while len(batches) < steps + 1:
        batches.extend(loader)
    device = torch.device("cpu")
    # epoch 1: no warm-up schedule; one untimed step first
    train_one_epoch(model, optimizer, batches[:1], device, 1, scaler, cfg, RunLogger(), False)
    start = time.perf_counter()
    train_one_epoch(model, optimizer, batches[1 : steps + 1], device, 1, scaler, cfg, RunLogger(), False)
    return steps / (time.perf_counter() - start)


AUGMENTS = ("hflip", "lsj")


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> BenchResult:
    batches, steps, repeats = (10, 2, 1) if quick else (40, 4, 1)
    root = generated(out_dir, "voc", 48, 375, 500, 6, seed=2)
    work = out_dir / "_work" / "data_pipeline"
    rates: dict[str, list[float]] = {}
    for augment in AUGMENTS:
        cfg = config(
            "train",
            [
                "experiment=smoke",
                "device=cpu",
                "data=voc",
                f"data.root={root}",
                "data.max_train_images=null",
                "data.num_workers=2",
                f"data.augment={augment}",
                f"paths.log_dir={work}",
            ],
            work / "run",
        )
        sizes = (cfg.model.min_size, cfg.model.max_size)
        train_set = build_dataset(cfg.data, "train", cfg.train.hflip_prob, sizes)
        bs, workers = cfg.train.batch_size, cfg.data.num_workers
        for key in ("loader", "loader_in_process", "model"):
            rates[f"{augment}/{key}"] = []
        for r in range(repeats):
            rates[f"{augment}/loader"].append(loader_rate(train_set, bs, workers, batches, seed=r))
            rates[f"{augment}/loader_in_process"].append(loader_rate(train_set, bs, 0, batches, seed=r))
            rates[f"{augment}/model"].append(model_rate(cfg, train_set, steps))
    shutil.rmtree(work, ignore_errors=True)

    result = BenchResult(
        "data_pipeline",
        "training loader batches/s vs model train steps/s (VOC-size images, batch 2; hflip and lsj)",
        project=f"training DataLoader, {workers} workers (data.num_workers)",
        baseline="the model's consumption: trainer.train_one_epoch steps/s on batches in memory (smoke model)",
        settings={
            "images": len(train_set),
            "image_size": "500x375",
            "batch_size": bs,
            "num_workers": workers,
            "augment": list(AUGMENTS),
            "loader_batches": batches,
            "train_steps": steps,
            "repeats": repeats,
            "model": "smoke: resnet18-FPN, min_size 192, weights=null",
            "threads": torch.get_num_threads(),
        },
        raw=rates,
    )
    for augment in AUGMENTS:
        loader, in_proc, model = (median(rates[f"{augment}/{k}"]) for k in ("loader", "loader_in_process", "model"))
        result.add(
            f"{augment}: loader ({workers} workers) / model", loader, model, "batch/s", loader / model, Target(">=", 5)
        )
        result.add(
            f"{augment}: loader (0 workers) / model",
            in_proc,
            model,
            "batch/s",
            in_proc / model,
            note="loading in the training process (data.num_workers=0, the smoke experiment's setting)",
        )
    return result
