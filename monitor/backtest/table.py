"""A backtest result as text: the per-window table, then what would have paged, then counts.

A window is shown in full when a score in it is over its threshold or an alert changed
state in it; the others are summed up per segment in one line (``--all-windows`` shows
every window). Each shown window lists its worst columns, one entry per column at its
worst method: ``method:column=score (ratio x)``, where the ratio is how far past the
threshold the score is (for ``samples``, where too few is bad, threshold over score).
Times are UTC; durations are event time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monitor.backtest.result import OVER_THRESHOLD, BacktestResult, TransitionRow, WindowRow

WORST_SHOWN = 3
"""Columns listed per window."""
PART_NAMES = {"performance": "pairs", "label_drift": "label", "concept": "adwin"}
"""How the table names the label-side windows (see ``WindowRow.part``)."""
LOWER_IS_WORSE = frozenset({"samples"})
"""Methods whose score is bad when below its threshold (too few events)."""


def when(ts: float) -> str:
    """An epoch time as ``2026-11-18 20:13:57`` (UTC)."""
    if not math.isfinite(ts):
        return "?"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``3.2 h``, ``2.1 d``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _number(x: float) -> str:
    return f"{x:.4g}"


def breaches(window: WindowRow) -> list[tuple[float, str, str, float]]:
    """``(ratio, method, column, score)`` of each score over its threshold, worst first,
    one per column (its worst method)."""
    worst: dict[str, tuple[float, str, str, float]] = {}
    for method, scores in window.scores.items():
        verdicts = window.verdicts.get(method, {})
        thresholds = window.thresholds.get(method, {})
        for column, score in scores.items():
            threshold = thresholds.get(column, math.nan)
            verdict = verdicts.get(column)
            if verdict is not None:
                over = verdict in OVER_THRESHOLD
            else:
                over = math.isfinite(threshold) and score >= threshold
            if not over:
                continue
            if method in LOWER_IS_WORSE:
                ratio = threshold / score if score > 0 else math.inf
            else:
                ratio = score / threshold if threshold > 0 else math.inf
            entry = (ratio, method, column, score)
            if column not in worst or ratio > worst[column][0]:
                worst[column] = entry
    return sorted(worst.values(), key=lambda e: (-e[0], e[2], e[1]))


def _worst_text(window: WindowRow) -> str:
    found = breaches(window)
    parts = [
        f"{method}:{column}={_number(score)} ({ratio:.1f}x)"
        if math.isfinite(ratio)
        else f"{method}:{column}={_number(score)}"
        for ratio, method, column, score in found[:WORST_SHOWN]
    ]
    more = len(found) - WORST_SHOWN
    if more > 0:
        parts.append(f"+{more} more")
    return ", ".join(parts) or "-"


def _transition_text(transitions: Sequence[TransitionRow]) -> str:
    return " ".join(
        ("FIRING " if t.to == "firing" else "resolved ") + f"{t.column}/{t.method}"
        for t in transitions
    )


def _window_name(w: WindowRow) -> str:
    """``#3`` for a feature window, ``label #3`` for a label one, ``multivariate #3`` for a
    window beside the features (named by its methods)."""
    if w.part == "features":
        return f"#{w.index}"
    if w.part == "beside":
        return f"{','.join(sorted(w.scores)) or 'beside'} #{w.index}"
    return f"{PART_NAMES[w.part]} #{w.index}"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths[:-1], strict=True)]
        out.append("  ".join([*cells, r[-1]]).rstrip())
    return out


def _windows_section(
    title: str,
    windows: Iterable[WindowRow],
    by_window: dict[tuple[str, float], list[TransitionRow]],
    all_windows: bool,
) -> list[str]:
    rows: list[list[str]] = []
    quiet: dict[str, list[int]] = {}
    total = 0
    for w in windows:
        total += 1
        moved = by_window.get((w.segment, w.window_end_ts), [])
        worst = _worst_text(w)
        if not all_windows and not moved and worst == "-":
            quiet.setdefault(w.segment, []).append(w.index)
            continue
        rows.append(
            [
                w.segment,
                _window_name(w),
                when(w.window_end_ts),
                f"{w.rows:,}",
                worst,
                _transition_text(moved),
            ]
        )
    if not total:
        return []
    lines = [f"{title} ({total:,})"]
    if rows:
        header = ["segment", "window", "end (UTC)", "rows", "over threshold", "transitions"]
        lines.extend("  " + line for line in _table(rows, header))
    if quiet:
        summary = ", ".join(
            f"{segment} {len(indexes):,}" for segment, indexes in sorted(quiet.items())
        )
        lines.append(f"  with nothing over threshold and no transition: {summary}")
    return lines


def render_text(result: BacktestResult, *, all_windows: bool = False) -> str:
    """The whole text report (table, paging summary, counts), ending with a newline."""
    by_window: dict[tuple[str, float], list[TransitionRow]] = {}
    placed: set[int] = set()
    keys = {(w.segment, w.window_end_ts) for w in result.windows}
    for i, t in enumerate(result.transitions):
        key = (t.segment, t.window_end_ts)
        if key in keys:
            by_window.setdefault(key, []).append(t)
            placed.add(i)
    lines = [_headline(result), ""]
    feature = [w for w in result.windows if w.part == "features"]
    beside = [w for w in result.windows if w.part == "beside"]
    label = [w for w in result.windows if w.kind == "label_window"]
    lines += _windows_section("Windows", feature, by_window, all_windows) or [
        "No window closed (too few events after the warm-up, or none accepted)."
    ]
    section = _windows_section("Beside the feature windows", beside, by_window, all_windows)
    if section:
        lines += ["", *section]
    section = _windows_section("Label windows", label, by_window, all_windows)
    if section:
        lines += ["", *section]
    unplaced = [t for i, t in enumerate(result.transitions) if i not in placed]
    if unplaced:  # e.g. alerts resolved because their segment was evicted
        lines += ["", "Other transitions"]
        lines += [
            f"  {when(t.window_end_ts)}  {t.segment}  {_transition_text([t])}" for t in unplaced
        ]
    lines += ["", *_alerts_section(result), "", *_counts_section(result)]
    return "\n".join(lines) + "\n"


def _headline(result: BacktestResult) -> str:
    cfg = result.config
    size = cfg.get("window_size_events")
    seconds = cfg.get("window_duration_seconds")
    windows = " and ".join(
        part
        for part in (
            f"{size:,} events" if size else "",
            f"{seconds:g} s" if seconds else "",
        )
        if part
    )
    if result.reference_version is None:
        reference = "no reference"
    elif cfg.get("reference_path"):
        reference = f"reference {result.reference_version} ({cfg['reference_path']})"
    else:
        reference = (
            f"reference {result.reference_version} (warm-up of {cfg.get('warmup_events') or 0:,} "
            "events)"
        )
    return f"driftd backtest: model {result.model}, {reference}, windows of {windows or '?'}"


def _alerts_section(result: BacktestResult) -> list[str]:
    alerts = result.alerts
    if not alerts:
        return ["Would have paged: nothing."]
    still = sum(a.resolved_at_ts is None for a in alerts)
    lines = [
        f"Would have paged: {len(alerts):,} alert{'s' if len(alerts) != 1 else ''}"
        + (f" ({still:,} still firing at the end)" if still else "")
    ]
    rows = [
        [
            when(a.fired_at_ts),
            when(a.resolved_at_ts) if a.resolved_at_ts is not None else "still firing at the end",
            duration(a.duration_s) if a.duration_s is not None else "-",
            _number(a.peak_score),
            a.dedup_key,
        ]
        for a in alerts
    ]
    header = ["fired (UTC)", "resolved (UTC)", "for", "peak", "alert"]
    lines.extend("  " + line for line in _table(rows, header))
    return lines


def _counts_section(result: BacktestResult) -> list[str]:
    c = result.counts
    rejected = sum(c.rejected.values())
    lines = [
        f"Events: {c.events_read:,} read, {c.events_accepted:,} accepted, {rejected:,} rejected"
        + (f", {c.late:,} late (in no window)" if c.late else "")
    ]
    examples = result.quality.rejected_examples
    for reason, count in c.rejected.items():
        example = examples.get(reason)
        lines.append(f"  {reason}: {count:,}" + (f" (e.g. {example[:160]})" if example else ""))
    if result.config.get("labels_enabled"):
        lines.append(f"Labels: {c.labels_read:,} read, {c.labels_joined:,} joined")
    lines.append(f"Windows: {c.windows:,} feature windows, {c.label_windows:,} label windows")
    if result.notifications:
        sent = ", ".join(f"{name} {n:,}" for name, n in result.notifications.items())
        lines.append(f"Notifications the alert sinks would have been sent (none was): {sent}")
    return lines
