"""Inputs shared by the benchmarks: generated datasets (cached under ``<out>/_data``), composed configs,
models whose detections clear the score threshold, and the environment of subprocesses."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from insseg.config import compose_config
from insseg.config.compose import CONF_DIR
from insseg.data.synthetic import generate_coco, generate_pennfudan, generate_voc
from insseg.models import build_model
from insseg.models.weights_file import CHECKPOINT_FORMAT

REPO_ROOT = CONF_DIR.parent


def generated(
    out_dir: Path, layout: str, num_images: int, height: int, width: int, max_objects: int, seed: int = 0
) -> Path:
    """A generated dataset in the real on-disk layout, made once and reused by later runs."""
    name = f"{layout}_{width}x{height}_n{num_images}_o{max_objects}_s{seed}"
    root = Path(out_dir).resolve() / "_data" / name  # absolute: subprocesses run in other folders
    if (root / ".complete").is_file():
        return root
    if root.exists():
        shutil.rmtree(root)
    tmp = root.with_name(f".{name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    generate = {"voc": generate_voc, "coco": generate_coco, "pennfudan": generate_pennfudan}[layout]
    generate(tmp, num_images=num_images, height=height, width=width, max_objects=max_objects, seed=seed)
    (tmp / ".complete").write_text("")
    tmp.rename(root)
    return root


def config(name: str, overrides: Sequence[str], output_dir: Path):
    return compose_config(name, list(overrides), output_dir=output_dir)


def force_detections(model: nn.Module, label: int = 1, margin: float = 12.0) -> nn.Module:
    """Make a randomly initialised detector call every proposal class ``label`` with a score near 1.

    A random model's scores hover around 1 / num_classes, so it returns either nothing above 0.5 or a
    number of detections that depends on the seed. With the class logits shifted, the count is set by NMS
    and ``detections_per_img``, so postprocessing and writing have real work and the count is stable.
    """
    with torch.no_grad():
        heads = getattr(model, "roi_heads", None)
        if heads is not None:  # torchvision: background is logit 0
            bias = heads.box_predictor.cls_score.bias
            bias[0] -= margin
            bias[label] += margin
            return model
        bbox_head = model.roi_head.bbox_head  # RefineMask (mmdet): background is the last logit
        bias = bbox_head.fc_cls.bias
        bias[-1] -= margin
        bias[label - 1] += margin
    return model


def detector_checkpoint(path: Path, overrides: Sequence[str], class_names: Sequence[str], seed: int = 0) -> Path:
    """An insseg checkpoint of a random model with :func:`force_detections` applied, loadable with
    ``model.weights=<path>`` by every entry script (the architecture comes from ``overrides``)."""
    cfg = config("predict", ["model.weights=null", *overrides], path.parent / "_cfg")
    torch.manual_seed(seed)
    model = force_detections(build_model(cfg.model, list(class_names), fit_to_dataset=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "model_name": cfg.model.name,
            "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
            "class_names": list(class_names),
        },
        path,
    )
    return path


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HYDRA_FULL_ERROR"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def entry_script(name: str) -> list[str]:
    """``python <repo>/<name>.py`` with this interpreter."""
    return [sys.executable, str(REPO_ROOT / f"{name}.py")]


def cuda_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def run_on_cuda(
    name: str, title: str, measure, quick: bool, out_dir: Path, dry_run: bool, dry_run_overrides: list[str]
):
    """A GPU benchmark's entry: on CUDA measure; with ``dry_run`` exercise the code on the CPU with tiny inputs;
    otherwise a skipped result that says where to run it."""
    from benchmarks.results import BenchResult

    if dry_run:
        return measure(torch.device("cpu"), True, out_dir, dry_run_overrides, dry_run=True)
    reason = cuda_skip_reason()
    if reason:
        return BenchResult(name, title, skipped=f"{reason}; run `python -m benchmarks {name}` on a CUDA machine")
    return measure(torch.device("cuda"), quick, out_dir)


def image_arrays(out_dir: Path, num_images: int, seed: int = 3) -> list:
    """``num_images`` generated VOC-size (500x375) images as uint8 [H, W, 3] RGB arrays in memory."""
    from insseg.io.images import load_image_rgb

    root = generated(out_dir, "voc", num_images, 375, 500, 6, seed=seed)
    return [load_image_rgb(p) for p in sorted((root / "JPEGImages").glob("*.jpg"))]


def maskrcnn_weights() -> tuple[str | None, str]:
    """torchvision's COCO weights when they are in the torch cache (no download), else random weights.
    Returns the ``model.weights`` value and a description."""
    from insseg.models.maskrcnn import COCO_WEIGHTS
    from insseg.models.weights_cache import hub_checkpoint_path

    if hub_checkpoint_path(COCO_WEIGHTS.url).is_file():
        return "DEFAULT", "torchvision COCO weights"
    return None, "random weights (the COCO weights are not in the torch cache)"
