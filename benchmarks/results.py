"""A benchmark's result: rows of figures with their target, printed as a table and written as JSON."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Target:
    """``ratio op value``: e.g. Target('>=', 20) is "at least 20x"."""

    op: str
    value: float
    unit: str = "x"

    def check(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}{self.unit}"


@dataclass
class Row:
    """One measured figure: the project's value, the baseline's, and the ratio the target is stated on."""

    metric: str
    project: float | None = None
    baseline: float | None = None
    unit: str = ""
    ratio: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.ratio is None or not math.isfinite(self.ratio):
            return None
        return self.target.check(self.ratio)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = str(self.target) if self.target else None
        d["passed"] = self.passed
        return d


@dataclass
class BenchResult:
    name: str
    title: str
    project: str = ""  # what the "project" column measures
    baseline: str = ""  # what the "baseline" column measures
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "skipped"
        checks = [r.passed for r in self.rows if r.passed is not None]
        if not checks:
            return "no target"
        return "pass" if all(checks) else "miss"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu,
        "cpu_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    mag = abs(value)
    text = f"{value:.0f}" if mag >= 1000 else f"{value:.1f}" if mag >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def format_table(result: BenchResult) -> str:
    lines = [f"== {result.name}: {result.title} =="]
    if result.skipped:
        lines.append(f"skipped: {result.skipped}")
        return "\n".join(lines)
    if result.project:
        lines.append(f"project:  {result.project}")
    if result.baseline:
        lines.append(f"baseline: {result.baseline}")
    header = ("metric", "project", "baseline", "ratio", "target", "result")
    body = []
    for r in result.rows:
        verdict = {True: "PASS", False: "MISS", None: ""}[r.passed]
        body.append(
            (
                r.metric,
                _fmt(r.project, r.unit),
                _fmt(r.baseline, r.unit),
                "-" if r.ratio is None else f"{r.ratio:.3g}{r.target.unit if r.target else 'x'}",
                str(r.target) if r.target else "-",
                verdict,
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    for row in (header, *body):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for r in result.rows:
        if r.note:
            lines.append(f"  * {r.metric.strip()}: {r.note}")
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def write_json(result: BenchResult, path: Path, extra: dict[str, Any]) -> None:
    payload = {
        "benchmark": result.name,
        "title": result.title,
        "verdict": result.verdict,
        "skipped": result.skipped,
        "project": result.project,
        "baseline": result.baseline,
        "rows": [r.to_dict() for r in result.rows],
        "notes": result.notes,
        "settings": result.settings,
        **extra,
        "raw": result.raw,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def command_line() -> str:
    return " ".join([Path(sys.executable).name, "-m", "benchmarks", *sys.argv[1:]])
