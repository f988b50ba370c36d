"""Benchmark 4: predict.py's images/s on CPU against the bare tutorial loop (``read_image``, ``model([x])``
in fp32, nothing else) with the same model and weights on the same images.

The project path is ``insseg.inference.predict_pipeline.run_prediction(cfg)``, the function behind predict.py,
run in this process: decoding, forward pass, thresholding, mask binarisation, RLE encoding, overlay and mask PNGs and
predictions.json. Its own clock gives the split (load / model / postprocess / write); its first image is a
warm-up and is left out, as the baseline's is. The model is Mask R-CNN R50-FPN (predict.py's default; the
smoke model in ``--quick``) with random weights whose class logits are shifted so every image has
exactly 10 detections above 0.5, the load a trained model puts on postprocessing and writing. On 2 CPU cores
the full run uses 512/683 instead of 800/1333 to stay within minutes (a smaller forward pass makes the
overhead's share larger, so this is the harder case).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from pathlib import Path

import torch
from torchvision.io import read_image
from torchvision.transforms.v2.functional import to_dtype

from benchmarks.fixtures import config, detector_checkpoint, generated
from benchmarks.results import BenchResult, Target
from benchmarks.stopwatch import median
from insseg.models import build_model

DETECTIONS = 10


def baseline_loop(model: torch.nn.Module, paths: list[Path]) -> dict[str, float]:
    """The torchvision tutorial's inference loop; the first image is a warm-up. Seconds, timed images only."""
    model.eval()
    load = forward = 0.0
    for k, path in enumerate(paths):
        t0 = time.perf_counter()
        image = read_image(str(path))
        x = to_dtype(image, torch.float32, scale=True)[:3]
        t1 = time.perf_counter()
        with torch.no_grad():
            model([x])
        t2 = time.perf_counter()
        if k > 0:
            load, forward = load + t1 - t0, forward + t2 - t1
    return {"images": len(paths) - 1, "wall_s": load + forward, "load_s": load, "model_s": forward}


def project_run(cfg) -> dict[str, float]:
    from insseg.inference.predict_pipeline import run_prediction

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = run_prediction(cfg)
    steady = result["timing"]["steady"]
    return {
        "images": steady["images"],
        "wall_s": steady["wall_s"],
        "instances": result["num_instances"],
        **{f"{k}_s": steady[f"{k}_s"] for k in ("load", "model", "postprocess", "write", "other")},
    }


def run(quick: bool = False, out_dir: Path = Path("bench_results")) -> BenchResult:
    if quick:
        num_images, repeats, arch = 3, 1, ["experiment=smoke"]
        model_desc = "smoke: resnet18-FPN, min_size 192"
    else:
        num_images, repeats, arch = 4, 2, ["model.min_size=512", "model.max_size=683"]
        model_desc = "Mask R-CNN R50-FPN, min_size 512 / max_size 683"
    root = generated(out_dir, "voc", num_images, 375, 500, 6, seed=1)
    images = root / "JPEGImages"
    paths = sorted(images.glob("*.jpg"))
    work = out_dir / "_work" / "predict_overhead"
    shutil.rmtree(work, ignore_errors=True)
    arch = [*arch, "device=cpu", f"model.detections_per_img={DETECTIONS}"]
    ckpt = detector_checkpoint(work / "model.pt", arch, ["person"])
    overrides = [*arch, f"model.weights={ckpt}", f"input={images}", "predict.warmup_iters=1"]
    model = build_model(config("predict", overrides, work / "_cfg").model)

    runs: dict[str, list[dict[str, float]]] = {"project": [], "baseline": []}
    for r in range(repeats):  # alternate the two, so a change of machine load hits both alike
        runs["baseline"].append(baseline_loop(model, paths))
        runs["project"].append(project_run(config("predict", overrides, work / f"run{r}")))
    shutil.rmtree(work, ignore_errors=True)

    def rate(rs: list[dict[str, float]]) -> float:
        return median([x["images"] / x["wall_s"] for x in rs])

    def ms(rs: list[dict[str, float]], key: str) -> float:
        return median([1000 * x[f"{key}_s"] / x["images"] for x in rs])

    p, b = runs["project"], runs["baseline"]
    result = BenchResult(
        "predict_overhead",
        f"predict.py images/s vs the bare tutorial loop on CPU ({num_images - 1} timed VOC-size images)",
        project="insseg.inference.predict_pipeline.predict (predict.py): load, model, threshold, RLE, PNGs, JSON",
        baseline="tutorial loop: read_image, to float, model([x]) in fp32 under no_grad; nothing written",
        settings={
            "model": model_desc,
            "detections_per_image": DETECTIONS,
            "images_timed": num_images - 1,
            "warmup_images": 1,
            "repeats": repeats,
            "image_size": "500x375",
            "threads": torch.get_num_threads(),
        },
        raw=runs,
    )
    result.add("images/s", rate(p), rate(b), "img/s", rate(p) / rate(b), Target(">=", 0.95))
    share = median([100 * (1 - x["model_s"] / x["wall_s"]) for x in p])
    result.add(
        "share of predict.py's time outside the forward pass",
        share,
        None,
        "%",
        share,
        Target("<=", 5, "%"),
        note="load + postprocess + write + other over wall time, within the same run (insensitive to how "
        "fast the forward pass happened to run)",
    )
    result.add("model (forward)", ms(p, "model"), ms(b, "model"), "ms/img")
    result.add("load (decode; project: wait for prefetch)", ms(p, "load"), ms(b, "load"), "ms/img")
    result.add("postprocess (threshold, binarise, RLE)", ms(p, "postprocess"), None, "ms/img")
    result.add("write (overlay + mask PNGs)", ms(p, "write"), None, "ms/img")
    result.add("other (loop, progress bar)", ms(p, "other"), None, "ms/img")
    result.notes.append(
        f"{median([x['instances'] for x in p]):.0f} instances written per run; the forward pass is the same code on "
        "both sides, so a difference in its time is noise (machine load) or the project's inference_mode"
    )
    return result
