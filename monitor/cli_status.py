"""``driftd status``: what a running daemon thinks now, from its ``/api/v1/state``.

It fetches the state document (``monitor.emit.state_api``, described in
docs/state-api.md) and prints a table: firing alerts first, then the rows in the band
(pending, or between the clear level and the threshold), then the ok rows closest to
their thresholds (``--all`` shows every row). ``--json`` prints the document as it
came. Exit codes: 0 printed; 2 a bad ``--url``, or a daemon that cannot be reached or
does not answer with a state document (one line on stderr naming ``--url``).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from monitor.emit.http import STATE_PATH

EXIT_OK = 0
EXIT_UNREACHABLE = 2
DEFAULT_URL = "http://127.0.0.1:9108"
TIMEOUT_S = 5.0
OK_ROWS_SHOWN = 10
"""Ok rows shown without ``--all``: the ones closest to (or furthest past) their threshold."""
STATE_ORDER = {"firing": 0, "band": 1, "ok": 2}


class StatusError(Exception):
    """The state could not be fetched or read; ``message`` says why in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def add_status_parser(sub: Any) -> None:
    """Add ``status`` to the sub-commands of ``driftd``."""
    status = sub.add_parser(
        "status",
        help="print what a running daemon thinks now (its /api/v1/state)",
        description="Fetch /api/v1/state from a running driftd (run or demo) and print "
        "firing alerts first, then rows in the band, then the ok rows closest to their "
        "thresholds. Exit 0 when printed, 2 when the daemon cannot be reached or --url "
        "is not an http(s) URL.",
    )
    status.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"base URL of the daemon's HTTP server (metrics.host and metrics.port; "
        f"default {DEFAULT_URL})",
    )
    status.add_argument(
        "--json", action="store_true", help="print the state document as indented JSON"
    )
    status.add_argument(
        "--all",
        action="store_true",
        help=f"show every row (otherwise only the {OK_ROWS_SHOWN} ok rows nearest their "
        "thresholds)",
    )
    status.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace) -> int:
    """``driftd status``: see the module doc."""
    try:
        url = state_url(args.url)
        raw = fetch(url)
        document = parse(raw, url)
    except StatusError as exc:
        print(f"driftd: status: --url: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print("\n".join(render(document, show_all=args.all)))
    return EXIT_OK


def state_url(base: str) -> str:
    """The state endpoint under ``base`` (which may already end with it)."""
    parsed = urllib.parse.urlsplit(base.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise StatusError(f"{base!r} is not an http:// or https:// URL")
    path = parsed.path.rstrip("/")
    if not path.endswith(STATE_PATH):
        path += STATE_PATH
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def fetch(url: str, timeout: float = TIMEOUT_S) -> bytes:
    """The body of ``url``; ``StatusError`` when it cannot be had."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        hint = " (a driftd older than the state API, or not driftd?)" if exc.code == 404 else ""
        raise StatusError(f"{url} answered HTTP {exc.code}{hint}") from exc
    except urllib.error.URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
        raise StatusError(f"cannot reach {url}: {reason} (is driftd running there?)") from exc
    except (TimeoutError, OSError) as exc:
        raise StatusError(f"cannot reach {url}: {exc or 'timed out'}") from exc


def parse(raw: bytes, url: str) -> dict[str, Any]:
    """The state document in ``raw``; ``StatusError`` when it is not one."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise StatusError(f"{url} did not answer with JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise StatusError(f"{url} did not answer with a driftd state document")
    return document


def ordered_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Firing, then band, then ok; within each, by score over threshold, highest first."""
    return sorted(
        rows,
        key=lambda r: (
            STATE_ORDER.get(str(r.get("state")), 3),
            -_ratio(r),
            str(r.get("segment")),
            str(r.get("feature")),
            str(r.get("method")),
        ),
    )


def render(document: dict[str, Any], show_all: bool = False) -> list[str]:
    """The status report as lines of text."""
    rows = ordered_rows(list(document["rows"]))
    counts = {state: sum(r.get("state") == state for r in rows) for state in STATE_ORDER}
    lines = [
        f"model {document.get('model')}  reference {document.get('reference_version') or '-'}"
        f"  {_int(document.get('events_consumed'))} messages read, "
        f"{_int(document.get('events_accepted'))} events accepted",
        f"updated {_time(document.get('updated_at'))}  lag {_lag(document.get('consumer_lag'))}",
        f"{counts['firing']} firing, {counts['band']} in the band, {counts['ok']} ok",
    ]
    if not rows:
        lines.append("no window has been scored yet")
        return lines
    shown = rows
    if not show_all:
        not_ok = [r for r in rows if r.get("state") != "ok"]
        shown = not_ok + [r for r in rows if r.get("state") == "ok"][:OK_ROWS_SHOWN]
    header = (
        "STATE",
        "SEGMENT",
        "FEATURE",
        "METHOD",
        "SCORE",
        "THRESHOLD",
        "RATIO",
        "STREAK",
        "SINCE (event time)",
        "N",
    )
    table = [header] + [
        (
            str(r.get("state")),
            str(r.get("segment")),
            str(r.get("feature")),
            str(r.get("method")),
            _num(r.get("score")),
            _num(r.get("threshold")),
            "-" if _ratio(r) == float("-inf") else f"{_ratio(r):.2f}x",
            str(r.get("breach_streak", 0)),
            _time(r.get("since")),
            _int(r.get("n")),
        )
        for r in shown
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines.append("")
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )
    hidden = len(rows) - len(shown)
    if hidden:
        lines.append(f"({hidden} more ok rows; --all shows them)")
    return lines


def _ratio(row: dict[str, Any]) -> float:
    ratio = row.get("ratio")
    return float(ratio) if isinstance(ratio, int | float) else float("-inf")


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, int | float) else "-"


def _int(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else "-"


def _time(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _lag(lag: Any) -> str:
    if not isinstance(lag, list):
        return "unknown"
    if not lag:
        return "none reported"
    total = sum(int(p.get("lag", 0)) for p in lag if isinstance(p, dict))
    parts = ", ".join(f"{p.get('topic')}/{p.get('partition')}={p.get('lag')}" for p in lag[:5])
    more = f", +{len(lag) - 5} partitions" if len(lag) > 5 else ""
    return f"{total:,} messages ({parts}{more})"
