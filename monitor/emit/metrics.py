"""Prometheus metrics and the HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``.

Three parts, all bound to an injected ``CollectorRegistry`` (no global registry):

- :class:`DaemonMetrics`: counters and histograms the pipeline increments as it works.
- :class:`DriftCollector`: a custom collector that reads the latest results, the
  decision book and a few providers at scrape time, so scores cost nothing between
  scrapes and a quiet segment's series stay at their last value (until the segment is
  evicted: its results and decisions are dropped, so its series go).
- :class:`MetricsServer`: a threaded stdlib HTTP server on its own daemon thread.

Label values come only from code constants, the configured columns and the capped
segment table (through ``WindowResults``), never from raw input.

Readiness policy (DESIGN.md: a sidecar's readiness gates its model server's pod):
the daemon is *not ready* only while it is starting (before the first successful
source poll or restore) or shutting down. A broker outage, a slow sink or drift are
reported in metrics (``driftd_seconds_since_last_poll``, ``driftd_consumer_lag``,
``driftd_drift_active``) and never flip readiness; the daemon's ``readiness``
implements exactly that policy. :class:`Heartbeat` is a liveness check for a stuck
consumer loop.
"""

from __future__ import annotations

import gzip
import math
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Final, Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.engine.decision import DecisionBook, DecisionState, Transition
from monitor.engine.results import LatestResults, WindowResults
from monitor.errors import ConfigError
from monitor.ingest.segments import SegmentCounts

