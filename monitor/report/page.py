"""The sections of the report, in page order, from a ``Digest`` to one HTML string.

This module draws (it imports ``charts``, hence matplotlib); ``render`` imports it only
when a report is made, and turns a missing matplotlib into a ``ReportError``.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import count

from monitor.report import charts
from monitor.report.digest import worst_distributions
from monitor.report.markup import chart, document, duration, note, number, table, text, when
from monitor.report.parts import AlertSpan, Digest

COUNT_LABELS = (
    ("events_read", "events read"),
    ("events_accepted", "events accepted"),
    ("labels_read", "labels read"),
    ("labels_joined", "labels joined to a prediction"),
    ("windows", "windows closed"),
    ("label_windows", "label windows closed"),
    ("late", "late events (after their window closed)"),
)
MAX_DISTRIBUTIONS = 4
"""Drifting columns per segment drawn as reference-versus-current bars."""
MAX_NAMES_LISTED = 40
"""Left-out columns named in the note under the score charts; the rest are counted."""


class _Salts:
    """A distinct, stable ``svg.hashsalt`` for each figure, in drawing order."""

    def __init__(self) -> None:
        self._n = count()

    def next(self) -> str:
        return f"driftd-report-{next(self._n)}"


def _header(d: Digest) -> str:
    rejected_total = sum(d.rejected.values())
    facts = [
        ("model", d.model),
        ("reference version", d.reference_version or "(none: learnt during warm-up)"),
        ("windows end between", f"{when(d.first_ts)} and {when(d.last_ts)}"),
        ("segments", ", ".join(d.segments) or "(none)"),
        *((f"{role} file", path) for role, path in sorted(d.inputs.items())),
    ]
    for key, label in COUNT_LABELS:
        if key in d.counts:
            value = d.counts[key]
            facts.append((label, f"{value:,}" if isinstance(value, int) else str(value)))
    facts.append(("events rejected", f"{rejected_total:,}"))
    rows = "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in facts)
    paging = [c for c in d.checks if c.pages]
    if paging:
        verdict = (
            f'<p class="verdict fail">{len(d.alerts)} alert(s) would have paged, on '
            f"{len(paging)} column/method pair(s).</p>"
        )
    else:
        verdict = '<p class="verdict pass">Nothing would have paged.</p>'
    empty = ""
    if d.first_ts is None:
        size = d.config.get("window_size_events")
        empty = note(
            "No window closed, so nothing was scored: the data held fewer events than one "
            f"window{f' ({size} events)' if size is not None else ''}.",
            empty=True,
        )
    return f'<h1>driftd backtest: {text(d.model)}</h1><dl class="facts">{rows}</dl>{verdict}{empty}'


def _alert_section(d: Digest, salts: _Salts) -> str:
    if not d.alerts:
        return note("No alert fired in any segment.", empty=True)
    by_segment: dict[str, list[AlertSpan]] = defaultdict(list)
    for alert in d.alerts:
        by_segment[alert.segment].append(alert)
    first = d.first_ts if d.first_ts is not None else min(a.fired_at_ts for a in d.alerts)
    last = d.last_ts if d.last_ts is not None else max(a.fired_at_ts for a in d.alerts)
    parts = [
        note(
            "A bar per alert, from the window that fired it to the one that resolved it; "
            "hatched bars were still firing when the data ended."
        )
    ]
    for segment in d.segments:
        spans = by_segment.get(segment, [])
        parts.append(f"<h3>{text(segment)}</h3>")
        if not spans:
            parts.append(note(f"No alert fired in {segment}.", empty=True))
            continue
        svg = charts.timeline_chart(segment, spans, first, last, salts.next())
        parts.append(chart("timeline", svg, f"alert timeline of {segment}"))
    parts.append("<h3>Every alert</h3>")
    parts.append(
        table(
            ["segment", "column", "method", "fired", "resolved", "firing for", "peak score"],
            [
                (
                    a.segment,
                    a.column,
                    a.method,
                    when(a.fired_at_ts),
                    when(a.resolved_at_ts) if a.resolved_at_ts is not None else "still firing",
                    duration(a.duration_s),
                    number(a.peak_score),
                )
                for a in d.alerts
            ],
            classes=("", "", "", "", "", "num", "num"),
        )
    )
    return "".join(parts)


def _score_section(d: Digest, salts: _Salts) -> str:
    if not any(drift.series for drift in d.drift):
        return note("No drift score: no window was scored.", empty=True)
    parts = [
        note(
            "One chart per column and method: the score of each window (blue), its threshold "
            "(dashed), windows over the threshold (red x) and the time an alert was firing "
            "(shaded). Columns are ranked: those that paged first, then by how far their "
            "worst window went over its threshold."
        )
    ]
    last = d.last_ts if d.last_ts is not None else 0.0
    for drift in d.drift:
        if not drift.series:
            continue
        parts.append(f"<h3>{text(drift.segment)}</h3>")
        total = len(drift.shown) + len(drift.left_out)
        if drift.left_out:
            named = ", ".join(drift.left_out[:MAX_NAMES_LISTED])
            more = len(drift.left_out) - MAX_NAMES_LISTED
            parts.append(
                note(
                    f"The {len(drift.shown)} most drifting of {total} columns are drawn; "
                    f"{len(drift.left_out)} left out (all are in the test table): {named}"
                    + (f" and {more} more." if more > 0 else ".")
                )
            )
        figures = []
        for series in drift.charted():
            spans = [
                a
                for a in d.alerts
                if (a.segment, a.column, a.method) == (series.segment, series.column, series.method)
            ]
            svg = charts.score_chart(series, spans, last, salts.next())
            caption = f"{series.column} {series.method} score in {series.segment}"
            figures.append(chart("scores", svg, caption))
        parts.append(f'<div class="grid">{"".join(figures)}</div>')
    return "".join(parts)


def _distribution_section(d: Digest, salts: _Salts) -> str:
    picks = worst_distributions(d, per_segment=MAX_DISTRIBUTIONS)
    parts = [
        note(
            "For the columns that went over their threshold (at most "
            f"{MAX_DISTRIBUTIONS} per segment, the most drifting first): the share of rows "
            "in each bin or category, in the reference (grey) and in the column's worst "
            "window (blue)."
        )
    ]
    for pick in picks:
        parts.append(f"<h3>{text(pick.segment)}</h3>")
        if not (pick.chosen or pick.not_recorded):
            parts.append(note(f"No column went over its threshold in {pick.segment}.", empty=True))
            continue
        figures = [
            chart(
                "distribution",
                charts.distribution_chart(dist, salts.next()),
                f"{dist.column} reference versus current in {pick.segment}",
            )
            for dist in pick.chosen
        ]
        if figures:  # bar charts keep their own width: a row, not the grid
            parts.append(f'<div class="row">{"".join(figures)}</div>')
        if pick.not_recorded:
            parts.append(
                note("No distribution was recorded for: " + ", ".join(pick.not_recorded) + ".")
            )
        if pick.beyond_limit:
            parts.append(
                note(
                    f"{len(pick.beyond_limit)} more drifting column(s) not drawn here: "
                    + ", ".join(pick.beyond_limit[:MAX_NAMES_LISTED])
                    + "."
                )
            )
    return "".join(parts)


def _performance_section(d: Digest, salts: _Salts) -> str:
    if not d.performance and not d.fairness and d.label_windows == 0:
        return note(
            "No labels given: performance, fairness and label drift need labels "
            "(driftd backtest --labels labels.jsonl).",
            empty=True,
        )
    parts = []
    if not d.performance:
        parts.append(note("No performance metric was computed from the labels.", empty=True))
    for segment in d.segments:
        fairness = [f for f in d.fairness if f.segment == segment]
        metrics = [
            (m, pts)
            for (s, m), pts in d.performance.items()
            # The fairness gaps are also scores with a threshold: drawn once, as those.
            if s == segment and not (fairness and m.startswith("fairness_gap:"))
        ]
        if not metrics and not fairness:
            continue
        parts.append(f"<h3>{text(segment)}</h3>")
        figures = [
            chart(
                "performance", charts.performance_chart(m, pts, salts.next()), f"{m} in {segment}"
            )
            for m, pts in metrics
        ]
        for series in fairness:
            spans = [
                a
                for a in d.alerts
                if (a.segment, a.column, a.method) == (segment, series.column, series.method)
            ]
            svg = charts.score_chart(series, spans, d.last_ts or 0.0, salts.next())
            figures.append(chart("fairness", svg, f"{series.column} fairness in {segment}"))
        parts.append(f'<div class="grid">{"".join(figures)}</div>')
    return "".join(parts)


def _quality_section(d: Digest) -> str:
    parts = []
    keys = sorted(
        {(seg, col) for part in d.quality.values() for seg, cols in part.items() for col in cols}
    )
    rows = [
        (
            seg,
            col,
            *(d.quality[p].get(seg, {}).get(col, 0) for p in ("missing", "invalid", "unseen")),
        )
        for seg, col in keys
    ]
    rows = [r for r in rows if any(r[2:])]
    if rows:
        parts.append(
            note(
                "Values per column that were missing, invalid (wrong type, not finite) or "
                "unseen (a category the reference never had); columns with none are left out."
            )
        )
        parts.append(
            table(
                ["segment", "column", "missing", "invalid", "unseen"],
                rows,
                classes=("", "", "num", "num", "num"),
            )
        )
    else:
        parts.append(note("No missing, invalid or unseen value in any column.", empty=True))
    parts.append("<h3>Rejected events</h3>")
    if d.rejected:
        parts.append(
            table(
                ["reason", "events", "example"],
                [(r, n, d.rejected_examples.get(r, "")) for r, n in sorted(d.rejected.items())],
                classes=("", "num", "example"),
            )
        )
    else:
        parts.append(note("No event was rejected.", empty=True))
    return "".join(parts)


def _test_section(d: Digest) -> str:
    if not d.checks:
        return note("No test ran: no window was scored.", empty=True)
    failed = sum(1 for c in d.checks if c.status == "fail")
    warned = sum(1 for c in d.checks if c.status == "warn")
    passed = len(d.checks) - failed - warned
    summary = (
        f'<p><span class="fail">{failed} failed</span> (would have paged), '
        f'<span class="warn">{warned} warned</span> (over the threshold in some window, '
        f'but hysteresis held the page), <span class="pass">{passed} passed</span>.</p>'
    )
    body = "".join(
        "<tr>"
        f'<td class="{c.status}">{c.status}</td><td>{text(c.segment)}</td>'
        f"<td>{text(c.column)}</td><td>{text(c.method)}</td>"
        f'<td class="num">{c.windows_tested}</td><td class="num">{number(c.worst_score)}</td>'
        f'<td class="num">{number(c.threshold)}</td><td>{text(c.worst_verdict)}</td>'
        f"<td>{'yes' if c.pages else 'no'}</td></tr>"
        for c in d.checks
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "status",
            "segment",
            "column",
            "method",
            "windows tested",
            "worst score",
            "threshold there",
            "worst verdict",
            "pages",
        )
    )
    return (
        summary
        + f'<table class="checks"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _settings_section(d: Digest) -> str:
    if not d.config:
        return note("The backtest recorded no settings.", empty=True)
    return table(["setting", "value"], sorted((k, v) for k, v in d.config.items()))


def build_page(d: Digest) -> str:
    """The report of ``d`` as one self-contained HTML document."""
    salts = _Salts()
    sections = [
        ("alerts", "Alert timeline", _alert_section(d, salts)),
        ("scores", "Drift scores over windows", _score_section(d, salts)),
        ("distributions", "Reference versus current", _distribution_section(d, salts)),
        ("performance", "Performance and fairness", _performance_section(d, salts)),
        ("quality", "Data quality", _quality_section(d)),
        ("tests", "Tests per column", _test_section(d)),
        ("settings", "Settings", _settings_section(d)),
    ]
    return document(f"driftd backtest: {d.model}", _header(d), sections)
