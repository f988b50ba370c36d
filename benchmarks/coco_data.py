"""Benchmark 9: COCO-format data at scale: load + index time and peak memory of a 5,000-image, 50,000-instance
annotation file, and the training loader's throughput on polygon annotations against the model's consumption.

Load: ``CocoReader`` (parse, one-pass index with every annotation's types checked) against pycocotools'
``COCO(file)`` (parse + ``createIndex``), each in a fresh process that first imports what it needs, so the
figures are the load alone: wall seconds, and the rise of peak RSS (the kernel's high-water mark after the load
minus before it). The file: 640x480 images, 10 instances each, polygons of 16 vertices (every tenth instance a
compressed RLE), one crowd region every 20 images. Throughput: the ``data_pipeline`` benchmark's measurement (the
trainer's ``DataLoader`` against ``train_one_epoch`` on batches in memory, smoke model) on a generated COCO-layout
set at VOC size (500x375) whose instances are mostly polygons (two of every three; the rest RLE), so masks are
rasterised in the workers.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.data_pipeline import loader_rate, model_rate
from benchmarks.fixtures import config, generated, subprocess_env
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import check_process, run_process


def big_annotation_file(path: Path, num_images: int, per_image: int, seed: int = 0) -> Path:
    """Write (once) a COCO instances file of ``num_images`` 640x480 images with ``per_image`` instances each."""
    if path.is_file():
        return path
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    h, w = 480, 640
    images = [
        {"id": 3 * i + 1, "file_name": f"{i // 1000:02d}/{i:06d}.jpg", "height": h, "width": w}
        for i in range(num_images)
    ]
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((40, 60), np.uint8), ((100, h - 140), (200, w - 260)))))
    rle_seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    anns = []
    for im in images:
        cy, cx = rng.uniform(40, h - 40, per_image), rng.uniform(40, w - 40, per_image)
        ry, rx = rng.uniform(8, 40, per_image), rng.uniform(8, 40, per_image)
        for k in range(per_image):
            n = len(anns)
            seg = (
                rle_seg
                if n % 10 == 9
                else [np.round(np.stack([cx[k] + rx[k] * np.cos(t), cy[k] + ry[k] * np.sin(t)], 1), 2).ravel().tolist()]
            )
            anns.append(
                {
                    "id": n + 1,
                    "image_id": im["id"],
                    "category_id": [1, 3, 8][n % 3],
                    "segmentation": seg,
                    "area": float(np.pi * rx[k] * ry[k]),
                    "bbox": [cx[k] - rx[k], cy[k] - ry[k], 2 * rx[k], 2 * ry[k]],
                    "iscrowd": 0,
                }
            )
        if im["id"] % 20 == 1:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": 1,
                    "segmentation": rle_seg,
                    "area": 2400.0,
                    "bbox": [200, 100, 60, 40],
                    "iscrowd": 1,
                }
            )
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 8, "name": "truck"}]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    tmp.rename(path)
    return path


def peak_rss() -> int:
    """This process's peak RSS in bytes: Linux's VmHWM (``ru_maxrss`` would include the parent's RSS at fork, kept
    across exec), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _child(kind: str, path: str) -> None:
    """Run in a fresh process: import, then load ``path`` the ``kind`` way; print seconds and peak-RSS rise."""
    if kind == "insseg":
        from insseg.data.coco import CocoReader

        load = lambda: CocoReader(path, Path(path).parent)  # noqa: E731
    else:
        import contextlib
        import io

        from pycocotools.coco import COCO

        def load():
            with contextlib.redirect_stdout(io.StringIO()):
                return COCO(path)

    before = peak_rss()
    start = time.perf_counter()
    loaded = load()
    seconds = time.perf_counter() - start
    rise = peak_rss() - before
    print(json.dumps({"seconds": seconds, "rss_rise_bytes": rise, "loaded": type(loaded).__name__}))


def load_figures(path: Path, work: Path, repeats: int) -> dict[str, list[dict[str, float]]]:
    """Each way's figures, ``repeats`` fresh processes each, interleaved."""
    figures: dict[str, list[dict[str, float]]] = {"insseg": [], "pycocotools": []}
    for r in range(repeats):
        for kind in figures:
            log = work / f"load_{kind}_{r}.log"
            run = run_process(
                [sys.executable, "-m", "benchmarks.coco_data", "--child", kind, str(path)], log, env=subprocess_env()
            )
            check_process(run, f"loading {path.name} with {kind}")
            figures[kind].append(json.loads(log.read_text().strip().splitlines()[-1]))
    return figures


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> BenchResult:
    num_images, repeats, batches, steps = (500, 1, 6, 2) if quick else (5000, 3, 40, 4)
    work = out_dir / "_work" / "coco_data"
    path = big_annotation_file(out_dir.resolve() / "_data" / f"coco_big_n{num_images}.json", num_images, 10)
    figures = load_figures(path, work, repeats)
    med = {
        k: {m: float(np.median([f[m] for f in v])) for m in ("seconds", "rss_rise_bytes")} for k, v in figures.items()
    }

    root = generated(out_dir, "coco", 48, 375, 500, 6, seed=2)
    cfg = config(
        "train",
        [
            "experiment=smoke",
            "device=cpu",
            "data=coco",
            f"data.root={root}",
            "data.max_train_images=null",
            "data.num_workers=2",
            f"paths.log_dir={work}",
        ],
        work / "run",
    )
    from insseg.data import build_dataset

    train_set = build_dataset(cfg.data, "train", hflip_prob=cfg.train.hflip_prob)
    bs, workers = cfg.train.batch_size, cfg.data.num_workers
    rates = {"loader": loader_rate(train_set, bs, workers, batches), "model": model_rate(cfg, train_set, steps)}
    shutil.rmtree(work, ignore_errors=True)

    ours, theirs = med["insseg"], med["pycocotools"]
    result = BenchResult(
        "coco_data",
        f"COCO-format data: load {num_images} images / {10 * num_images} instances; polygon loader",
        project="CocoReader (parse + one-pass index + type checks); training DataLoader on COCO polygons",
        baseline="pycocotools COCO(file) (parse + createIndex); the model's train steps/s",
        settings={
            "images": num_images,
            "instances": 10 * num_images,
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "repeats": repeats,
            "loader_images": len(train_set),
            "image_size": "500x375",
            "batch_size": bs,
            "num_workers": workers,
            "loader_batches": batches,
            "train_steps": steps,
        },
        raw={"load": figures, "rates": rates},
    )
    result.add(
        "load + index time",
        ours["seconds"],
        theirs["seconds"],
        "s",
        ours["seconds"] / theirs["seconds"],
        Target("<=", 1.5),
        note="absolute target: a few seconds for 5,000 images / 50,000 instances",
    )
    result.add(
        "peak RSS rise of the load",
        ours["rss_rise_bytes"] / 2**20,
        theirs["rss_rise_bytes"] / 2**20,
        "MiB",
        ours["rss_rise_bytes"] / max(theirs["rss_rise_bytes"], 1),
        Target("<=", 1.2),
    )
    result.add(
        f"polygon loader ({workers} workers) / model",
        rates["loader"],
        rates["model"],
        "batch/s",
        rates["loader"] / rates["model"],
        Target(">=", 5),
    )
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
