"""sweep_report.html beside sweep_summary.*: the summary plot, the table, and a link to each job's report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from insseg.evaluation.reports.html_report import FILE_NAME as JOB_REPORT
from insseg.utils.atomic import atomic_write_text
from insseg.utils.html import Raw, esc, href, img, page, table

FILE_NAME = "sweep_report.html"
METRICS = ("segm_AP", "bbox_AP", "mean_iou", "mean_f1", "instance_precision", "instance_recall", "instance_f1")


def write_sweep_report(sweep_dir: str | Path, params: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``sweep_dir/sweep_report.html``: one row per job (its swept parameters, status, main metrics and
    a link to its report.html when it wrote one), under the summary plot."""
    sweep_dir = Path(sweep_dir)
    header = ["job", *params, "status", *METRICS]
    body_rows = []
    for row in rows:
        job = str(row["job"])
        report = sweep_dir / job / JOB_REPORT
        link = Raw(f'<a href="{href(job + "/" + JOB_REPORT)}">{esc(job)}</a>') if report.is_file() else job
        body_rows.append((link, *(row.get(p) for p in params), row.get("status"), *(row.get(m) for m in METRICS)))
    jobs_table = table(header, body_rows, shade=[False] * (len(params) + 2) + [True] * len(METRICS))
    files = [n for n in ("sweep_summary.csv", "sweep_summary.xlsx") if (sweep_dir / n).is_file()]
    parts = [f"<h1>Sweep: {esc(sweep_dir.name)}</h1><p>{esc(str(sweep_dir))}</p>"]
    if (sweep_dir / "sweep_summary.png").is_file():
        parts.append(img("sweep_summary.png", "sweep summary"))
    parts.append("<h2>Jobs</h2>" + jobs_table)
    if files:
        parts.append("<p>" + " · ".join(f'<a href="{href(n)}">{esc(n)}</a>' for n in files) + "</p>")
    text = page(f"Sweep {sweep_dir.name}", "\n".join(parts))
    path = sweep_dir / FILE_NAME
    atomic_write_text(path, text)
    return path
