"""Repeat-factor sampling, the official LVIS training recipe (Gupta et al. 2019; detectron2's
``RepeatFactorTrainingSampler``, mmdetection's ``ClassBalancedDataset``): images with rare categories are seen
more often.

For a category c in a fraction f(c) of the training images, r(c) = max(1, sqrt(t / f(c))) with t the threshold
(``data.repeat_factor_threshold``, 0.001 in the LVIS recipe); an image's factor is the largest r(c) over its
categories (1 without any). Each epoch an image is drawn floor(r) times, plus once more with probability
r - floor(r) (stochastic rounding, seeded per epoch), and the list is shuffled, as detectron2 draws it; the
expected epoch length is the sum of the factors.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from insseg.errors import ConfigError


def repeat_factors(image_categories: Sequence[set[int]], threshold: float) -> list[float]:
    """The repeat factor of each image from the category ids annotated in it."""
    num_images = max(1, len(image_categories))
    counts = Counter(c for cats in image_categories for c in cats)
    category_factor = {c: max(1.0, math.sqrt(threshold / (n / num_images))) for c, n in counts.items()}
    return [max((category_factor[c] for c in cats), default=1.0) for cats in image_categories]


def image_categories(reader: Any, indices: Sequence[int]) -> list[set[int]]:
    """The category ids of the (non-crowd) instances of each image, from a COCO-format reader's index."""
    index = getattr(reader, "index", None)
    if index is None:
        raise ConfigError(
            "data.repeat_factor_threshold needs COCO-format data (data.layout=coco or lvis), whose file lists the "
            "categories of every image; set it to null for this dataset"
        )
    return [{int(a["category_id"]) for a in index.anns[i] if not a.get("iscrowd", 0)} for i in indices]


class RepeatFactorSampler(Sampler[int]):
    """Positions into the dataset, each repeated by its stochastically rounded factor, shuffled; a new draw per
    :meth:`set_epoch` (the generator is seeded with ``seed + epoch``, so a resumed run draws the same epochs).
    Under DDP every rank draws the same list and takes every ``num_replicas``-th entry from ``rank`` (padded
    to a multiple of ``num_replicas``, so every rank has as many batches)."""

    def __init__(self, factors: Sequence[float], seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        self.factors = torch.as_tensor(list(factors), dtype=torch.float64)
        self.seed, self.num_replicas, self.rank = int(seed), int(num_replicas), int(rank)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._indices = self._draw()

    def _draw(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        whole = torch.floor(self.factors)
        repeats = whole + (torch.rand(len(self.factors), generator=g, dtype=torch.float64) < self.factors - whole)
        drawn = torch.repeat_interleave(torch.arange(len(self.factors)), repeats.long())
        indices: list[int] = drawn[torch.randperm(len(drawn), generator=g)].tolist()
        if self.num_replicas > 1:
            indices += indices[: (-len(indices)) % self.num_replicas]
            indices = indices[self.rank :: self.num_replicas]
        return indices

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)
