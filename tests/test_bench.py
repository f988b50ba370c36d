"""The benchmark runner: it runs, reports identical results and writes its JSON. No timing assertions here:
speed targets live in the printed figures (python -m benchmarks), never in tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks import BENCHMARKS
from benchmarks import matching as matching_bench
from benchmarks.__main__ import main


def test_matching_quick_reports_identical_results_and_writes_json(tmp_path, capsys):
    assert main(["matching", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== matching:" in out and "identical results" in out

    data = json.loads((tmp_path / "matching.json").read_text())
    assert data["benchmark"] == "matching" and data["quick"] is True
    assert data["raw"]["identical_results"] is True
    headline = data["rows"][0]
    assert headline["target"] == ">= 20x"
    assert headline["project"] > 0 and headline["baseline"] > 0
    assert headline["passed"] == (headline["ratio"] >= 20)  # a figure, whatever the machine's load
    assert data["machine"]["cpu_cores"] >= 1 and data["date"]


def test_matching_benchmark_fails_when_results_differ(tmp_path, monkeypatch):
    real = matching_bench.iou_f1_matrices

    def off_by_a_little(gt, pred):
        iou, f1 = real(gt, pred)
        return np.nextafter(iou, 2.0), f1

    monkeypatch.setattr(matching_bench, "iou_f1_matrices", off_by_a_little)
    assert main(["matching", "--quick", "--out", str(tmp_path)]) == 1
    assert not (tmp_path / "matching.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the GPU benchmarks would run")
@pytest.mark.parametrize("name", [n for n, (_, device) in BENCHMARKS.items() if device == "cuda"])
def test_gpu_benchmarks_skip_without_cuda(name, tmp_path, capsys):
    assert main([name, "--out", str(tmp_path)]) == 0
    assert "skipped: no CUDA device" in capsys.readouterr().out
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["verdict"] == "skipped" and data["rows"] == []


def test_unknown_benchmark_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["nonesuch", "--out", str(tmp_path)])
    assert exc.value.code == 2


@pytest.mark.slow
def test_reports_quick_runs_both_sides_and_writes_every_report(tmp_path, capsys):
    assert main(["reports", "--quick", "--out", str(tmp_path)]) == 0
    assert "== reports:" in capsys.readouterr().out
    data = json.loads((tmp_path / "reports.json").read_text())
    assert data["rows"][0]["target"] == "<= 1.15x" and data["settings"]["images"] == 12
    files = data["raw"]["report_files"]
    assert {"report.html", "confusion_matrix.png", "pr_curves/segm_per_class.png", "gallery/gallery.json"} <= set(files)
    assert sum(f.startswith("gallery/worst/") for f in files) == 8
