"""The evaluator interface and the pass that feeds it, as detectron2's DatasetEvaluator / DatasetEvaluators.

An evaluator is reset, sees each image once through ``process(sample)`` (an
:class:`~insseg.evaluation.sample.ImageSample`: the annotation, the prediction in the dataset's labels, and,
computed once per image for everyone, the detections above ``eval.score_threshold`` and their one-to-one match),
and returns its metrics from ``evaluate(coco)``. ``coco`` is the dataset-level COCO evaluation
(:class:`~insseg.evaluation.coco.CocoResults`: pycocotools' evaluated ``COCOeval`` per IoU type), scored once
by the pass after the last image when some evaluator says ``needs_coco = True``, else None.

No evaluator reads another's state: any subset in any order gives the same numbers. :class:`Evaluators`
merges their metrics; a key produced twice is an error naming the key and both evaluators (blocks that are
mappings on both sides, such as ``per_class``, merge key by key). A new evaluator
plugs in by being put in the list; the loop does not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from insseg.data.annotations import Annotation
from insseg.evaluation.coco import CocoEvaluator, CocoResults
from insseg.evaluation.sample import ImageSample, MatchSettings
from insseg.predictions import ImagePrediction


@runtime_checkable
class Evaluator(Protocol):
    """``needs_coco``: whether ``evaluate`` reads the COCO results (a class attribute; absent means False)."""

    def reset(self) -> None: ...

    def process(self, sample: ImageSample) -> None: ...

    def evaluate(self, coco: CocoResults | None) -> dict[str, Any]: ...


def needs_coco(evaluator: Any) -> bool:
    return bool(getattr(evaluator, "needs_coco", False))


class Evaluators:
    """The pass: builds each image's :class:`ImageSample` with ``settings``, feeds ``coco`` (the COCO
    evaluation, required when an evaluator needs it) and every evaluator, and merges their metrics."""

    def __init__(
        self,
        evaluators: Iterable[Evaluator],
        settings: MatchSettings | None = None,
        coco: CocoEvaluator | None = None,
    ) -> None:
        self.evaluators: list[Evaluator] = list(evaluators)
        self.settings = settings or MatchSettings()
        wanted = [type(e).__name__ for e in self.evaluators if needs_coco(e)]
        if wanted and coco is None:
            raise ValueError(
                f"{', '.join(wanted)} need the COCO evaluation: pass Evaluators(..., coco=CocoEvaluator(...))"
            )
        self.coco = coco if wanted else None

    def reset(self) -> None:
        if self.coco is not None:
            self.coco.reset()
        for e in self.evaluators:
            e.reset()

    def process(self, gt: Annotation, pred: ImagePrediction) -> ImageSample:
        """Feed one image to the COCO evaluation and to every evaluator; returns its sample."""
        if self.coco is not None:
            self.coco.process(gt, pred)
        sample = ImageSample(gt, pred, self.settings)
        for e in self.evaluators:
            e.process(sample)
        return sample

    def evaluate(self) -> dict[str, Any]:
        """Score COCO once (if needed), then every evaluator's metrics merged; a key twice raises ValueError."""
        results = self.coco.results() if self.coco is not None else None
        merged: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for e in self.evaluators:
            merge_metrics(merged, owner, e.evaluate(results), type(e).__name__)
        return merged

    def get(self, kind: type) -> Any:
        """The first evaluator of type ``kind`` (to write its files after the pass), or None."""
        return next((e for e in self.evaluators if isinstance(e, kind)), None)

    def __iter__(self) -> Iterator[Evaluator]:
        return iter(self.evaluators)


def merge_metrics(
    merged: dict[str, Any], owner: dict[str, str], new: Mapping[str, Any], name: str, path: str = ""
) -> None:
    """Add evaluator ``name``'s metrics ``new`` to ``merged`` (``owner``: who produced each key). A block that is
    a mapping on both sides (``per_class``: COCO's columns and a benchmark's) merges key by key, a None row
    (nothing to report) giving way to the other side's; any other key produced twice is a ValueError."""
    for k, v in new.items():
        key = f"{path}{k}"
        old = merged.get(k)
        if k not in merged or (old is None and isinstance(v, Mapping)):
            merged[k], owner[key] = (dict(v) if isinstance(v, Mapping) else v), name
        elif isinstance(old, Mapping) and isinstance(v, Mapping):
            merged[k] = dict(old)
            merge_metrics(merged[k], owner, v, name, f"{key}.")
        elif not (v is None and isinstance(old, Mapping)):
            raise ValueError(f"metric key {key!r} is produced by both {owner.get(key, '?')} and {name}")
