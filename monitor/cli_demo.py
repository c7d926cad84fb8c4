"""``driftd demo``: the whole pipeline on the built-in credit-risk stream, no Kafka.

Its reference is built as ``driftd reference build`` builds one (``build_reference``),
from a labelled, stationary sample of the same model (another seed, nothing injected):
so it carries the segment mix, the score calibration (estimated performance, label
noise) and the PCA of multivariate drift, which a warm-up reference cannot. The sample
and the profile go to a private temporary directory; the sample is deleted once read,
the profile when driftd exits (until then the demo's settings name it).

It prints what the stream injects, where its endpoints are (the port actually bound,
also with ``--port 0``), then the terminal view (``monitor.emit.terminal``): feature
windows, ADWIN detections and alert transitions, and a closing summary that explains
every kind of alert that fired by what the stream injected. With ``--serve`` the
endpoints stay up after the stream ends, until SIGINT or SIGTERM (the daemon's own
signal handling). Exit codes as ``run``: 0 ok, 2 bad settings or a busy port, 3 an
unusable journal or temporary directory.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from monitor.config import Settings, unknown_env_settings
from monitor.emit.terminal import TerminalView
from monitor.engine.reference.build import build_reference
from monitor.errors import (
    ConfigError,
    InvalidConfigError,
    ReferenceProfileError,
    StorageUnusableError,
)
from monitor.ingest.demo_source import DEMO_LABELS_TOPIC
from monitor.ingest.demo_stream import (
    CONCEPT_SEGMENT,
    DRIFTING_SEGMENT,
    EPISODE_SEGMENT,
    SHOWCASE,
    TIED_PAIR,
    DemoStream,
)
from monitor.logsetup import configure_logging
from monitor.wiring import build_daemon

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_CHECKPOINT = 3

_STREAM = DemoStream(**SHOWCASE)
FEATURE_SHIFT = _STREAM.feature_shift_at
PREDICTION_SHIFT = _STREAM.prediction_shift_at
CONCEPT_SHIFT = _STREAM.concept_shift_at
CORRELATION_FLIP = _STREAM.correlation_flip_at
LABEL_NOISE = (_STREAM.label_noise_at, _STREAM.label_noise_end)
REFERENCE_EVENTS = 40_000
"""Events of the stationary sample the demo's reference is built from."""
REFERENCE_SEED = 8
"""The sample's seed: the stream's model and features, not the stream's draws."""

