"""python -m insseg.compare RUN_A RUN_B [RUN_C ...] --out DIR [--resamples 1000] [--seed 0] [--allow-settings-differ]

Compares evaluate.py run dirs over the same images: every run after the first against the first. Writes
DIR/compare.json, DIR/compare.xlsx and DIR/compare.html (docs/evaluation.md, "Comparing runs").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from insseg.compare.pipeline import DEFAULT_RESAMPLES, compare_runs
from insseg.compare.result import excludes_zero
from insseg.errors import InssegError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m insseg.compare", description="Paired comparison of evaluate.py runs with bootstrap intervals."
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run dirs of evaluate.py; the first is A")
    parser.add_argument("--out", type=Path, required=True, help="folder for compare.json, compare.xlsx, compare.html")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    parser.add_argument(
        "--allow-settings-differ",
        action="store_true",
        help="compare runs whose evaluation settings (void handling, score threshold, ...) differ",
    )
    return parser.parse_args(argv)


def summary(result: dict) -> str:
    """The headline table of the first comparison, for the terminal."""
    lines = [f"{'metric':<20} {'A':>8} {'B':>8} {'B - A':>8}  95% interval"]
    for name, item in result["metrics"].items():
        if item["delta"] is None:
            lines.append(f"{name:<20} {'-':>8} {'-':>8} {'-':>8}")
            continue
        lo, hi = item["ci95"] or (float("nan"), float("nan"))
        mark = "  *" if excludes_zero(item) else ""
        lines.append(
            f"{name:<20} {item['a']:>8.4f} {item['b']:>8.4f} {item['delta']:>+8.4f}  [{lo:+.4f}, {hi:+.4f}]{mark}"
        )
    return "\n".join(lines) + "\n(* the interval excludes 0)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = compare_runs(args.runs, args.out, args.resamples, args.seed, args.allow_settings_differ)
    except InssegError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(summary(result))
    print(f"results in {args.out.resolve()}/compare.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
