"""Problems found in a dataset, each naming its file (and annotation id where there is one).

Readers collect problems instead of stopping at the first, so ``python -m insseg.data.check`` can list them
all; the training and evaluation entry points raise on the errors (one paragraph, the first few named) and log
the warnings as one counted line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from insseg.errors import DatasetError
from insseg.utils.logging import log

ERROR = "error"
WARNING = "warning"
_SHOWN = 8


@dataclass(frozen=True)
class Problem:
    """severity: ``error`` (the data cannot be used as it is) or ``warning`` (used, with the part skipped or
    fixed as said); kind: a short tag (``missing_image``, ``few_points``, ...) for counting."""

    severity: str
    kind: str
    file: str
    message: str
    annotation_id: Any = None

    def __str__(self) -> str:
        where = self.file + (f", annotation id {self.annotation_id}" if self.annotation_id is not None else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == WARNING]


def _listing(problems: list[Problem]) -> str:
    shown = "; ".join(str(p) for p in problems[:_SHOWN])
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return shown + more


def raise_on_errors(problems: Iterable[Problem], what: str) -> None:
    """One :class:`DatasetError` paragraph naming the first errors, when there are any."""
    found = errors(problems)
    if found:
        raise DatasetError(
            f"{what} has {len(found)} problem(s) to fix before it can be used: {_listing(found)}. "
            "Run `python -m insseg.data.check` with the same data settings for the full list."
        )


def log_warnings(problems: Iterable[Problem], what: str) -> None:
    """One counted warning line (by kind) for all the warnings, with the first few named."""
    found = warnings(problems)
    if not found:
        return
    kinds = ", ".join(f"{n} {k}" for k, n in Counter(p.kind for p in found).most_common())
    log.warning(f"{what}: {len(found)} warning(s) ({kinds}), e.g. {_listing(found[:3])}")
