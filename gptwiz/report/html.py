"""The report as one HTML file: the figure embedded as a base64 PNG, the table as HTML; nothing fetched from
anywhere, so it opens the same in any browser, offline, attached to a message."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from gptwiz.common.inert import inert
from gptwiz.report.differences import Comparison
from gptwiz.report.series import RunSeries
from gptwiz.report.summary import Table, differences, header, table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.3em; } p.meta { color: #555; margin: 0.2em 0; }
img { width: 100%; height: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; margin-top: 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
"""


def _table(summary: Table, caption: str) -> str:
    """One table whole, words to the left: a page scrolls sideways where a picture cannot."""
    head = "".join(f"<th>{escape(c)}</th>" for c in summary.columns)
    def cell(i: int, text: str) -> str:
        return f'<td class="text">{escape(text)}</td>' if i in summary.left else f"<td>{escape(text)}</td>"

    body = "\n".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(r.cells)) + "</tr>" for r in summary.rows)
    return f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def page(runs: Sequence[RunSeries], comparison: Comparison, png: bytes) -> str:
    """The whole document, as text: the figure, then its tables whole (a page scrolls sideways where a picture
    cannot)."""
    if len(runs) == 1:
        title = f"gptwiz report: {inert(runs[0].name)}"
        meta = header(runs[0], comparison.shared)
    else:
        title = f"gptwiz report: {len(runs)} runs compared"
        meta = [comparison.summary()] + (["alike in all: " + ", ".join(comparison.shared)] if comparison.shared else [])
    tables = [_table(table(runs, comparison), "results")]
    differ = differences(comparison)
    if differ is not None:
        tables.append(_table(differ, "settings that differ"))
    image = base64.b64encode(png).decode("ascii")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        *(f'<p class="meta">{escape(line)}</p>' for line in meta),
        f'<img alt="{escape(title)}" src="data:image/png;base64,{image}">',
        *tables,
        "</body></html>",
        "",
    ])
