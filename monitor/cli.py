"""The ``driftd`` command line: run, demo, status, check-config, reference (build, show, diff,
merge), backtest.

Exit codes: 0 ok; 1 a ``file`` or ``stdin`` run accepted no event (nothing was
monitored; also a forced second-signal exit); 2 bad configuration or input (a bad or
unknown key or ``DRIFTD_`` variable, a missing file the config names, a busy metrics
port), with one line naming the key and the file; 3 checkpoint problems, and places
driftd must write that it cannot (checkpoint directory or topic, journal), found at
start; 4 a gate that found drift (``backtest --fail-on-alert``, ``reference diff
--fail-on-drift``). ``check-config`` exits with the code ``run`` would: 2 before 3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from monitor.errors import (
    CheckpointError,
    ConfigError,
    InvalidConfigError,
    ReferenceLostError,
    ReferenceProfileError,
    SourceError,
    StorageUnusableError,
)

if TYPE_CHECKING:
    from monitor.app import Daemon
    from monitor.config import Settings

# Imports are lazy here: `driftd --help` and `driftd check-config` must not pay for
# scipy, Kafka, Prometheus and the engine (1.7 s of imports). The run and check-config
# handlers import what they use when they run, and the other sub-commands' modules are
# imported only when that sub-command is on the command line (see `build_parser`).
# tests/test_cli_startup.py holds the line.

EXIT_OK = 0
EXIT_NOTHING_ACCEPTED = 1
EXIT_CONFIG = 2
EXIT_CHECKPOINT = 3
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a tool whose output pipe closed."""
CONFIG_DOCS = "docs/configuration.md"
SETTINGS_HELP = (
    "Settings come from the YAML file given with -c, overridden by DRIFTD_<SECTION>__<KEY> "
    "environment variables (DRIFTD_WINDOWS__SIZE_EVENTS=10000); one of the two is required. "
    f"Every key and its default: {CONFIG_DOCS}; `driftd check-config -c FILE` prints the "
    "effective settings. Exit codes: 0 ok, 1 a file or stdin run accepted no event, "
    "2 bad config or input (the message names the key and file), 3 checkpoint problems "
    "or an unwritable checkpoint directory, checkpoint topic or journal, 4 a CI gate "
    "(backtest --fail-on-alert, reference diff --fail-on-drift) found drift."
)


LABELS_NOT_READ = (
    "driftd: labels.enabled is set, but a file or stdin run reads no labels (they come from "
    "kafka.labels_topic): replay them with `driftd backtest --events FILE --labels FILE`"
)


def _config_failure(exc: InvalidConfigError) -> int:
    for error in exc.errors:
        print(f"driftd: config error: {error.key}: {error.message}", file=sys.stderr)
    return EXIT_CONFIG


def _settings(path: Path | None) -> Settings:
    from monitor.config import env_settings_given, load_settings

    if path is None and not env_settings_given():
        # Built-in defaults alone watch a Kafka topic nobody named: surely a mistake.
        raise InvalidConfigError(
            [
                ConfigError(
                    "--config",
                    "no configuration: pass -c driftd.yaml, or set DRIFTD_* environment "
                    f"variables (every key and its default: {CONFIG_DOCS})",
                )
            ]
        )
    return load_settings(path)


def _file_errors(settings: Settings, *, tls: bool, load_profile: bool) -> list[ConfigError]:
    """The files the config names that are missing or unusable, each by its key.

    ``load_profile`` also loads ``reference.path`` as a profile (check-config; ``run``
    loads it anyway); the readability checks are the config's own (:func:`file_errors`).
    """
    from monitor.config import file_errors

    errors = file_errors(settings, tls=tls, reference=not load_profile)
    if load_profile and settings.reference.path is not None:
        from monitor.engine.reference.profile_file import load_reference

        try:
            load_reference(settings.reference.path)
        except ReferenceProfileError as exc:
            errors.insert(0, ConfigError("reference.path", str(exc)))
    return errors


