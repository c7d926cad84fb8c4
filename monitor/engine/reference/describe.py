"""A reference profile for people: ``driftd reference show``.

``describe`` turns a profile into plain data (what ``--json`` prints); ``render`` into
text: a header, then a few lines per column, so that fifty features stay readable.

Numeric quantiles are read off the fine grid: the p-quantile is reported as the upper
edge of the fine bin where the cumulative share first reaches p. Since a built
profile's fine edges are its own quantiles at ``1/n_fine`` steps, that is the exact
quantile when p is one of those steps (p1, p25, p50, p75, p99 with the default 100
bins), and otherwise an upper bound within one fine bin. ``min`` is the lowest value the
first non-empty bin admits and ``max`` the upper edge of the last one: exact for a built
profile, whose outer edges are the data's minimum and maximum. A profile built on
another's grid may hold values beyond the grid's outer edges; its minimum or maximum
is then shown as ``<=edge`` or ``>edge``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.feature_profiles import OTHER, UNSEEN, CategoricalProfile, NumericProfile
from detectors.profile import FeatureProfile, ReferenceProfile
from detectors.segment_mix import SegmentMix

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
"""The quantiles shown for numeric columns, besides min and max."""
TOP_SHOWN = 5
"""Categories listed per column in the overview; ``--feature`` lists them all."""
HISTOGRAM_CELLS = 24
"""Equal-width cells of the text histogram, from p1 to p99."""
BARS = " ▁▂▃▄▅▆▇█"
BAR_WIDTH = 30


def histogram(
    profile: NumericProfile, cells: int = HISTOGRAM_CELLS
) -> tuple[float, float, list[float]]:
    """Shares of the values in ``cells`` equal-width cells from p1 to p99, read off the
    fine grid's cumulative counts (linearly inside a fine bin): the shape at a glance,
    where the coarse bins, cut at quantiles, all hold about the same share."""
    low, _ = quantile_edge(profile, 0.01)
    high, _ = quantile_edge(profile, 0.99)
    if not high > low:
        return low, high, []
    cumulative = np.cumsum(profile.counts, dtype=np.float64)[:-1] / max(profile.n_ref, 1)
    at = np.interp(np.linspace(low, high, cells + 1), profile.edges, cumulative)
    return low, high, [float(v) for v in np.maximum(np.diff(at), 0.0)]


def quantile_edge(profile: NumericProfile, p: float) -> tuple[float, str]:
    """The p-quantile as the upper edge of the fine bin where the cumulative share reaches
    ``p``, and how it reads: ``=`` on the grid, ``>`` beyond the last edge."""
    cumulative = np.cumsum(profile.counts) / max(profile.n_ref, 1)
    k = int(np.searchsorted(cumulative, p - 1e-12, side="left"))
    if k >= profile.edges.size:
        return float(profile.edges[-1]), ">"
    return float(profile.edges[k]), "<=" if k == 0 else "="


def _extremes(profile: NumericProfile) -> tuple[tuple[float, str], tuple[float, str]]:
    nonzero = np.flatnonzero(profile.counts)
    first, last = int(nonzero[0]), int(nonzero[-1])
    edges = profile.edges
    low = (
        (float(edges[0]), "<=")
        if first == 0
        else (float(np.nextafter(edges[first - 1], np.inf)), "=")
    )
    high = (float(edges[-1]), ">") if last >= edges.size else (float(edges[last]), "=")
    return low, high


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def describe_feature(profile: FeatureProfile, role: str = "feature") -> dict[str, Any]:
    """One column as plain data: kind, counts, missing share, quantiles or categories, bins."""
    rows = profile.n_ref + profile.n_missing
    out: dict[str, Any] = {
        "name": profile.name,
        "role": role,
        "kind": profile.kind,
        "rows": rows,
        "count": profile.n_ref,
        "missing": profile.n_missing,
        "missing_share": _share(profile.n_missing, rows),
    }
    if isinstance(profile, NumericProfile):
        if profile.n_ref:
            (low, low_mark), (high, high_mark) = _extremes(profile)
            quantiles: dict[str, Any] = {"min": {"value": low, "bound": low_mark}}
            for p in QUANTILES:
                value, mark = quantile_edge(profile, p)
                quantiles[f"p{round(p * 100)}"] = {"value": value, "bound": mark}
            quantiles["max"] = {"value": high, "bound": high_mark}
            out["quantiles"] = quantiles
            low_1, high_99, shares = histogram(profile)
            out["histogram"] = {"low": low_1, "high": high_99, "shares": shares}
        coarse = profile.coarse_counts
        inner = profile.coarse_edges.tolist()
        out["fine_bins"] = profile.n_bins
        out["bins"] = [
            {
                "low": None if c == 0 else inner[c - 1],
                "high": None if c == len(coarse) - 1 else inner[c],
                "count": int(n),
                "share": _share(int(n), profile.n_ref),
            }
            for c, n in enumerate(coarse.tolist())
        ]
    else:
        assert isinstance(profile, CategoricalProfile)
        names = [*map(str, profile.categories), OTHER, UNSEEN]
        out["categories"] = [
            {"value": name, "count": int(n), "share": _share(int(n), profile.n_ref)}
            for name, n in zip(names, profile.counts.tolist(), strict=True)
        ]
        out["rare_listed"] = None if profile.rare is None else len(profile.rare)
        out["singletons"] = profile.singletons
    out["spread"] = dict(profile.spread)
    return out


def describe(profile: ReferenceProfile, feature: str | None = None) -> dict[str, Any]:
    """The profile as plain data; only the column ``feature`` when named (KeyError if the
    profile has no such column)."""
    columns = [(f, "feature") for f in profile.features]
    for role, prof in (("prediction", profile.prediction), ("label", profile.label)):
        if prof is not None:
            columns.append((prof, role))
    if feature is not None:
        columns = [(p, role) for p, role in columns if p.name == feature]
        if not columns:
            raise KeyError(feature)
    first = profile.features[0]
    return {
        "version": profile.version,
        "rows": first.n_ref + first.n_missing,
        "features": len(profile.features),
        "prediction": None if profile.prediction is None else profile.prediction.name,
        "label": None if profile.label is None else profile.label.name,
        "columns": [describe_feature(p, role) for p, role in columns],
        "segments": (
            None
            if profile.segments is None or feature is not None
            else describe_segments(profile.segments)
        ),
    }


def describe_segments(mix: SegmentMix) -> dict[str, Any]:
    """The segment mix as plain data: events, every listed segment's count and share,
    and the summed tail past the listed ones."""
    total = mix.n_events
    return {
        "events": total,
        "listed": [
            {"name": name, "count": count, "share": _share(count, total)}
            for name, count in zip(mix.names, mix.counts.tolist(), strict=True)
        ],
        "other": mix.other,
        "other_keys": mix.other_keys,
    }


def _number(value: float) -> str:
    return f"{value:.6g}"


def _sparkline(shares: list[float]) -> str:
    top = max(shares, default=0.0)
    if top <= 0:
        return ""
    return "".join(
        BARS[min(len(BARS) - 1, int(np.ceil(s / top * (len(BARS) - 1))))] for s in shares
    )


def _bar(share: float, top: float) -> str:
    return "█" * max(1 if share > 0 else 0, round(share / top * BAR_WIDTH)) if top > 0 else ""


def _render_numeric(column: dict[str, Any], full: bool) -> list[str]:
    lines = []
    quantiles = column.get("quantiles")
    if quantiles:
        marks = {"=": "", "<=": "<=", ">": ">"}
        lines.append(
            "    "
            + "  ".join(
                f"{name} {marks[q['bound']]}{_number(q['value'])}" for name, q in quantiles.items()
            )
        )
    hist = column.get("histogram")
    if hist and hist["shares"]:
        lines.append(
            f"    {_number(hist['low'])} {_sparkline(hist['shares'])} {_number(hist['high'])}"
            f"  (p1 to p99, {len(hist['shares'])} equal steps)"
        )
    bins = column["bins"]
    shares = [b["share"] for b in bins]
    if not full:
        return lines
    lines.append(f"    {len(bins)} coarse (PSI) bins over {column['fine_bins']} fine (KS) bins:")
    top = max(shares, default=0.0)
    for b in bins:
        low = "-inf" if b["low"] is None else _number(b["low"])
        high = "+inf" if b["high"] is None else _number(b["high"])
        lines.append(
            f"    ({low:>10}, {high:>10}]  {b['count']:>10,}  {b['share']:6.1%}  "
            f"{_bar(b['share'], top)}"
        )
    return lines


def _render_categorical(column: dict[str, Any], full: bool) -> list[str]:
    cats = column["categories"]
    top_cats, tail = cats[:-2], cats[-2:]
    shown = top_cats if full else top_cats[:TOP_SHOWN]
    hidden = top_cats[len(shown) :]
    rows = list(shown)
    if hidden:
        rows.append(
            {
                "value": f"({len(hidden)} more)",
                "count": sum(c["count"] for c in hidden),
                "share": sum(c["share"] for c in hidden),
            }
        )
    rows += [c for c in tail if c["count"] or c["value"] == OTHER]
    width = max(len(str(r["value"])) for r in rows)
    top = max((r["share"] for r in rows), default=0.0)
    lines = []
    for r in rows:
        lines.append(
            f"    {r['value']!s:<{width}}  {r['count']:>10,}  {r['share']:6.1%}  "
            f"{_bar(r['share'], top)}"
        )
    return lines


def render(description: dict[str, Any], full: bool = False) -> str:
    """The text of ``driftd reference show``; ``full`` lists every bin and category."""
    roles = [
        f"{role} {description[role]}" if description[role] else f"no {role}"
        for role in ("prediction", "label")
    ]
    lines = [
        f"reference {description['version']}: {description['rows']:,} rows, "
        f"{description['features']} features, {', '.join(roles)}"
    ]
    for column in description["columns"]:
        role = "" if column["role"] == "feature" else f" ({column['role']})"
        head = (
            f"{column['name']}{role}  {column['kind']}  {column['count']:,} values  "
            f"missing {column['missing_share']:.1%}"
        )
        if column["kind"] == CategoricalProfile.kind:
            listed = column["rare_listed"]
            rare = f", {listed:,} rare in {OTHER}" if listed else ""
            head += f"  {len(column['categories']) - 2} categories{rare}"
        if column["spread"]:
            spread = ", ".join(f"{m} {v:.3g}" for m, v in sorted(column["spread"].items()))
            head += f"  spread: {spread}"
        lines.append("")
        lines.append(head)
        if column["kind"] == NumericProfile.kind:
            lines += _render_numeric(column, full)
        else:
            lines += _render_categorical(column, full)
    if description.get("segments"):
        lines += _render_segments(description["segments"], full)
    return "\n".join(line.rstrip() for line in lines)


def _render_segments(mix: dict[str, Any], full: bool) -> list[str]:
    listed = mix["listed"]
    n_segments = len(listed) + mix["other_keys"]
    rows = listed if full else listed[:TOP_SHOWN]
    hidden = listed[len(rows) :]
    total = mix["events"]
    if hidden:
        count = sum(r["count"] for r in hidden)
        rows = [*rows, {"name": f"({len(hidden)} more)", "count": count}]
    if mix["other"]:
        name = f"({mix['other_keys']:,} more, summed)"
        rows = [*rows, {"name": name, "count": mix["other"]}]
    width = max(len(r["name"]) for r in rows)
    top = max(_share(r["count"], total) for r in rows)
    lines = ["", f"segments  {total:,} events in {n_segments:,} segments"]
    for r in rows:
        share = _share(r["count"], total)
        lines.append(
            f"    {r['name']:<{width}}  {r['count']:>10,}  {share:6.1%}  {_bar(share, top)}"
        )
    return lines
