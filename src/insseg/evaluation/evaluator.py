"""The evaluator interface: one pass over the images feeds every metric, as detectron2's DatasetEvaluator.

An evaluator is reset, sees each image once through ``process(ground_truth, prediction)`` and returns its
metrics from ``evaluate()``. The prediction it sees is already in the dataset's labels (the class bridge ran
once, in :func:`insseg.evaluation.run.evaluate_predictions`) and holds every detection above the model's floor;
evaluators that need a score threshold apply it themselves. A new evaluator plugs in by being put in the list;
the loop does not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from insseg.data.annotations import InstanceAnnotation
from insseg.predictions import ImagePrediction


@runtime_checkable
class Evaluator(Protocol):
    def reset(self) -> None: ...

    def process(self, gt: InstanceAnnotation, pred: ImagePrediction) -> None: ...

    def evaluate(self) -> dict[str, Any]: ...


class Evaluators:
    """Several evaluators behind the one interface; ``evaluate`` merges their results (first key wins; blocks that
    are mappings on both sides, such as ``per_class``, merge key by key: COCO's and a benchmark's per-class AP)."""

    def __init__(self, evaluators: Iterable[Evaluator]) -> None:
        self.evaluators: list[Evaluator] = list(evaluators)

    def reset(self) -> None:
        for e in self.evaluators:
            e.reset()

    def process(self, gt: InstanceAnnotation, pred: ImagePrediction) -> None:
        for e in self.evaluators:
            e.process(gt, pred)

    def evaluate(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for e in self.evaluators:
            merge_metrics(merged, e.evaluate())
        return merged

    def get(self, kind: type) -> Any:
        """The first evaluator of type ``kind`` (for evaluators that build on another's per-image result)."""
        return next((e for e in self.evaluators if isinstance(e, kind)), None)

    def __iter__(self) -> Iterator[Evaluator]:
        return iter(self.evaluators)


def merge_metrics(into: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Add ``new`` to ``into``: new keys are added, mappings merge recursively (a None row, COCO's class without
    ground truth, takes the other side's), other existing keys keep their first value."""
    for k, v in new.items():
        old = into.get(k)
        if isinstance(old, Mapping) and isinstance(v, Mapping):
            into[k] = merge_metrics(dict(old), v)
        elif k not in into or (old is None and isinstance(v, Mapping)):
            into[k] = dict(v) if isinstance(v, Mapping) else v
    return into