BATCH_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""``driftd_batch_processing_seconds`` buckets: 1 ms to 10 s."""

DRIFT_LABELS: Final = ("model", "segment", "feature", "method")

_log = structlog.get_logger()
_P = TypeVar("_P")


def driftd_version() -> str:
    """The installed driftd version, or ``0+unknown`` when running from a source tree."""
    try:
        return metadata.version("driftd")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class BatchSummary(Protocol):
    """What :meth:`DaemonMetrics.observe_batch` reads of a batch (the pipeline's outcome)."""

    @property
    def accepted(self) -> int: ...
    @property
    def rejected(self) -> Sequence[tuple[object, str, str]]: ...
    @property
    def results(self) -> WindowResults | None: ...
    @property
    def transitions(self) -> Sequence[Transition]: ...


class DaemonMetrics:
    """The counters and histograms the daemon updates as it works.

    Reason and outcome labels must be code constants (``DecodeError.reason``, say),
    never text from the input.
    """

    def __init__(self, registry: CollectorRegistry, model: str, version: str | None = None):
        self.model = model
        self.events_consumed = Counter(
            "driftd_events_consumed",
            "Events decoded and fed to the windows.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.events_rejected = Counter(
            "driftd_events_rejected",
            "Events rejected by decode or validation, by reason.",
            ["model", "reason"],
            registry=registry,
        )
        self.events_late = Counter(
            "driftd_events_late",
            "Accepted events that came after the watermark passed their time window.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.windows_closed = Counter(
            "driftd_windows_closed",
            "Segment windows closed and evaluated.",
            ["model", "segment"],
            registry=registry,
        )
        self.segments_overflow = Counter(
            "driftd_segments_overflow",
            "Events whose segment key went to __other__ because the segment table was full.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_unadmitted = Counter(
            "driftd_segments_unadmitted_events",
            "Events counted under __other__ while their segment value waited for admission.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_admitted = Counter(
            "driftd_segments_admitted",
            "Segment values given a segment of their own.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_evicted = Counter(
            "driftd_segments_evicted",
            "Segments evicted after segments.idle_seconds without an event.",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self.segments_tracked = Gauge(
            "driftd_segments_tracked",
            "Segments with a segment of their own now (__other__ excluded).",
            ["model"],
            registry=registry,
        ).labels(model=model)
        self._transition_labels: dict[str, set[tuple[str, str, str]]] = {}
        """(feature, method, to) of each segment's transition series, to remove them."""
        self.batch_processing = Histogram(
            "driftd_batch_processing_seconds",
            "Wall time to process one poll batch, decode to decisions.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.dead_letter = Counter(
            "driftd_dead_letter",
            "Messages written to the dead-letter topic, by reason.",
            ["model", "reason"],
            registry=registry,
        )
        self.commits = Counter(
            "driftd_commit",
            "Offset commits, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.drift_transitions = Counter(
            "driftd_drift_transitions",
            "Alert state transitions, by target state (firing or resolved).",
            ["model", "segment", "feature", "method", "to"],
            registry=registry,
        )
        self.build_info = Info("driftd_build", "driftd build information.", registry=registry)
        self.build_info.info(
            {"version": version or driftd_version(), "python": platform.python_version()}
        )
        self.reference_info = Info(
            "driftd_reference",
            "The reference profile in use (version is its content hash).",
            ["model"],
            registry=registry,
        )

    def consumed(self, n: int) -> None:
        """Count ``n`` events fed to the windows."""
        self.events_consumed.inc(n)

    def rejected(self, reason: str, n: int = 1) -> None:
        """Count ``n`` events rejected for ``reason``."""
        self.events_rejected.labels(model=self.model, reason=reason).inc(n)

    def dead_lettered(self, reason: str, n: int = 1) -> None:
        """Count ``n`` messages written to the dead-letter topic."""
        self.dead_letter.labels(model=self.model, reason=reason).inc(n)

    def record_segments(self, before: SegmentCounts, after: SegmentCounts, tracked: int) -> None:
        """Count what the segment table did between two of its ``counts()``."""
        self.segments_overflow.inc(after.overflow - before.overflow)
        self.segments_unadmitted.inc(after.unadmitted - before.unadmitted)
        self.segments_admitted.inc(after.admitted - before.admitted)
        self.segments_evicted.inc(after.evicted - before.evicted)
        self.segments_tracked.set(tracked)

    def forget_segments(self, segments: Iterable[str]) -> None:
        """Remove the series of evicted ``segments`` (their ids serve other segments)."""
        for segment in segments:
            with suppress(KeyError):  # it never closed a window
                self.windows_closed.remove(self.model, segment)
            for feature, method, to in self._transition_labels.pop(segment, set()):
                self.drift_transitions.remove(self.model, segment, feature, method, to)

    def commit(self, outcome: str) -> None:
        """Count one offset commit with ``outcome`` (``ok``, ``failed``, ``skipped``)."""
        self.commits.labels(outcome=outcome).inc()

    def record_windows(self, results: WindowResults) -> None:
        """Count the windows that closed in ``results``."""
        for segment in results.segments:
            self.windows_closed.labels(model=self.model, segment=segment).inc()

    def record_transitions(self, transitions: Iterable[Transition]) -> None:
        """Count alert transitions."""
        for t in transitions:
            self._transition_labels.setdefault(t.segment, set()).add(
                (t.column, t.method, t.current)
            )
            self.drift_transitions.labels(
                model=t.model, segment=t.segment, feature=t.column, method=t.method, to=t.current
            ).inc()

    def observe_batch(self, outcome: BatchSummary, seconds: float) -> None:
        """Account for one processed poll batch that took ``seconds`` of wall time.

        Counts accepted events, rejections by reason, closed windows and alert
        transitions, and observes the batch histogram. Dead letters are counted by
        whoever writes them (:meth:`dead_lettered`), since writing can be disabled.
        """
        self.consumed(outcome.accepted)
        # ``late`` (events behind the watermark) only exists once the windows ran.
        self.events_late.inc(int(getattr(outcome, "late", 0)))
        reasons: dict[str, int] = {}
        for _, reason, _ in outcome.rejected:
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in sorted(reasons.items()):
            self.rejected(reason, count)
        if outcome.results is not None:
            self.record_windows(outcome.results)
        self.record_transitions(outcome.transitions)
        self.batch_processing.observe(seconds)

    def set_reference(self, version: str) -> None:
        """Publish the reference profile version in use (replaces the previous one)."""
        self.reference_info.labels(model=self.model).info({"version": version})


LagProvider = Callable[[], Mapping[tuple[str, int], int]]
"""Consumer lag in messages, by (topic, partition)."""
PollAgeProvider = Callable[[], float | None]
"""Seconds since the source's last successful poll, or None when unknown."""
ExtraProvider = Callable[[], Iterable[Metric]]
"""More metric families to expose at scrape time (sinks, outbox, checkpoints...)."""


def data_quality_families(
    model: str,
    invalid: Mapping[tuple[str, str], int],
    unexpected: Mapping[str, int],
    names_refused: Mapping[str, int] | None = None,
) -> list[Metric]:
    """``driftd_feature_invalid_total{model,feature,reason}``: values that became missing
    because they could not be read (wrong type, not a number), per feature;
    ``driftd_feature_not_in_reference_total{model,feature}``: sampled events carrying a
    feature the reference lacks (at most 100 names, cut to ``schema.max_name_length``); and
    ``driftd_feature_names_refused_total{model,reason}``: feature names a warm-up refused
    to learn, by cap (``name_too_long``, ``over_max_features``)."""
    bad = CounterMetricFamily(
        "driftd_feature_invalid",
        "Values that became missing because they could not be read, by feature and reason.",
        labels=["model", "feature", "reason"],
    )
    for (feature, reason), count in sorted(dict(invalid).items()):
        bad.add_metric([model, feature, reason], count)
    extra = CounterMetricFamily(
        "driftd_feature_not_in_reference",
        "Sampled events carrying a feature the reference lacks (not monitored).",
        labels=["model", "feature"],
    )
    for feature, count in sorted(dict(unexpected).items()):
        extra.add_metric([model, feature], count)
    refused = CounterMetricFamily(
        "driftd_feature_names_refused",
        "Feature names a warm-up refused to learn, by the cap they exceeded.",
        labels=["model", "reason"],
    )
    for reason, count in sorted(dict(names_refused or {}).items()):
        refused.add_metric([model, reason], count)
    return [bad, extra, refused]


class DriftCollector(Collector):
    """Reads the latest drift results and decisions at scrape time.

    Gauges, labelled ``model, segment, feature, method`` unless said otherwise:

    - ``driftd_drift_score``: the latest score;
    - ``driftd_drift_p_value``: its p-value, only where the method has one;
    - ``driftd_drift_threshold`` / ``driftd_drift_clear_threshold``: the thresholds the
      latest window was judged against (calibrated, or fixed with overrides applied);
    - ``driftd_drift_active``: 1 while firing, else 0 (pending included);
    - ``driftd_drift_breach_streak``: consecutive breaching windows counted so far,
      so ``active == 0 and streak > 0`` means pending (no state label: bounded);
    - ``driftd_window_size{model,segment}``: rows in the latest closed window;
    - ``driftd_window_end_timestamp_seconds{model,segment}``: its end (event time);
    - ``driftd_feature_missing_rate{model,segment,feature}``: missing share, 0..1;
    - ``driftd_feature_unmonitored{model,feature}``: 1 while a reference column is absent
      from some segment's windows (its ``schema`` alert fires) or cannot be monitored;
    - ``driftd_consumer_lag{topic,partition}``: messages past the committed offset;
    - ``driftd_seconds_since_last_poll``: age of the last successful source poll.

    And the counter ``driftd_drift_evaluations_skipped_total{model,segment}``: column
    and method evaluations skipped for fewer than ``min_samples`` samples.

    A provider that raises is logged and its family left out; the scrape goes on.
    """

    def __init__(
        self,
        results: LatestResults,
        decisions: DecisionBook,
        lag: LagProvider | None = None,
        seconds_since_poll: PollAgeProvider | None = None,
        extra: Iterable[ExtraProvider] = (),
        monitored_columns: Callable[[], Iterable[str]] = tuple,
        unmonitorable: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        if results.model != decisions.model:
            raise ValueError(f"results of {results.model!r}, decisions of {decisions.model!r}")
        self.results = results
        self.decisions = decisions
        self.lag = lag
        self.seconds_since_poll = seconds_since_poll
        self.extra = tuple(extra)
        self.monitored_columns = monitored_columns
        """The reference columns being monitored (all get a ``driftd_feature_unmonitored``)."""
        self.unmonitorable = unmonitorable
        """Columns that cannot be monitored at all (a prediction the reference lacks)."""

    def describe(self) -> Iterable[Metric]:
        """The families, without samples, so the registry can reject duplicate names."""
        names = [
            ("driftd_drift_score", DRIFT_LABELS),
            ("driftd_drift_p_value", DRIFT_LABELS),
            ("driftd_drift_threshold", DRIFT_LABELS),
            ("driftd_drift_clear_threshold", DRIFT_LABELS),
            ("driftd_drift_active", DRIFT_LABELS),
            ("driftd_drift_breach_streak", DRIFT_LABELS),
            ("driftd_window_size", ("model", "segment")),
            ("driftd_window_end_timestamp_seconds", ("model", "segment")),
            ("driftd_feature_missing_rate", ("model", "segment", "feature")),
            ("driftd_feature_unmonitored", ("model", "feature")),
        ]
        if self.lag is not None:
            names.append(("driftd_consumer_lag", ("topic", "partition")))
        if self.seconds_since_poll is not None:
            names.append(("driftd_seconds_since_last_poll", ()))
        families: list[Metric] = [GaugeMetricFamily(n, n, labels=ls) for n, ls in names]
        families.append(
            CounterMetricFamily("driftd_drift_evaluations_skipped", "", labels=["model", "segment"])
        )
        return families

    def collect(self) -> Iterable[Metric]:
        """Build every family from a consistent copy of the current data."""
        model = self.results.model
        yield from self._drift(model)
        yield from self._windows(model)
        skipped = CounterMetricFamily(
            "driftd_drift_evaluations_skipped",
            "Column and method evaluations skipped for too few samples in the window.",
            labels=["model", "segment"],
        )
        for segment, count in sorted(self.decisions.skipped_counts().items()):
            skipped.add_metric([model, segment], count)
        yield skipped
        if self.lag is not None:
            yield from self._guard("driftd_consumer_lag", self._lag, self.lag)
        if self.seconds_since_poll is not None:
            yield from self._guard(
                "driftd_seconds_since_last_poll", self._poll_age, self.seconds_since_poll
            )
        for provider in self.extra:
            yield from self._guard("extra", lambda p: list(p()), provider)

    def _drift(self, model: str) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "driftd_drift_score", "Latest drift score of the window.", labels=DRIFT_LABELS
        )
        p_value = GaugeMetricFamily(
            "driftd_drift_p_value", "p-value of the latest score.", labels=DRIFT_LABELS
        )
        threshold = GaugeMetricFamily(
            "driftd_drift_threshold",
            "Score at or above which a window breaches.",
            labels=DRIFT_LABELS,
        )
        clear = GaugeMetricFamily(
            "driftd_drift_clear_threshold",
            "Score below which a firing alert resolves.",
            labels=DRIFT_LABELS,
        )
        active = GaugeMetricFamily(
            "driftd_drift_active", "1 while the drift alert is firing, else 0.", labels=DRIFT_LABELS
        )
        streak = GaugeMetricFamily(
            "driftd_drift_breach_streak",
            "Consecutive breaching windows counted towards (or during) firing.",
            labels=DRIFT_LABELS,
        )
        states = {(s.segment, s.column, s.method): s for s in self.decisions.states()}
        keys = set(states)
        for latest in self.results.scores():
            key = (latest.segment, latest.column, latest.method)
            keys.add(key)
            labels = [model, *key]
            score.add_metric(labels, latest.score)
            if not math.isnan(latest.p_value):
                p_value.add_metric(labels, latest.p_value)
        for key in sorted(keys):
            labels = [model, *key]
            state = states.get(key)
            if state is not None and math.isfinite(state.threshold):
                # What the last window was judged against: calibrated thresholds follow
                # the reference and the window's size, so they are not config constants.
                threshold.add_metric(labels, state.threshold)
                clear.add_metric(labels, state.clear)
            active.add_metric(labels, 1.0 if state is not None and state.state == "firing" else 0)
            streak.add_metric(labels, state.streak if state is not None else 0)
        yield from (score, p_value, threshold, clear, active, streak)
        yield self._unmonitored(model, states.values())

    def _unmonitored(self, model: str, states: Iterable[DecisionState]) -> Metric:
        """1 for each reference column a segment's windows do not carry (``schema`` firing),
        and for the columns the reference itself cannot monitor; 0 for the others."""
        family = GaugeMetricFamily(
            "driftd_feature_unmonitored",
            "1 while a reference column is absent from the events of some segment "
            "(its schema alert fires), or cannot be monitored at all; else 0.",
            labels=["model", "feature"],
        )
        flags: dict[str, bool] = dict.fromkeys(self.monitored_columns(), False)
        for name in self.unmonitorable():
            flags[name] = True
        for state in states:
            if state.method == "schema":
                flags[state.column] = flags.get(state.column, False) or state.state == "firing"
        for name in sorted(flags):
            family.add_metric([model, name], 1.0 if flags[name] else 0.0)
        return family

    def _windows(self, model: str) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "driftd_window_size",
            "Rows in the segment's latest closed window.",
            labels=["model", "segment"],
        )
        end = GaugeMetricFamily(
            "driftd_window_end_timestamp_seconds",
            "Event-time end of the segment's latest closed window (Unix seconds).",
            labels=["model", "segment"],
        )
        missing = GaugeMetricFamily(
            "driftd_feature_missing_rate",
            "Share (0..1) of missing, null, NaN or inf values in the latest window.",
            labels=["model", "segment", "feature"],
        )
        for w in sorted(self.results.windows(), key=lambda w: w.segment):
            size.add_metric([model, w.segment], w.rows)
            end.add_metric([model, w.segment], w.window_end_ts)
            for feature, rate in w.missing_rate.items():
                if not math.isnan(rate):
                    missing.add_metric([model, w.segment, feature], rate)
        yield from (size, end, missing)

    @staticmethod
    def _lag(provider: LagProvider) -> list[Metric]:
        lag = GaugeMetricFamily(
            "driftd_consumer_lag",
            "Messages between the group's committed offset and the log end offset.",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(provider().items()):
            lag.add_metric([topic, str(partition)], value)
        return [lag]

    @staticmethod
    def _poll_age(provider: PollAgeProvider) -> list[Metric]:
        age = provider()
        if age is None:
            return []
        return [
            GaugeMetricFamily(
                "driftd_seconds_since_last_poll",
                "Seconds since the last successful source poll (a failed poll does not count).",
                value=age,
            )
        ]

    @staticmethod
    def _guard(name: str, build: Callable[[_P], list[Metric]], provider: _P) -> list[Metric]:
        try:
            return build(provider)
        except Exception as exc:
            _log.warning("metrics_provider_failed", family=name, error=repr(exc))
            return []


class Heartbeat:
    """Liveness of a loop: alive while ``beat()`` was called within ``max_age`` seconds.

    Before the first beat the loop counts as alive (startup is readiness's business).
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be > 0, got {max_age}")
        self.max_age = max_age
        self._clock = clock
        self._last: float | None = None

    def beat(self) -> None:
        """Record that the loop made progress (call after each poll returns)."""
        self._last = self._clock()

    def age(self) -> float | None:
        """Seconds since the last beat, or None before the first."""
        last = self._last
        return None if last is None else self._clock() - last

    def alive(self) -> bool:
        """False once the loop has not beaten for longer than ``max_age``."""
        age = self.age()
        return age is None or age <= self.max_age


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread.

    - ``/metrics``: the registry in the format the ``Accept`` header asks for
      (Prometheus text or OpenMetrics), gzipped if the client accepts it.
    - ``/healthz``: 200 ``ok`` while ``liveness()`` is true, else 503.
    - ``/readyz``: 200 with the reason while ``readiness()`` says ready, else 503.
    - anything else: 404. Only GET and HEAD are served.

    ``port=0`` binds a free port; :attr:`port` is the bound one after ``start()``.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        liveness: Callable[[], bool],
        readiness: Callable[[], tuple[bool, str]],
        request_timeout: float = 10.0,
    ) -> None:
        self.registry = registry
        self.host = host
        self._port = port
        self.liveness = liveness
        self.readiness = readiness
        self.request_timeout = request_timeout
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve on a daemon thread; ``ConfigError`` if the address is unusable."""
        if self._server is not None:
            return
        handler = _handler_class(self)
        try:
            server = _Server((self.host, self._port), handler)
        except (OSError, OverflowError) as exc:  # busy port, unknown host, no permission
            why = getattr(exc, "strerror", None) or str(exc)
            host = f"[{self.host}]" if ":" in self.host else self.host
            where = f"{host}:{self._port}"
            raise ConfigError("metrics.port", f"cannot listen on {where}: {why}") from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="driftd-metrics"
        )
        self._thread.daemon = True
        self._thread.start()
        _log.info("metrics_server_started", host=self.host, port=self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = self._thread = None
        _log.info("metrics_server_stopped")

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler_class(owner: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = owner.request_timeout
        server_version = "driftd"
        sys_version = ""

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError as exc:
                # A scraper that hangs up (a timeout, a restart) is routine, not a
                # server fault: socketserver would print a traceback to stderr.
                _log.debug(
                    "metrics_client_disconnected", client=self.client_address[0], error=repr(exc)
                )

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._metrics(body)
            elif path == "/healthz":
                self._probe(owner.liveness, body)
            elif path == "/readyz":
                self._probe(owner.readiness, body)
            else:
                self._reply(HTTPStatus.NOT_FOUND, b"not found\n", body=body)

        def _metrics(self, body: bool) -> None:
            try:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                output = encoder(owner.registry)
            except Exception as exc:
                _log.error("metrics_scrape_failed", error=repr(exc))
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, b"scrape failed\n", body=body)
                return
            encoding = None
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                output, encoding = gzip.compress(output), "gzip"
            self._reply(HTTPStatus.OK, output, content_type, encoding, body)

        def _probe(self, check: Callable[[], bool | tuple[bool, str]], body: bool) -> None:
            try:
                result = check()
            except Exception as exc:
                _log.error("probe_failed", path=self.path, error=repr(exc))
                result = (False, "check failed")
            ok, reason = result if isinstance(result, tuple) else (result, "")
            text = (reason or ("ok" if ok else "not live")) + "\n"
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._reply(status, text.encode(), body=body)

        def _reply(
            self,
            status: HTTPStatus,
            payload: bytes,
            content_type: str = "text/plain; charset=utf-8",
            encoding: str | None = None,
            body: bool = True,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            if encoding is not None:
                self.send_header("Content-Encoding", encoding)
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            _log.debug("metrics_http_request", client=self.client_address[0], line=format % args)

    return Handler
