"""The training loop of the torchvision detection reference and tutorial: SGD with warm-up and a step,
multistep or cosine schedule (insseg.engine.optim), AMP on CUDA, COCO evaluation every ``train.eval_every``
epochs with optional early stopping, atomic checkpoints, resume, DDP via torchrun."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, DistributedSampler

from insseg.data import build_dataset
from insseg.data.repeat_factor import RepeatFactorSampler
from insseg.engine.amp import training_amp
from insseg.engine.loggers.base import RunLogger, flatten
from insseg.engine.loggers.factory import build_run_logger
from insseg.engine.optim import build_lr_scheduler, build_optimizer, build_schedule, describe_optimizer
from insseg.engine.train_epoch import build_train_loader, train_one_epoch
from insseg.engine.train_state import (
    TrainState,
    print_summary,
    resolve_resume,
    restore_training_state,
    stopped_early,
    write_metrics,
)
from insseg.engine.training_checkpoint import save_checkpoint
from insseg.engine.validation import Evaluation, evaluate_coco
from insseg.evaluation.reports.training import discard_report, publish_report
from insseg.models import build_model, check_weights_available
from insseg.utils.atomic import atomic_write_text
from insseg.utils.device import configure_runtime, inference_precision, resolve_device
from insseg.utils.distributed import DistInfo, barrier, broadcast_object, cleanup, init_distributed
from insseg.utils.json_safe import json_safe
from insseg.utils.logging import ensure_console_logging, log
from insseg.utils.seed import seed_everything

# The best epoch's report pictures are drawn here during an evaluation, then published or discarded.
REPORT_STAGING = ".report_staging"
# Logged as val/<key> each evaluated epoch when present (boundary_*: with eval.boundary on).
METRIC_KEYS = (
    *("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75"),
    *("boundary_AP", "boundary_AP50", "boundary_AP75"),
)


@dataclass
class Run:
    """What one training run works with, built once by :func:`_setup`."""

    cfg: DictConfig
    device: torch.device
    dist: DistInfo
    out_dir: Path
    model: torch.nn.Module
    train_model: torch.nn.Module  # the DDP wrapper under torchrun, else the model
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loader: DataLoader
    generator: torch.Generator
    eval_set: Any
    class_names: list[str]
    logger: RunLogger = field(default_factory=RunLogger)  # rank 0's is set by _train; the others log nothing

    @property
    def ckpt_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def save(self, name: str, state: TrainState) -> None:
        save_checkpoint(
            self.ckpt_dir / name,
            self.model,
            self.optimizer,
            self.lr_scheduler,
            self.scaler,
            self.cfg,
            epoch=state.epoch,
            best_metric=state.best_metric,
            best_epoch=state.best_epoch,
            stale_evals=state.stale_evals,
            metrics=state.metrics,
        )


def run_training(cfg: DictConfig) -> dict[str, float]:
    """Train ``cfg.model`` on ``cfg.data``; write checkpoints, logs (``cfg.logger``) and metrics.json to
    ``cfg.paths.output_dir``. Returns the metrics of the last evaluation."""
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
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _save_config_outside_hydra(cfg, out_dir)
        check_weights_available(cfg.model)
    run, state = _setup(cfg, device, dist_info, out_dir)
    if dist_info.is_main:
        run.logger = build_run_logger(cfg.logger, out_dir, run_name=_run_name(cfg, out_dir))
    try:
        run.logger.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
        _fit(run, state)
    except BaseException:
        run.logger.close(failed=True)
        raise
    if dist_info.is_main:
        write_metrics(out_dir, cfg, state)
        for name in ("metrics.json", "config.yaml", ".hydra/config.yaml"):
            run.logger.log_artifact(out_dir / name)
        print_summary(state, out_dir)
    run.logger.close()
    return broadcast_object(state.metrics, dist_info)


def _setup(cfg: DictConfig, device: torch.device, dist_info: DistInfo, out_dir: Path) -> tuple[Run, TrainState]:
    """Data, model, optimizer and schedule, restored from a checkpoint when resuming."""
    main = dist_info.is_main
    # Rank 0 prepares (downloads or generates) the data first; the others then read it.
    if main:
        train_set = build_dataset(cfg.data, "train", hflip_prob=cfg.train.hflip_prob)
    barrier(dist_info)
    if not main:
        train_set = build_dataset(cfg.data, "train", hflip_prob=cfg.train.hflip_prob)
    class_names = list(train_set.class_names)
    loader, generator = build_train_loader(cfg, train_set, device, dist_info)

    model = build_model(cfg.model, class_names, fit_to_dataset=True).to(device)
    schedule = build_schedule(cfg.train, dist_info.world_size, len(loader))
    optimizer = build_optimizer(model.parameters(), cfg.train, schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=training_amp(cfg, device))
    state = TrainState()
    resume_path = resolve_resume(cfg, out_dir, dist_info)
    if resume_path is not None:
        ckpt_dir = out_dir / "checkpoints"
        state = restore_training_state(resume_path, model, optimizer, scaler, class_names, ckpt_dir, main)
    lr_scheduler = build_lr_scheduler(optimizer, schedule, start_iter=(state.epoch + 1) * len(loader))
    train_model: torch.nn.Module = model
    if dist_info.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None
        )
    if main:
        log.info(describe_optimizer(cfg.train, dist_info.world_size, schedule))
    eval_set = build_dataset(cfg.data, "eval")  # every rank evaluates its shard
    run = Run(
        cfg,
        device,
        dist_info,
        out_dir,
        model,
        train_model,
        optimizer,
        lr_scheduler,
        scaler,
        loader,
        generator,
        eval_set,
        class_names,
    )
    return run, state


def _fit(run: Run, state: TrainState) -> None:
    cfg = run.cfg
    start = state.epoch + 1
    if start >= cfg.train.epochs or stopped_early(cfg, state):
        if run.dist.is_main:
            log.info(
                f"nothing to train: the checkpoint finished epoch {state.epoch} of {cfg.train.epochs}"
                + (" and had stopped early" if stopped_early(cfg, state) else "")
            )
        return
    for epoch in range(start, cfg.train.epochs):
        # Seeding per epoch keeps the data order and augmentation the same whether or not a run resumed.
        run.generator.manual_seed(cfg.seed + epoch)
        torch.manual_seed(cfg.seed + epoch + 1000 * run.dist.rank)
        if isinstance(run.loader.sampler, (DistributedSampler, RepeatFactorSampler)):
            run.loader.sampler.set_epoch(epoch)
        epoch_values = train_one_epoch(
            run.train_model,
            run.optimizer,
            run.loader,
            run.device,
            epoch,
            run.scaler,
            run.cfg,
            run.logger,
            run.dist.is_main,
            run.lr_scheduler,
            run.dist,
        )
        state.epoch = epoch
        evaluation = _evaluate_if_due(run, epoch)  # every rank runs its shard
        if run.dist.is_main:
            _end_epoch(run, state, epoch, epoch_values, evaluation)
        barrier(run.dist)
        if broadcast_object(stopped_early(cfg, state), run.dist):
            if run.dist.is_main:
                log.info(
                    f"early stopping: segm AP has not improved for {state.stale_evals} evaluations; "
                    f"best.pt holds epoch {state.best_epoch} (segm AP {state.best_metric:.4f})"
                )
            break


def _evaluate_if_due(run: Run, epoch: int) -> Evaluation | None:
    cfg = run.cfg
    if (epoch + 1) % cfg.train.eval_every != 0 and epoch != cfg.train.epochs - 1:
        return None
    staging = run.out_dir / REPORT_STAGING if cfg.eval.reports.html and run.dist.is_main else None
    return evaluate_coco(
        run.model,
        run.eval_set,
        run.device,
        cfg.eval,
        run.dist,
        staging,
        inference_precision(cfg.device, run.device),
        print_freq=cfg.train.print_freq * 5,
    )


def _end_epoch(
    run: Run, state: TrainState, epoch: int, epoch_values: dict[str, float], evaluation: Evaluation | None
) -> None:
    """Rank 0: keep the best checkpoint (and its report.html), write last.pt and metrics.json, report."""
    cfg = run.cfg
    if evaluation is not None:
        per_class = evaluation.metrics.pop("per_class", None)
        state.metrics = {**{k: float(v) for k, v in evaluation.metrics.items()}, "epoch": epoch}
        _print_metrics(epoch, state.metrics)
        epoch_values = {**epoch_values, **{f"val/{k}": state.metrics[k] for k in METRIC_KEYS if k in state.metrics}}
        run.logger.log_overlays(evaluation.samples[: cfg.train.num_overlays], run.class_names, epoch)
        run.logger.log_evaluation(evaluation.coco, per_class, epoch)
        segm_ap = state.metrics["segm_AP"]
        # An evaluation without ground truth to score (AP undefined) still yields a best.pt, beaten by any real AP.
        if state.record(epoch, segm_ap if math.isfinite(segm_ap) else -1.0):
            run.save("best.pt", state)
            _publish_best_report(run, {**state.metrics, "per_class": per_class}, epoch)
        discard_report(run.out_dir / REPORT_STAGING)
    run.save("last.pt", state)
    write_metrics(run.out_dir, cfg, state)
    run.logger.log_epoch({k: v for k, v in epoch_values.items() if math.isfinite(v)}, epoch)


def _publish_best_report(run: Run, metrics: dict[str, Any], epoch: int) -> None:
    if run.cfg.eval.reports.html:
        publish_report(
            run.out_dir / REPORT_STAGING,
            run.out_dir,
            json_safe(metrics),
            cast(dict, OmegaConf.to_container(run.cfg, resolve=True)),
            epoch,
        )


def _run_name(cfg: DictConfig, out_dir: Path) -> str:
    """``<experiment>/<run dir>``, e.g. ``smoke_maskrcnn_synthetic/multirun/<time>/3`` for job 3 of a sweep."""
    try:
        return str(out_dir.resolve().relative_to((Path(cfg.paths.log_dir) / cfg.task_name).resolve()))
    except ValueError:
        return out_dir.name


def _print_metrics(epoch: int, metrics: dict[str, float]) -> None:
    log.info(f"Epoch [{epoch}] " + "  ".join(f"{k}: {metrics[k]:.4f}" for k in METRIC_KEYS if k in metrics))


def _save_config_outside_hydra(cfg: DictConfig, out_dir: Path) -> None:
    """Hydra saves the composed config in .hydra/; runs started from Python get config.yaml instead."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
