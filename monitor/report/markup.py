"""HTML building blocks of the report: escaping, tables, chart frames, the page shell.

Every string that comes from the data (model, segment, column, metric and reason
names are user input) goes through ``text()`` before it reaches the page. The page
loads nothing: its Content-Security-Policy forbids every fetch, so a browser would
refuse (and report) anything that slipped in.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""Nothing may load: inline styles and inline SVG only."""

CSS = """
:root { --ink: #1d2327; --muted: #5f6b73; --line: #d9dee2; --fail: #c62828;
        --warn: #b26a00; --pass: #2e7d32; --band: #f6f8f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1320px; padding: 24px 28px 60px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 15px; margin: 22px 0 6px; }
p.note, p.empty { color: var(--muted); margin: 4px 0 10px; }
p.empty { font-style: italic; }
nav a { margin-right: 14px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left; }
th { background: var(--band); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.example { font-family: ui-monospace, monospace; font-size: 12px; max-width: 60ch;
             overflow-wrap: anywhere; }
td.fail, span.fail { color: var(--fail); font-weight: 600; }
td.warn, span.warn { color: var(--warn); font-weight: 600; }
td.pass, span.pass { color: var(--pass); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr));
        gap: 12px 18px; align-items: end; }
figure.chart { margin: 0; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
.grid figure.chart svg { width: 100%; }
.row { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: flex-end; }
.verdict { font-size: 16px; padding: 8px 12px; border-left: 4px solid var(--line);
           background: var(--band); margin: 12px 0; }
.verdict.fail { border-color: var(--fail); }
.verdict.pass { border-color: var(--pass); }
"""


def text(value: object) -> str:
    """``value`` as HTML text: every ``<``, ``&`` and quote escaped."""
    return html.escape(str(value), quote=True)


def when(ts: float | None) -> str:
    """An epoch time in seconds as UTC, to the second; a dash for none."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """Seconds as ``2h 05m``, ``4m 10s`` or ``12s``; a dash for none."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def number(value: float | None) -> str:
    """A score or share, to four significant digits; a dash for none."""
    return "-" if value is None else f"{value:.4g}"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, classes: Sequence[str] = ()
) -> str:
    """A table of escaped cells; ``classes[i]`` styles column ``i`` (``num``, ...)."""

    def cell(i: int, value: object) -> str:
        css = classes[i] if i < len(classes) and classes[i] else ""
        return f'<td class="{text(css)}">{text(value)}</td>' if css else f"<td>{text(value)}</td>"

    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def chart(kind: str, svg: str, caption: str) -> str:
    """A chart frame around the inline SVG; ``data-chart`` names the kind, ``caption`` is
    what a screen reader says of it."""
    return (
        f'<figure class="chart" data-chart="{text(kind)}" role="img" '
        f'aria-label="{text(caption)}">{svg}</figure>'
    )


def note(message: str, *, empty: bool = False) -> str:
    """A muted sentence; ``empty=True`` for "there is nothing here, and why"."""
    return f'<p class="{"empty" if empty else "note"}">{text(message)}</p>'


def section(anchor: str, title: str, body: str) -> str:
    """A top-level section with its heading; ``anchor`` is its id for the navigation."""
    return f'<section id="{text(anchor)}"><h2>{text(title)}</h2>{body}</section>'


def document(title: str, header: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole page: ``sections`` are ``(anchor, title, body)`` in page order."""
    links = "".join(f'<a href="#{text(a)}">{text(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{CSS}</style></head>\n"
        f"<body><header>{header}<nav>{links}</nav></header>\n{body}\n"
        "<footer>"
        + note("Made by driftd backtest. The page is self-contained: it loads nothing.")
        + "</footer></body></html>\n"
    )
