"""Benchmarks: the project's path against a published baseline, same process, same inputs, same weights.

    python -m insseg.bench <name> [<name> ...] | all  [--quick] [--out DIR]

Each benchmark prints a table (measured figures, ratio against the baseline, target, pass or miss) and writes
``<out>/<name>.json`` (default ``bench_results/``). Speed targets live here, never in tests. See
docs/benchmarks.md for what each one measures.
"""

from __future__ import annotations

# name -> (module, device the targets are defined on). CPU ones run anywhere; GPU ones skip without CUDA.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "matching": ("insseg.bench.matching", "cpu"),
    "sweep": ("insseg.bench.sweep", "cpu"),
    "memory": ("insseg.bench.memory", "cpu"),
    "predict_overhead": ("insseg.bench.predict_overhead", "cpu"),
    "data_pipeline": ("insseg.bench.data_pipeline", "cpu"),
    "sharded": ("insseg.bench.sharded", "cpu"),
    "coco_scoring": ("insseg.bench.coco_scoring", "cpu"),
    "reports": ("insseg.bench.reports", "cpu"),
    "coco_data": ("insseg.bench.coco_data", "cpu"),
    "gpu_inference": ("insseg.bench.gpu_inference", "cuda"),
    "gpu_training": ("insseg.bench.gpu_training", "cuda"),
    "gpu_refinemask": ("insseg.bench.gpu_refinemask", "cuda"),
}

__all__ = ["BENCHMARKS"]
