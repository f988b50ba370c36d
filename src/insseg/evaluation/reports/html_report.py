"""report.html: one self-contained page per run, opened from disk with no network.

Everything it shows comes from the run dir: metrics.json's values (passed in), pr_curves/, confusion_matrix.png,
gallery/gallery.json and the run's config. Pictures are relative links (the page works wherever the run dir is
copied); styles are inline; there are no scripts, web fonts or remote resources. Sections whose files a run
did not write (a report switched off) are left out.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from insseg.evaluation.coco import ALL_IOU_TYPES
from insseg.evaluation.reports.confusion import FILE_NAME as CONFUSION_PNG
from insseg.evaluation.reports.gallery import DIR_NAME as GALLERY_DIR
from insseg.evaluation.reports.per_class import per_class_keys
from insseg.evaluation.reports.pr_curves import DIR_NAME as PR_DIR
from insseg.utils.atomic import atomic_write_text
from insseg.utils.html import esc, fmt, href, img, page, table

FILE_NAME = "report.html"
HEADLINE = (
    "segm_AP",
    "boundary_AP",
    "segm_AP50",
    "segm_AP75",
    "boundary_AP50",
    "boundary_AP75",
    "bbox_AP",
    "bbox_AP50",
    "bbox_AP75",
    "mean_iou",
    "mean_f1",
    "mean_boundary_iou",
    "mean_iou_with_bg",
    "instance_precision",
    "instance_recall",
    "instance_f1",
    "num_images",
    "num_objects",
    "num_predictions",
    "score_threshold",
)
LINKED_FILES = ("metrics.json", "metrics.xlsx", "predictions.json", "masks")


def _headline(metrics: Mapping[str, Any]) -> str:
    rows = [(k, metrics[k]) for k in HEADLINE if k in metrics]
    others = [(k, v) for k, v in metrics.items() if k not in HEADLINE and not isinstance(v, (Mapping, list))]
    body = table(("metric", "value"), rows)
    if others:
        body += "<details><summary>all metrics</summary>" + table(("metric", "value"), others) + "</details>"
    return body


def _per_class(per_class: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> str:
    keys = per_class_keys(per_class)
    header = ("class", *keys)
    shade = [False] + [k.split("_", 1)[0] in ALL_IOU_TYPES for k in keys]
    groups = _frequency_groups(per_class)
    if groups is None:
        rows = [(name, *((row or {}).get(k) for k in keys)) for name, row in per_class.items()]
        note = "<p>AP from pycocotools' precision arrays (all areas, 100 detections); - : no ground truth.</p>"
        return note + table(header, rows, shade)
    out = [
        "<p>AP from lvis-api's precision arrays (all areas, 300 detections), grouped by category frequency; "
        "- : no ground truth in the evaluated images.</p>"
    ]
    for letter, title in (("r", "Rare"), ("c", "Common"), ("f", "Frequent")):
        names = groups.get(letter, [])
        summary = f"AP{letter} {fmt((metrics or {}).get(f'segm_AP{letter}'))} (segm)"
        rows = [(n, *((per_class[n] or {}).get(k) for k in keys)) for n in names]
        out.append(f"<h3>{esc(title)}: {len(names)} classes with ground truth, {esc(summary)}</h3>")
        out.append(table(header, rows, shade) if rows else "<p>none</p>")
    return "\n".join(out)


def _frequency_groups(per_class: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """Class names by frequency (r/c/f) when the rows carry one (LVIS), else None; classes without ground
    truth (no row) are left out of the groups."""
    if not any(row and "frequency" in row for row in per_class.values()):
        return None
    groups: dict[str, list[str]] = {}
    for name, row in per_class.items():
        if row:
            groups.setdefault(str(row.get("frequency")), []).append(name)
    return groups


def _pr_curves(run_dir: Path) -> str:
    parts = [
        img(f"{PR_DIR}/{name}.png", f"{name} PR curves")
        for t in ALL_IOU_TYPES
        for name in (t, f"{t}_per_class")
        if (run_dir / PR_DIR / f"{name}.png").is_file()
    ]
    if (run_dir / PR_DIR / "pr_curves.json").is_file():
        parts.append(f'<p>Arrays: <a href="{href(PR_DIR + "/pr_curves.json")}">pr_curves.json</a></p>')
    return "\n".join(parts)


def _gallery(run_dir: Path) -> str:
    entries = json.loads((run_dir / GALLERY_DIR / "gallery.json").read_text(encoding="utf-8"))
    legend = (
        '<p class="legend"><span style="background: rgb(0,158,115)">true positive</span>'
        '<span style="background: rgb(213,94,0)">false positive</span>'
        '<span style="background: rgb(86,180,233)">missed object</span></p>'
    )
    out = [legend]
    for group, title in (("worst", "Lowest mean IoU"), ("random", "Chosen at random (seeded)")):
        figs = []
        for e in (e for e in entries if e["group"] == group and (run_dir / e["file"]).is_file()):
            caption = (
                f"{e['image']}: mean IoU {fmt(e['mean_iou'])}, {e['true_positives']} TP, "
                f"{e['false_positives']} FP, {e['missed']} missed"
            )
            figs.append(f"<figure>{img(e['file'], e['image'])}<figcaption>{esc(caption)}</figcaption></figure>")
        if figs:
            out.append(f'<h3>{esc(title)}</h3><div class="grid">{"".join(figs)}</div>')
    return "\n".join(out)


def _timing(metrics: Mapping[str, Any]) -> str:
    rows = [(k, v) for k, v in metrics.items() if k.startswith("time_") or k in ("images_per_second", "timed_images")]
    return table(("timing", "value"), rows) if rows else "<p>Not measured (predictions read from a file).</p>"


def _config(run_dir: Path, config: Mapping[str, Any] | None) -> str:
    if config is None:
        path = run_dir / ".hydra" / "config.yaml"
        if not path.is_file():
            return ""
        text = path.read_text(encoding="utf-8")
    else:
        text = yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False)
    return f"<details><summary>resolved config</summary><pre>{esc(text)}</pre></details>"


def sections(run_dir: Path, metrics: Mapping[str, Any], config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(title, body) of each section this run has files for."""
    out = [("Headline metrics", _headline(metrics))]
    if isinstance(metrics.get("per_class"), Mapping):
        out.append(("Per-class AP", _per_class(metrics["per_class"], metrics)))
    if (run_dir / PR_DIR).is_dir():
        out.append(("Precision-recall curves", _pr_curves(run_dir)))
    if (run_dir / CONFUSION_PNG).is_file():
        out.append(
            (
                "Confusion matrix",
                "<p>Ground-truth class (rows) against predicted class, predictions above "
                "the score threshold paired one-to-one with objects at IoU >= 0.5 regardless of class.</p>"
                + img(CONFUSION_PNG, "confusion matrix"),
            )
        )
    if (run_dir / GALLERY_DIR / "gallery.json").is_file():
        out.append(("Gallery", _gallery(run_dir)))
    out.append(("Timing", _timing(metrics)))
    links = [f'<a href="{href(n)}">{esc(n)}</a>' for n in LINKED_FILES if (run_dir / n).exists()]
    config_html = _config(run_dir, config)
    out.append(("Files and config", (" · ".join(links) if links else "") + config_html))
    return out


def write_html_report(
    run_dir: str | Path, metrics: Mapping[str, Any], config: Mapping[str, Any] | None = None, title: str | None = None
) -> Path:
    """Write ``run_dir/report.html`` from ``metrics`` (as in metrics.json) and the files in ``run_dir``.
    ``config``: the resolved config (default: the run's .hydra/config.yaml when there is one)."""
    run_dir = Path(run_dir)
    title = title or f"Evaluation report: {run_dir.name}"
    parts = sections(run_dir, metrics, config)
    nav = "<nav>" + "".join(f'<a href="#s{k}">{esc(t)}</a>' for k, (t, _) in enumerate(parts)) + "</nav>"
    body = "\n".join(f'<h2 id="s{k}">{esc(t)}</h2>\n{b}' for k, (t, b) in enumerate(parts))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = f"<h1>{esc(title)}</h1><p>{esc(str(run_dir))} · written {stamp}</p>"
    text = page(title, f"{head}\n{nav}\n{body}")
    path = run_dir / FILE_NAME
    atomic_write_text(path, text)
    return path
