"""Benchmark 9: COCO AP scoring at COCO val's scale, faster-coco-eval against pycocotools.

A generated set in COCO val2017's proportions: 5,000 images with 640 pixels on the long side, 7.3 instances
per image on average (heavy-tailed, some images empty, about 1% crowd regions), 80 classes, objects in COCO's
size mix (about 41% small, 34% medium, 24% large), and exactly 100 detections per image (COCO's maxDets, the
regime of a COCO evaluation): jittered copies of the objects, some of another class, then false positives.
Masks are polygons made into RLEs, as COCO's are. The set is generated once into ``<out>/_data/`` and
reused.

Each backend scores it in a process of its own (``python -m benchmarks.coco_scoring worker ...``), so that
its peak RSS (the kernel's ``ru_maxrss``) is its own: segm and bbox, each from building the COCO indexes to
``summarize()``, as ``CocoEvaluator.summarize`` does. The figure is the scoring time measured inside the
worker (imports and loading the set excluded); wall time and peak RSS of the whole process are reported too.
Results must agree before any figure counts: ``eval["recall"]`` bit for bit, ``eval["precision"]`` bit for
bit up to pycocotools' ``np.spacing(1)`` (see insseg.evaluation.coco_backend), ``stats`` equal after the
12-decimal rounding CocoEvaluator reports.
"""

from __future__ import annotations

import json
import pickle
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

NUM_IMAGES, DETECTIONS = 5000, 100
QUICK_IMAGES, QUICK_DETECTIONS = 40, 20
NUM_CLASSES = 80
MEAN_INSTANCES = 7.3  # COCO val2017: 36,781 instances over 5,000 images
SIZE_MIX = (0.41, 0.34, 0.25)  # small / medium / large instances in COCO
CROWD = 0.01
GENERATOR_VERSION = 1  # part of the cached file's name: bump when the generator changes
IOU_TYPES = ("segm", "bbox")
ONE_MINUS_EPS = 1.0 / (1.0 + np.spacing(1))


