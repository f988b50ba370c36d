"""Benchmark: Boundary AP at COCO val's scale against segm AP with the same backend, and against a
straightforward implementation of the official boundary-iou-api's definition.

The set is the ``coco_scoring`` benchmark's (5,000 generated images, 640 pixels on the long side, COCO's
object mix, 100 detections per image; ``--quick``: 40 x 20), generated once into ``<out>/_data/``. Each
measurement runs in a process of its own (``python -m benchmarks.boundary_scoring worker KIND BACKEND ...``):
from building the COCO indexes to ``summarize()``, imports and loading the set excluded.

- ``segm``: the backend's COCOeval, iouType segm (what ``CocoEvaluator`` runs).
- ``boundary``: :func:`insseg.evaluation.boundary.boundary_cocoeval` of that backend.
- ``reference``: the official API's way, on pycocotools: every annotation's boundary computed up front over
  the whole image (decode, pad one pixel, ``cv2.erode`` with a 3x3 kernel ``d`` times, subtract, encode), and
  ``computeIoU`` = min(mask IoU, boundary IoU) for non-crowd ground truth (the official
  ``computeBoundaryIoU``), on one core (the official spreads the boundaries over a process pool).

Results must agree before any figure counts: boundary (pycocotools) and reference bit for bit (stats,
precision and recall arrays); boundary with faster-coco-eval as the ``coco_scoring`` benchmark compares the
two backends (precision up to pycocotools' ``np.spacing(1)``).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.coco_scoring import DETECTIONS, NUM_IMAGES, QUICK_DETECTIONS, QUICK_IMAGES, dataset_file

KINDS = ("segm", "boundary", "reference")
RUNS = (
    ("segm", "pycocotools"),
    ("boundary", "pycocotools"),
    ("segm", "faster_coco_eval"),
    ("boundary", "faster_coco_eval"),
    ("reference", "pycocotools"),
)


def _reference_class() -> type:
    """pycocotools' COCOeval with the official boundary IoU, boundaries computed as the official does."""
    import cv2
    from pycocotools import mask as mask_utils
    from pycocotools.cocoeval import COCOeval

    from insseg.evaluation.boundary import DEFAULT_DILATION_RATIO

    def mask_to_boundary(mask: np.ndarray, ratio: float) -> np.ndarray:
        h, w = mask.shape
        dilation = max(1, int(round(ratio * np.sqrt(h**2 + w**2))))
        padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)
        return mask - eroded[1 : h + 1, 1 : w + 1]

    class ReferenceBoundaryEval(COCOeval):
        def __init__(self, gt: Any, dt: Any, ratio: float = DEFAULT_DILATION_RATIO) -> None:
            for coco in (gt, dt):
                for ann in coco.dataset["annotations"]:
                    boundary = mask_to_boundary(coco.annToMask(ann), ratio)
                    ann["boundary"] = mask_utils.encode(np.asfortranarray(boundary[:, :, None]))[0]
            super().__init__(gt, dt, iouType="segm")

        def computeIoU(self, imgId: int, catId: int) -> Any:  # noqa: N802, N803
            ious = super().computeIoU(imgId, catId)
            if len(ious) == 0:
                return ious
            p = self.params
            if p.useCats:
                gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
            else:
                gt = [g for c in p.catIds for g in self._gts[imgId, c]]
                dt = [d for c in p.catIds for d in self._dts[imgId, c]]
            dt = [dt[i] for i in np.argsort([-d["score"] for d in dt], kind="mergesort")][: p.maxDets[-1]]
            crowd = np.array([int(g["iscrowd"]) for g in gt], bool)
            b = np.asarray(mask_utils.iou([d["boundary"] for d in dt], [g["boundary"] for g in gt], crowd.tolist()))
            ious[:, ~crowd] = np.minimum(ious[:, ~crowd], b[:, ~crowd])
            return ious

    return ReferenceBoundaryEval


def score(kind: str, backend: str, data: dict[str, Any]) -> tuple[float, dict[str, np.ndarray]]:
    """Seconds of one scoring of ``data`` (``kind`` with ``backend``), and its stats / precision / recall."""
    from insseg.evaluation.boundary import boundary_cocoeval
    from insseg.evaluation.coco_backend import coco_classes

    coco_cls, cocoeval_cls = coco_classes(backend)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        indexes = []
        for anns in ([dict(a) for a in data["gt"]], [dict(a) for a in data["dt"]]):
            coco = coco_cls()
            coco.dataset = {"images": data["images"], "annotations": anns, "categories": data["categories"]}
            coco.createIndex()
            indexes.append(coco)
        if kind == "segm":
            ev = cocoeval_cls(*indexes, iouType="segm")
        elif kind == "boundary":
            ev = boundary_cocoeval(*indexes, backend=backend)
        else:
            ev = _reference_class()(*indexes)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    seconds = time.perf_counter() - start
    arrays = {"stats": np.asarray(ev.stats[:12], np.float64), "precision": ev.eval["precision"]}
    arrays["recall"] = ev.eval["recall"]
    return seconds, arrays


