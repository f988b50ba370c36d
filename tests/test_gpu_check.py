"""`make gpu-check` without a CUDA device: one line, exit status 3, nothing else done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: this is the CPU path")
LINE = "gpu-check: no CUDA device is present; nothing was run"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}


def test_without_cuda_it_says_so_and_exits_3_before_anything_else(tmp_path):
    out = tmp_path / "gpu_check"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    assert proc.returncode == 3
    assert proc.stdout.strip() == LINE
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_gpu_check_reports_status_3():
    proc = subprocess.run(
        ["make", "-s", "gpu-check", f"PY={sys.executable}"], capture_output=True, text=True, cwd=ROOT, env=_env()
    )
    assert LINE in proc.stdout
    assert "Error 3" in proc.stderr  # make itself then exits 2, as it does for any failed recipe
