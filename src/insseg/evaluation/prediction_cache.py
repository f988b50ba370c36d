"""Raw predictions cached on disk, so a threshold sweep runs the model once.

The key covers everything that changes what the model returns: the weights file's identity (resolved path,
size, modification time), the whole model config, the seed when weights are random, the dataset (name,
layout, resolved root, split, the exact list of image file names, its classes) and the device kind and AMP
setting. The entry is one gzipped predictions.json (plus the per-image timings), written and read by the
same code as every predictions file, under
``<cache_dir>/predictions/``, written atomically. A file lock makes parallel jobs of one sweep (joblib) wait for
the first job instead of all running the model.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from insseg.predictions import ImageTiming, PredictionSet, predictions_from_dict
from insseg.utils.atomic import atomic_path
from insseg.utils.logging import log

CACHE_VERSION = 2

try:  # POSIX; elsewhere parallel jobs may compute the same entry twice (still correct).
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def weights_identity(weights: str | None, model_name: str, variant: str | None = None) -> dict[str, Any]:
    """What identifies the weights: a file's resolved path, size and mtime; DEFAULT's cached file; or null."""
    if weights is None:
        return {"weights": None}
    if weights == "DEFAULT":
        path = None
        if model_name == "maskrcnn":
            from insseg.models.maskrcnn import COCO_WEIGHTS_BY_VARIANT
            from insseg.models.weights_cache import hub_checkpoint_path

            path = hub_checkpoint_path(COCO_WEIGHTS_BY_VARIANT[variant or "v1"].url)
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
    cfg: Any,
    split: str,
    file_names: Sequence[str],
    dataset_classes: Sequence[str],
    device: torch.device,
    precision: str,
) -> dict[str, Any]:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {
        "version": CACHE_VERSION,
        "weights": weights_identity(cfg.model.weights, cfg.model.name, cfg.model.get("variant")),
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
        "device": {"type": device.type, "precision": precision},
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
        meta = data.pop("insseg_cache", {})
        if meta.get("info") != json.loads(json.dumps(self.info, default=str)):
            return None
        predictions = predictions_from_dict(data, str(self.path))
        for rec, timing in zip(predictions.images, meta["timings"]):
            rec.timing = ImageTiming.from_dict(timing) if timing else None
        return predictions

    def save(self, predictions: PredictionSet) -> None:
        data = predictions.to_dict()
        data["insseg_cache"] = {
            "info": self.info,
            "timings": [rec.timing.to_dict() if rec.timing is not None else None for rec in predictions.images],
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        with atomic_path(self.path) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as f:
            json.dump(data, f, default=str)
