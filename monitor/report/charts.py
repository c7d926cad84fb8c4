"""The report's charts, drawn with matplotlib and returned as inline SVG text.

Figures are made with ``matplotlib.figure.Figure`` directly (never pyplot), so drawing
touches no global figure state and needs no display. Text stays text in the SVG
(``svg.fonttype: none``: smaller files, searchable in the browser) and each figure gets
its own ``svg.hashsalt``: the element ids are then stable from run to run yet unique
within the page, where many SVGs share one id space. This module imports matplotlib;
``monitor.report.render`` imports it only when a report is made.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import matplotlib as mpl
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from monitor.report.parts import DRIFT_VERDICTS, AlertSpan, Distribution, ScoreSeries

STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    # Names are user input: a "$" must print as a dollar, never start math mode.
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 8.5,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.1,
    "legend.fontsize": 6.5,
    "legend.frameon": False,
    "path.simplify": True,
}
SCORE_COLOR = "#1f6fb4"
THRESHOLD_COLOR = "#6b6b6b"
BREACH_COLOR = "#c62828"
FIRING_FILL = "#e57373"
REFERENCE_COLOR = "#9e9e9e"
MAX_BARS = 30
"""Categories beyond this many (the largest shares kept) would make a bar chart unreadable."""
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_GROUP_ID = re.compile(r' id="[A-Za-z][A-Za-z0-9.]*_\d+"')
"""matplotlib names its groups ``figure_1``, ``line2d_3``...: the same names in every SVG,
so duplicate ids in one page. Nothing refers to them (references go to the hashed ids of
clip paths and markers), so they are dropped."""


def utc(ts: float) -> float:
    """An epoch time in seconds as a matplotlib date number, the x of every chart over time."""
    return float(mdates.date2num(datetime.fromtimestamp(ts, tz=UTC)))  # type: ignore[no-untyped-call]


def to_svg(fig: Figure, salt: str, *, tight: bool = False) -> str:
    """The figure as an ``<svg>`` element to inline in HTML (no XML prolog, no metadata).

    ``tight`` fits the margins to the labels, at the price of drawing twice: for the few
    charts whose label lengths vary; the many small multiples have fixed margins.
    """
    buffer = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": salt}):
        fig.savefig(
            buffer, format="svg", metadata={"Date": None}, bbox_inches="tight" if tight else None
        )
    text = buffer.getvalue()
    return _GROUP_ID.sub("", _METADATA.sub("", text[text.index("<svg") :])).strip()


def small_multiple() -> tuple[Figure, Axes]:
    """A 3.5 x 1.9 inch figure with fixed margins (in inches) for a title, dates and scores."""
    width, height = 3.5, 1.9
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=0.45 / width, right=1 - 0.1 / width, bottom=0.42 / height, top=1 - 0.24 / height
    )
    return fig, fig.add_subplot()


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7, tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)


def _shade_alerts(ax: Axes, spans: list[AlertSpan], last_ts: float) -> None:
    for span in spans:
        end = span.resolved_at_ts if span.resolved_at_ts is not None else last_ts
        ax.axvspan(
            utc(span.fired_at_ts),
            utc(max(end, span.fired_at_ts)),
            color=FIRING_FILL,
            alpha=0.18,
            lw=0,
        )


def score_chart(series: ScoreSeries, spans: list[AlertSpan], last_ts: float, salt: str) -> str:
    """One small multiple: a column's score by one method over the windows, and its threshold.

    Windows over the threshold (``breach``/``severe``) are marked; the time an alert was
    firing is shaded. Untested windows (``skip``) are not drawn.
    """
    with mpl.rc_context(STYLE):
        fig, ax = small_multiple()
        tested = series.tested
        ax.set_title(f"{series.column} · {series.method}", loc="left")
        if not tested:
            ax.text(
                0.5,
                0.5,
                "never tested (too few rows)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        else:
            times = [utc(p.window_end_ts) for p in tested]
            ax.plot(
                times,
                [p.threshold for p in tested],
                color=THRESHOLD_COLOR,
                ls="--",
                lw=0.9,
            )
            ax.plot(
                times,
                [p.score for p in tested],
                color=SCORE_COLOR,
                marker="." if len(tested) < 60 else None,
                ms=3,
            )
            over = [p for p in tested if p.verdict in DRIFT_VERDICTS]
            if over:
                ax.scatter(
                    [utc(p.window_end_ts) for p in over],
                    [p.score for p in over],
                    color=BREACH_COLOR,
                    marker="x",
                    s=14,
                    lw=1,
                    zorder=3,
                )
            _shade_alerts(ax, spans, last_ts)
            values = [v for p in tested for v in (p.score, p.threshold)]
            low, high = min(0.0, *values), max(values)
            ax.set_ylim(low, high + 0.12 * (high - low) if high > low else low + 1.0)
            _time_axis(ax)
        return to_svg(fig, salt)


def timeline_chart(
    segment: str, spans: list[AlertSpan], first_ts: float, last_ts: float, salt: str
) -> str:
    """One segment's alerts: a row per dedup key, a bar from firing to resolved."""
    rows = sorted({(s.column, s.method) for s in spans})
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(7.5, 0.9 + 0.28 * len(rows)))
        ax = fig.add_subplot()
        ax.set_title(f"alerts in {segment}", loc="left")
        width_of_end = utc(last_ts)
        for span in spans:
            y = rows.index((span.column, span.method))
            start = utc(span.fired_at_ts)
            resolved = span.resolved_at_ts is not None
            end = width_of_end if span.resolved_at_ts is None else utc(span.resolved_at_ts)
            ax.broken_barh(
                [(start, max(end - start, 0.0))],
                (y - 0.35, 0.7),
                facecolors=BREACH_COLOR if resolved else FIRING_FILL,
                edgecolor=BREACH_COLOR,
                hatch=None if resolved else "//",
                lw=0.8,
            )
            ax.plot([utc(span.fired_at_ts)], [y], marker="|", ms=9, color=BREACH_COLOR)
        ax.set_yticks(range(len(rows)), [f"{c} · {m}" for c, m in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.invert_yaxis()
        ax.set_xlim(utc(first_ts), utc(max(last_ts, first_ts + 1.0)))
        ax.grid(axis="y", visible=False)
        _time_axis(ax)
        return to_svg(fig, salt, tight=True)


def distribution_chart(dist: Distribution, salt: str) -> str:
    """Reference against current shares, bin by bin (category by category)."""
    order = list(range(len(dist.labels)))
    note = ""
    if dist.kind == "categorical" and len(order) > MAX_BARS:
        order = sorted(order, key=lambda i: -max(dist.reference[i], dist.current[i]))[:MAX_BARS]
        note = f" (largest {MAX_BARS} of {len(dist.labels)})"
    n = len(order)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(min(7.5, 2.4 + 0.22 * n), 2.3))
        ax = fig.add_subplot()
        when = datetime.fromtimestamp(dist.window_end_ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        ax.set_title(
            f"{dist.column} · {dist.method}{note}\nworst window, ending {when} UTC",
            loc="left",
        )
        positions = range(n)
        ax.bar(
            [p - 0.2 for p in positions],
            [dist.reference[i] for i in order],
            width=0.4,
            color=REFERENCE_COLOR,
            label="reference",
        )
        ax.bar(
            [p + 0.2 for p in positions],
            [dist.current[i] for i in order],
            width=0.4,
            color=SCORE_COLOR,
            label="current",
        )
        step = max(1, n // 24)
        ax.set_xticks(
            list(positions)[::step],
            [dist.labels[i] for i in order][::step],
            rotation=45 if n > 4 else 0,
            ha="right" if n > 4 else "center",
        )
        ax.set_ylabel("share of rows")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return to_svg(fig, salt, tight=True)


def performance_chart(metric: str, points: list[tuple[float, float]], salt: str) -> str:
    """A performance metric of one segment over its label windows."""
    with mpl.rc_context(STYLE):
        fig, ax = small_multiple()
        ax.set_title(metric, loc="left")
        ax.plot(
            [utc(t) for t, _ in points],
            [v for _, v in points],
            color=SCORE_COLOR,
            marker="." if len(points) < 60 else None,
            ms=3,
        )
        _time_axis(ax)
        return to_svg(fig, salt)
