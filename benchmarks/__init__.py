"""Benchmarks: the project's path against a published baseline, same process, same inputs, same weights.

    python -m benchmarks <name> [<name> ...] | all  [--quick] [--out DIR]

Each benchmark prints a table (measured figures, ratio against the baseline, target, pass or miss) and writes
``<out>/<name>.json`` (default ``bench_results/``). Speed targets live here, never in tests. See
docs/benchmarks.md for what each one measures.
"""

from __future__ import annotations

# name -> (module, device the targets are defined on). CPU ones run anywhere; GPU ones skip without CUDA.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "matching": ("benchmarks.matching", "cpu"),
    "sweep": ("benchmarks.sweep", "cpu"),
    "memory": ("benchmarks.memory", "cpu"),
    "predict_overhead": ("benchmarks.predict_overhead", "cpu"),
    "data_pipeline": ("benchmarks.data_pipeline", "cpu"),
    "sharded": ("benchmarks.sharded", "cpu"),
    "coco_scoring": ("benchmarks.coco_scoring", "cpu"),
    "boundary_scoring": ("benchmarks.boundary_scoring", "cpu"),
    "reports": ("benchmarks.reports_overhead", "cpu"),
    "coco_data": ("benchmarks.coco_data", "cpu"),
    "compare_bootstrap": ("benchmarks.compare_bootstrap", "cpu"),
    "gpu_inference": ("benchmarks.gpu_inference", "cuda"),
    "gpu_training": ("benchmarks.gpu_training", "cuda"),
    "gpu_refinemask": ("benchmarks.gpu_refinemask", "cuda"),
}

__all__ = ["BENCHMARKS"]
