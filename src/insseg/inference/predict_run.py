"""predict.py without Hydra: ``predict(cfg)`` segments every input image and writes into ``cfg.paths.output_dir``:

    overlays/<stem>.png      the image with each kept instance's mask, box, class name and score
    masks/<stem>_<k>.png     one 0/255 PNG per kept instance, k = 0, 1, ... by descending score
    predictions.json         the kept instances (score > threshold) in evaluate.py's layout
    failures.txt             only when some inputs could not be read (or did not fit in memory even alone):
                             "<path>\\t<reason>" per line

Output names: ``<stem>`` is the input's path relative to the input folder (or a glob's fixed part) without
its suffix, so ``input='photos/**/*.jpg'`` mirrors ``photos/``'s sub-folders. When inputs share a stem
(``a.png`` and ``a.jpg`` in one folder, compared case-insensitively), each of them uses its full file name
instead (``overlays/a.png.png``, ``overlays/a.jpg.png``); any clash left gets ``~2``, ``~3``, ... The
``file_name`` of each image in predictions.json is that relative path with its suffix.

Timing is split into load (waiting for the next decoded image; decoding runs one batch ahead in a background
thread), model (forward pass, CUDA synchronised), postprocess (threshold, binarise, RLE-encode) and write
(overlay and mask PNGs). The first ``predict.warmup_iters`` batches are processed and written like the rest
but left out of the figures.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from insseg.errors import ImageLoadError
from insseg.inference.overlay import draw_overlay
from insseg.inference.segmenter import Segmentation, Segmenter
from insseg.io.images import IMAGE_EXTENSIONS, expand_inputs, input_root, load_image_rgb
from insseg.predictions import PredictionsWriter
from insseg.utils.atomic import atomic_write_text
from insseg.utils.logging import ensure_console_logging, log
from insseg.utils.seed import seed_everything

STAGES = ("load", "model", "postprocess", "write")


@dataclass
class _Timing:
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    images: int = 0
    batches: int = 0
    wall: float = 0.0

    def summary(self) -> dict[str, Any]:
        busy = sum(self.seconds.values())
        return {
            "images": self.images,
            "batches": self.batches,
            "wall_s": round(self.wall, 4),
            **{f"{k}_s": round(v, 4) for k, v in self.seconds.items()},
            "other_s": round(max(0.0, self.wall - busy), 4),
            "images_per_s": round(self.images / self.wall, 3) if self.wall > 0 else None,
        }


def relative_names(paths: Sequence[Path], root: Path) -> list[str]:
    """Each input's path relative to ``root`` (posix); its bare file name where that would leave ``root``."""
    names = []
    for p in paths:
        rel = os.path.relpath(p, root)
        if rel.startswith("..") or os.path.isabs(rel):
            rel = p.name
        names.append(Path(rel).as_posix())
    return names


def output_stems(names: Sequence[str]) -> list[str]:
    """Unique output stems for relative file names (see the module docstring for the rule)."""
    bare = [str(PurePosixPath(n).with_suffix("")) if PurePosixPath(n).suffix else n for n in names]
    counts = Counter(b.casefold() for b in bare)
    wanted = [n if counts[b.casefold()] > 1 else b for n, b in zip(names, bare)]
    seen: set[str] = set()
    stems = []
    for stem in wanted:
        candidate, i = stem, 2
        while candidate.casefold() in seen:
            candidate, i = f"{stem}~{i}", i + 1
        seen.add(candidate.casefold())
        stems.append(candidate)
    return stems


