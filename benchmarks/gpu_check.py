"""``make gpu-check``: one command, minutes, to know whether the CUDA paths work on this machine.

    python -m benchmarks.gpu_check [--out gpu_check] [--budget 480] [--full]

First it looks for a CUDA device; without one it prints that none is present and exits 3 before doing anything
else. With one it runs the ``@pytest.mark.cuda`` tests (tests/test_cuda.py: AMP training, bf16/fp16 evaluation,
the out-of-memory retry, NCCL DDP, channels_last, pinned memory), then the GPU benchmarks (gpu_inference,
gpu_training, gpu_refinemask; ``--quick`` sizes unless ``--full``), each in a subprocess under what is left of
the time budget (8 minutes by default, sized for one H100-class GPU), and writes ``<out>/gpu_check.json`` with
the device name, every test's outcome and every benchmark figure. Exit status: 0 all passed, 1 something failed
or ran out of time, 3 no CUDA device (``make gpu-check`` then reports "Error 3" and exits with make's own 2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

NO_CUDA_EXIT = 3
ROOT = Path(__file__).resolve().parents[1]
GPU_BENCHMARKS = ("gpu_inference", "gpu_training", "gpu_refinemask")


def cuda_device() -> str | None:
    """The first CUDA device's name, or None (also when torch itself cannot be imported)."""
    try:
        import torch
    except ImportError:
        return None

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _run(cmd: list[str], timeout: float) -> tuple[int | None, float]:
    """Run ``cmd`` from the repo root with its output on ours; (exit status or None on timeout, seconds)."""
    start = time.perf_counter()
    try:
        rc: int | None = subprocess.run(cmd, cwd=ROOT, timeout=max(1.0, timeout)).returncode
    except subprocess.TimeoutExpired:
        rc = None
    return rc, round(time.perf_counter() - start, 1)


def run_cuda_tests(out: Path, timeout: float) -> dict[str, Any]:
    junit = out / "cuda_tests.xml"
    rc, seconds = _run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", f"--junitxml={junit}"], timeout
    )
    tests = []
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for kind in ("failure", "error", "skipped"):
                node = case.find(kind)
                if node is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                    message = node.get("message", "")
                    break
            else:
                message = ""
            tests.append(
                {
                    "test": case.get("name"),
                    "outcome": outcome,
                    "seconds": float(case.get("time", 0)),
                    "message": message[:500],
                }
            )
    return {"exit_status": rc, "timed_out": rc is None, "seconds": seconds, "tests": tests}


def run_benchmark(name: str, out: Path, quick: bool, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks", name, "--out", str(out / "benchmarks")]
    rc, seconds = _run([*cmd, "--quick"] if quick else cmd, timeout)
    path = out / "benchmarks" / f"{name}.json"
    figures = json.loads(path.read_text()) if path.is_file() and rc is not None else None
    return {"exit_status": rc, "timed_out": rc is None, "seconds": seconds, "result": figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="folder for gpu_check.json")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for everything (default 8 minutes)")
    parser.add_argument("--full", action="store_true", help="full-size benchmarks instead of --quick ones")
    args = parser.parse_args(argv)
    device = cuda_device()
    if device is None:
        print("gpu-check: no CUDA device is present; nothing was run", flush=True)
        return NO_CUDA_EXIT
    start = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"gpu-check on {device}: cuda tests, then {', '.join(GPU_BENCHMARKS)}", flush=True)
    left = lambda: args.budget - (time.perf_counter() - start)  # noqa: E731
    report: dict[str, Any] = {"device": device, **_versions()}
    report["cuda_tests"] = run_cuda_tests(out, left() * 0.6)
    report["benchmarks"] = {}
    for k, name in enumerate(GPU_BENCHMARKS):
        share = left() / (len(GPU_BENCHMARKS) - k)
        report["benchmarks"][name] = run_benchmark(name, out, not args.full, share)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["passed"] = _passed(report)
    from insseg.utils.atomic import atomic_write_json

    atomic_write_json(out / "gpu_check.json", report)
    print(f"gpu-check: {'passed' if report['passed'] else 'FAILED'} in {report['seconds']} s; {out / 'gpu_check.json'}")
    return 0 if report["passed"] else 1


def _versions() -> dict[str, Any]:
    import torch

    return {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


def _passed(report: dict[str, Any]) -> bool:
    tests = report["cuda_tests"]
    ok = tests["exit_status"] == 0 and all(t["outcome"] == "passed" for t in tests["tests"])
    return ok and all(b["exit_status"] == 0 for b in report["benchmarks"].values())


if __name__ == "__main__":
    sys.exit(main())
