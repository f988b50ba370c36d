"""torchrun / DistributedDataParallel helpers. Single-process runs see world_size 1 and rank 0."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from insseg.utils.slurm import export_slurm_rendezvous


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (nccl on CUDA, gloo on CPU); without
    torchrun, in a task that srun started, the same variables are derived from SLURM's (insseg.utils.slurm)."""
    export_slurm_rendezvous()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def reduce_mean(values: dict[str, torch.Tensor], info: DistInfo) -> dict[str, float]:
    """The mean of each scalar over all ranks, the same on every rank (one all-reduce).

    Every rank then takes the same decisions from it: a NaN on one rank is a NaN on all, so all stop
    together instead of the others waiting in the next gradient all-reduce.
    """
    keys = list(values)  # the same model on every rank: the same keys in the same order
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    if info.enabled:
        dist.all_reduce(stacked)
        stacked /= info.world_size
    return dict(zip(keys, stacked.tolist()))


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
