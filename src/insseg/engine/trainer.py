"""The training loop of the torchvision detection reference and tutorial: SGD, linear warm-up in epoch 0,
StepLR, AMP on CUDA, COCO evaluation after every epoch, atomic checkpoints, resume, DDP via torchrun."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from insseg.data import build_dataset, collate
from insseg.engine.checkpoint import find_latest_checkpoint, load_training_state, save_checkpoint
from insseg.engine.distributed import DistInfo, barrier, broadcast_object, cleanup, init_distributed
from insseg.engine.progress import MetricLogger
from insseg.engine.tensorboard import TensorBoardLogger
from insseg.engine.validation import evaluate_coco
from insseg.errors import InssegError
from insseg.models import build_model, check_weights_available
from insseg.utils.atomic import atomic_write_json, atomic_write_text
from insseg.utils.logging import ensure_console_logging, log
from insseg.utils.device import amp_enabled, autocast, configure_runtime, resolve_device
from insseg.utils.seed import seed_everything

METRIC_KEYS = ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75")


class TrainingDiverged(InssegError):
    pass


def train(cfg: DictConfig) -> dict[str, float]:
    """Train ``cfg.model`` on ``cfg.data``; write checkpoints, TensorBoard events and metrics.json to
    ``cfg.paths.output_dir``. Returns the final metrics."""
    ensure_console_logging()
    device = resolve_device(cfg.device)
    dist_info = init_distributed(device)
    try:
        return _train(cfg, device, dist_info)
    finally:
        cleanup(dist_info)


def _train(cfg: DictConfig, device: torch.device, dist_info: DistInfo) -> dict[str, float]:
    configure_runtime(cfg.device, device)
    seed_everything(cfg.seed + dist_info.rank)
    out_dir = Path(cfg.paths.output_dir)
    main = dist_info.is_main
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _save_config_outside_hydra(cfg, out_dir)

    if main:
        check_weights_available(cfg.model)
    # Rank 0 prepares (downloads or generates) the data first; the others then read it.
    if main:
        train_set = build_dataset(cfg.data, "train", hflip_prob=cfg.train.hflip_prob)
    barrier(dist_info)
    if not main:
        train_set = build_dataset(cfg.data, "train", hflip_prob=cfg.train.hflip_prob)
    eval_set = build_dataset(cfg.data, "eval") if main else None
    class_names = list(train_set.class_names)

    resume_path = _resolve_resume(cfg, out_dir, dist_info)
    model = build_model(cfg.model, class_names, fit_to_dataset=True).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.train.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.train.lr_step_size, gamma=cfg.train.lr_gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_enabled(cfg.device, device))
    start_epoch, best_metric, metrics = 0, -1.0, {}
    if resume_path is not None:
        ckpt = load_training_state(resume_path, class_names)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best_metric, metrics = ckpt["epoch"] + 1, ckpt["best_metric"], dict(ckpt.get("metrics", {}))
        if main:
            log.info(f"resumed from {resume_path} at epoch {start_epoch}")

    train_model: torch.nn.Module = model
    if dist_info.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None
        )
    generator = torch.Generator()
    sampler = (
        DistributedSampler(train_set, shuffle=True, seed=cfg.seed) if dist_info.enabled
        else RandomSampler(train_set, generator=generator)
    )
    loader = DataLoader(
        train_set, batch_size=cfg.train.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
        collate_fn=collate, generator=generator, pin_memory=device.type == "cuda",
        persistent_workers=False,
    )

    tb = TensorBoardLogger(out_dir / "tensorboard", enabled=main)
    ckpt_dir = out_dir / "checkpoints"
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            # Seeding per epoch keeps the data order and augmentation the same whether or not a run resumed.
            generator.manual_seed(cfg.seed + epoch)
            torch.manual_seed(cfg.seed + epoch + 1000 * dist_info.rank)
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            train_one_epoch(train_model, optimizer, loader, device, epoch, scaler, cfg, tb, main)
            lr_scheduler.step()
            last_epoch = epoch == cfg.train.epochs - 1
            if main and ((epoch + 1) % cfg.train.eval_every == 0 or last_epoch):
                metrics, samples = evaluate_coco(model, eval_set, device, cfg.device, print_freq=cfg.train.print_freq * 5)
                metrics = {k: float(v) for k, v in metrics.items()}
                _print_metrics(epoch, metrics)
                tb.scalars({k: v for k, v in metrics.items() if k in METRIC_KEYS}, epoch, prefix="val/")
                tb.overlays(samples[: cfg.train.num_overlays], class_names, epoch)
                metrics["epoch"] = epoch
                score = metrics["segm_AP"] if math.isfinite(metrics["segm_AP"]) else -1.0
                if score > best_metric or not (ckpt_dir / "best.pt").exists():
                    best_metric = max(score, best_metric)
                    save_checkpoint(ckpt_dir / "best.pt", model, optimizer, lr_scheduler, scaler, epoch, best_metric, metrics, cfg)
            if main:
                save_checkpoint(ckpt_dir / "last.pt", model, optimizer, lr_scheduler, scaler, epoch, best_metric, metrics, cfg)
                atomic_write_json(out_dir / "metrics.json", _json_safe({**metrics, "best_segm_AP": best_metric}))
            barrier(dist_info)
    finally:
        tb.close()
    if main and start_epoch >= cfg.train.epochs:
        log.info(f"nothing to train: the checkpoint already finished {cfg.train.epochs} epochs")
        atomic_write_json(out_dir / "metrics.json", _json_safe({**metrics, "best_segm_AP": best_metric}))
    return broadcast_object(metrics, dist_info)


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    device: torch.device,
    epoch: int,
    scaler: torch.amp.GradScaler,
    cfg: DictConfig,
    tb: TensorBoardLogger,
    verbose: bool,
) -> None:
    model.train()
    warmup = None
    if epoch == 0 and cfg.train.warmup_iters > 0:
        iters = min(cfg.train.warmup_iters, len(loader) - 1)
        if iters > 0:
            warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=cfg.train.warmup_factor, total_iters=iters)
    logger = MetricLogger(enabled=verbose)
    step = epoch * len(loader)
    for images, targets in logger.log_every(loader, cfg.train.print_freq, header=f"Epoch: [{epoch}]"):
        images = [img.to(device, non_blocking=True) for img in images]
        targets = [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
        with autocast(cfg.device, device):
            loss_dict = model(images, targets)
            loss = sum(loss_dict.values())
        loss_values = {k: float(v.detach()) for k, v in loss_dict.items()}
        loss_value = sum(loss_values.values())
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"training diverged: loss is {loss_value} at epoch {epoch}, iteration {step} ({loss_values}). "
                "Lower train.lr or set train.clip_grad_norm; checkpoints/last.pt holds the last finished epoch."
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.train.clip_grad_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        if warmup is not None:
            warmup.step()
        lr = optimizer.param_groups[0]["lr"]
        logger.update(loss=loss_value, lr=lr, **loss_values)
        tb.scalars({**{f"loss/{k}": v for k, v in loss_values.items()}, "loss/total": loss_value, "lr": lr}, step, prefix="train/")
        step += 1


def _resolve_resume(cfg: DictConfig, out_dir: Path, dist_info: DistInfo) -> Path | None:
    resume = cfg.train.resume
    if resume is None:
        return None
    if resume == "auto":
        found = None
        if dist_info.is_main:
            found = find_latest_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name / cfg.experiment_name, exclude=out_dir)
            if found is None:
                log.info(f"train.resume=auto: no earlier checkpoint of experiment '{cfg.experiment_name}'; starting fresh")
            else:
                log.info(f"train.resume=auto: resuming {found}")
        return broadcast_object(found, dist_info)
    return Path(resume)


def _json_safe(values: dict[str, float]) -> dict[str, float | None]:
    """NaN (AP with no ground truth to score) becomes null: strict JSON has no NaN."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def _print_metrics(epoch: int, metrics: dict[str, float]) -> None:
    log.info(f"Epoch [{epoch}] " + "  ".join(f"{k}: {metrics[k]:.4f}" for k in METRIC_KEYS if k in metrics))


def _save_config_outside_hydra(cfg: DictConfig, out_dir: Path) -> None:
    """Hydra saves the composed config in .hydra/; runs started from Python get config.yaml instead."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
