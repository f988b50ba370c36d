"""predict.py without Hydra: ``run_prediction(cfg)`` segments every input image and writes into
``cfg.paths.output_dir``:

    overlays/<stem>.png      the image with each kept instance's mask, box, class name and score
    masks/<stem>_<k>.png     one 0/255 PNG per kept instance, k = 0, 1, ... by descending score
    predictions.json         the kept instances (score > threshold) in evaluate.py's layout, with
                             ``info.score_threshold`` (evaluate.py warns when it scores AP on a cut file)
    contact_sheet.html       with predict.report=true: the overlays on one offline page
    failures.txt             only when some inputs could not be read (or did not fit in memory even alone):
                             "<path>\\t<reason>" per line

Output names: ``<stem>`` is the input's path relative to the input folder (or a glob's fixed part) without
its suffix, so ``input='photos/**/*.jpg'`` mirrors ``photos/``'s sub-folders. When inputs share a stem
(``a.png`` and ``a.jpg`` in one folder, compared case-insensitively), each of them uses its full file name
instead (``overlays/a.png.png``, ``overlays/a.jpg.png``); any clash left gets ``~2``, ``~3``, ... The
``file_name`` of each image in predictions.json is that relative path with its suffix.

Images go through the one inference loop (:mod:`insseg.inference.loop`): decoding one batch ahead in a
background thread, then the model, then postprocess. Timing adds the writing of overlays and mask PNGs. The
first ``predict.warmup_iters`` batches are processed and written like the rest but left out of the figures.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from insseg.inference.contact_sheet import write_contact_sheet
from insseg.inference.loop import InferenceLoop
from insseg.inference.output_names import output_stems, relative_names
from insseg.inference.segmenter import Segmenter
from insseg.inference.sharding import ShardSource, gather_in_order, shard_indices
from insseg.inference.sources import FileSource
from insseg.io.images import IMAGE_EXTENSIONS, expand_inputs, input_root
from insseg.predictions import ImagePrediction, PredictionSet
from insseg.utils.atomic import atomic_write_text
from insseg.utils.device import resolve_device
from insseg.utils.distributed import DistInfo, cleanup, init_distributed
from insseg.utils.logging import ensure_console_logging, log
from insseg.utils.overlay import draw_overlay
from insseg.utils.seed import seed_everything

STAGES = ("data", "model", "postprocess", "write")


@dataclass
class _Timing:
    """Steady-state seconds per stage (records of warm-up batches carry no timing and are not counted)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    images: int = 0
    warmup_images: int = 0

    def add(self, rec: ImagePrediction, write_s: float) -> None:
        if rec.timing is None:
            self.warmup_images += 1
            return
        self.images += 1
        for k, v in rec.timing.to_dict().items():
            self.seconds[k] += v
        self.seconds["write"] += write_s

    def summary(self) -> dict[str, Any]:
        busy = sum(self.seconds.values())
        return {
            "images": self.images,
            "warmup_images": self.warmup_images,
            **{f"{k}_s": round(v, 4) for k, v in self.seconds.items()},
            "images_per_s": round(self.images / busy, 3) if busy > 0 else None,
        }


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Level 1: several times faster than the default on large photos, for slightly larger files.
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _folder_note(input: str) -> str | None:
    folder = Path(os.path.expanduser(input))
    if not folder.is_dir():
        return None
    others = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMAGE_EXTENSIONS
    )
    if not others:
        return None
    shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
    return f"note: skipped {len(others)} file(s) in {folder} without an image suffix ({shown})"


def run_prediction(cfg: Any, explicit_model_keys: Collection[str] = ()) -> dict[str, Any]:
    """Segment every image of ``cfg.predict.input``; see the module docstring for what is written. Under
    torchrun each rank segments its shard of the inputs and writes its overlays and masks; rank 0 gathers the
    records and writes predictions.json and failures.txt (the other ranks return their shard's counts).
    A project checkpoint runs with the model settings it was trained with, except ``explicit_model_keys``."""
    ensure_console_logging()
    dist_info = init_distributed(resolve_device(cfg.device))
    try:
        return _predict(cfg, dist_info, explicit_model_keys)
    finally:
        cleanup(dist_info)


