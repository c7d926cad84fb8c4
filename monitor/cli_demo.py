"""``driftd demo``: the whole pipeline on the built-in credit-risk stream, no Kafka.

It prints what the stream injects, where its endpoints are (the port actually bound,
also with ``--port 0``), then the terminal view (``monitor.emit.terminal``): feature
windows, ADWIN detections and alert transitions, and a closing summary that explains
every kind of alert that fired by what the stream injected. With ``--serve`` the
endpoints stay up after the stream ends, until SIGINT or SIGTERM (the daemon's own
signal handling). Exit codes as ``run``: 0 ok, 2 bad settings or a busy port, 3 an
unusable journal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor.config import Settings, unknown_env_settings
from monitor.emit.terminal import TerminalView
from monitor.errors import ConfigError, InvalidConfigError, StorageUnusableError
from monitor.ingest.demo_source import DEMO_LABELS_TOPIC
from monitor.ingest.demo_stream import CONCEPT_SEGMENT, DRIFTING_SEGMENT, DemoStream
from monitor.logsetup import configure_logging
from monitor.wiring import build_daemon

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_CHECKPOINT = 3

_STREAM = DemoStream()
FEATURE_SHIFT = _STREAM.feature_shift_at
PREDICTION_SHIFT = _STREAM.prediction_shift_at
CONCEPT_SHIFT = _STREAM.concept_shift_at

INTRO = (
    "driftd demo: simulated credit-risk model, segments north/south/west. 'west' gets a "
    f"feature shift at event {FEATURE_SHIFT:,} and a prediction shift at "
    f"{PREDICTION_SHIFT:,}; from {CONCEPT_SHIFT:,} the labels of 'south' follow a new "
    "concept (features unchanged). 'north' stays as it was: it should never page."
)

WHY: dict[tuple[str, str], str] = {
    (DRIFTING_SEGMENT, "feature drift"): (
        f"the stream shifts west's features at event {FEATURE_SHIFT:,} (incomes x0.7, "
        "card utilisation up); the model's scores (prediction) follow them, and move "
        f"further at {PREDICTION_SHIFT:,} (a miscalibrated model rolled out in west)"
    ),
    (DRIFTING_SEGMENT, "concept drift"): (
        f"ADWIN on west's error stream: the shifted features at {FEATURE_SHIFT:,} raise "
        "the default rate, so more loans are misclassified; the miscalibrated scores "
        f"from {PREDICTION_SHIFT:,} add errors again. Each change pages once and "
        "resolves when the error rate is steady at its new level"
    ),
    (DRIFTING_SEGMENT, "label drift"): (
        f"the shifted features at {FEATURE_SHIFT:,} raise west's default rate, so the "
        "distribution of its labels leaves the reference's"
    ),
    (CONCEPT_SEGMENT, "concept drift"): (
        f"from event {CONCEPT_SHIFT:,} south's defaults follow a new concept while its "
        "features and scores stay put: only the joined labels show it, as a rising "
        "error rate that ADWIN detects; it resolves when the rate is steady again"
    ),
    (CONCEPT_SEGMENT, "label drift"): (
        f"the new concept at {CONCEPT_SHIFT:,} also moves south's default rate a little: "
        "a label window crosses the threshold, and the alert resolves when the windows "
        "fall back below the clear level"
    ),
}
"""Why each (segment, kind) of alert fires in the demo; anything else is unexpected."""


def explain(segment: str, kind: str) -> str | None:
    """What the demo injected that makes ``segment`` raise a ``kind`` alert, if anything."""
    return WHY.get((segment, kind))


def add_demo_parser(sub: Any) -> None:
    """Add ``demo`` to the sub-commands of ``driftd``."""
    demo = sub.add_parser(
        "demo",
        help="run the full pipeline on the built-in demo stream",
        description="Run the whole pipeline on a simulated credit-risk model with injected "
        "drift, no Kafka needed, and explain every alert it raises.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--events", type=int, default=180_000, help="events to stream")
    demo.add_argument("--rate", type=int, default=30_000, help="events per second (0: no limit)")
    demo.add_argument("--port", type=int, default=9108, help="HTTP port (0: any free port)")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep serving /metrics and /api/v1/state after the stream ends, "
        "until Ctrl-C or SIGTERM",
    )
    demo.set_defaults(handler=run_demo)


def demo_settings(port: int) -> Settings:
    """The demo's settings: the built-in stream, labels on, windows of 5,000 events."""
    overrides: dict[str, Any] = {
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
        "metrics": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "error", "format": "console"},
    }
    return Settings(**overrides)


def run_demo(args: argparse.Namespace) -> int:
    """``driftd demo``: see the module doc."""
    unknown = unknown_env_settings()  # the demo takes DRIFTD_ overrides too
    if unknown:
        for error in unknown:
            print(f"driftd: config error: {error.key}: {error.message}", file=sys.stderr)
        return EXIT_CONFIG
    if not 0 <= args.port <= 65_535:
        print(f"driftd: config error: --port: {args.port} is not a port", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = demo_settings(args.port)
    except (ValueError, InvalidConfigError) as exc:  # a bad DRIFTD_ override
        print(f"driftd: demo settings invalid: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_CONFIG
    configure_logging("error", "console")
    view = TerminalView()
    try:
        daemon = build_daemon(
            settings,
            source_kind="demo",
            on_batch=view,
            demo_events=args.events,
            demo_rate=args.rate,
        )
    except StorageUnusableError as exc:  # a journal.path from DRIFTD_JOURNAL__PATH
        print(f"driftd: refusing to start: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    server = daemon.server
    assert server is not None  # build_daemon serves by default
    try:
        server.start()  # before the loop, so the port printed is the one bound
    except ConfigError as exc:
        daemon.shutdown()
        print(f"driftd: config error: --port: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    print(INTRO, flush=True)
    print(
        f"metrics: {server.url}/metrics   live state: {server.url}/api/v1/state "
        f"(driftd status --url {server.url})",
        flush=True,
    )
    summarised = False

    def on_end() -> None:
        nonlocal summarised
        summarised = True
        _summary(view)
        if args.serve:
            print(
                f"driftd demo: the stream ended; still serving {server.url}/metrics and "
                f"{server.url}/api/v1/state until Ctrl-C",
                flush=True,
            )

    daemon.on_end = on_end
    daemon.serve_after_end = args.serve
    code: int = daemon.run()
    if not summarised:  # stopped by a signal before the stream ended
        _summary(view)
    return code


def _summary(view: TerminalView) -> None:
    lines = view.summary(explain)
    print("driftd demo: " + "\n".join(lines), flush=True)
