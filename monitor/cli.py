"""The ``driftd`` command line: run, demo, check-config, reference build."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from monitor.app import Daemon, make_results
from monitor.checkpointing import StateCheckpointer
from monitor.config import Settings, load_settings, redacted
from monitor.errors import CheckpointError, InvalidConfigError, ReferenceProfileError
from monitor.journal import Journal
from monitor.logsetup import configure_logging
from monitor.pipeline import Pipeline
from monitor.reference_build import add_reference_parser, load_reference
from monitor.sources.base import Source
from monitor.sources.demo_source import DEMO_LABELS_TOPIC, DemoSource
from monitor.sources.file_source import FileSource
from monitor.sources.kafka_source import KafkaSource
from monitor.terminal import TerminalView

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_CHECKPOINT = 3


def _config_failure(exc: InvalidConfigError) -> int:
    for error in exc.errors:
        print(f"driftd: config error: {error.key}: {error.message}", file=sys.stderr)
    return EXIT_CONFIG


def _settings(path: Path | None) -> Settings:
    return load_settings(path)


def _check_config(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args.config)
    except InvalidConfigError as exc:
        return _config_failure(exc)
    print(json.dumps(redacted(settings), indent=2, sort_keys=True))
    print("driftd: config ok", file=sys.stderr)
    return EXIT_OK


def _build_daemon(
    settings: Settings,
    source_override: str | None = None,
    start_fresh: bool = False,
    **demo: int,
) -> Daemon:
    reference = None
    if settings.reference.path is not None:
        reference = load_reference(settings.reference.path)
    pipeline = Pipeline(settings, reference, make_results(settings))
    kind = source_override or settings.source.type
    source: Source
    if kind == "demo":
        source = DemoSource(
            settings.source.batch_size,
            total_events=demo.get("events"),
            rate=demo.get("rate") or None,
            labels=settings.labels.enabled,
        )
    elif kind in ("file", "stdin"):
        source = FileSource(
            settings.source.path if kind == "file" else None, settings.source.batch_size
        )
    else:
        daemon_ref: list[Daemon] = []
        source = KafkaSource(
            settings.kafka,
            # Late-bound: the daemon that owns this source is built right after it.
            on_revoke=lambda parts: daemon_ref[0].on_partitions_revoked(parts),  # noqa: PLW0108
            on_assign=lambda parts: daemon_ref[0].on_partitions_assigned(parts),  # noqa: PLW0108
        )
        registry = CollectorRegistry()
        checkpointer = StateCheckpointer.from_settings(settings, registry)
        if checkpointer is not None and start_fresh:
            checkpointer.start_fresh()
        daemon_ref.append(
            Daemon(settings, source, pipeline, registry=registry, checkpointer=checkpointer)
        )
        return _with_journal(settings, daemon_ref[0])
    # File and demo sources cannot seek, so a restored state would count events twice.
    return _with_journal(settings, Daemon(settings, source, pipeline))


def _with_journal(settings: Settings, daemon: Daemon) -> Daemon:
    if settings.journal.path is not None:
        daemon.on_batch = Journal(settings.journal.path, settings.model)
    return daemon


def _run(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args.config)
    except InvalidConfigError as exc:
        return _config_failure(exc)
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        daemon = _build_daemon(settings, start_fresh=args.start_fresh)
    except InvalidConfigError as exc:
        return _config_failure(exc)
    except ReferenceProfileError as exc:
        print(f"driftd: reference error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CheckpointError as exc:
        print(f"driftd: checkpoint error: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    try:
        code: int = daemon.run()
    except CheckpointError as exc:
        print(
            f"driftd: refusing to start: {exc}\n"
            "driftd: fix the checkpoint, or run with --start-fresh to set it aside and start "
            "with empty state",
            file=sys.stderr,
        )
        return EXIT_CHECKPOINT
    return code


def _demo(args: argparse.Namespace) -> int:
    overrides = {
        "model": "credit-risk",
        "source": {"type": "demo", "batch_size": 2_000},
        "kafka": {"labels_topic": DEMO_LABELS_TOPIC},
        "labels": {
            "enabled": True,
            "window_pairs": 1_000,
            "group_by": "features.employment_type",
        },
        # Employment groups differ in default rates by design; page only on big gaps.
        "detectors": {"fairness": {"threshold": 0.6, "clear": 0.4}},
        "schema": {"segment_by": ["features.region"], "categorical": []},
        "reference": {"warmup_events": 30_000},
        "windows": {"size_events": 5_000, "min_samples": 500},
        "metrics": {"host": "127.0.0.1", "port": args.port},
        "logging": {"level": "error", "format": "console"},
    }
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except Exception as exc:  # the embedded defaults are ours; fail loudly if broken
        print(f"driftd: demo settings invalid: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging("error", "console")
    print(
        "driftd demo: simulated credit-risk model, segments north/south/west. 'west' gets a "
        "feature shift at event 60,000 and a prediction shift at 120,000; from 90,000 the "
        "labels of 'south' follow a new concept (features unchanged).\n"
        f"metrics: http://127.0.0.1:{args.port}/metrics",
        flush=True,
    )
    daemon = _build_daemon(settings, "demo", events=args.events, rate=args.rate)
    daemon.on_batch = TerminalView()
    code: int = daemon.run()
    print(
        f"driftd demo: {daemon.stats.accepted} events, {daemon.stats.windows} windows, "
        f"{len(daemon.stats.transitions)} alert transitions",
        flush=True,
    )
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="driftd", description="Streaming drift monitor.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon with a config file")
    run.add_argument("-c", "--config", type=Path, default=None, help="YAML config file")
    run.add_argument(
        "--start-fresh",
        action="store_true",
        help="set an unusable checkpoint aside (renamed, never deleted) and start empty",
    )
    run.set_defaults(handler=_run)

    check = sub.add_parser("check-config", help="validate a config file and print it, redacted")
    check.add_argument("-c", "--config", type=Path, default=None, help="YAML config file")
    check.set_defaults(handler=_check_config)

    demo = sub.add_parser("demo", help="run the full pipeline on the built-in demo stream")
    demo.add_argument("--events", type=int, default=180_000, help="events to stream")
    demo.add_argument("--rate", type=int, default=30_000, help="events per second (0: no limit)")
    demo.add_argument("--port", type=int, default=9108, help="metrics port (0: any free port)")
    demo.set_defaults(handler=_demo)

    add_reference_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``driftd`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    structlog.reset_defaults()
    return code


if __name__ == "__main__":
    sys.exit(main())
