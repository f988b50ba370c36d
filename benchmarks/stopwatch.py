"""Honest timing: warm-up excluded, CUDA synchronised, several repeats, median reported; peak RSS of a
subprocess from the kernel's own accounting."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch


def sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | str | None = None) -> float:
    """Seconds ``fn`` takes, with the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def repeat(
    fn: Callable[[], object], repeats: int, warmup: int = 1, device: torch.device | str | None = None
) -> list[float]:
    """``warmup`` untimed calls, then the seconds of each of ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    return [timed(fn, device) for _ in range(repeats)]


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, device: torch.device | str | None = None
) -> dict[str, list[float]]:
    """Like :func:`repeat` for several contenders, alternating them each round so that a change of machine
    load during the run hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class ProcessRun:
    seconds: float
    peak_rss_bytes: int | None
    returncode: int
    log: Path
    cpu_seconds: float | None = None  # user + system time of the child and its waited-for children

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def run_process(
    cmd: Sequence[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900
) -> ProcessRun:
    """Run ``cmd`` with its output in ``log``; wall seconds, CPU seconds and peak RSS (the kernel's accounting
    of this very child and the children it waited for, from ``wait4``; psutil sampling where there is none)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                seconds = time.perf_counter() - start
                proc.returncode = os.waitstatus_to_exitcode(status)
                scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
                peak: int | None = int(usage.ru_maxrss) * scale
                cpu: float | None = usage.ru_utime + usage.ru_stime
            else:  # pragma: no cover - Windows
                peak, cpu = _poll_peak_rss(proc), None
                seconds = time.perf_counter() - start
        finally:
            killer.cancel()
    return ProcessRun(seconds, peak, int(proc.returncode), log, cpu)


def _poll_peak_rss(proc: subprocess.Popen) -> int | None:  # pragma: no cover - Windows
    try:
        import psutil
    except ImportError:
        proc.wait()
        return None
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):  # the process ended between poll() and the reading
            peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True)))
        time.sleep(0.02)
    return peak


def check_process(run: ProcessRun, what: str) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed with exit status {run.returncode} (log {run.log}):\n{run.tail()}")