def _predict(cfg: Any, dist_info: DistInfo, explicit_model_keys: Collection[str]) -> dict[str, Any]:
    pcfg = cfg.predict
    paths = expand_inputs(pcfg.input)
    names = relative_names(paths, input_root(pcfg.input))
    stems = output_stems(names)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if dist_info.is_main:
        _log_notes(pcfg.input, names, stems)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)  # a model.weights=null dry run gives the same random model every time
    segmenter = Segmenter.from_config(cfg, explicit_model_keys=explicit_model_keys)
    build_s = time.perf_counter() - t0
    if dist_info.is_main:
        log.info(
            f"predict: {len(paths)} image(s) with {cfg.model.name} on {segmenter.device} ({segmenter.precision}), "
            f"batch {segmenter.batch_size}, score > {segmenter.score_threshold}, {dist_info.world_size} process(es)"
        )
    positions = shard_indices(len(paths), dist_info)
    loop = _inference_loop(segmenter, ShardSource(FileSource(paths, names), positions), pcfg.warmup_iters)
    info = {"score_threshold": segmenter.score_threshold, "precision": segmenter.precision, "model": cfg.model.name}
    predictions = PredictionSet(segmenter.class_names, info=info)
    timing = _Timing()
    start = time.perf_counter()
    _run(loop, predictions, timing, out_dir, dict(zip(names, stems)), pcfg, dist_info.is_main)
    wall = time.perf_counter() - start
    failures = [(str(paths[positions[f.index]]), f.reason) for f in loop.failures]
    result: dict[str, Any] = {
        "output_dir": str(out_dir),
        "predictions": str(out_dir / "predictions.json"),
        "outputs": dict(zip(names, stems)),
    }
    gathered = _gather(predictions, failures, names, paths, dist_info)
    if gathered is None:
        return {**result, "num_images": len(predictions.images), "num_failed": 0, "failures": []}
    predictions.images, failures = gathered
    predictions.write(out_dir / "predictions.json")
    _write_failures(out_dir / "failures.txt", failures)
    if pcfg.report and pcfg.save_overlays:
        _write_contact_sheet(out_dir, predictions, dict(zip(names, stems)))
    result.update(
        {
            "num_images": len(predictions.images),
            "num_failed": len(failures),
            "num_instances": sum(len(r) for r in predictions.images),
            "failures": failures,
            "timing": {"build_s": round(build_s, 4), "wall_s": round(wall, 4), "steady": timing.summary()},
        }
    )
    log.info(_closing_line(result, timing, segmenter.score_threshold, out_dir / "failures.txt"))
    return result


def _inference_loop(segmenter: Segmenter, source: ShardSource, warmup_iters: int) -> InferenceLoop:
    """The one inference loop with the Segmenter's model and settings; unreadable images are skipped and
    reported, masks are kept for the overlays."""
    return InferenceLoop(
        segmenter.model,
        source,
        segmenter.device,
        segmenter.precision,
        segmenter.batch_size,
        warmup_iters,
        segmenter.score_threshold,
        skip_failures=True,
        keep_masks=True,
    )


def _write_contact_sheet(out_dir: Path, predictions: PredictionSet, stem_of: dict[str, str]) -> None:
    """``predict.report=true``: one page of every overlay (overlays/<stem>.png) with its instance count."""
    items = [
        (out_dir / "overlays" / f"{stem_of[r.file_name]}.png", f"{r.file_name}: {len(r)} instance(s)")
        for r in predictions.images
    ]
    write_contact_sheet(out_dir / "contact_sheet.html", items)