def _check_config(args: argparse.Namespace) -> int:
    from monitor.config import redacted
    from monitor.state.storage_checks import local_storage_errors

    try:
        settings = _settings(args.config)
    except InvalidConfigError as exc:
        return _config_failure(exc)
    errors = _file_errors(settings, tls=True, load_profile=True)
    unwritable = local_storage_errors(settings, create=False)
    for problem in unwritable:
        print(f"driftd: storage error: {problem}", file=sys.stderr)
    if errors:
        return _config_failure(InvalidConfigError(errors))
    if unwritable:
        return EXIT_CHECKPOINT
    print(json.dumps(redacted(settings), indent=2, sort_keys=True))
    print("driftd: config ok", file=sys.stderr)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    import structlog

    from monitor.emit.terminal import TerminalView
    from monitor.logsetup import configure_logging
    from monitor.state.storage_checks import local_storage_errors
    from monitor.wiring import build_daemon

    try:
        settings = _settings(args.config)
    except InvalidConfigError as exc:
        return _config_failure(exc)
    # Fail on a missing input before anything starts (Kafka TLS files only matter to Kafka).
    errors = _file_errors(settings, tls=settings.source.type == "kafka", load_profile=False)
    if errors:
        return _config_failure(InvalidConfigError(errors))
    # Running blind (ready, but never committing or journaling) is worse than not running.
    unwritable = local_storage_errors(settings, create=True)
    if unwritable:
        for problem in unwritable:
            print(f"driftd: refusing to start: {problem}", file=sys.stderr)
        return EXIT_CHECKPOINT
    configure_logging(settings.logging.level, settings.logging.format)
    if settings.labels.enabled and settings.source.type in ("file", "stdin"):
        structlog.get_logger().warning("labels_not_read", source=settings.source.type)
    try:
        view = TerminalView() if args.view else None
        daemon = build_daemon(
            settings,
            start_fresh=args.start_fresh,
            relearn_reference=args.relearn_reference,
            on_batch=view,
        )
    except StorageUnusableError as exc:
        print(f"driftd: refusing to start: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    except InvalidConfigError as exc:
        return _config_failure(exc)
    except ReferenceProfileError as exc:
        print(f"driftd: config error: reference.path: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SourceError as exc:  # the file vanished since the check above
        key = "source.path" if settings.source.type == "file" else "source"
        print(f"driftd: config error: {key}: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except CheckpointError as exc:
        print(f"driftd: checkpoint error: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    try:
        code: int = daemon.run()
    except ConfigError as exc:  # the metrics port is taken, or its host unknown
        if not daemon.started:  # startup failed half-way: stop what it started
            daemon.shutdown()
        print(f"driftd: config error: {exc.key}: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except SourceError as exc:  # e.g. the Kafka client refused its settings
        print(f"driftd: source error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ReferenceLostError as exc:
        print(f"driftd: refusing to start: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    except CheckpointError as exc:
        print(
            f"driftd: refusing to start: {exc}\n"
            "driftd: fix the checkpoint, or run with --start-fresh to set it aside and start "
            "with empty state",
            file=sys.stderr,
        )
        return EXIT_CHECKPOINT
    if view is not None:
        print("driftd: " + "\n".join(view.summary()), flush=True)
    if settings.source.type in ("file", "stdin"):
        return _replay_summary(daemon, code)
    return code


def _replay_summary(daemon: Daemon, code: int) -> int:
    """Print what a file or stdin run did, to stderr; exit 1 if it accepted no event."""
    stats, pipeline = daemon.stats, daemon.pipeline
    reasons = sorted(pipeline.rejections_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    rejected = f"{stats.rejected:,} rejected"
    if reasons:
        rejected += " (" + ", ".join(f"{reason}: {n:,}" for reason, n in reasons) + ")"
    firing = sum(t.endswith(":firing") for t in stats.transitions)
    resolved = sum(t.endswith(":resolved") for t in stats.transitions)
    lines = [
        f"driftd: {daemon.source.name}: {stats.records:,} events read, "
        f"{stats.accepted:,} accepted, {rejected}; {stats.windows:,} windows closed; "
        f"{len(stats.transitions):,} alert transitions ({firing:,} firing, {resolved:,} resolved)"
    ]
    written_to = daemon.source.dead_letters_written_to()
    if written_to is not None:
        lines.append(f"driftd: rejected lines written to {written_to}")
    if reasons and {reason for reason, _ in reasons} == {"timestamp_out_of_range"}:
        schema = daemon.settings.schema_

        def limit(value: float | None) -> str:
            return "none" if value is None else f"{value:,.0f}"

        lines.append(
            "driftd: every rejected event was too far from the wall clock "
            f"(schema.max_past_seconds {limit(schema.max_past_seconds)}, "
            f"schema.max_future_seconds {limit(schema.max_future_seconds)}); "
            "a replay of older data needs a larger schema.max_past_seconds, or null"
        )
    if stats.accepted and not pipeline.ready and daemon.settings.reference.warmup_events:
        lines.append(
            "driftd: the warm-up reference was never complete "
            f"(reference.warmup_events {daemon.settings.reference.warmup_events:,}): "
            "no window was compared"
        )
    if daemon.settings.labels.enabled:
        lines.append(LABELS_NOT_READ)
    if not stats.accepted:
        lines.append("driftd: no event was accepted, so nothing was monitored (exit 1)")
    print("\n".join(lines), file=sys.stderr)
    return code if stats.accepted else EXIT_NOTHING_ACCEPTED


class LazyCommand(NamedTuple):
    """A sub-command whose parser and handler live in a module of their own."""

    module: str
    add_parser: str
    """The module's function that adds the sub-command's parser (with its handler)."""
    help: str
    """Its line in ``driftd --help``: the same as the module's own (a test checks)."""


LAZY_COMMANDS = {
    "demo": LazyCommand(
        "monitor.cli_demo", "add_demo_parser", "run the full pipeline on the built-in demo stream"
    ),
    "status": LazyCommand(
        "monitor.cli_status",
        "add_status_parser",
        "print what a running daemon thinks now (its /api/v1/state)",
    ),
    "reference": LazyCommand(
        "monitor.cli_reference",
        "add_reference_parser",
        "build, show, compare and merge reference profiles",
    ),
    "backtest": LazyCommand(
        "monitor.cli_backtest",
        "add_backtest_parser",
        "replay recorded events (and labels) through the engine: table, summary, report",
    ),
}
"""Sub-commands whose modules are imported only when they are on the command line:
they pull the engine, pyarrow or Prometheus in at import, for their help texts or their
handlers; ``driftd --help`` needs only their one-line help."""


def requested_command(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names, if any (``driftd`` takes no option before it but -h)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job.

    Of the :data:`LAZY_COMMANDS`, only ``command``'s parser is built in full (its module
    imported); the others are listed with their help line, enough for ``driftd --help``
    and for an error naming the choices.
    """
    parser = argparse.ArgumentParser(
        prog="driftd", description="Streaming drift monitor.", epilog=SETTINGS_HELP
    )
    sub = parser.add_subparsers(dest="command", required=True)

    config_help = "YAML config file (required unless DRIFTD_* variables are set)"
    run = sub.add_parser(
        "run",
        help="run the daemon with a config file",
        description="Consume events, evaluate drift, export metrics and alerts. A file or "
        "stdin run prints a summary to stderr at the end.",
        epilog=SETTINGS_HELP,
    )
    run.add_argument("-c", "--config", type=Path, default=None, help=config_help)
    run.add_argument(
        "--start-fresh",
        action="store_true",
        help="set an unusable checkpoint aside (renamed, never deleted) and start empty",
    )
    run.add_argument(
        "--view",
        action="store_true",
        help="print a line per closed window, per ADWIN detection and per alert transition "
        "on stdout, and a summary of the alerts that fired at the end (on a terminal or not)",
    )
    run.add_argument(
        "--relearn-reference",
        action="store_true",
        help="learn a new warm-up reference although the consumer group consumed before "
        "and the saved one is gone (otherwise the start is refused, exit 3)",
    )
    run.set_defaults(handler=_run)

    check = sub.add_parser(
        "check-config",
        help="validate a config file and print it, redacted",
        description="Validate the settings and every file they name (reference profile, "
        "source file, Kafka TLS files, secret files), then print them with secrets masked.",
        epilog=SETTINGS_HELP,
    )
    check.add_argument("-c", "--config", type=Path, default=None, help=config_help)
    check.set_defaults(handler=_check_config)

    for name, lazy in LAZY_COMMANDS.items():
        if name == command:
            add_parser: Callable[[Any], object] = getattr(
                importlib.import_module(lazy.module), lazy.add_parser
            )
            add_parser(sub)
        else:
            sub.add_parser(name, help=lazy.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``driftd`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(requested_command(argv)).parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at exit
    except BrokenPipeError:
        # The reader of stdout went away (`driftd reference show ref.json | head`): stop
        # quietly, as a shell tool killed by SIGPIPE would, not with a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        code = EXIT_BROKEN_PIPE
    if "structlog" in sys.modules:  # a handler configured logging: leave the defaults
        import structlog

        structlog.reset_defaults()
    return code


if __name__ == "__main__":
    sys.exit(main())
