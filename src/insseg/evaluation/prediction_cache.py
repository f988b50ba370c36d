"""Raw predictions cached on disk, so a threshold sweep runs the model once.

The key covers everything that changes what the model returns: the weights file's identity (resolved path,
size, modification time), the whole model config, the seed when weights are random, the dataset (name,
layout, resolved root, split, the exact list of image file names, its classes) and the device kind and AMP
setting. The entry is one gzipped JSON (the predictions.json layout plus per-image timings) under
``<cache_dir>/predictions/``, written atomically. A file lock makes parallel jobs of one sweep (joblib) wait for
the first job instead of all running the model.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from insseg.evaluation.sources import ImageRecord, PredictionSet
from insseg.evaluation.timing import ImageTiming
from insseg.predictions import ImagePrediction, PredictionsWriter
from insseg.utils.atomic import atomic_path
from insseg.utils.device import amp_enabled
from insseg.utils.logging import log

CACHE_VERSION = 1

try:  # POSIX; elsewhere parallel jobs may compute the same entry twice (still correct).
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def weights_identity(weights: str | None, model_name: str) -> dict[str, Any]:
    """What identifies the weights: a file's resolved path, size and mtime; DEFAULT's cached file; or null."""
    if weights is None:
        return {"weights": None}
    if weights == "DEFAULT":
        path = None
        if model_name == "maskrcnn":
            from insseg.models.maskrcnn import COCO_WEIGHTS
            from insseg.models.weights_cache import hub_checkpoint_path

            path = hub_checkpoint_path(COCO_WEIGHTS.url)
        ident: dict[str, Any] = {"weights": "DEFAULT"}
        if path is not None and path.is_file():
            ident.update(_file_identity(path))
        return ident
    path = Path(weights).expanduser()
    if not path.is_file():
        return {"weights": str(path), "missing": True}
    return _file_identity(path)


def _file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"weights": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cache_key_info(
    cfg: Any, split: str, file_names: Sequence[str], dataset_classes: Sequence[str], device: torch.device
) -> dict[str, Any]:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {
        "version": CACHE_VERSION,
        "weights": weights_identity(cfg.model.weights, cfg.model.name),
        "model": model,
        "seed": cfg.seed if cfg.model.weights is None else None,
        "dataset": {
            "name": cfg.data.name,
            "layout": cfg.data.layout,
            "root": str(Path(cfg.data.root).expanduser().resolve()),
            "split": split,
            "num_images": len(file_names),
            "file_names_sha256": hashlib.sha256("\n".join(file_names).encode()).hexdigest(),
            "classes": list(dataset_classes),
        },
        "device": {"type": device.type, "amp": amp_enabled(cfg.device, device), "amp_dtype": cfg.device.amp_dtype},
    }


class PredictionCache:
    def __init__(self, cache_dir: str | Path, info: dict[str, Any]) -> None:
        self.info = info
        self.key = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:24]
        self.dir = Path(cache_dir) / "predictions"
        self.path = self.dir / f"{self.key}.json.gz"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive while held: one job computes an entry, the others wait and then read it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        with open(self.dir / f"{self.key}.lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(f"waiting for another job to fill prediction cache entry {self.key} ...")
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def load(self) -> PredictionSet | None:
        """The cached predictions, or None when there is no (readable, matching) entry."""
        if not self.path.is_file():
            return None
        try:
            with gzip.open(self.path, "rt", encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError, EOFError) as e:
            log.warning(f"ignoring unreadable prediction cache entry {self.path}: {e}")
            return None
        if data.get("insseg_cache", {}).get("info") != json.loads(json.dumps(self.info, default=str)):
            return None
        return _parse(data)

    def save(self, predictions: PredictionSet) -> None:
        data = to_payload(predictions)
        data["insseg_cache"]["info"] = self.info
        with atomic_path(self.path) as tmp:
            with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as f:
                json.dump(data, f, default=str)


def to_payload(predictions: PredictionSet) -> dict[str, Any]:
    """The predictions.json layout (scores and boxes rounded as that file rounds them) plus timings."""
    writer = PredictionsWriter(predictions.class_names)
    for rec in predictions.records:
        writer.add(rec.file_name, rec.height, rec.width, rec.prediction)
    data = writer.to_dict()
    data["insseg_cache"] = {
        "timings": [rec.timing.to_dict() if rec.timing is not None else None for rec in predictions.records],
        "indices": predictions.indices,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return data


def round_trip(predictions: PredictionSet) -> PredictionSet:
    """``predictions`` exactly as they read back from the cache or predictions.json, so a fresh run, a cache
    hit and a later ``eval.predictions=`` run all score the same numbers."""
    return _parse(to_payload(predictions))


def _parse(data: dict[str, Any]) -> PredictionSet:
    meta = data["insseg_cache"]
    categories = sorted(data["categories"], key=lambda c: c["id"])
    result = PredictionSet(class_names=[c["name"] for c in categories], indices=list(meta["indices"]))
    grouped: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in data["images"]}
    for ann in data["annotations"]:
        grouped[ann["image_id"]].append(ann)
    for im, timing in zip(data["images"], meta["timings"]):
        anns = grouped[im["id"]]
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        pred = ImagePrediction(
            boxes=boxes,
            scores=np.array([a["score"] for a in anns], dtype=np.float32),
            labels=np.array([a["category_id"] for a in anns], dtype=np.int64),
            rles=[{"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"]} for a in anns],
        )
        result.records.append(
            ImageRecord(im["file_name"], int(im["height"]), int(im["width"]), pred,
                        ImageTiming.from_dict(timing) if timing else None)
        )
    return result
