"""Which implementation of COCO's ``COCO`` index and ``COCOeval`` scores AP: ``eval.coco_backend``.

- ``pycocotools``: the reference implementation (Python loops over images x categories).
- ``faster_coco_eval``: the faster-coco-eval package's C++ port of ``evaluateImg`` and ``accumulate``
  (``COCOeval_faster``), the same API. It gives the same ``eval["recall"]`` and ``eval["scores"]`` arrays; its
  ``eval["precision"]`` differs from pycocotools' in one known way: pycocotools divides by
  ``tp + fp + np.spacing(1)``, so a precision of 1 after a single detection is ``1 - 2.2e-16`` there and exactly
  1.0 here (tests/test_coco_backend.py checks this cell for cell). CocoEvaluator rounds both to 12 decimals.

Both expose ``COCO()`` with a ``dataset`` dict and ``createIndex()``, and ``COCOeval(gt, dt, iouType=...)`` with
``evaluate()``, ``accumulate()``, ``summarize()``, ``stats``, ``eval`` and ``params``.
"""

from __future__ import annotations

import functools
from typing import Any

from insseg.errors import ConfigError

BACKENDS = ("pycocotools", "faster_coco_eval")
DEFAULT_BACKEND = "pycocotools"
_PACKAGES = {"pycocotools": "pycocotools", "faster_coco_eval": "faster-coco-eval"}


@functools.cache
def _faster_cocoeval() -> type:
    from faster_coco_eval import COCOeval_faster

    class FasterCOCOeval(COCOeval_faster):
        """``COCOeval_faster`` with pycocotools' constructor and its summary printed to stdout, as pycocotools
        prints it (faster-coco-eval logs it by default)."""

        def __init__(self, cocoGt: Any = None, cocoDt: Any = None, iouType: str = "segm") -> None:  # noqa: N803
            super().__init__(cocoGt, cocoDt, iouType, print_function=print)

    return FasterCOCOeval


def coco_classes(name: str) -> tuple[type, type]:
    """``(COCO, COCOeval)`` of backend ``name``; a ConfigError naming ``eval.coco_backend`` for an unknown name
    or a package that is not installed."""
    if name not in BACKENDS:
        raise ConfigError(f"eval.coco_backend: unknown COCO backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        if name == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            return COCO, COCOeval
        from faster_coco_eval import COCO as FasterCOCO

        return FasterCOCO, _faster_cocoeval()
    except ImportError as exc:
        raise ConfigError(
            f"eval.coco_backend={name} needs the {_PACKAGES[name]} package, which is not installed "
            f"(pip install {_PACKAGES[name]}, or pip install -e '.[dev]'): {exc}"
        ) from exc
