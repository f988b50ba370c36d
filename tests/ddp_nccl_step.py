"""Run under torchrun (one process) by test_cuda.py: join an NCCL process group and train the smoke model for one
epoch wrapped in DistributedDataParallel with the trainer's own loop, DistributedSampler and loss averaging.
Prints ``nccl ok <mean loss>`` on success."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from insseg.config import compose_config
from insseg.data import build_dataset
from insseg.data.dataset import collate
from insseg.engine.loggers.base import RunLogger
from insseg.engine.trainer import train_one_epoch
from insseg.models import build_model
from insseg.utils.distributed import DistInfo

if __name__ == "__main__":
    out = Path(sys.argv[1])
    cfg = compose_config("train", sys.argv[2:], output_dir=out)
    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl")
    assert dist.get_backend() == "nccl"
    device = torch.device("cuda", local_rank)
    train_set = build_dataset(cfg.data, "train")
    model = build_model(cfg.model, train_set.class_names, fit_to_dataset=True).to(device)
    model = DistributedDataParallel(model, device_ids=[local_rank])
    sampler = DistributedSampler(train_set, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_set, batch_size=2, sampler=sampler, collate_fn=collate, pin_memory=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    info = DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)
    values = train_one_epoch(model, optimizer, loader, device, 0, scaler, cfg, RunLogger(), False, None, info)
    total = torch.ones(1, device=device)
    dist.all_reduce(total)  # an explicit NCCL collective besides DDP's gradient buckets
    assert total.item() == dist.get_world_size()
    dist.barrier()
    dist.destroy_process_group()
    print("nccl ok", values.get("epoch/loss", values))
