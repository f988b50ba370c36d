"""Everything ``compare_runs`` writes: compare.json, compare.xlsx, compare_files/ and, last, compare.html."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from insseg.compare.excel import comparisons, run_labels, write_excel
from insseg.compare.figures import DIR_NAME, per_class_chart, pr_overlay, side_by_side
from insseg.compare.page import write_page
from insseg.compare.runs import RunData
from insseg.utils.atomic import atomic_write_json
from insseg.utils.json_safe import json_safe
from insseg.utils.logging import log


def _pictures(out_dir: Path, result: Mapping[str, Any], runs: Sequence[RunData]) -> dict[str, Any]:
    files = out_dir / DIR_NAME
    files.mkdir(parents=True, exist_ok=True)
    labels = run_labels(len(runs))
    pr = pr_overlay(files / "pr_curves.png", runs, labels)
    out: dict[str, Any] = {"pr_curves": f"{DIR_NAME}/pr_curves.png" if pr else None, "per_class": [], "gallery": []}
    for k, (_, comp) in enumerate(comparisons(result), start=1):
        chart = per_class_chart(files / f"per_class_{k}.png", comp["per_class"])
        out["per_class"].append(f"{DIR_NAME}/per_class_{k}.png" if chart else None)
        gallery = []
        for rank, e in enumerate(comp["images"]["most_different"], start=1):
            rel = f"{DIR_NAME}/gallery_{k}/{rank:02d}_{Path(e['image']).stem}.png"
            side_by_side(out_dir / rel, runs[0], runs[k], e["index"])
            gallery.append(rel)
        out["gallery"].append(gallery)
    return out


def write_outputs(out_dir: Path, result: Mapping[str, Any], runs: Sequence[RunData]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "compare.json", json_safe(result))
    write_excel(out_dir / "compare.xlsx", result)
    pictures = _pictures(out_dir, result, runs)
    write_page(out_dir, result, pictures)
    log.info(f"comparison of {len(runs)} runs in {out_dir}/compare.{{json,xlsx,html}}")
