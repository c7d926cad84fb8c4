"""``driftd backtest``: replay recorded events (and labels) through the daemon's engine.

The work is ``monitor.backtest.run.run_backtest``; this module parses the command line,
shows progress on stderr, prints the per-window table and the paging summary on
stdout, and writes the JSON (``--json``) and the HTML report (``-o``, rendered by
``monitor.report.render_report`` from the same data).

Exit codes: 0 done; 1 no event was accepted (nothing was monitored), or a second
signal stopped it; 2 a bad config, input or output (one line on stderr naming the
option or key); 4 with ``--fail-on-alert``, something would have paged.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from monitor.backtest.progress import ProgressReporter
from monitor.backtest.run import TOP_DISTRIBUTIONS, Backtest, run_backtest
from monitor.backtest.table import render_text
from monitor.config import Settings, env_settings_given, load_settings
from monitor.errors import (
    ConfigError,
    DriftdError,
    InvalidConfigError,
    ReferenceProfileError,
    SourceError,
)
from monitor.logsetup import configure_logging

EXIT_OK = 0
EXIT_NOTHING_ACCEPTED = 1
EXIT_BAD_INPUT = 2
EXIT_WOULD_PAGE = 4
EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 no event was accepted (nothing was monitored); 2 bad config, "
    "input or output (one line on stderr names the option or key); 4 with "
    "--fail-on-alert, something would have paged. A backtest is a dry run: nothing is "
    "checkpointed, journaled or delivered, no metrics are served, and the wall-clock "
    "limits (schema.max_past_seconds, schema.max_future_seconds) do not apply. "
    "See docs/backtest.md."
)
PROG = "driftd backtest"


def add_backtest_parser(sub: Any) -> None:
    """Add ``backtest`` to the ``driftd`` sub-commands (``sub``: their action)."""
    parser = sub.add_parser(
        "backtest",
        help="replay recorded events (and labels) through the engine: table, summary, report",
        description="Replay recorded events, and their labels merged in time order, through "
        "exactly the daemon's engine (windows, decisions, hysteresis, label join, ADWIN, "
        "performance). Prints a per-window table and what would have paged, when and for how "
        "long. Inputs: JSON Lines events in the documented contract, or CSV/Parquet tables "
        "with one column per feature.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="YAML config file, as for `driftd run` (required unless DRIFTD_* variables are set)",
    )
    parser.add_argument(
        "--events",
        type=Path,
        required=True,
        help="recorded events: .jsonl/.ndjson (events), .csv or .parquet (one row per event)",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="recorded label events (.jsonl, .csv, .parquet); turns labels.enabled on",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="write the HTML report to this file"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="write the whole result as JSON to this file"
    )
    parser.add_argument(
        "--fail-on-alert",
        action="store_true",
        help="exit 4 when anything would have paged (to gate a batch or a model in CI)",
    )
    parser.add_argument(
        "--all-windows",
        action="store_true",
        help="list every window in the table (default: only windows with a score over "
        "threshold or a transition; the others are counted per segment)",
    )
    parser.add_argument(
        "--top-distributions",
        type=int,
        default=TOP_DISTRIBUTIONS,
        metavar="N",
        help=f"columns whose worst window's bins the JSON and report keep (default "
        f"{TOP_DISTRIBUTIONS})",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="when stderr is not a terminal, a progress line every SECONDS (default 10; 0: none)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="error",
        help="log level of the engine's own log lines on stderr (default error: the table "
        "and summary say what matters)",
    )
    parser.set_defaults(handler=backtest_command)


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _settings(path: Path | None) -> Settings:
    if path is None and not env_settings_given():
        raise InvalidConfigError(
            [ConfigError("--config", "no configuration: pass -c driftd.yaml (as for driftd run)")]
        )
    return load_settings(path)


def _writable(option: str, path: Path | None) -> str | None:
    """Why ``path`` cannot be written (None: it can, or none was asked for)."""
    if path is None:
        return None
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return f"{option} {path}: is a directory"
    if not parent.is_dir():
        return f"{option} {path}: no such directory {parent}"
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{option} {path}: not writable"
    return None


def _check_options(args: argparse.Namespace) -> str | None:
    if args.top_distributions < 0:
        return f"--top-distributions must be 0 or more, got {args.top_distributions}"
    if args.progress_every < 0:
        return f"--progress-every must be 0 or more, got {args.progress_every:g}"
    for option, path in (("--json", args.json), ("-o", args.output)):
        problem = _writable(option, path)
        if problem is not None:
            return problem
    return None


def backtest_command(args: argparse.Namespace) -> int:
    """Run ``driftd backtest`` with parsed ``args``; the exit code."""
    problem = _check_options(args)
    if problem is not None:
        return _fail(problem)
    try:
        settings = _settings(args.config)
    except InvalidConfigError as exc:
        for error in exc.errors:
            print(f"{PROG}: config error: {error.key}: {error.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_logging(args.log_level, settings.logging.format)
    tty = sys.stderr.isatty()
    progress = (
        ProgressReporter(sys.stderr, tty=tty, every_s=args.progress_every)
        if tty or args.progress_every > 0
        else None
    )
    options = {str(args.events): "--events", str(args.labels): "--labels"}
    try:
        backtest = run_backtest(
            settings,
            args.events,
            args.labels,
            progress=progress,
            top_distributions=args.top_distributions,
        )
    except SourceError as exc:
        option = options.get(exc.source, "--events")
        return _fail(f"{option} {exc}")
    except ReferenceProfileError as exc:
        return _fail(f"config error: reference.path: {exc}")
    except InvalidConfigError as exc:
        for error in exc.errors:
            print(f"{PROG}: config error: {error.key}: {error.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if progress is not None:
        progress.finish()
    for note in backtest.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    result = backtest.result
    sys.stdout.write(render_text(result, all_windows=args.all_windows))
    sys.stdout.flush()
    data = result.to_json()
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
        except OSError as exc:
            return _fail(f"--json {args.json}: cannot write: {exc.strerror or exc}")
        print(f"{PROG}: wrote {args.json}", file=sys.stderr)
    if args.output is not None:
        failure = _render_report(data, args.output)
        if failure is not None:
            return _fail(failure)
        print(f"{PROG}: wrote {args.output}", file=sys.stderr)
    return _exit_code(backtest, fail_on_alert=args.fail_on_alert)


def _render_report(data: dict[str, Any], path: Path) -> str | None:
    """Render the HTML report (``monitor.report``, imported only when asked for)."""
    try:
        report = importlib.import_module("monitor.report")
    except ModuleNotFoundError as exc:
        return f"-o {path}: the HTML report is not available here ({exc.name} is missing)"
    try:
        report.render_report(data, path)
    except DriftdError as exc:
        return f"-o {path}: {exc}"
    except OSError as exc:
        return f"-o {path}: cannot write: {exc.strerror or exc}"
    return None


def _exit_code(backtest: Backtest, *, fail_on_alert: bool) -> int:
    counts = backtest.result.counts
    if backtest.code != EXIT_OK:
        return backtest.code
    if not counts.events_accepted:
        print(f"{PROG}: no event was accepted, so nothing was monitored (exit 1)", file=sys.stderr)
        return EXIT_NOTHING_ACCEPTED
    if fail_on_alert and backtest.result.paged:
        print(
            f"{PROG}: {len(backtest.result.alerts):,} alert(s) would have paged "
            "(--fail-on-alert: exit 4)",
            file=sys.stderr,
        )
        return EXIT_WOULD_PAGE
    return EXIT_OK