def _prefetch(paths: Sequence[Path], depth: int) -> Iterator[tuple[int, "Future[np.ndarray]"]]:
    """Decode images ``depth`` ahead of the consumer in one background thread (PIL releases the GIL)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="insseg-load") as pool:
        pending: deque[tuple[int, Future]] = deque()
        upcoming = iter(range(len(paths)))
        for i in upcoming:
            pending.append((i, pool.submit(load_image_rgb, paths[i])))
            if len(pending) >= depth:
                break
        while pending:
            item = pending.popleft()
            nxt = next(upcoming, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(load_image_rgb, paths[nxt])))
            yield item


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Level 1: several times faster than the default on large photos, for slightly larger files.
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _folder_note(input: str) -> str | None:
    folder = Path(os.path.expanduser(input))
    if not folder.is_dir():
        return None
    others = sorted(
        p.name for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMAGE_EXTENSIONS
    )
    if not others:
        return None
    shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
    return f"note: skipped {len(others)} file(s) in {folder} without an image suffix ({shown})"


def predict(cfg: Any) -> dict[str, Any]:
    """Segment every image of ``cfg.predict.input``; see the module docstring for what is written."""
    ensure_console_logging()
    pcfg = cfg.predict
    paths = expand_inputs(pcfg.input)
    names = relative_names(paths, input_root(pcfg.input))
    stems = output_stems(names)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    note = _folder_note(pcfg.input)
    if note:
        log.info(note)
    renamed = [(n, s) for n, s in zip(names, stems) if PurePosixPath(n).with_suffix("").as_posix() != s]
    if renamed:
        shown = ", ".join(f"{n} -> overlays/{s}.png" for n, s in renamed[:4]) + (", ..." if len(renamed) > 4 else "")
        log.info(
            f"note: {len(renamed)} input(s) share a stem with another, so their outputs use the full file name: "
            + shown
        )

    t0 = time.perf_counter()
    seed_everything(cfg.seed)  # a model.weights=null dry run gives the same random model every time
    segmenter = Segmenter.from_config(cfg)
    build_s = time.perf_counter() - t0
    log.info(
        f"predict: {len(paths)} image(s) with {cfg.model.name} on {segmenter.device}"
        f"{' (AMP)' if segmenter.amp else ''}, batch {segmenter.batch_size}, score > {segmenter.score_threshold}"
    )

    writer = PredictionsWriter(segmenter.class_names)
    failures: list[tuple[str, str]] = []
    warm, steady = _Timing(), _Timing()
    num_instances = 0
    batch: list[tuple[int, np.ndarray]] = []
    pending_load = 0.0
    warm_end: float | None = None if pcfg.warmup_iters > 0 else time.perf_counter()
    loop_start = time.perf_counter()

    def run_batch() -> None:
        nonlocal num_instances, pending_load, warm_end
        timing = warm if warm.batches < pcfg.warmup_iters else steady
        timing.seconds["load"] += pending_load
        pending_load = 0.0
        done = _segment(segmenter, batch, timing, failures, paths)  # adds model and postprocess time
        t1 = time.perf_counter()
        for i, arr, res in done:
            writer.add(names[i], arr.shape[0], arr.shape[1], res.to_prediction())
        t2 = time.perf_counter()
        for i, arr, res in done:
            _write_outputs(out_dir, stems[i], arr, res, pcfg.save_overlays, pcfg.save_masks)
            num_instances += len(res)
        t3 = time.perf_counter()
        timing.seconds["postprocess"] += t2 - t1
        timing.seconds["write"] += t3 - t2
        timing.images += len(done)
        timing.batches += 1
        if timing is warm and warm.batches == pcfg.warmup_iters:
            warm_end = t3
        batch.clear()

    # rate_noinv: always images per second (tqdm's default flips to s/img below 1 image/s).
    bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
    bar = tqdm(total=len(paths), unit="img", desc="predict", file=sys.stderr, dynamic_ncols=True, bar_format=bar_format)
    with bar:
        for i, future in _prefetch(paths, depth=segmenter.batch_size + 1):
            t = time.perf_counter()
            try:
                batch.append((i, future.result()))
            except ImageLoadError as e:
                failures.append((str(paths[i]), e.reason))
                log.warning(f"skipped {paths[i]}: {e.reason}")
                bar.update(1)
            finally:
                pending_load += time.perf_counter() - t
            if len(batch) == segmenter.batch_size:
                n = len(batch)
                run_batch()
                bar.update(n)
                bar.set_postfix(instances=num_instances, refresh=False)
        if batch:
            n = len(batch)
            run_batch()
            bar.update(n)
            bar.set_postfix(instances=num_instances, refresh=False)
    loop_end = time.perf_counter()
    warm.wall = (warm_end or loop_end) - loop_start
    steady.wall = loop_end - warm_end if warm_end is not None and steady.batches else 0.0
    steady.seconds["load"] += pending_load  # waits for trailing unreadable files

    writer.write(out_dir / "predictions.json")
    failures_file = out_dir / "failures.txt"
    if failures:
        atomic_write_text(failures_file, "".join(f"{p}\t{r}\n" for p, r in failures))
    elif failures_file.exists():
        failures_file.unlink()  # a stale list from an earlier run into the same folder

    done = len(paths) - len(failures)
    result = {
        "output_dir": str(out_dir),
        "predictions": str(out_dir / "predictions.json"),
        "num_images": done,
        "num_failed": len(failures),
        "num_instances": num_instances,
        "failures": failures,
        "outputs": dict(zip(names, stems)),
        "timing": {"build_s": round(build_s, 4), "warmup": warm.summary(), "steady": steady.summary()},
    }
    log.info(_closing_line(result, warm, steady, segmenter.score_threshold, failures_file))
    return result


def _segment(
    segmenter: Segmenter,
    batch: list[tuple[int, np.ndarray]],
    timing: _Timing,
    failures: list[tuple[str, str]],
    paths: Sequence[Path],
) -> list[tuple[int, np.ndarray, Segmentation]]:
    """Model and postprocess for a batch. Out of memory: the images are retried one by one, and an image that
    does not fit alone becomes a failure instead of ending the run."""
    arrays = [a for _, a in batch]
    t = time.perf_counter()
    try:
        outputs = segmenter.forward(arrays)
        t1 = time.perf_counter()
        results = segmenter.postprocess(outputs, [a.shape[:2] for a in arrays])
        timing.seconds["model"] += t1 - t
        timing.seconds["postprocess"] += time.perf_counter() - t1
        return [(i, a, r) for (i, a), r in zip(batch, results)]
    except (torch.cuda.OutOfMemoryError, MemoryError):
        timing.seconds["model"] += time.perf_counter() - t
        if segmenter.device.type == "cuda":
            torch.cuda.empty_cache()
    if len(batch) > 1:
        return [r for item in batch for r in _segment(segmenter, [item], timing, failures, paths)]
    (i, arr), = batch
    h, w = arr.shape[:2]
    reason = f"out of memory while segmenting this {w}x{h} image on {segmenter.device}"
    failures.append((str(paths[i]), reason))
    log.warning(f"skipped {paths[i]}: {reason}")
    return []


def _write_outputs(out_dir: Path, stem: str, image: np.ndarray, res: Segmentation, overlays: bool, masks: bool) -> None:
    if overlays:
        labels = [f"{name} {score:.2f}" for name, score in zip(res.class_names, res.scores)]
        _save_png(draw_overlay(image, res.mask_array, res.boxes, labels), out_dir / "overlays" / f"{stem}.png")
    if masks:
        for k, mask in enumerate(res.mask_array):
            _save_png(mask.astype(np.uint8) * 255, out_dir / "masks" / f"{stem}_{k}.png")


def _closing_line(result: dict, warm: _Timing, steady: _Timing, threshold: float, failures_file: Path) -> str:
    head = f"done: {result['num_images']} image(s), {result['num_instances']} instance(s) with score > {threshold}"
    if result["num_failed"]:
        head += f", {result['num_failed']} unreadable (listed in {failures_file})"
    head += f" -> {result['output_dir']}"
    timed, label = (steady, "after warm-up") if steady.batches else (warm, "all batches were warm-up, so including it")
    s = timed.seconds
    split = ", ".join(f"{k} {s[k]:.2f}s" for k in STAGES)
    rate = f"{timed.images / timed.wall:.2f} images/s" if timed.wall > 0 else "n/a images/s"
    tail = f"; {rate} {label} ({timed.images} image(s) in {timed.wall:.2f}s: {split})"
    if steady.batches and warm.batches:
        tail += f"; warm-up {warm.batches} batch(es), {warm.wall:.2f}s, excluded"
    return head + tail