def worker(kind: str, backend: str, data_path: Path, out: Path) -> None:
    data = pickle.loads(Path(data_path).read_bytes())
    seconds, arrays = score(kind, backend, data)
    np.savez(out.with_suffix(".npz"), **arrays)
    out.with_suffix(".json").write_text(json.dumps({"kind": kind, "backend": backend, "seconds": seconds}))


def check_agreement(runs: dict[tuple[str, str], dict[str, np.ndarray]]) -> None:
    """AssertionError unless Boundary AP agrees with the reference and across backends (module docstring)."""
    from benchmarks.coco_scoring import ONE_MINUS_EPS

    ours, ref = runs["boundary", "pycocotools"], runs["reference", "pycocotools"]
    for name in ("stats", "precision", "recall"):
        assert np.array_equal(ours[name], ref[name]), f"boundary AP differs from the reference: {name}"
    fast = runs["boundary", "faster_coco_eval"]
    assert np.array_equal(fast["recall"], ours["recall"]), "faster_coco_eval boundary: recall differs"
    want = np.where(ours["precision"] == ONE_MINUS_EPS, 1.0, ours["precision"])
    assert np.array_equal(fast["precision"], want), "faster_coco_eval boundary: precision differs"
    assert np.abs(fast["stats"] - ours["stats"]).max() <= 2 * np.spacing(1), "faster_coco_eval boundary: stats"


def _run(kind: str, backend: str, data_path: Path, work: Path) -> tuple[float, dict[str, np.ndarray]]:
    from benchmarks.fixtures import subprocess_env
    from benchmarks.stopwatch import check_process, run_process

    out = work / f"{kind}_{backend}"
    cmd = [sys.executable, "-m", "benchmarks.boundary_scoring", "worker", kind, backend, str(data_path), str(out)]
    check_process(run_process(cmd, work / f"{out.name}.log", env=subprocess_env(), timeout=7200), f"{kind} {backend}")
    with np.load(out.with_suffix(".npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(out.with_suffix(".json").read_text())["seconds"], arrays


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> Any:
    import shutil

    from benchmarks.results import BenchResult, Target

    num_images, detections = (QUICK_IMAGES, QUICK_DETECTIONS) if quick else (NUM_IMAGES, DETECTIONS)
    title = f"Boundary AP scoring of {num_images} images x {detections} detections, COCO val's scale"
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return BenchResult(
            "boundary_scoring", title, skipped="faster-coco-eval is not installed (pip install -e '.[dev]')"
        )
    data_path = dataset_file(out_dir, num_images, detections)
    work = Path(out_dir).resolve() / "_work" / "boundary_scoring"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    measured = {run: _run(*run, data_path, work) for run in RUNS}
    check_agreement({run: arrays for run, (_, arrays) in measured.items()})  # before any figure
    shutil.rmtree(work, ignore_errors=True)
    sec = {run: seconds for run, (seconds, _) in measured.items()}
    result = BenchResult(
        "boundary_scoring",
        title,
        project="insseg.evaluation.boundary.boundary_cocoeval (each backend), in a process of its own",
        baseline="segm AP of the same backend; the official definition done straightforwardly (reference)",
        settings={"images": num_images, "detections_per_image": detections, "dilation_ratio": 0.02},
        raw={f"{kind}_{backend}_s": s for (kind, backend), s in sec.items()},
    )
    for backend in ("pycocotools", "faster_coco_eval"):
        b, s = sec["boundary", backend], sec["segm", backend]
        result.add(f"Boundary AP vs segm AP, {backend}", b, s, "s", b / s, Target("<=", 2))
    ref, ours = sec["reference", "pycocotools"], sec["boundary", "pycocotools"]
    result.add("reference vs Boundary AP, pycocotools", ours, ref, "s", ref / ours, note="speed-up over the reference")
    stats = measured["boundary", "pycocotools"][1]["stats"]
    result.notes.append(
        f"identical results: boundary AP {stats[0]:.4f} (segm AP {measured['segm', 'pycocotools'][1]['stats'][0]:.4f})"
        " equal to the reference bit for bit (stats, precision, recall); faster_coco_eval equal up to "
        "pycocotools' np.spacing(1) in precision"
    )
    result.raw["identical_results"] = True
    return result


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "worker" or sys.argv[2] not in KINDS:
        sys.exit("usage: python -m benchmarks.boundary_scoring worker KIND BACKEND DATA.pkl OUT (run by the benchmark)")
    worker(sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]))
