"""What makes two runs comparable: the same images, the same ground truth, the same scoring settings.

Each refusal is one line naming the runs and the first difference. The image lists and the settings are checked
before anything is scored; the ground truth (a digest per image) once each run has been rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from insseg.compare.run_config import setting
from insseg.errors import InssegError

# Evaluation settings that change the numbers: how void pixels count, which detections the matching metrics
# see, whether matching pairs across classes, whether unmapped model classes take part.
SETTINGS = (
    "eval.void_as_background",
    "eval.score_threshold",
    "eval.class_aware_matching",
    "eval.keep_unmapped",
)
BOUNDARY_KEY = "eval.boundary.dilation_ratio"


def _names(a: Any, b: Any) -> str:
    return f"{a.run_dir} and {b.run_dir}"


def check_same_images(runs: Sequence[Any]) -> None:
    """The same classes and the same images, in the same order, as the first run (``PreparedRun`` s)."""
    first = runs[0]
    names_a = first.file_names
    for other in runs[1:]:
        if other.class_names != first.class_names:
            raise InssegError(
                f"cannot compare {_names(first, other)}: their datasets have different classes "
                f"({', '.join(first.class_names[:5])}, ... against {', '.join(other.class_names[:5])}, ...)"
            )
        names_b = other.file_names
        if names_a == names_b:
            continue
        k = next((i for i, (x, y) in enumerate(zip(names_a, names_b)) if x != y), min(len(names_a), len(names_b)))
        shown = [names[k] if k < len(names) else "no image" for names in (names_a, names_b)]
        raise InssegError(
            f"cannot compare {_names(first, other)}: they were evaluated on different images ({len(names_a)} and "
            f"{len(names_b)}; the first difference is image {k + 1}: {shown[0]} against {shown[1]})"
        )


def _values(run: Any) -> dict[str, Any]:
    values = {key: setting(run.cfg, key) for key in SETTINGS}
    if "boundary_AP" in run.metrics:  # the band width the run's boundary metrics used (metrics.json says)
        values[BOUNDARY_KEY] = run.metrics.get("boundary_dilation_ratio")
    return values


def settings_differences(runs: Sequence[Any]) -> list[str]:
    """``key A in <run> vs B in <run>`` for each setting of :data:`SETTINGS` where a run differs from the first,
    and the boundary dilation ratio when both runs report boundary metrics."""
    out = []
    first = _values(runs[0])
    for other in runs[1:]:
        values = _values(other)
        for key in [k for k in first if k in values]:
            a, b = first[key], values[key]
            if a != b:
                out.append(f"{key} {a} in {runs[0].run_dir.name} vs {b} in {other.run_dir.name}")
    return out


def check_settings(runs: Sequence[Any], allow: bool) -> list[str]:
    """The differences (kept in compare.json); an error unless ``allow``."""
    differences = settings_differences(runs)
    if differences and not allow:
        raise InssegError(
            f"cannot compare {_names(runs[0], runs[1])}: their evaluation settings differ ({'; '.join(differences)}), "
            "which changes the numbers; pass --allow-settings-differ to compare them anyway"
        )
    return differences


def check_same_ground_truth(runs: Sequence[Any]) -> None:
    """The same ground truth image by image as the first run (``RunData`` s, after the rebuild)."""
    first = runs[0]
    for other in runs[1:]:
        for k, (x, y) in enumerate(zip(first.digests, other.digests)):
            if x != y:
                files = _annotation_files(first, other)
                raise InssegError(
                    f"cannot compare {_names(first, other)}: they were evaluated against different annotations"
                    f"{files}; the first difference is the ground truth of {first.prepared.file_names[k]}"
                )


def _annotation_files(a: Any, b: Any) -> str:
    def where(cfg: Any) -> str:
        root = setting(cfg, "data.root")
        return f"{root}/{setting(cfg, 'data.eval_json')}" if setting(cfg, "data.layout") == "coco" else str(root)

    return f" ({where(a.prepared.cfg)} and {where(b.prepared.cfg)})"
