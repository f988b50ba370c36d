"""The wheel holds the package and nothing else: no benchmarks (a top-level folder run from the repo)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_no_benchmarks(tmp_path: Path) -> None:
    # Build from a copy of what packaging reads (benchmarks/ included, as in the repo) so the work tree
    # gets no build/ or egg-info folders.
    src = tmp_path / "src_tree"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "benchmarks"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("insseg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "insseg/__init__.py" in names and "insseg/engine/trainer.py" in names
    assert not [n for n in names if n.startswith("benchmarks/") or n.startswith("insseg/bench")]
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {"insseg", next(n for n in top_level if n.endswith(".dist-info"))}
