"""``compare_runs(run_dirs, out_dir)``: the paired comparison of evaluate.py runs, usable without the CLI.

1. Read every run dir (config, dataset split, predictions.json, metrics.json) and refuse, before anything is
   scored or written, runs on other images or with other evaluation settings (:mod:`insseg.compare.checks`).
2. Rebuild each run's evaluation once, per image (:mod:`insseg.compare.runs`), and check its ground truth
   against the first run's.
3. Draw the resamples once (seeded) and compute every metric of every run on each (:mod:`insseg.compare.
   bootstrap`); each run after the first is compared with the first.
4. Write compare.json, compare.xlsx and compare.html (with its pictures in compare_files/) into ``out_dir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from insseg.compare.bootstrap import resample_weights
from insseg.compare.checks import check_same_ground_truth, check_same_images, check_settings
from insseg.compare.result import TOP_IMAGES, comparison, distributions
from insseg.compare.runs import RunData, prepare_run, score_run
from insseg.compare.writers import write_outputs
from insseg.errors import InssegError
from insseg.utils.logging import ensure_console_logging, log

DEFAULT_RESAMPLES = 1000


def rebuild_runs(
    run_dirs: Sequence[str | Path], allow_settings_differ: bool = False
) -> tuple[list[RunData], list[str]]:
    """Steps 1 and 2: the rebuilt runs and the setting differences that were allowed."""
    if len(run_dirs) < 2:
        raise InssegError(f"compare needs at least two run dirs, got {len(run_dirs)}")
    prepared = [prepare_run(d) for d in run_dirs]
    check_same_images(prepared)
    differences = check_settings(prepared, allow_settings_differ)
    if not prepared[0].file_names:
        raise InssegError(f"{prepared[0].run_dir}: the evaluated split holds no images")
    runs = []
    for k, p in enumerate(prepared):
        log.info(f"rebuilding the evaluation of {p.run_dir} ({k + 1} of {len(prepared)})")
        runs.append(score_run(p, header=f"rebuild {k + 1}/{len(prepared)}"))
    check_same_ground_truth(runs)
    return runs, differences


def bootstrap_result(
    runs: Sequence[RunData], resamples: int, seed: int, differences: Sequence[str] = (), top: int = TOP_IMAGES
) -> dict[str, Any]:
    """Step 3: compare.json's content (see docs/evaluation.md)."""
    if resamples < 1:
        raise InssegError(f"--resamples must be at least 1, got {resamples}")
    n = len(runs[0].matches)
    weights = resample_weights(n, resamples, seed)
    dists = [distributions(r, weights) for r in runs]
    pairs = [comparison(runs[0], runs[k], dists[0], dists[k], top) for k in range(1, len(runs))]
    result: dict[str, Any] = {
        "runs": [str(r.run_dir) for r in runs],
        "num_images": n,
        "resamples": resamples,
        "seed": seed,
        "settings_differ": list(differences),
        **pairs[0],
    }
    if len(pairs) > 1:
        result["others"] = [{"run": str(runs[k].run_dir), **p} for k, p in enumerate(pairs[1:], start=2)]
    return result


def compare_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    allow_settings_differ: bool = False,
    top: int = TOP_IMAGES,
) -> dict[str, Any]:
    """Compare the runs (each against the first) and write compare.json, compare.xlsx and compare.html into
    ``out_dir``; returns compare.json's content. An :class:`InssegError` (nothing written) when the runs are
    not comparable."""
    ensure_console_logging()
    if resamples < 1:
        raise InssegError(f"--resamples must be at least 1, got {resamples}")
    runs, differences = rebuild_runs(run_dirs, allow_settings_differ)
    result = bootstrap_result(runs, resamples, seed, differences, top)
    write_outputs(Path(out_dir), result, runs)
    return result
