"""Output names of predict.py: each input's path relative to the input root, and unique output stems
(the rule is in :mod:`insseg.inference.predict_pipeline`'s docstring)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath


def relative_names(paths: Sequence[Path], root: Path) -> list[str]:
    """Each input's path relative to ``root`` (posix); its bare file name where that would leave ``root``."""
    names = []
    for p in paths:
        rel = os.path.relpath(p, root)
        if rel.startswith("..") or os.path.isabs(rel):
            rel = p.name
        names.append(Path(rel).as_posix())
    return names


def output_stems(names: Sequence[str]) -> list[str]:
    """Unique output stems for relative file names (see the module docstring for the rule)."""
    bare = [str(PurePosixPath(n).with_suffix("")) if PurePosixPath(n).suffix else n for n in names]
    counts = Counter(b.casefold() for b in bare)
    wanted = [n if counts[b.casefold()] > 1 else b for n, b in zip(names, bare)]
    seen: set[str] = set()
    stems = []
    for stem in wanted:
        candidate, i = stem, 2
        while candidate.casefold() in seen:
            candidate, i = f"{stem}~{i}", i + 1
        seen.add(candidate.casefold())
        stems.append(candidate)
    return stems
