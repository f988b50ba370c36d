"""Progress lines for long loops: ETA, smoothed losses, data time, peak memory (as torchvision's
references print them). Plain lines rather than a redrawn bar, so logs of batch jobs stay readable."""

from __future__ import annotations

import datetime
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

from insseg.utils.logging import log

T = TypeVar("T")


class SmoothedValue:
    """A windowed median/mean next to the global average."""

    def __init__(self, window: int = 20) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.total = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        self.values.append(value)
        self.total += value * n
        self.count += n

    @property
    def median(self) -> float:
        return float(torch.tensor(list(self.values)).median()) if self.values else 0.0

    @property
    def global_avg(self) -> float:
        return self.total / max(self.count, 1)

    def __str__(self) -> str:
        return f"{self.median:.4f} ({self.global_avg:.4f})"


class MetricLogger:
    def __init__(self, enabled: bool = True) -> None:
        self.meters: dict[str, SmoothedValue] = defaultdict(SmoothedValue)
        self.enabled = enabled

    def update(self, **values: float) -> None:
        for k, v in values.items():
            self.meters[k].update(float(v))

    def log_every(self, iterable: Iterable[T], print_freq: int, header: str, total: int | None = None) -> Iterator[T]:
        total = len(iterable) if total is None else total  # type: ignore[arg-type]
        iter_time, data_time = SmoothedValue(), SmoothedValue()
        start = end = time.perf_counter()
        width = len(str(total))
        for i, item in enumerate(iterable):
            data_time.update(time.perf_counter() - end)
            yield item
            iter_time.update(time.perf_counter() - end)
            if self.enabled and (i % print_freq == 0 or i == total - 1):
                eta = datetime.timedelta(seconds=int(iter_time.global_avg * (total - i - 1)))
                meters = "  ".join(f"{k}: {m}" for k, m in self.meters.items())
                mem = ""
                if torch.cuda.is_available() and torch.cuda.is_initialized():
                    mem = f"  max mem: {torch.cuda.max_memory_allocated() / 2**20:.0f}MB"
                log.info(
                    f"{header} [{i:{width}d}/{total}]  eta: {eta}  {meters}  "
                    f"time: {iter_time.median:.3f}  data: {data_time.median:.3f}{mem}"
                )
            end = time.perf_counter()
        if self.enabled:
            elapsed = datetime.timedelta(seconds=int(time.perf_counter() - start))
            log.info(f"{header} total time: {elapsed} ({(time.perf_counter() - start) / max(total, 1):.3f} s/it)")