_AGE, _TENURE = TIED_PAIR
INTRO = (
    "driftd demo: simulated credit-risk model, segments north/south/west, its reference "
    f"built from {REFERENCE_EVENTS:,} labelled events of the same model. 'west' gets a "
    f"feature shift at event {FEATURE_SHIFT:,} and a prediction shift at "
    f"{PREDICTION_SHIFT:,}; from {CONCEPT_SHIFT:,} the labels of 'south' follow a new "
    f"concept (features unchanged). 'north' changes only where no single feature, score "
    f"or default rate shows it: from {CORRELATION_FLIP:,} {_AGE} and {_TENURE} move "
    f"together the other way round (each keeps its own distribution), and from "
    f"{LABEL_NOISE[0]:,} to {LABEL_NOISE[1]:,} some of its labels are wrong (defaults "
    "recorded against loans the model is sure are safe)."
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
    (DRIFTING_SEGMENT, "estimated performance"): (
        f"west's shifted features at {FEATURE_SHIFT:,} push its scores towards the decision "
        "threshold, where the reference's calibration expects more mistakes: the accuracy "
        "estimated from the scores alone drops before any label arrives; the miscalibrated "
        f"scores from {PREDICTION_SHIFT:,} push further"
    ),
    (DRIFTING_SEGMENT, "label noise"): (
        f"west's scores move with its shifted features at {FEATURE_SHIFT:,} and again "
        f"with the miscalibrated model at {PREDICTION_SHIFT:,}: more of its loans sit where "
        "the model is confident, and more labels dispute a confident model (the share "
        "follows where the scores sit as well as the labels)"
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
    (CONCEPT_SEGMENT, "label noise"): (
        f"under the new concept at {CONCEPT_SHIFT:,} the model is confidently wrong about "
        "more of south's loans: its labels look noisy to confident learning, which cannot "
        "tell a wrong label from a model that no longer fits (ADWIN pages the same change)"
    ),
    (EPISODE_SEGMENT, "multivariate drift"): (
        f"from event {CORRELATION_FLIP:,} north's {_AGE} and {_TENURE} move together the "
        "other way round, each with exactly its old distribution: the reconstruction "
        "error of the reference's PCA sees it, no univariate test can"
    ),
    (EPISODE_SEGMENT, "label noise"): (
        f"from event {LABEL_NOISE[0]:,} to {LABEL_NOISE[1]:,} some of north's defaults are "
        "recorded against the wrong loans: taken from loans the model was unsure about, "
        "put on loans it is sure are safe. North's default and error rates stay exactly "
        "where they were (no label drift, no concept drift); only the share of labels the "
        "model confidently disputes rises"
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


def demo_settings(port: int, reference: Path) -> Settings:
    """The demo's settings: the built-in stream, labels on, windows of 5,000 events, the
    reference profile at ``reference`` (see :func:`build_demo_reference`)."""
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
        "reference": {"path": reference},
        "windows": {"size_events": 5_000, "min_samples": 500},
        "metrics": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "error", "format": "console"},
    }
    return Settings(**overrides)


def build_demo_reference(
    settings: Settings,
    directory: Path,
    *,
    events: int = REFERENCE_EVENTS,
    seed: int = REFERENCE_SEED,
    stream_options: Mapping[str, Any] = SHOWCASE,
) -> list[str]:
    """Build the demo's reference at ``settings.reference.path`` from ``events`` labelled
    events of a stationary ``DemoStream`` (``seed``; of ``stream_options`` only
    ``pair_correlation`` applies, nothing is injected), as ``driftd reference build``
    would from a Parquet file of them; returns its warnings (none expected).

    The sample is written to ``directory`` and deleted once read. Raises
    ``ReferenceProfileError`` as ``build_reference`` does, ``ValueError`` when the
    settings name no reference file.
    """
    if settings.reference.path is None:
        raise ValueError("settings.reference.path must name the profile to build")
    schema = settings.schema_
    never = 2**62
    stream = DemoStream(
        seed=seed,
        feature_shift_at=never,
        prediction_shift_at=never,
        concept_shift_at=never,
        pair_correlation=float(stream_options.get("pair_correlation", 0.0)),
    )
    batch = stream.next_batch(events)
    # A flat table, as training data comes: the region column is the segment path.
    columns: dict[str, Any] = {name: pa.array(v) for name, v in batch.numeric.items()}
    columns.update({name: pa.array(v.tolist()) for name, v in batch.categorical.items()})
    columns[schema.prediction] = pa.array(batch.prediction)
    columns[schema.label] = pa.array(batch.label)
    data = directory / "training.parquet"
    pq.write_table(pa.table(columns), data)
    warnings: list[str] = []
    try:
        build_reference(
            data,
            settings.reference.path,
            schema=schema,
            # A 0/1 label is a class, as the daemon's own label warm-up treats it.
            categorical=[schema.label],
            warn=warnings.append,
            multivariate=settings.detectors.multivariate_drift,
            embedding=settings.detectors.embedding_drift,
            decision_threshold=settings.labels.decision_threshold,
        )
    finally:
        data.unlink()
    return warnings


def _private_directory() -> Path:
    """A temporary directory for the demo's reference, removed when driftd exits."""
    directory = Path(tempfile.mkdtemp(prefix="driftd-demo-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


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
        directory = _private_directory()
    except OSError as exc:
        print(f"driftd: refusing to start: no temporary directory: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    reference = directory / "reference.json"
    try:
        settings = demo_settings(args.port, reference)
    except (ValueError, InvalidConfigError) as exc:  # a bad DRIFTD_ override
        print(f"driftd: demo settings invalid: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_CONFIG
    if settings.reference.path != reference:  # never build over a file the user named
        print(
            "driftd: config error: reference.path: the demo builds its own reference; "
            "unset DRIFTD_REFERENCE__PATH",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    configure_logging("error", "console")
    try:
        warnings = build_demo_reference(settings, directory)
    except ReferenceProfileError as exc:  # a DRIFTD_ override the build cannot follow
        print(f"driftd: demo reference: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:  # the training sample could not be written
        print(f"driftd: refusing to start: {directory}: {exc}", file=sys.stderr)
        return EXIT_CHECKPOINT
    for warning in warnings:
        print(f"driftd demo: reference: warning: {warning}", file=sys.stderr)
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
