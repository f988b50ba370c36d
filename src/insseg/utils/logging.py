"""One logger for the package. Under Hydra, messages go to the console and the run's log file; from plain
Python, :func:`ensure_console_logging` makes them visible on stdout."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("insseg")


def ensure_console_logging() -> None:
    """Print INFO messages to stdout when nobody (Hydra, the caller) configured logging."""
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
