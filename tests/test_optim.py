"""The optimizer and learning-rate schedule: linear lr scaling, warm-up, step/multistep/cosine, resume position."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from insseg.config import compose_config
from insseg.engine.optim import build_lr_scheduler, build_optimizer, build_schedule, describe_optimizer, effective_lr
from insseg.engine.trainer import training_amp
from insseg.errors import ConfigError


def train_cfg(**kw):
    base = dict(
        lr=0.01,
        scale_lr=True,
        batch_size=2,
        momentum=0.9,
        weight_decay=0.0,
        lr_schedule="step",
        lr_step_size=3,
        lr_milestones=[],
        lr_gamma=0.1,
        warmup_iters=0,
        warmup_factor=0.001,
        epochs=6,
    )
    return OmegaConf.create({**base, **kw})


def test_lr_scales_linearly_with_the_total_batch() -> None:
    # torchvision's reference: 0.02 for 8 GPUs x 2 images is 0.02 / 8 = 0.0025 for one process of 2 images.
    assert effective_lr(train_cfg(lr=0.0025), world_size=8) == pytest.approx(0.02)
    assert effective_lr(train_cfg(lr=0.005), world_size=8) == pytest.approx(0.04)
    assert effective_lr(train_cfg(lr=0.005), world_size=1) == pytest.approx(0.005)
    assert effective_lr(train_cfg(lr=0.005, batch_size=4), world_size=2) == pytest.approx(0.02)
    assert effective_lr(train_cfg(lr=0.005, batch_size=1), world_size=1) == pytest.approx(0.0025)
    assert effective_lr(train_cfg(lr=0.005, scale_lr=False), world_size=8) == 0.005
    text = describe_optimizer(train_cfg(lr=0.0025), 8, build_schedule(train_cfg(lr=0.0025), 8, 10))
    assert text.startswith("optimizer: SGD lr 0.02 (train.lr 0.0025 x total batch 16 (8 process(es) x 2) / 2)")


def test_warm_up_then_step() -> None:
    s = build_schedule(train_cfg(warmup_iters=5), world_size=1, iters_per_epoch=10)
    assert s.factor(0) == pytest.approx(0.001)
    assert s.factor(2) == pytest.approx(0.001 * 0.6 + 0.4)  # linear from 0.001 to 1 over 5 iterations
    assert s.factor(5) == s.factor(29) == 1.0
    assert s.factor(30) == pytest.approx(0.1) and s.factor(59) == pytest.approx(0.1)  # epochs 3-5
    # Warm-up never runs past epoch 0.
    assert build_schedule(train_cfg(warmup_iters=1000), 1, 10).warmup_iters == 10


def test_multistep_and_cosine() -> None:
    s = build_schedule(train_cfg(lr_schedule="multistep", lr_milestones=[2, 4]), 1, iters_per_epoch=10)
    assert [s.factor(10 * e) for e in range(6)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    c = build_schedule(train_cfg(lr_schedule="cosine", epochs=4), 1, iters_per_epoch=10)
    assert c.factor(0) == 1.0 and c.factor(20) == pytest.approx(0.5) and c.factor(40) == pytest.approx(0.0)
    assert c.factor(10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    warm = build_schedule(train_cfg(lr_schedule="cosine", epochs=4, warmup_iters=4), 1, iters_per_epoch=10)
    assert warm.factor(2) == pytest.approx(c.factor(2) * (0.001 * 0.5 + 0.5))
    assert "lr at the start of each epoch (epoch 0: after warm-up): 0.01, 0.00854, 0.005, 0.00146" in c.describe()


@pytest.mark.parametrize("kind", ["step", "multistep", "cosine"])
def test_scheduler_follows_the_schedule_and_resumes_in_place(kind: str) -> None:
    cfg = train_cfg(lr_schedule=kind, lr_milestones=[1, 2], lr_step_size=1, warmup_iters=3, epochs=3)
    schedule = build_schedule(cfg, 1, iters_per_epoch=4)
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg, schedule)
    scheduler = build_lr_scheduler(optimizer, schedule)
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([schedule.lr_at(i) for i in range(12)])
    # Resuming after epoch 0 (4 iterations) continues where the uninterrupted run was.
    resumed = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg, schedule)
    resumed.load_state_dict(optimizer.state_dict())
    build_lr_scheduler(resumed, schedule, start_iter=4)
    assert resumed.param_groups[0]["lr"] == pytest.approx(seen[4])


def test_schedule_settings_are_checked(tmp_path) -> None:
    for overrides, message in [
        (["train.lr_schedule=linear"], "train.lr_schedule"),
        (["train.lr_schedule=multistep"], "train.lr_milestones"),
        (["train.lr_schedule=multistep", "train.lr_milestones=[4,2]"], "increasing"),
        (["train.early_stopping=0"], "train.early_stopping"),
        (["logger=csv", "logger.name=wandb"], "logger.name"),
    ]:
        with pytest.raises(ConfigError, match=message):
            compose_config("train", ["experiment=smoke", *overrides], output_dir=tmp_path)


def test_training_amp_follows_train_amp_not_device_amp() -> None:
    cfg = OmegaConf.create({"train": {"amp": True}, "device": {"amp": False}})
    assert training_amp(cfg, torch.device("cuda")) and not training_amp(cfg, torch.device("cpu"))
    cfg.train.amp = False
    cfg.device.amp = True
    assert not training_amp(cfg, torch.device("cuda"))
