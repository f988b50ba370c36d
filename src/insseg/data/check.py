"""Check a dataset before anyone trains on it: ``python -m insseg.data.check data=<any> [data.root=...] [out=DIR]``.

Works on every layout we read (COCO-format, PennFudanPed, VOC, synthetic). It lists every problem, each naming
its file and annotation id: missing or unreadable images, image sizes differing from the JSON or the mask,
polygons with fewer than 3 points, annotations naming an unknown image or category, duplicate ids, boxes outside
the image, empty masks, wrong types. It prints the instances per class and a size histogram (small < 32², medium
< 96², large, as COCO defines them, from the annotation's ``area``), writes ``DIR/dataset_report.json`` and
exits 1 when there are errors, 0 otherwise (warnings included). train.py and evaluate.py run the fast part
(structure and file headers) before any long work.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from insseg.data.annotations import Annotation
from insseg.data.build import open_reader
from insseg.data.problems import ERROR, WARNING, Problem, errors, warnings
from insseg.errors import ConfigError, DatasetError, ImageLoadError, InssegError
from insseg.utils.atomic import atomic_write_json

SPLITS = ("train", "eval")
SMALL, MEDIUM = 32**2, 96**2
_PRINTED = 20


@dataclass
class SplitReport:
    """What one split holds: images, negatives (no instance), instances per class, crowd regions, sizes."""

    images: int = 0
    negatives: int = 0
    crowd: int = 0
    per_class: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def add(self, name: str, area: float, crowd: bool) -> None:
        if crowd:
            self.crowd += 1
            return
        self.per_class[name] += 1
        self.sizes["small" if area < SMALL else "medium" if area < MEDIUM else "large"] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "negatives": self.negatives,
            "instances": sum(self.per_class.values()),
            "crowd_regions": self.crowd,
            "instances_per_class": dict(sorted(self.per_class.items())),
            "sizes": {k: self.sizes.get(k, 0) for k in ("small", "medium", "large")},
            "errors": len(errors(self.problems)),
            "warnings": len(warnings(self.problems)),
        }


def check_split(data_cfg: Any, split: str) -> SplitReport:
    """Every problem of one split and what it holds (images decoded, masks decoded)."""
    report = SplitReport()
    try:
        reader, indices = open_reader(data_cfg, split)
    except InssegError as e:
        report.problems.append(Problem(ERROR, "unreadable_dataset", str(data_cfg.root), str(e)))
        return report
    report.problems += list(getattr(getattr(reader, "index", None), "problems", []))
    names = dict(zip(getattr(reader, "category_ids", ()), reader.class_names))
    for i in indices:
        report.images += 1
        path = str(reader.image_path(i))
        fast = reader.file_problems([i])
        if fast:
            report.problems += fast
            continue
        try:
            image = reader.load_image(i)
            ann = reader.annotation(i, image_hw=image.shape[:2])
        except (DatasetError, ImageLoadError) as e:
            report.problems.append(Problem(ERROR, "unreadable", path, str(e)))
            continue
        report.negatives += len(ann) == 0
        _add_instances(report, reader, ann, names)
    return report


def _add_instances(report: SplitReport, reader: Any, ann: Annotation, names: dict[int, str]) -> None:
    if ann.coco_entries is None:  # an instance map: areas are pixel counts, no crowd
        for label, area in zip(ann.labels.tolist(), ann.areas().tolist()):
            report.add(reader.class_names[label - 1], area, False)
        return
    kept = set(getattr(ann, "annotation_ids", ()))
    few_points = {p.annotation_id for p in report.problems if p.kind == "few_points"}  # already named
    for entry in ann.coco_entries:
        crowd = bool(entry.get("iscrowd", 0))
        report.add(names[entry["category_id"]], float(entry["area"]), crowd)
        if not crowd and entry["id"] not in kept and entry["id"] not in few_points:
            report.problems.append(
                Problem(
                    WARNING,
                    "empty_mask",
                    str(reader.json_path),
                    f"the mask of image {ann.file_name} is empty; skipped",
                    entry["id"],
                )
            )


def check_dataset(data_cfg: Any) -> dict[str, Any]:
    """The report of every split (limits such as ``data.max_train_images`` are lifted: everything is checked)."""
    cfg = OmegaConf.create(OmegaConf.to_container(data_cfg, resolve=True))
    cfg.max_train_images = cfg.max_eval_images = None
    splits = {split: check_split(cfg, split) for split in SPLITS}
    problems = [{"split": s, **p.to_dict()} for s, r in splits.items() for p in r.problems]
    return {
        "dataset": cfg.name,
        "layout": cfg.layout,
        "root": str(cfg.root),
        "splits": {s: r.to_dict() for s, r in splits.items()},
        "errors": sum(p["severity"] == ERROR for p in problems),
        "warnings": sum(p["severity"] == WARNING for p in problems),
        "problems": problems,
    }


def format_report(report: dict[str, Any], path: Path) -> str:
    lines = [f"dataset {report['dataset']} ({report['layout']} layout) at {report['root']}"]
    for split, r in report["splits"].items():
        classes = ", ".join(f"{k} {v}" for k, v in r["instances_per_class"].items()) or "none"
        sizes = ", ".join(f"{k} {v}" for k, v in r["sizes"].items())
        lines.append(
            f"  {split}: {r['images']} images ({r['negatives']} without instances), {r['instances']} instances "
            f"({classes}), {r['crowd_regions']} crowd regions; sizes: {sizes}"
        )
    for severity in (ERROR, WARNING):
        found = [p for p in report["problems"] if p["severity"] == severity]
        for p in found[:_PRINTED]:
            where = p["file"] + (f", annotation id {p['annotation_id']}" if p["annotation_id"] is not None else "")
            lines.append(f"{severity} [{p['split']}] {where}: {p['message']}")
        if len(found) > _PRINTED:
            lines.append(f"... and {len(found) - _PRINTED} more {severity}s (all in the report)")
    lines.append(f"{report['errors']} error(s), {report['warnings']} warning(s); report: {path}")
    return "\n".join(lines)


def compose_data_config(overrides: Sequence[str]) -> Any:
    """The composed config of these overrides (train.py's), or :class:`ConfigError` naming the bad override."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from insseg.config import compose_config

    try:
        return compose_config("train", list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"{e}".strip().splitlines()[0] + f" (overrides: {' '.join(overrides)})") from None


def split_arg(argv: Sequence[str], key: str) -> tuple[str | None, list[str]]:
    """The value of ``key=VALUE`` (ours, not a Hydra override; the last one given) apart from the rest."""
    prefix = f"{key}="
    values = [a[len(prefix) :] for a in argv if a.startswith(prefix)]
    return (values[-1] if values else None), [a for a in argv if not a.startswith(prefix)]


def split_out(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``out=DIR`` (ours) apart from the Hydra overrides."""
    return split_arg(argv, "out")


def main(argv: Sequence[str] | None = None) -> int:
    out, overrides = split_out(sys.argv[1:] if argv is None else argv)
    try:
        cfg = compose_data_config(overrides)
        report = check_dataset(cfg.data)
    except InssegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = Path(out or Path(cfg.paths.log_dir) / "check" / cfg.data.name) / "dataset_report.json"
    atomic_write_json(path, report)
    print(format_report(report, path))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
