"""``logger=csv``: one row per epoch in ``metrics.csv`` (the run's config is already in .hydra/config.yaml)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

from insseg.engine.loggers.base import RunLogger
from insseg.utils.atomic import atomic_write_text


class CsvLogger(RunLogger):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []

    def log_epoch(self, values: Mapping[str, float], epoch: int) -> None:
        self.rows.append({"epoch": epoch, **values})
        self._write()

    def _write(self) -> None:
        """The whole file again: a later epoch may add columns (evaluation every few epochs)."""
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())
