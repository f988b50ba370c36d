"""The best epoch's report in a training run dir.

Training evaluates every ``train.eval_every`` epochs, but report.html should show the best epoch. The trainer
gives the report evaluators a staging folder (e.g. ``<run dir>/.report_staging``) and, after an evaluation:
``publish_report(staging, run_dir, metrics, config, epoch)`` when the epoch is the new best (its pictures
replace the earlier best's and report.html is rewritten), else ``discard_report(staging)``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from insseg.evaluation.reports.confusion import FILE_NAME as CONFUSION_PNG
from insseg.evaluation.reports.gallery import DIR_NAME as GALLERY_DIR
from insseg.evaluation.reports.html_report import write_html_report
from insseg.evaluation.reports.pr_curves import DIR_NAME as PR_DIR

REPORT_PARTS = (PR_DIR, CONFUSION_PNG, GALLERY_DIR)


def publish_report(
    staging: str | Path,
    run_dir: str | Path,
    metrics: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    epoch: int | None = None,
) -> Path:
    """Move the staged pictures into ``run_dir`` (replacing the earlier best's, also parts this evaluation
    did not write) and write ``run_dir/report.html``; returns its path."""
    staging, run_dir = Path(staging), Path(run_dir)
    for part in REPORT_PARTS:
        target = run_dir / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if (staging / part).exists():
            shutil.move(str(staging / part), str(target))
    discard_report(staging)
    title = f"Training report: {run_dir.name}" + (f", best epoch {epoch}" if epoch is not None else "")
    return write_html_report(run_dir, metrics, config, title=title)


def discard_report(staging: str | Path) -> None:
    """Remove the staging folder of an evaluation that did not beat the best."""
    shutil.rmtree(staging, ignore_errors=True)
