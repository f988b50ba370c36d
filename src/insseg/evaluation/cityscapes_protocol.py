"""The official Cityscapes instance evaluation (cityscapesScripts 2.3.0, ``evalInstanceLevelSemanticLabeling``)
run as it is, through its module-level ``args`` object, with exactly three things fixed around it (no fork):

- ``np.in1d``, which it calls and numpy 2.4 removed: the module sees numpy with ``in1d`` as ``isin`` of the
  flattened array (what ``in1d`` was); numpy itself is untouched.
- ``args.gtInstancesFile``, a ground-truth cache it writes into its own package folder and reads back on the next
  run whatever the ground truth is (a stale one silently gives wrong numbers): a fresh file in a temporary folder
  on every run.
- ``matches.json``, which it writes into the working directory: into the file the caller names (or a temporary one).
  Its JSON writer meets numpy 2's ``count_nonzero``, which returns numpy integers (``np.int64`` has no
  ``__dict__`` for its ``default=``): the same writer, with numpy scalars written as numbers.

Its ``printError`` ends the process (``sys.exit``): here that becomes an :class:`InssegError` naming the file it
printed. The import needs ``pyquaternion`` only for a 3D-box helper that the 2D evaluation never calls; when it is
missing, the import sees a stand-in (see ``pyproject.toml``: cityscapesscripts is installed without its
dependencies, one of which, the ``typing`` backport, must not be installed on Python 3).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import sys
import tempfile
import threading
import types
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from insseg.errors import InssegError

MODULE = "cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling"
INSTALL_HINT = "pip install --no-deps cityscapesscripts==2.3.0 (see docs/evaluation.md)"
_LOCK = threading.Lock()  # the official module keeps its state in one global object


class _NumpyWithIn1d(types.ModuleType):
    """numpy as the official module sees it: everything numpy has, plus ``in1d`` where numpy dropped it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def in1d(ar1: Any, ar2: Any, assume_unique: bool = False, invert: bool = False) -> np.ndarray:
        return np.isin(np.asarray(ar1).ravel(), ar2, assume_unique=assume_unique, invert=invert)


def numpy_for_official() -> types.ModuleType:
    """numpy itself when it still has ``in1d``, else the stand-in above."""
    return np if hasattr(np, "in1d") else _NumpyWithIn1d("numpy")


def load_official() -> types.ModuleType:
    """Import the official module (with a stand-in for a missing ``pyquaternion`` during the import only)."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    stub = None
    if importlib.util.find_spec("pyquaternion") is None:
        stub = types.ModuleType("pyquaternion")
        stub.Quaternion = _MissingQuaternion  # type: ignore[attr-defined]
        sys.modules["pyquaternion"] = stub
    try:
        return importlib.import_module(MODULE)
    except ImportError as e:
        raise InssegError(
            f"the Cityscapes evaluation needs cityscapesscripts ({e}); install it: {INSTALL_HINT}"
        ) from None
    finally:
        if stub is not None and sys.modules.get("pyquaternion") is stub:
            del sys.modules["pyquaternion"]


class _MissingQuaternion:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError("pyquaternion is not installed (only cityscapesScripts' 3D-box tools need it)")


def write_json(data: Any, file_name: str) -> None:
    """cityscapesScripts' ``writeDict2JSON`` with numpy scalars (numpy 2) written as Python numbers."""
    with open(file_name, "w") as f:
        f.write(json.dumps(data, default=_plain, sort_keys=True, indent=4))


def _plain(o: Any) -> Any:
    return o.item() if isinstance(o, np.generic) else o.__dict__


@contextlib.contextmanager
def official_module(prediction_dir: Path, matches_file: Path, work_dir: Path) -> Iterator[types.ModuleType]:
    """The official module set up for one run (and restored afterwards): predictions under ``prediction_dir``,
    its ground-truth cache a fresh file in ``work_dir``, ``matches.json`` written to ``matches_file``."""
    mod = load_official()
    with _LOCK:
        saved_args = dict(vars(mod.args))
        saved = {name: getattr(mod, name) for name in ("np", "writeDict2JSON")}

        def write_redirected(data: Any, file_name: str) -> None:
            write_json(data, str(matches_file) if file_name == "matches.json" else file_name)

        cache = Path(work_dir) / "gtInstances.json"
        cache.unlink(missing_ok=True)
        setattr(mod, "np", numpy_for_official())  # noqa: B010 (the module's own globals)
        setattr(mod, "writeDict2JSON", write_redirected)  # noqa: B010
        a = mod.args
        a.predictionPath, a.predictionWalk = str(Path(prediction_dir).resolve()), None
        a.gtInstancesFile = str(cache)
        a.JSONOutput, a.quiet, a.colorized, a.csv = False, True, False, False
        try:
            yield mod
        finally:
            for name, value in saved.items():
                setattr(mod, name, value)
            vars(mod.args).clear()
            vars(mod.args).update(saved_args)


def run_official(
    prediction_files: Sequence[Path], gt_files: Sequence[Path], prediction_dir: Path, matches_file: Path | None = None
) -> dict[str, Any]:
    """``evaluateImgLists`` on the pairs (prediction txt, ``*_gtFine_instanceIds.png``): its result dict
    (``averages``: ``allAp``, ``allAp50%``, ``classes`` -> name -> ``ap``, ``ap50%``; ``resultApMatrix``...)."""
    with tempfile.TemporaryDirectory(prefix="insseg_cityscapes_") as tmp:
        matches = Path(matches_file) if matches_file is not None else Path(tmp) / "matches.json"
        preds, gts = [str(Path(p).resolve()) for p in prediction_files], [str(Path(g)) for g in gt_files]
        with official_module(prediction_dir, matches, Path(tmp)) as mod, _as_errors(), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean over classes without ground truth
            return mod.evaluateImgLists(preds, gts, mod.args)


@contextlib.contextmanager
def _as_errors() -> Iterator[None]:
    """The official module's prints captured; its ``sys.exit`` (``printError``) raised as an InssegError."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            yield
    except SystemExit:
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        raise InssegError(f"cityscapesScripts' evaluation stopped: {lines[-1] if lines else 'no message'}") from None
