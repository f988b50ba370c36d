"""Benchmark 2: a 5-threshold ``python evaluate.py -m eval.score_threshold=...`` sweep with the prediction
cache against one evaluation, and against the same sweep without the cache.

Each figure is the wall time of a real ``evaluate.py`` subprocess (interpreter start-up, imports and the
sweep-summary callback included) on a generated PennFudanPed-layout set with the smoke model
(``model.weights=null``), every run with a cold cache of its own. The cache is checked to have been hit by
jobs 2-5 of the cached sweep and by none of the uncached one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.fixtures import entry_script, generated, subprocess_env
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import check_process, median, run_process

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
DETECTIONS = 10


def _overrides(data_root: Path, num_eval: int, log_dir: Path) -> list[str]:
    return [
        "experiment=smoke",
        "device=cpu",
        "model.weights=null",
        # A random model calls nearly every proposal an object; cap the count so the mask head costs
        # what it costs for a trained model, not 10x more.
        f"model.detections_per_img={DETECTIONS}",
        "data=synthetic",
        f"data.root={data_root}",
        f"data.num_test={num_eval}",
        "data.max_eval_images=null",
        f"paths.log_dir={log_dir}",
    ]


def _single_metrics(log_dir: Path) -> dict:
    paths = list(log_dir.glob("evaluate/*/*/metrics.json"))
    return json.loads(paths[0].read_text()) if paths else {}


def _job_metrics(log_dir: Path) -> list[dict]:
    """metrics.json of each job of the (only) sweep under ``log_dir``, in job order."""
    jobs = sorted(log_dir.glob("evaluate/*/multirun/*/[0-9]*/metrics.json"), key=lambda p: int(p.parent.name))
    return [json.loads(p.read_text()) for p in jobs]


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> BenchResult:
    num_eval, repeats = (4, 1) if quick else (24, 2)
    data_root = generated(out_dir, "pennfudan", num_eval + 4, 160, 224, 3)
    work = out_dir / "_work" / "sweep"
    shutil.rmtree(work, ignore_errors=True)
    env = subprocess_env()
    sweep_arg = "eval.score_threshold=" + ",".join(str(t) for t in THRESHOLDS)

    def one(kind: str, k: int):
        log_dir = work / f"{kind}{k}"
        overrides = _overrides(data_root, num_eval, log_dir)
        cmd = (
            entry_script("evaluate")
            + {  # Hydra wants -m before the overrides
                "single": overrides + ["eval.score_threshold=0.5"],
                "sweep_cache": ["-m", *overrides, sweep_arg],
                "sweep_nocache": ["-m", *overrides, sweep_arg, "eval.cache=false"],
            }[kind]
        )
        run_ = run_process(cmd, work / f"{kind}{k}.log", cwd=work, env=env)
        check_process(run_, f"evaluate.py ({kind})")
        return run_, log_dir

    kinds = ["single", "sweep_cache", "sweep_nocache"]
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    dirs: dict[str, Path] = {}
    for k in range(repeats):
        # interleaved, so a change of machine load hits all of them alike; the uncached sweep (5 model runs,
        # for reference only) runs once, and not at all in a quick run
        for kind in kinds if k == 0 and not quick else kinds[:2]:
            proc, d = one(kind, k)
            seconds[kind].append(proc.seconds)
            cpu[kind].append(proc.cpu_seconds if proc.cpu_seconds is not None else float("nan"))
            dirs[kind] = d
    kinds = [k for k in kinds if seconds[k]]

    raw, hits, model_run_s = _check_runs(dirs, seconds, cpu)
    shutil.rmtree(work, ignore_errors=True)
    return _report(seconds, cpu, kinds, raw, hits, model_run_s, num_eval, repeats)


def _check_runs(
    dirs: dict[str, Path], seconds: dict[str, list[float]], cpu: dict[str, list[float]]
) -> tuple[dict, list[bool], float]:
    """The runs did what they should (the cached sweep ran the model once, cached and uncached sweeps agree);
    the raw figures, the cache hits per job and the model-run seconds of the single evaluation."""
    single_metrics = _single_metrics(dirs["single"])
    model_run_s = single_metrics.get("time_total_ms_per_image", 0.0) * single_metrics.get("num_images", 0) / 1000
    cached_jobs = _job_metrics(dirs["sweep_cache"])
    hits = [bool(m.get("prediction_cache_hit")) for m in cached_jobs]
    if len(cached_jobs) != len(THRESHOLDS) or hits != [False] + [True] * (len(THRESHOLDS) - 1):
        raise AssertionError(f"the cached sweep should run the model once and hit the cache 4 times; hits: {hits}")
    summary = list((dirs["sweep_cache"]).glob("evaluate/*/multirun/*/sweep_summary.csv"))
    if not summary:
        raise AssertionError("the cached sweep wrote no sweep_summary.csv")
    raw: dict = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "model_run_s": model_run_s,
        "cache_hits_per_job": hits,
        "segm_AP_per_job": [m.get("segm_AP") for m in cached_jobs],
        "mean_iou_per_job": [m.get("mean_iou") for m in cached_jobs],
        "num_predictions_per_job": [m.get("num_predictions") for m in cached_jobs],
    }
    if "sweep_nocache" in dirs:
        uncached = _job_metrics(dirs["sweep_nocache"])
        raw["nocache_hits_per_job"] = [bool(m.get("prediction_cache_hit")) for m in uncached]
        if any(raw["nocache_hits_per_job"]):
            raise AssertionError("the sweep with eval.cache=false hit the cache")
        same = [
            (a.get("segm_AP"), a.get("mean_iou")) == (b.get("segm_AP"), b.get("mean_iou"))
            for a, b in zip(cached_jobs, uncached)
        ]
        raw["cached_equals_uncached_metrics"] = same
        if not all(same):
            raise AssertionError("metrics of the cached sweep differ from the uncached sweep's")
    return raw, hits, model_run_s


def _report(
    seconds: dict[str, list[float]],
    cpu: dict[str, list[float]],
    kinds: list[str],
    raw: dict,
    hits: list[bool],
    model_run_s: float,
    num_eval: int,
    repeats: int,
) -> BenchResult:

    single = median(seconds["single"])
    result = BenchResult(
        "sweep",
        f"{len(THRESHOLDS)}-threshold evaluate.py -m sweep vs one evaluation ({num_eval} images)",
        project="python evaluate.py -m eval.score_threshold=0.3,...,0.7 (prediction cache on: the model runs once)",
        baseline="python evaluate.py eval.score_threshold=0.5 (one evaluation, model run included)",
        settings={
            "eval_images": num_eval,
            "image_size": "224x160",
            "model": f"smoke (resnet18-FPN, weights=null, min_size 192, detections_per_img {DETECTIONS})",
            "repeats": repeats,
            "thresholds": list(THRESHOLDS),
        },
        raw=raw,
    )
    cached = median(seconds["sweep_cache"])
    result.add("sweep with cache / one evaluation", cached, single, "s", cached / single, Target("<=", 1.5))
    cpu_single, cpu_cached = median(cpu["single"]), median(cpu["sweep_cache"])
    result.add(
        "  the same in CPU time",
        cpu_cached,
        cpu_single,
        "s",
        cpu_cached / cpu_single,
        note="user + system seconds of the process: less sensitive than wall time to other work on the machine",
    )
    if "sweep_nocache" in kinds:
        nocache = median(seconds["sweep_nocache"])
        result.add(
            "sweep without cache / one evaluation",
            nocache,
            single,
            "s",
            nocache / single,
            note="expected about 5x (the model runs in every job); for reference, no target",
        )
    result.notes.append(
        "wall time of whole subprocesses (start-up and imports included), each with a cold cache of its own; "
        f"cache hits per job of the cached sweep: {hits}; "
        + (
            "metrics of the cached and uncached sweeps are identical job by job"
            if "sweep_nocache" in kinds
            else "quick run: the uncached sweep is skipped"
        )
    )
    result.notes.append(
        f"the model run (warm-up excluded) is {model_run_s:.1f} s of the single evaluation's {single:.1f} s; the "
        "rest is start-up, imports, model build and scoring. An uncached sweep costs about 1 + 4 x (model run + "
        "scoring) / (one evaluation)"
    )
    result.notes.append(
        f"medians of {repeats} run(s) of the single evaluation and the cached sweep; "
        f"{len(seconds['sweep_nocache'])} of the uncached sweep"
    )
    return result
