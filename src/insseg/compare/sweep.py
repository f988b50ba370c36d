"""``evaluate.py -m ...`` compares its jobs by itself: compare.json, compare.xlsx and compare.html in the sweep dir.

A Hydra callback (wired in conf/evaluate.yaml next to the sweep summary's) runs :func:`compare_runs` over the
jobs that finished (a metrics.json and a predictions.json), each against job 0, when the sweep ends. The
settings a sweep varies are the point of it (``eval.score_threshold=0.3,0.5``), so they may differ; jobs on
other images (``data=voc,coco``) are not compared: the callback logs why and the sweep still succeeds.
``hydra.callbacks.compare.resamples=200`` changes the number of resamples; ``...enabled=false`` turns it off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from insseg.compare.pipeline import DEFAULT_RESAMPLES, compare_runs
from insseg.errors import InssegError
from insseg.utils.logging import log


def finished_jobs(sweep_dir: Path) -> list[Path]:
    """The sweep's job dirs holding metrics.json and predictions.json, by job number."""
    jobs = [d for d in sweep_dir.iterdir() if (d / "metrics.json").is_file() and (d / "predictions.json").is_file()]
    return sorted(jobs, key=lambda d: (0, int(d.name), "") if d.name.isdigit() else (1, 0, d.name))


def compare_sweep(sweep_dir: str | Path, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any] | None:
    """Compare the finished jobs of ``sweep_dir`` into it; None (and a logged reason) when there is nothing to
    compare or the jobs are not comparable."""
    sweep_dir = Path(sweep_dir)
    jobs = finished_jobs(sweep_dir)
    if len(jobs) < 2:
        return None
    try:
        return compare_runs(jobs, sweep_dir, resamples, seed, allow_settings_differ=True)
    except InssegError as e:
        log.warning(f"sweep comparison skipped: {e}")
        return None


class SweepCompareCallback(Callback):
    def __init__(self, enabled: bool = True, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> None:
        self.enabled = enabled
        self.resamples = resamples
        self.seed = seed

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if self.enabled and sweep_dir.is_dir():
            compare_sweep(sweep_dir, self.resamples, self.seed)
