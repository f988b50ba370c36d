"""Sharded evaluation: ``torchrun --nproc_per_node=2 evaluate.py`` against one process on the same cores.

Project: 2 processes of 1 thread each, each running the model on its shard, records gathered to rank 0.
Baseline: 1 process using every core (``device.num_threads`` = the core count); for reference also 1 process
of 1 thread (how well the shards scale). Both evaluate the same images
with the same random-weights smoke model; the figure is images/s of the model run (``model_run_s`` in
metrics.json: decode, forward, postprocess and, sharded, the gather), and the metrics must be identical.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from benchmarks.fixtures import entry_script
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import check_process, median, run_process

TIMING = ("time_", "images_per_second", "timed_images", "processes", "model_run_s")


def _overrides(work: Path, num_images: int, run_dir: Path) -> list[str]:
    return [
        "experiment=smoke",
        "model.weights=null",
        "device=cpu",
        "model.detections_per_img=10",
        f"data.synthetic.num_images={num_images + 4}",
        f"data.num_test={num_images}",
        "data.max_eval_images=null",
        "eval.cache=false",
        "eval.save_masks=false",
        "eval.warmup_iters=0",
        f"paths.data_dir={work / 'data'}",
        f"paths.log_dir={work / 'logs'}",
        f"hydra.run.dir={run_dir}",
    ]


def _differences(one: dict, two: dict) -> dict:
    """Keys whose values differ (timing aside; floats beyond a relative 1e-6)."""
    out = {}
    for key in set(one) | set(two):
        a, b = one.get(key), two.get(key)
        if key.startswith(TIMING) or a == b:
            continue
        if isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-6 * max(abs(a), abs(b)):
            continue
        out[key] = (a, b)
    return out


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> BenchResult:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    num_images, repeats = (4, 1) if quick else (40, 2)
    work = out_dir / "sharded_work"
    shutil.rmtree(work, ignore_errors=True)
    rates: dict[str, list[float]] = {"one": [], "one_thread": [], "two": []}
    metrics: dict[str, dict] = {}
    for k in range(repeats):  # interleaved, so a change of machine load hits both alike
        for kind in rates:
            run_dir = work / f"{kind}{k}"
            overrides = _overrides(work, num_images, run_dir)
            if kind.startswith("one"):
                threads = cores if kind == "one" else 1
                cmd = entry_script("evaluate") + overrides + [f"device.num_threads={threads}"]
            else:
                cmd = [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node=2",
                    *entry_script("evaluate")[1:],
                    *overrides,
                    "device.num_threads=1",
                ]
            proc = run_process(cmd, work / f"{kind}{k}.log", cwd=Path.cwd(), env={**os.environ, "OMP_NUM_THREADS": "1"})
            check_process(proc, f"evaluate.py ({kind} process)")
            metrics[kind] = json.loads((run_dir / "metrics.json").read_text())
            rates[kind].append(metrics[kind]["num_images"] / metrics[kind]["model_run_s"])
    differ = _differences(metrics["one"], metrics["two"])
    if differ:
        raise AssertionError(f"2-process evaluation gave other metrics than 1 process: {differ}")
    shutil.rmtree(work, ignore_errors=True)
    result = BenchResult(
        "sharded",
        f"evaluate.py on {num_images} images: 2 processes (torchrun, gloo) vs 1",
        project="torchrun --nproc_per_node=2 evaluate.py (1 thread each, shards gathered to rank 0)",
        baseline=f"python evaluate.py (1 process, {cores} threads)",
        settings={
            "images": num_images,
            "model": "smoke (resnet18-FPN, weights=null, min_size 192)",
            "repeats": repeats,
            "cores": cores,
        },
        raw={"images_per_s": rates},
    )
    two, one = median(rates["two"]), median(rates["one"])
    result.add("images/s of the model run", two, one, "img/s", two / one, Target(">=", 1.6))
    single = median(rates["one_thread"])
    result.add(
        "  against 1 process of 1 thread",
        two,
        single,
        "img/s",
        two / single,
        note="for reference: how well two shards scale; the target row compares with all cores in one process",
    )
    result.notes.append(
        "metrics.json equal apart from timing keys (floats within 1e-6: other thread counts sum "
        "float32 in another order; with equal threads tests/test_sharded.py finds them identical)"
    )
    return result
