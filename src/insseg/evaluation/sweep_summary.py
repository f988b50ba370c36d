"""One table for a whole sweep: sweep_summary.csv / .xlsx / .png and sweep_report.html in the sweep dir.

A Hydra callback (``on_multirun_end``, which runs on the launching machine once every job has returned, for
the basic, joblib, submitit and Ray launchers alike) reads each job dir of the sweep: its overrides
(``.hydra/overrides.yaml``) and its ``metrics.json``. One row per job: ``job``, every overridden parameter,
``status`` (ok, or failed when the job left no metrics.json), then every metric. The plot shows the main
metrics against the swept numeric parameter (``eval.score_threshold`` first), one line per combination of the
other swept parameters; without a numeric one it shows bars per job.

Usable without Hydra: ``write_sweep_summary(sweep_dir)``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from insseg.evaluation.reports.sweep_report import write_sweep_report
from insseg.utils.atomic import atomic_path, atomic_write_text
from insseg.utils.logging import log

PLOT_METRICS = (
    "segm_AP",
    "bbox_AP",
    "mean_iou",
    "mean_f1",
    "mean_iou_with_bg",
    "instance_precision",
    "instance_recall",
    "instance_f1",
)


def _job_sort_key(path: Path) -> tuple[int, Any]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def _parse_value(text: str) -> Any:
    """An override's value as YAML reads it (0.5 -> float, true -> bool, maskrcnn -> str)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


def _overrides(job_dir: Path) -> list[tuple[str, Any]]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    out = []
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        out.append((key.lstrip("+~"), _parse_value(value)))
    return out


def collect_rows(sweep_dir: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The summary's columns and rows (one per job dir: a subfolder holding ``.hydra/``)."""
    sweep_dir = Path(sweep_dir)
    job_dirs = sorted((d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()), key=_job_sort_key)
    param_cols: list[str] = []
    metric_cols: list[str] = []
    rows = []
    for job_dir in job_dirs:
        row: dict[str, Any] = {"job": int(job_dir.name) if job_dir.name.isdigit() else job_dir.name}
        for key, value in _overrides(job_dir):
            row[key] = value
            if key not in param_cols:
                param_cols.append(key)
        metrics_path = job_dir / "metrics.json"
        metrics: dict[str, Any] = {}
        if metrics_path.is_file():
            try:
                metrics = json.loads(metrics_path.read_text())
            except ValueError:
                metrics = {}
        row["status"] = "ok" if metrics else "failed"
        for key, value in metrics.items():
            if isinstance(value, (dict, list)):  # per_class: in each job's report.html and metrics.xlsx
                continue
            if key in param_cols or key in ("job", "status"):
                key = f"metric.{key}"
            row[key] = value
            if key not in metric_cols:
                metric_cols.append(key)
        rows.append(row)
    return ["job", *param_cols, "status", *metric_cols], rows


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v if isinstance(v, (int, float, str, bool)) else json.dumps(v)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow(["" if _cell(row.get(c)) is None else _cell(row.get(c)) for c in columns])


def write_xlsx(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "sweep"
    ws.append(list(columns))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "B2"
    for row in rows:
        ws.append([_cell(row.get(c)) for c in columns])
    with atomic_path(path) as tmp:
        wb.save(tmp)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def write_plot(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]], params: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    metrics = [m for m in PLOT_METRICS if any(_is_number(r.get(m)) for r in ok)]
    varying = [p for p in params if len({json.dumps(r.get(p), default=str) for r in rows}) > 1]
    numeric = [p for p in varying if all(_is_number(r.get(p)) for r in ok)]
    x_param = "eval.score_threshold" if "eval.score_threshold" in numeric else (numeric[0] if numeric else None)
    cols = min(4, max(1, len(metrics)))
    nrows = max(1, math.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.0 * nrows), squeeze=False)
    others = [p for p in varying if p != x_param]
    for ax, metric in zip(axes.flat, metrics):
        if x_param is not None:
            groups: dict[str, list[dict[str, Any]]] = {}
            for r in ok:
                groups.setdefault(", ".join(f"{p}={r.get(p)}" for p in others), []).append(r)
            for label, rs in groups.items():
                rs = sorted((r for r in rs if _is_number(r.get(metric))), key=lambda r: r[x_param])
                ax.plot([r[x_param] for r in rs], [r[metric] for r in rs], marker="o", label=label or None)
            ax.set_xlabel(x_param)
            if others and metric == metrics[0]:
                ax.legend(fontsize=6)
        else:
            labels = [", ".join(f"{r.get(p)}" for p in varying) or str(r["job"]) for r in ok]
            values = [r.get(metric) if _is_number(r.get(metric)) else 0.0 for r in ok]
            ax.bar(range(len(ok)), values)
            ax.set_xticks(range(len(ok)), labels, rotation=45, ha="right", fontsize=6)
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_sweep_summary(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write sweep_summary.csv, .xlsx and .png into ``sweep_dir``; returns the rows."""
    sweep_dir = Path(sweep_dir)
    columns, rows = collect_rows(sweep_dir)
    if not rows:
        return rows
    params = columns[1 : columns.index("status")]
    write_csv(sweep_dir / "sweep_summary.csv", columns, rows)
    write_xlsx(sweep_dir / "sweep_summary.xlsx", columns, rows)
    try:
        write_plot(sweep_dir / "sweep_summary.png", columns, rows, params)
    except Exception as e:  # the table matters more than the picture
        atomic_write_text(sweep_dir / "sweep_summary.png.error.txt", f"{type(e).__name__}: {e}\n")
    write_sweep_report(sweep_dir, params, rows)
    failed = [str(r["job"]) for r in rows if r["status"] != "ok"]
    log.info(
        f"sweep summary of {len(rows)} job(s) in {sweep_dir}/sweep_summary.{{csv,xlsx,png}} and sweep_report.html"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return rows


class SweepSummaryCallback(Callback):
    """Wired in conf/evaluate.yaml under ``hydra.callbacks``."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if sweep_dir.is_dir():
            write_sweep_summary(sweep_dir)
