"""Paired comparison of evaluation runs with bootstrap intervals: ``python -m insseg.compare RUN_A RUN_B ...``.

Which run is better, on which metric and class, and is the difference real: each run's evaluation is rebuilt
once per image from its run dir, then every metric of every run is recomputed on seeded resamples of the images
(:mod:`insseg.compare.bootstrap`). It reads run dirs, so it sits above the evaluation layer; nothing in
``insseg.evaluation`` imports it.
"""

from insseg.compare.pipeline import compare_runs

__all__ = ["compare_runs"]