def _polygons(rng: np.random.Generator, h: int, w: int, sides: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> list:
    """One jagged ellipse (16 vertices) per object of about ``sides`` pixels side at (cx, cy), in the image."""
    k = len(sides)
    aspect = np.exp(rng.uniform(-0.7, 0.7, k))
    rx, ry = sides * np.sqrt(aspect) / 2, sides / np.sqrt(aspect) / 2
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    radius = rng.uniform(0.8, 1.0, (k, 16))
    xs = np.clip(cx[:, None] + rx[:, None] * radius * np.cos(angles), 0, w)
    ys = np.clip(cy[:, None] + ry[:, None] * radius * np.sin(angles), 0, h)
    return np.stack([xs, ys], axis=2).reshape(k, 32).tolist()


def _annotations(h: int, w: int, polygons: list, **fields: Any) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    if not polygons:
        return []
    rles = mask_utils.frPyObjects(polygons, h, w)
    areas, boxes = mask_utils.area(rles), mask_utils.toBbox(rles)
    out = []
    for k, rle in enumerate(rles):
        seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        out.append(
            {
                "segmentation": seg,
                "area": float(areas[k]),
                "bbox": boxes[k].tolist(),
                **{name: (v[k] if isinstance(v, np.ndarray) else v) for name, v in fields.items()},
            }
        )
    return [a for a in out if a["area"] > 0]


def _image(rng: np.random.Generator, image_id: int, detections: int) -> tuple[dict, list, list]:
    """One image: its size, ground truth and ``detections`` detections (ids are set by the caller)."""
    long_side, short = 640, int(rng.integers(360, 641))
    h, w = (short, long_side) if rng.random() < 0.75 else (long_side, short)
    n = min(60, int(rng.negative_binomial(1.2, 1.2 / (1.2 + MEAN_INSTANCES))))
    bounds = np.array([[6, 32], [32, 96], [96, 0.9 * min(h, w)]])
    band = rng.choice(3, size=n, p=SIZE_MIX)
    sides = rng.uniform(bounds[band, 0], bounds[band, 1])
    cx, cy = rng.uniform(0, w, n), rng.uniform(0, h, n)
    labels = rng.integers(1, NUM_CLASSES + 1, n)
    gt = _annotations(
        h,
        w,
        _polygons(rng, h, w, sides, cx, cy),
        image_id=image_id,
        category_id=labels,
        iscrowd=(rng.random(n) < CROWD).astype(int),
    )
    # Detections: 1-3 jittered copies per object (10% of them of another class), then false positives.
    copies = np.repeat(np.arange(n), rng.integers(1, 4, n))[:detections]
    m = len(copies)
    jitter = 1 + rng.normal(0, 0.12, m)
    det_labels = np.where(rng.random(m) < 0.1, rng.integers(1, NUM_CLASSES + 1, m), labels[copies])
    extra = detections - m
    fp_sides = rng.uniform(bounds[rng.choice(3, size=extra, p=SIZE_MIX), 0], 96)
    polys = _polygons(
        rng,
        h,
        w,
        np.concatenate([sides[copies] * jitter, fp_sides]),
        np.concatenate([cx[copies] + rng.normal(0, 0.1, m) * sides[copies], rng.uniform(0, w, extra)]),
        np.concatenate([cy[copies] + rng.normal(0, 0.1, m) * sides[copies], rng.uniform(0, h, extra)]),
    )
    scores = np.concatenate([rng.uniform(0.3, 1.0, m), rng.uniform(0.0, 0.6, extra)]).round(4)
    dt = _annotations(
        h,
        w,
        polys,
        image_id=image_id,
        category_id=np.concatenate([det_labels, rng.integers(1, NUM_CLASSES + 1, extra)]),
        score=scores,
        iscrowd=0,
    )
    return {"id": image_id, "height": h, "width": w, "file_name": f"{image_id:012d}.jpg"}, gt, dt


def make_dataset(num_images: int, detections: int, seed: int = 0) -> dict[str, Any]:
    """``images``, ``gt``, ``dt`` (annotation lists with ids) and ``categories``, in COCO's layout."""
    rng = np.random.default_rng(seed)
    images, gt, dt = [], [], []
    for image_id in range(1, num_images + 1):
        image, g, d = _image(rng, image_id, detections)
        images.append(image)
        gt += g
        dt += d
    for anns in (gt, dt):
        for k, a in enumerate(anns):
            a["id"] = k + 1
            a["category_id"], a["iscrowd"] = int(a["category_id"]), int(a["iscrowd"])
            if "score" in a:
                a["score"] = float(a["score"])
    categories = [{"id": k, "name": f"class{k}"} for k in range(1, NUM_CLASSES + 1)]
    return {"images": images, "gt": gt, "dt": dt, "categories": categories}


def dataset_file(out_dir: Path, num_images: int, detections: int, seed: int = 0) -> Path:
    """The generated set as a pickle under ``<out>/_data/``, made once."""
    path = (
        Path(out_dir).resolve() / "_data" / f"coco_scoring_v{GENERATOR_VERSION}_n{num_images}_d{detections}_s{seed}.pkl"
    )
    if not path.is_file():
        from insseg.utils.atomic import atomic_path

        data = make_dataset(num_images, detections, seed)
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def _max_rss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def score(backend: str, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Score ``data`` with ``backend`` (segm, then bbox, as CocoEvaluator does): seconds per IoU type, stats
    and the precision / recall arrays."""
    import contextlib
    import io

    from insseg.evaluation.coco_backend import coco_classes

    coco_cls, cocoeval_cls = coco_classes(backend)
    seconds, arrays = {}, {}
    for iou_type in IOU_TYPES:
        dts = [dict(a) for a in data["dt"]]
        if iou_type == "bbox":  # CocoEvaluator's rule: a detection's area is its box's for bbox AP
            for a in dts:
                a["area"] = float(a["bbox"][2] * a["bbox"][3])
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            indexes = []
            for anns in ([dict(a) for a in data["gt"]], dts):
                coco = coco_cls()
                coco.dataset = {"images": data["images"], "annotations": anns, "categories": data["categories"]}
                coco.createIndex()
                indexes.append(coco)
            ev = cocoeval_cls(*indexes, iouType=iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        seconds[iou_type] = time.perf_counter() - start
        arrays[f"{iou_type}_stats"] = np.asarray(ev.stats[:12], np.float64)
        arrays[f"{iou_type}_precision"] = ev.eval["precision"]
        arrays[f"{iou_type}_recall"] = ev.eval["recall"]
        del ev, indexes, dts
    return {"seconds": seconds}, arrays


def worker(backend: str, data_path: Path, out: Path) -> None:
    """The child process: load the set, score it, write the arrays (npz) and the figures (JSON)."""
    start = time.perf_counter()
    data = pickle.loads(Path(data_path).read_bytes())
    load_s, rss_loaded = time.perf_counter() - start, _max_rss_mib()
    report, arrays = score(backend, data)
    np.savez(out.with_suffix(".npz"), **arrays)
    report.update(backend=backend, load_s=load_s, rss_loaded_mib=rss_loaded, rss_peak_mib=_max_rss_mib())
    out.with_suffix(".json").write_text(json.dumps(report))


def check_identical(ref: dict[str, np.ndarray], fast: dict[str, np.ndarray]) -> None:
    """AssertionError unless the two backends' results agree (module docstring)."""
    for t in IOU_TYPES:
        assert np.array_equal(fast[f"{t}_recall"], ref[f"{t}_recall"]), f"{t}: recall arrays differ"
        p_ref = ref[f"{t}_precision"]
        want = np.where(p_ref == ONE_MINUS_EPS, 1.0, p_ref)
        assert np.array_equal(fast[f"{t}_precision"], want), f"{t}: precision arrays differ"
        s_ref, s_fast = ref[f"{t}_stats"], fast[f"{t}_stats"]
        assert np.array_equal(np.round(s_fast, 12), np.round(s_ref, 12)), f"{t}: stats differ: {s_fast} vs {s_ref}"
        assert np.abs(s_fast - s_ref).max() <= 2 * np.spacing(1), f"{t}: stats differ beyond pycocotools' eps"


def _run_backend(backend: str, data_path: Path, work: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], Any]:
    from benchmarks.fixtures import subprocess_env
    from benchmarks.stopwatch import check_process, run_process

    out = work / backend
    cmd = [sys.executable, "-m", "benchmarks.coco_scoring", "worker", backend, str(data_path), str(out)]
    proc = run_process(cmd, work / f"{backend}.log", env=subprocess_env(), timeout=3600)
    check_process(proc, f"scoring with {backend}")
    with np.load(out.with_suffix(".npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(out.with_suffix(".json").read_text()), arrays, proc


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> Any:
    import shutil

    from benchmarks.results import BenchResult, Target

    num_images, detections = (QUICK_IMAGES, QUICK_DETECTIONS) if quick else (NUM_IMAGES, DETECTIONS)
    title = f"COCO AP scoring (segm + bbox) of {num_images} images x {detections} detections, COCO val's scale"
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return BenchResult("coco_scoring", title, skipped="faster-coco-eval is not installed (pip install -e '.[dev]')")
    data_path = dataset_file(out_dir, num_images, detections)
    work = Path(out_dir).resolve() / "_work" / "coco_scoring"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runs = {b: _run_backend(b, data_path, work) for b in ("pycocotools", "faster_coco_eval")}
    (ref, ref_arrays, ref_proc), (fast, fast_arrays, fast_proc) = runs["pycocotools"], runs["faster_coco_eval"]
    check_identical(ref_arrays, fast_arrays)  # before any figure: a wrong result is a failure
    shutil.rmtree(work, ignore_errors=True)

    data = pickle.loads(data_path.read_bytes())
    total = {name: sum(r["seconds"].values()) for name, r in (("ref", ref), ("fast", fast))}
    result = BenchResult(
        "coco_scoring",
        title,
        project="faster_coco_eval (eval.coco_backend=faster_coco_eval), in a process of its own",
        baseline="pycocotools (the default backend), in a process of its own",
        settings={
            "images": num_images,
            "detections_per_image": detections,
            "classes": NUM_CLASSES,
            "ground_truth": len(data["gt"]),
            "crowd": sum(a["iscrowd"] for a in data["gt"]),
            "detections": len(data["dt"]),
            "generator_version": GENERATOR_VERSION,
        },
        raw={
            "pycocotools": ref,
            "faster_coco_eval": fast,
            "wall_s": [ref_proc.seconds, fast_proc.seconds],
            "peak_rss_bytes": [ref_proc.peak_rss_bytes, fast_proc.peak_rss_bytes],
            "stats": {t: ref_arrays[f"{t}_stats"].tolist() for t in IOU_TYPES},
        },
    )
    result.add(
        "scoring time, segm + bbox", total["fast"], total["ref"], "s", total["ref"] / total["fast"], Target(">=", 3)
    )
    for t in IOU_TYPES:
        result.add(f"  {t}", fast["seconds"][t], ref["seconds"][t], "s", ref["seconds"][t] / fast["seconds"][t])
    mib = [p / 2**20 for p in (fast_proc.peak_rss_bytes, ref_proc.peak_rss_bytes)]
    result.add(
        "peak RSS of the scoring process",
        mib[0],
        mib[1],
        "MiB",
        mib[0] / mib[1],
        note="ratio faster / pycocotools: lower is better; includes imports and the loaded set",
    )
    grown = [fast["rss_peak_mib"] - fast["rss_loaded_mib"], ref["rss_peak_mib"] - ref["rss_loaded_mib"]]
    result.add(
        "  added by scoring (peak - after loading)",
        grown[0],
        grown[1],
        "MiB",
        grown[0] / grown[1] if grown[1] > 0 else None,
    )
    result.notes.append(
        f"identical results: recall arrays bit for bit, precision arrays bit for bit up to pycocotools' "
        f"np.spacing(1), stats equal to 12 decimals (segm AP {ref_arrays['segm_stats'][0]:.4f}, bbox AP "
        f"{ref_arrays['bbox_stats'][0]:.4f}); {len(data['gt'])} ground-truth instances, {len(data['dt'])} detections"
    )
    result.raw["identical_results"] = True
    return result


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "worker":
        sys.exit("usage: python -m benchmarks.coco_scoring worker BACKEND DATA.pkl OUT (run by the benchmark)")
    worker(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
