"""The official LVIS evaluation (lvis-api 0.5.3, ``LVISEval``) through a thin wrapper that fixes exactly two
things and nothing of its rules:

1. ``LVISEval.accumulate`` calls ``np.float``, which numpy removed in 1.24: while it runs, the ``np`` that
   ``lvis.eval`` sees is numpy with ``float`` added back (the builtin, which ``np.float`` always was). numpy
   itself is not touched, nor pinned back.
2. lvis-api rewrites what it is given in place: ``LVISEval`` turns every ground-truth polygon into an RLE and
   adds ``ignore``/``_ignore`` keys, ``LVISResults`` adds ``area``/``id``/``bbox`` to the result dicts. It gets
   deep copies, so the caller's ground truth and detections stay as they were.

The rest is the API's own: at most ``max_dets`` (300) detections per image, the top ones by score
(``LVISResults.limit_dets_per_image``); federated rules (a detection counts only in an image where its category
is verified present or in ``neg_category_ids``; unmatched detections of a ``not_exhaustive_category_ids``
category are no false positives); AP over r/c/f categories. For segm, results carry no ``bbox`` so that a
detection's area comes from its mask (as detectron2's ``LVISEvaluator`` does).

lvis-api is installed without its dependencies (``pip install --no-deps lvis==0.5.3``): it requires
opencv-python, which would clash with the project's opencv-python-headless (both install ``cv2``); what it
imports (numpy, pycocotools, matplotlib, cv2) the project already has. See pyproject.toml and docs/evaluation.md.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import types
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from insseg.errors import ConfigError

MAX_DETS = 300
INSTALL = "pip install --no-deps lvis==0.5.3"


@functools.cache
def _lvis() -> types.ModuleType:
    """The lvis package, imported on first use; its import configures the root logger (``basicConfig``), which
    the project's logging then owns again."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import lvis
        import lvis.eval
    except ImportError as exc:
        raise ConfigError(
            f"the LVIS protocol needs the official lvis-api, which is not installed ({INSTALL}): {exc}"
        ) from exc
    finally:
        root.handlers[:], root.level = handlers, level
    return lvis


class _NumpyWithFloat(types.ModuleType):
    """numpy as ``lvis.eval`` expects it: every attribute numpy's, plus ``float`` (numpy < 1.24's alias)."""

    float = float

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """``np.float`` for lvis.eval while the block runs (nothing to do on numpy < 1.24, which still has it)."""
    module = _lvis().eval
    old = module.np
    if "float" not in vars(np):
        module.np = _NumpyWithFloat("numpy")
    try:
        yield
    finally:
        module.np = old


def lvis_ground_truth(dataset: dict[str, Any]) -> Any:
    """An ``LVIS`` object over a deep copy of ``dataset`` (images, annotations, categories as in an LVIS file):
    the API's own constructor and index, reading the dict instead of a file."""
    return _lvis_from_dict()(dataset)


@functools.cache
def _lvis_from_dict() -> type:
    """``lvis.LVIS`` whose ``_load_json`` takes the parsed dict (deep-copied) where LVIS reads a file."""
    base: type = _lvis().LVIS

    class LVISFromDict(base):
        def _load_json(self, data: dict[str, Any]) -> dict[str, Any]:
            return copy.deepcopy(data)

    return LVISFromDict


def run_lvis_eval(
    dataset: dict[str, Any], results: list[dict[str, Any]], iou_type: str, max_dets: int = MAX_DETS
) -> Any:
    """``LVISEval`` run (evaluate, accumulate, summarize) on ``dataset`` and ``results`` (a COCO results list;
    for segm without ``bbox``), neither of which is changed. ``results`` must not be empty (the API cannot
    load an empty list). Returns the evaluated ``LVISEval``: ``results`` (AP, AP50, ..., APr, APc, APf,
    AR@300, ...), ``eval["precision"]`` [T, R, K, A] and ``freq_groups``."""
    lvis = _lvis()
    with _quiet_lvis_logs():
        gt = lvis_ground_truth(dataset)
        dt = lvis.LVISResults(gt, copy.deepcopy(results), max_dets=max_dets)
        ev = lvis.LVISEval(gt, dt, iou_type=iou_type)
        ev.params.max_dets = max_dets
        with numpy_float_alias():
            ev.run()
    return ev


@contextlib.contextmanager
def _quiet_lvis_logs() -> Iterator[None]:
    """lvis-api logs each step at INFO and warns that it assumes list results are well formed (they are: we
    build them); errors still show."""
    logger = logging.getLogger("lvis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # its Logger.warn call is deprecated in Python itself
            warnings.filterwarnings("ignore", "The 'warn' method is deprecated", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
