"""python -m benchmarks <name> [<name> ...] | all  [--quick] [--out DIR]

Runs each benchmark, prints its table and writes ``<out>/<name>.json``. Exit status 1 when a benchmark
failed to run (a crash, or results that differ from the baseline's); missed speed targets are reported, not
turned into failures, since they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
import traceback
from pathlib import Path

from benchmarks import BENCHMARKS
from benchmarks.results import BenchResult, command_line, format_table, load_average, machine_info, now_iso, write_json


def run_one(name: str, quick: bool, out_dir: Path, dry_run: bool = False) -> BenchResult:
    module_name, device = BENCHMARKS[name]
    module = importlib.import_module(module_name)
    load_before = load_average()
    start = time.perf_counter()
    kwargs = {"dry_run": True} if dry_run and device == "cuda" else {}
    result: BenchResult = module.run(quick=quick, out_dir=out_dir, **kwargs)
    seconds = time.perf_counter() - start
    print(format_table(result), flush=True)
    load_after = load_average()
    print(f"({seconds:.1f} s; load average before {load_before}, after {load_after})\n", flush=True)
    extra = {
        "date": now_iso(),
        "command": command_line(),
        "quick": quick,
        "cpu_dry_run": bool(kwargs),
        "duration_s": round(seconds, 2),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": machine_info(),
    }
    write_json(result, out_dir / f"{name}{'.dry_run' if kwargs else ''}.json", extra)
    with contextlib.suppress(OSError):
        (out_dir / "_work").rmdir()  # scratch space of the benchmarks, when they left it empty
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("names", nargs="+", metavar="name", help=f"all, or any of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="much smaller inputs and fewer repeats (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench_results"), help="folder for the JSON results")
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="run the GPU benchmarks' code on the CPU with tiny inputs, to check that it works "
        "without a GPU (their figures then mean nothing)",
    )
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if "all" in args.names else args.names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from all, {', '.join(BENCHMARKS)}")

    info = machine_info()
    print(
        f"machine: {info['cpu']}, {info['cpu_cores']} cores, torch {info['torch']}"
        f"{', ' + info['cuda_device'] if 'cuda_device' in info else ', no CUDA device'}; "
        f"load average {load_average()}; {'quick' if args.quick else 'full'} run\n",
        flush=True,
    )
    start = time.perf_counter()
    verdicts: dict[str, str] = {}
    for name in names:
        try:
            verdict = run_one(name, args.quick, args.out.resolve(), args.cpu_dry_run).verdict
            dry = args.cpu_dry_run and BENCHMARKS[name][1] == "cuda"
            verdicts[name] = "ran (CPU dry run)" if dry else verdict
        except Exception:  # report, then go on with the others
            traceback.print_exc()
            print(f"== {name}: FAILED (see the traceback above) ==\n", flush=True)
            verdicts[name] = "failed"
    if len(names) > 1:
        print(
            "summary: "
            + ", ".join(f"{n} {v}" for n, v in verdicts.items())
            + f" ({time.perf_counter() - start:.0f} s in all; results in {args.out}/)"
        )
    return 1 if "failed" in verdicts.values() else 0


if __name__ == "__main__":
    sys.exit(main())
