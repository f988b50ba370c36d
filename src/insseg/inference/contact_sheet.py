"""predict.py's contact sheet: one HTML page of every overlay, for ``predict.report=true``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from insseg.utils.atomic import atomic_write_text
from insseg.utils.html import esc, img, page

FILE_NAME = "contact_sheet.html"


def write_contact_sheet(path: str | Path, items: Sequence[tuple[str | Path, str]], title: str = "Predictions") -> Path:
    """Write an HTML grid of ``items`` (overlay PNG path, caption) to ``path``; pictures are linked relative to
    the page's folder, so the page works wherever the output dir is copied."""
    path = Path(path)
    folder = path.parent.resolve()
    figs = []
    for image, caption in items:
        rel = Path(os.path.relpath(Path(image).resolve(), folder)).as_posix()
        figs.append(f"<figure>{img(rel, caption)}<figcaption>{esc(caption)}</figcaption></figure>")
    body = f'<h1>{esc(title)}</h1><p>{len(figs)} image(s)</p>\n<div class="grid">{"".join(figs)}</div>'
    text = page(title, body)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
