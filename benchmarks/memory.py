"""Benchmark 3: peak RSS of ``evaluate.py`` over 400 generated VOC-size (500x375) images against its peak
over 50: memory must stay flat as the dataset grows (masks streamed and encoded per image).

The predictions come from a generated predictions file (``eval.predictions=...``), not from a model run, so
the benchmark takes about a minute instead of the better part of an hour on 2 CPU cores: the whole scoring path
(predictions file, COCO AP, matching, metrics.xlsx rows, mask PNGs, predictions.json) runs on every image. Per
image: a slightly shifted copy of every object (its class, a high score) and false positives up to 30
predictions (random classes, low scores). Peak RSS is the kernel's ``ru_maxrss`` of each ``evaluate.py``
process, read with ``wait4``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from benchmarks.fixtures import entry_script, generated, subprocess_env
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import check_process, run_process
from insseg.data.readers import VOCReader
from insseg.data.voc_palette import VOC_CLASSES
from insseg.predictions import ImagePrediction, PredictionSet, encode_masks

PREDICTIONS_PER_IMAGE = 30


def _split(root: Path, name: str, ids: list[str]) -> str:
    path = root / "ImageSets" / "Segmentation" / f"{name}.txt"
    path.write_text("".join(f"{i}\n" for i in ids))
    return name


def _boxes(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((len(masks), 4), np.float32)
    for k, m in enumerate(masks):
        ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if ys.size:
            boxes[k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def predictions_file(root: Path, split: str, path: Path, seed: int = 0) -> Path:
    """A predictions.json for every image of ``split``, written once (kept next to the generated data)."""
    if path.is_file():
        return path
    reader = VOCReader(root, split)
    rng = np.random.default_rng(seed)
    predictions = PredictionSet(list(VOC_CLASSES))
    for i in range(len(reader)):
        ann = reader.annotation(i)
        h, w = ann.height, ann.width
        yy, xx = np.mgrid[0:h, 0:w]
        masks, labels, scores = [], [], []
        for m, label in zip(ann.masks(), ann.labels):
            dy, dx = rng.integers(-4, 5, size=2)
            masks.append(np.roll(m, (int(dy), int(dx)), axis=(0, 1)))
            labels.append(int(label))
            scores.append(rng.uniform(0.5, 1.0))
        while len(masks) < PREDICTIONS_PER_IMAGE:
            cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(8, h / 3), rng.uniform(8, w / 3)
            masks.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0)
            labels.append(int(rng.integers(1, len(VOC_CLASSES) + 1)))
            scores.append(rng.uniform(0.05, 0.6))
        stack = np.stack(masks)
        order = np.argsort(-np.asarray(scores), kind="stable")
        predictions.images.append(
            ImagePrediction(
                ann.file_name,
                h,
                w,
                boxes=_boxes(stack)[order],
                scores=np.asarray(scores, np.float32)[order],
                labels=np.asarray(labels, np.int64)[order],
                rles=encode_masks(stack[order]),
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions.write(path)
    return path


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> BenchResult:
    small, large = (10, 80) if quick else (50, 400)
    root = generated(out_dir, "voc", large, 375, 500, 6)
    ids = [line for line in (root / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split() if line]
    work = out_dir / "_work" / "memory"
    shutil.rmtree(work, ignore_errors=True)
    env = subprocess_env()
    peaks, seconds = {}, {}
    # The floor: the same command line that only composes and prints the config (imports, Hydra, no work).
    floor = run_process(
        entry_script("evaluate") + ["data=voc", f"data.root={root}", "--cfg", "job"],
        work / "floor.log",
        cwd=work,
        env=env,
    )
    check_process(floor, "evaluate.py --cfg job")
    for n in (small, large):
        split = _split(root, f"bench_first{n}", ids[:n])
        preds = predictions_file(root, split, root / f"bench_predictions_{n}.json")
        log_dir = work / f"n{n}"
        cmd = entry_script("evaluate") + [
            "data=voc",
            f"data.root={root}",
            f"eval.split={split}",
            f"eval.predictions={preds}",
            "device=cpu",
            f"paths.log_dir={log_dir}",
        ]
        proc = run_process(cmd, work / f"n{n}.log", cwd=work, env=env)
        check_process(proc, f"evaluate.py over {n} images")
        peaks[n], seconds[n] = proc.peak_rss_bytes, proc.seconds
    shutil.rmtree(work, ignore_errors=True)

    mib = {n: p / 2**20 for n, p in peaks.items()}
    result = BenchResult(
        "memory",
        f"peak RSS of evaluate.py over {large} vs {small} generated VOC-size (500x375) images",
        project=f"evaluate.py over {large} images",
        baseline=f"evaluate.py over {small} images",
        settings={
            "images": [small, large],
            "image_size": "500x375",
            "predictions_per_image": PREDICTIONS_PER_IMAGE,
            "source": "eval.predictions=<generated predictions file> (no model run)",
        },
        raw={"peak_rss_bytes": peaks, "seconds": seconds, "floor_rss_bytes": floor.peak_rss_bytes},
    )
    floor_mib = floor.peak_rss_bytes / 2**20
    result.add(
        f"peak RSS, {large} / {small} images", mib[large], mib[small], "MiB", mib[large] / mib[small], Target("<=", 1.2)
    )
    result.add(
        "  above the import floor",
        mib[large] - floor_mib,
        mib[small] - floor_mib,
        "MiB",
        (mib[large] - floor_mib) / (mib[small] - floor_mib),
        note=f"the floor, {floor_mib:.0f} MiB, is evaluate.py --cfg job: interpreter, imports and Hydra, no work",
    )
    result.add("growth per added image", 1024 * (mib[large] - mib[small]) / (large - small), None, "KiB/image")
    result.notes.append(
        f"predictions from a generated predictions file ({PREDICTIONS_PER_IMAGE} per image: every object plus "
        "false positives), not a model run; evaluation defaults otherwise (metrics.xlsx, mask PNGs). Wall time: "
        f"{seconds[small]:.0f} s and {seconds[large]:.0f} s"
    )
    return result
