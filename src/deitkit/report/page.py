"""HTML building blocks: escaped text, inline images, tables, sections and the whole page."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

# The page loads nothing: this policy makes a browser refuse any request a future edit might
# add (images must be data: URIs, styles inline), so the file works offline and leaks nothing.
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1200px; padding: 1rem 1.5rem 3rem; color: #1f2328; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem;
  margin-top: 2.2rem; }
nav { font-size: .9rem; margin: .5rem 0 1rem; }
nav a { margin-right: .9rem; color: #0969da; text-decoration: none; }
ul.facts { list-style: none; padding: 0; margin: .3rem 0; font-size: .92rem; color: #57606a; }
ul.facts li { display: inline-block; margin-right: 1.4rem; }
ul.facts b { color: #1f2328; font-weight: 600; }
table { border-collapse: collapse; font-size: .88rem; margin: .6rem 0; }
th, td { border: 1px solid #d0d7de; padding: .22rem .6rem; text-align: right; }
th { background: #f6f8fa; }
td.name, th.name { text-align: left; max-width: 28rem; overflow-wrap: anywhere; }
tr.primary td { font-weight: 700; background: #ddf4ff; }
img.figure { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
p.caption, p.note { font-size: .88rem; color: #57606a; }
div.gallery { display: flex; flex-wrap: wrap; gap: .8rem; }
figure.mistake { margin: 0; width: 150px; font-size: .75rem; overflow-wrap: anywhere; }
figure.mistake img, figure.mistake div.placeholder { width: 128px; height: 128px;
  object-fit: contain; image-rendering: pixelated; background: #f6f8fa;
  border: 1px solid #d0d7de; }
div.placeholder { display: flex; align-items: center; justify-content: center;
  text-align: center; color: #cf222e; font-size: .7rem; padding: 4px; box-sizing: border-box; }
figcaption span { display: block; }
"""


def esc(value: object) -> str:
    """`value` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def number(value: float, digits: int = 4) -> str:
    """A score for a table: fixed digits, "n/a" where undefined (NaN or missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def data_uri(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image(payload: bytes, alt: str, *, mime: str = "image/png", css: str = "figure") -> str:
    """An inline `<img>` (the picture travels inside the page)."""
    return f'<img class="{css}" alt="{esc(alt)}" src="{data_uri(mime, payload)}">'


def paragraph(content: str, *, css: str = "note") -> str:
    """A `<p>` of plain text (escaped here)."""
    return f'<p class="{css}">{esc(content)}</p>'


@dataclass(frozen=True)
class Column:
    """A table column: its heading, and whether it holds names (left-aligned, wrapped)."""

    heading: str
    is_name: bool = False


def table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    highlight: Sequence[bool] | None = None,
) -> str:
    """A `<table>` of plain-text cells (each escaped here); `highlight` marks rows."""
    attrs = [' class="name"' if c.is_name else "" for c in columns]
    head = "".join(
        f'<th{attr} scope="col">{esc(c.heading)}</th>'
        for c, attr in zip(columns, attrs, strict=True)
    )
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            f"<td{attr}>{esc(cell)}</td>" for attr, cell in zip(attrs, row, strict=True)
        )
        marked = ' class="primary"' if highlight and highlight[index] else ""
        body.append(f"<tr{marked}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass(frozen=True)
class Section:
    """One `<section id=...>` of the page; `body` is HTML already escaped by its builder."""

    id: str
    title: str
    body: str


def document(title: str, facts: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole page: title, facts, a table of contents, then the sections in order."""
    fact_items = "".join(f"<li><b>{esc(k)}:</b> {esc(v)}</li>" for k, v in facts)
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{esc(s.id)}">\n<h2>{esc(s.title)}</h2>\n{s.body}\n</section>'
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header>\n<h1>{esc(title)}</h1>\n"
        + (f'<ul class="facts">{fact_items}</ul>\n' if facts else "")
        + f"<nav>{nav}</nav>\n</header>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
