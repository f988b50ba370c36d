"""compare.html: one offline page (inline style, no scripts, pictures as relative links into compare_files/)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from insseg.compare.excel import comparisons, run_labels
from insseg.compare.result import excludes_zero
from insseg.evaluation.reports.gallery import FN_COLOR, FP_COLOR, TP_COLOR
from insseg.evaluation.reports.html_report import FILE_NAME as RUN_REPORT
from insseg.utils.atomic import atomic_write_text
from insseg.utils.html import Raw, esc, fmt, href, img, page, table

FILE_NAME = "compare.html"

HOW_TO_READ = (
    "<p>delta = B - A. The 95% interval comes from the paired bootstrap over images: {resamples} times, "
    "{n} images are drawn with replacement (the same draws for every run; an image drawn twice counts twice) and "
    "every metric of both runs is computed again on the draw (COCO AP re-accumulated, not averaged per image). "
    "The interval holds the middle 95% of the differences. <strong>Bold</strong>: the interval excludes 0, so "
    "the difference is unlikely to be an accident of which images were evaluated; otherwise another set of "
    "images of the same kind could well reverse it. It says nothing about training noise (another seed).</p>"
)


def _legend() -> str:
    spans = [(TP_COLOR, "true positive"), (FP_COLOR, "false positive"), (FN_COLOR, "missed object")]
    return (
        '<p class="legend">' + "".join(f'<span style="background: rgb{c}">{esc(t)}</span>' for c, t in spans) + "</p>"
    )


def _interval(item: Mapping[str, Any]) -> str:
    ci = item.get("ci95")
    return "-" if not ci else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _delta(item: Mapping[str, Any]) -> str | Raw:
    """The signed delta, bold when its interval excludes 0."""
    delta = "-" if item["delta"] is None else f"{item['delta']:+.4f}"
    return Raw(f"<strong>{esc(delta)}</strong>") if excludes_zero(item) else delta


def metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = []
    for name, item in metrics.items():
        excludes = "yes" if excludes_zero(item) else "no"
        rows.append((name, item["a"], item["b"], _delta(item), _interval(item), excludes))
    return table(("metric", "A", "B", "delta (B - A)", "95% interval", "excludes 0"), rows)


def per_class_section(per_class: Mapping[str, Any], chart: str | None) -> str:
    rows = []
    for name, row in per_class.items():
        for key, item in (row or {}).items():
            if isinstance(item, Mapping):
                rows.append((name, key, item["a"], item["b"], _delta(item), _interval(item), row["num_gt"]))
    rows.sort(key=lambda r: (r[1], r[0]))
    note = (
        "<p>Per class, B - A with its 95% interval (the line): orange where B is higher, blue where A is; pale "
        "where the interval includes 0. Classes without ground truth are left out.</p>"
    )
    body = note + img(chart, "per-class AP deltas") if chart else ""
    header = ("class", "metric", "A", "B", "delta (B - A)", "95% interval", "objects")
    return body + "<details><summary>table</summary>" + table(header, rows) + "</details>"


def images_section(images: Mapping[str, Any], pictures: Sequence[str | None]) -> str:
    wins = images["wins_by_mean_iou"]
    text = (
        f"Of the {wins['images_with_objects']} images with objects, B has the higher matched mean IoU on "
        f"{wins['b']}, A on {wins['a']}; {wins['ties']} ties."
    )
    if "wins_by_boundary_iou" in images:
        w = images["wins_by_boundary_iou"]
        text += f" By mean boundary IoU: B on {w['b']}, A on {w['a']}; {w['ties']} ties."
    parts = [f"<p>{esc(text)}</p>", _legend()]
    figs = []
    for e, pic in zip(images["most_different"], pictures):
        caption = (
            f"{e['image']}: mean IoU A {fmt(e['a']['mean_iou'])} | B {fmt(e['b']['mean_iou'])}; "
            f"A {e['a']['true_positives']} TP, {e['a']['false_positives']} FP, {e['a']['missed']} missed | "
            f"B {e['b']['true_positives']} TP, {e['b']['false_positives']} FP, {e['b']['missed']} missed"
        )
        picture = img(pic, e["image"]) if pic else ""
        figs.append(f'<figure style="width: 760px">{picture}<figcaption>{esc(caption)}</figcaption></figure>')
    parts.append('<p>Left: run A, right: run B.</p><div class="grid">' + "".join(figs) + "</div>")
    return "\n".join(parts)


def _run_link(out_dir: Path, run: str) -> str:
    report = Path(run) / RUN_REPORT
    if not report.is_file():
        return esc(run)
    rel = os.path.relpath(report, out_dir).replace(os.sep, "/")
    return f'<a href="{href(rel)}">{esc(run)}</a>'


def write_page(out_dir: Path, result: Mapping[str, Any], pictures: Mapping[str, Any]) -> Path:
    """compare.html from compare.json's content and the pictures written (``pictures``: ``pr_curves``, and
    per comparison ``per_class`` and ``gallery`` paths relative to ``out_dir``)."""
    runs = result["runs"]
    names = run_labels(len(runs))
    head = [f"<h1>Comparison of {len(runs)} runs</h1>", "<ul>"]
    head += [f"<li><strong>{n}</strong>: {_run_link(out_dir, r)}</li>" for n, r in zip(names, runs)]
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    head.append(
        f"</ul><p>{result['num_images']} images · {result['resamples']} resamples, seed {result['seed']} · {stamp}</p>"
    )
    if result.get("settings_differ"):
        head.append(
            "<p><strong>Evaluation settings differ</strong>: " + esc("; ".join(result["settings_differ"])) + "</p>"
        )
    body = ["\n".join(head), "<h2>How to read the intervals</h2>"]
    body.append(HOW_TO_READ.format(resamples=result["resamples"], n=result["num_images"]))
    for k, (_, comp) in enumerate(comparisons(result)):
        title = f"{names[k + 1]} against A" if len(runs) > 2 else "B against A"
        body.append(f"<h2>{esc(title)}: metrics</h2>" + metrics_table(comp["metrics"]))
        body.append(
            f"<h2>{esc(title)}: per class</h2>" + per_class_section(comp["per_class"], pictures["per_class"][k])
        )
        body.append(
            f"<h2>{esc(title)}: where they differ most</h2>" + images_section(comp["images"], pictures["gallery"][k])
        )
    if pictures.get("pr_curves"):
        legend = ", ".join(f"{n}" for n in names)
        body.append(f"<h2>Precision-recall curves ({esc(legend)})</h2>" + img(pictures["pr_curves"], "PR curves"))
    links = " · ".join(f'<a href="{href(n)}">{esc(n)}</a>' for n in ("compare.json", "compare.xlsx"))
    body.append(f"<h2>Files</h2><p>{links}</p>")
    path = out_dir / FILE_NAME
    atomic_write_text(path, page("Run comparison", "\n".join(body)))
    return path