def _gather(
    predictions: PredictionSet,
    failures: list[tuple[str, str]],
    names: Sequence[str],
    paths: Sequence[Path],
    dist_info: DistInfo,
) -> tuple[list[ImagePrediction], list[tuple[str, str]]] | None:
    """Every rank's records and failures on rank 0, in input order (None on the other ranks)."""
    if not dist_info.enabled:
        return predictions.images, failures
    position = {n: i for i, n in enumerate(names)}
    position.update({str(p): i for i, p in enumerate(paths)})
    items: list[ImagePrediction | tuple[str, str]] = [*predictions.images, *failures]
    at = [position[rec.file_name] for rec in predictions.images] + [position[path] for path, _ in failures]
    merged = gather_in_order(items, at, dist_info)
    if merged is None:
        return None
    return [r for r in merged if isinstance(r, ImagePrediction)], [f for f in merged if isinstance(f, tuple)]


def _run(
    loop: InferenceLoop,
    predictions: PredictionSet,
    timing: _Timing,
    out_dir: Path,
    stems: dict[str, str],
    pcfg: Any,
    show: bool = True,
) -> None:
    """Drive the loop: write each record's overlay and masks, keep its RLEs for predictions.json."""
    # rate_noinv: always images per second (tqdm's default flips to s/img below 1 image/s).
    bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
    with tqdm(
        total=len(loop),
        unit="img",
        desc="predict",
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format=bar_format,
        disable=not show,
    ) as bar:
        done = instances = 0
        for rec, image in loop.with_images():
            t = time.perf_counter()
            _write_outputs(out_dir, stems[rec.file_name], image, rec, pcfg.save_overlays, pcfg.save_masks)
            timing.add(rec, time.perf_counter() - t)
            predictions.images.append(rec.without_masks())
            instances += len(rec)
            bar.update(len(predictions.images) + len(loop.failures) - done)
            done = len(predictions.images) + len(loop.failures)
            bar.set_postfix(instances=instances, refresh=False)
        for failure in loop.failures:
            log.warning(f"skipped {failure.name}: {failure.reason}")
        bar.update(len(loop) - done)


def _write_failures(path: Path, failures: list[tuple[str, str]]) -> None:
    if failures:
        atomic_write_text(path, "".join(f"{p}\t{r}\n" for p, r in failures))
    elif path.exists():
        path.unlink()  # a stale list from an earlier run into the same folder


def _log_notes(input: str, names: list[str], stems: list[str]) -> None:
    note = _folder_note(input)
    if note:
        log.info(note)
    renamed = [(n, s) for n, s in zip(names, stems) if PurePosixPath(n).with_suffix("").as_posix() != s]
    if renamed:
        shown = ", ".join(f"{n} -> overlays/{s}.png" for n, s in renamed[:4]) + (", ..." if len(renamed) > 4 else "")
        log.info(
            f"note: {len(renamed)} input(s) share a stem with another, so their outputs use the full file name: {shown}"
        )


def _write_outputs(
    out_dir: Path, stem: str, image: np.ndarray, rec: ImagePrediction, overlays: bool, masks: bool
) -> None:
    if overlays:
        labels = [f"{name} {score:.2f}" for name, score in zip(rec.names, rec.scores)]
        _save_png(draw_overlay(image, rec.mask_array(), rec.boxes, labels), out_dir / "overlays" / f"{stem}.png")
    if masks:
        for k, mask in enumerate(rec.mask_array()):
            _save_png(mask.astype(np.uint8) * 255, out_dir / "masks" / f"{stem}_{k}.png")


def _closing_line(result: dict, timing: _Timing, threshold: float, failures_file: Path) -> str:
    head = f"done: {result['num_images']} image(s), {result['num_instances']} instance(s) with score > {threshold}"
    if result["num_failed"]:
        head += f", {result['num_failed']} unreadable (listed in {failures_file})"
    head += f" -> {result['output_dir']}"
    s = timing.seconds
    split = ", ".join(f"{k} {s[k]:.2f}s" for k in STAGES)
    rate = timing.summary()["images_per_s"]
    tail = f"; {rate if rate is not None else 'n/a'} images/s after warm-up ({timing.images} image(s): {split})"
    if timing.warmup_images:
        tail += f"; warm-up {timing.warmup_images} image(s) excluded"
    return head + tail
