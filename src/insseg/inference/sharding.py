"""Inference past one process: under torchrun each rank runs the model on its shard of the images and the
records are gathered to rank 0, which scores and writes once.

Shards interleave (rank r takes images r, r + N, r + 2N, ...): no image twice, none dropped, and ranks get
similar mixes of large and small images. Gathering restores the source order, so the records, and everything
computed from them, are the ones a single process produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch.distributed as dist

from insseg.inference.sources import ImageSource
from insseg.utils.distributed import DistInfo

T = TypeVar("T")


def shard_indices(num_items: int, info: DistInfo) -> list[int]:
    """The positions this rank processes."""
    return list(range(info.rank, num_items, info.world_size))


class ShardSource:
    """The images of ``source`` at ``indices``, under their own names and ids."""

    def __init__(self, source: ImageSource, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, index: int) -> str:
        return self.source.name(self.indices[index])

    def load(self, index: int) -> np.ndarray:
        return self.source.load(self.indices[index])

    def image_id(self, index: int) -> int | None:
        return self.source.image_id(self.indices[index])


def gather_in_order(items: list[T], positions: list[int], info: DistInfo) -> list[T] | None:
    """Every rank's ``items`` (at source ``positions``) on rank 0, in source order; None on the other ranks.
    A single process gets its own items back."""
    if not info.enabled:
        return items
    gathered: list[list[tuple[int, T]]] | None = [[] for _ in range(info.world_size)] if info.is_main else None
    dist.gather_object(list(zip(positions, items)), gathered, dst=0)
    if gathered is None:
        return None
    return [item for _, item in sorted((pair for part in gathered for pair in part), key=lambda p: p[0])]
