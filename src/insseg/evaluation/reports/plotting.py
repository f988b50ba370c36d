"""matplotlib on the Agg backend (no display needed), and atomic PNG writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insseg.utils.atomic import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on Agg, imported on first use (it costs ~0.5 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110, tight: bool = True) -> Path:
    """Save ``fig`` as a PNG atomically and close it; ``tight=False`` skips ``tight_layout`` (costly with many
    panels: lay them out with ``subplots_adjust`` instead)."""
    plt = pyplot()
    try:
        if tight:
            fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path
