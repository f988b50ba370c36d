"""Shared helpers for the RefineMask tests: locating the reference data and making the synthetic checkpoint.

Reference files are looked up first in ``tests/fixtures/refinemask/`` (small files committed with the tests),
then in ``$INSSEG_SHARED_FIXTURES`` (default ``<repo>/../shared/fixtures/refinemask``) for the large goldens
that cannot be committed. Tests call :func:`require_fixture`, which skips with the reason when a file is
missing.

The checkpoint (``make_checkpoint.py --seed 0``, ~190 MB) is written once per test session into a temporary
folder (:func:`checkpoint_path`); test modules wrap it in a session-scoped pytest fixture.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO_ROOT / "tests" / "fixtures" / "refinemask"
MASK_HEAD_PREFIX = "roi_head.mask_head."

_cache: dict[str, object] = {}


def shared_dir() -> Path:
    """Folder of the shared (uncommitted) reference data."""
    env = os.environ.get("INSSEG_SHARED_FIXTURES")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "fixtures" / "refinemask"


def find_fixture(name: str) -> Path | None:
    """Path of a reference file, local copy first; None when it is nowhere."""
    for folder in (LOCAL_DIR, shared_dir()):
        path = folder / name
        if path.is_file():
            return path
    return None


def require_fixture(name: str) -> Path:
    """Path of a reference file, or skip the test saying where it was looked for."""
    path = find_fixture(name)
    if path is None:
        pytest.skip(
            f"reference file {name} not found in {LOCAL_DIR} or {shared_dir()} "
            f"(set INSSEG_SHARED_FIXTURES to the folder holding the RefineMask goldens)"
        )
    return path


def load_golden(name: str) -> dict:
    """A golden ``.pt`` file (cached), loaded with ``weights_only=True``."""
    key = f"golden:{name}"
    if key not in _cache:
        _cache[key] = torch.load(require_fixture(name), map_location="cpu", weights_only=True)
    return _cache[key]  # type: ignore[return-value]


def make_checkpoint_module() -> ModuleType:
    """The ``make_checkpoint.py`` recipe (it reads ``calib_refinemask.npz`` from its own folder)."""
    if "make_checkpoint" not in _cache:
        path = require_fixture("make_checkpoint.py")
        if not (path.parent / "calib_refinemask.npz").is_file():
            pytest.skip(f"calib_refinemask.npz missing next to {path}")
        spec = importlib.util.spec_from_file_location("refinemask_make_checkpoint", path)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        _cache["make_checkpoint"] = module
    return _cache["make_checkpoint"]  # type: ignore[return-value]


def checkpoint_path(tmp_path_factory: pytest.TempPathFactory, seed: int = 0) -> Path:
    """Write the official-layout checkpoint for ``seed`` once per session and return its path."""
    key = f"ckpt:{seed}"
    if key not in _cache:
        mc = make_checkpoint_module()
        path = tmp_path_factory.mktemp(f"refinemask_ckpt_seed{seed}") / "r50-coco-2x.pth"
        ckpt = {
            "meta": {
                "CLASSES": mc.COCO_CLASSES,
                "mmdet_version": "2.3.0",
                "config": "configs/refinemask/coco/r50-refinemask-2x.py",
                "recipe": f"make_checkpoint.py seed={seed}",
            },
            "state_dict": mc.make_state_dict(seed),
        }
        torch.save(ckpt, path)
        del ckpt
        _cache[key] = path
    return _cache[key]  # type: ignore[return-value]


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a checkpoint file, memory-mapped (the file is large)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["state_dict"]


def mask_head_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's ``roi_head.mask_head.*`` tensors with the prefix removed."""
    sd = load_state_dict(path)
    return {k[len(MASK_HEAD_PREFIX) :]: v.clone() for k, v in sd.items() if k.startswith(MASK_HEAD_PREFIX)}


# ------------------------------------------------------------------------------ the other released configs
ZOO_DIR = REPO_ROOT / "tests" / "fixtures" / "refinemask_zoo"
ZOO_CONFIGS = ("r101-coco-2x", "lvis-r50-1x", "cityscapes-r50")
ZOO_SEED = 10


def zoo_module() -> ModuleType:
    """``make_checkpoint_zoo.py`` (official-layout checkpoints of the three configs; reads its calib npz)."""
    if "zoo" not in _cache:
        path = ZOO_DIR / "make_checkpoint_zoo.py"
        spec = importlib.util.spec_from_file_location("refinemask_make_checkpoint_zoo", path)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        _cache["zoo"] = module
    return _cache["zoo"]  # type: ignore[return-value]


def zoo_checkpoint(tmp_path_factory: pytest.TempPathFactory, config: str) -> Path:
    """Write ``make_checkpoint_zoo.py --config CONFIG --seed 10`` once per session (190-270 MB) and return it."""
    key = f"zoo:{config}"
    if key not in _cache:
        path = tmp_path_factory.mktemp(f"refinemask_{config}") / f"{config}.pth"
        ckpt = zoo_module().make_checkpoint(config, ZOO_SEED)
        torch.save(ckpt, path)
        del ckpt
        _cache[key] = path
    return _cache[key]  # type: ignore[return-value]
