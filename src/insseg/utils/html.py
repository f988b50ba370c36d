"""HTML building blocks for the offline pages (report.html, the sweep page, predict.py's contact sheet):
escaping, number formatting, tables, relative links and one inline style. No scripts, nothing remote."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.2em 3em; color: #222; }
h1 { font-size: 1.5em; margin-top: 1em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { padding: 3px 8px; border: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.na { color: #999; text-align: center; } img { max-width: 100%; border: 1px solid #eee; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; width: 370px; }
figcaption { font-size: 12px; color: #444; } pre { background: #f8f8f8; padding: 0.8em; overflow-x: auto; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; color: #fff; border-radius: 3px; }
nav a { margin-right: 1em; }
"""


class Raw(str):
    """Markup that :func:`table` puts into a cell as it is (a link), instead of escaping it."""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], shade: Sequence[bool] = ()) -> str:
    """An HTML table; numbers right-aligned, undefined values greyed; columns flagged in ``shade`` (0..1
    values) get a background proportional to the value."""
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for c, v in enumerate(row):
            if isinstance(v, Raw):
                cells.append(f"<td>{v}</td>")
            elif v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append('<td class="na">-</td>')
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                style = ""
                if c < len(shade) and shade[c]:
                    style = f' style="background: hsl(210, 70%, {round(97 - 35 * max(0.0, min(1.0, float(v))))}%)"'
                cells.append(f'<td class="num"{style}>{esc(fmt(v))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def page(title: str, body: str) -> str:
    """A whole HTML document: inline style, no scripts, nothing remote."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def href(path: str) -> str:
    """A relative POSIX path as a URL (``#``, ``?``, spaces in file names percent-encoded), HTML-escaped."""
    return esc(quote(path))


def img(src: str, alt: str) -> str:
    return f'<a href="{href(src)}"><img src="{href(src)}" alt="{esc(alt)}" loading="lazy"></a>'
