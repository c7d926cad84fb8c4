"""Daemon metrics, the scrape-time drift collector, and the /metrics, /healthz, /readyz server."""

from __future__ import annotations

import gzip
import http.client
import platform
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from monitor.config import DetectorsConfig, MethodConfig
from monitor.emit.drift_collector import Detail, DriftCollector
from monitor.emit.http import Heartbeat, MetricsServer
from monitor.emit.metrics import DaemonMetrics
from monitor.engine.decision import DecisionBook, Transition
from monitor.engine.results import LatestResults, WindowResults
from monitor.errors import ConfigError
from monitor.ingest.segments import SegmentCounts

NAN = float("nan")


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log with structlog's defaults, whatever an earlier test configured (a closed stream)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test."""
    return CollectorRegistry()


def results(
    psi: list[float],
    ks: list[float],
    ks_p: list[float],
    *,
    segment: str = "eu",
    ts: float = 100.0,
) -> WindowResults:
    """One window of segment ``segment`` over columns amount (numeric) and country (categorical)."""
    return WindowResults(
        model="fraud",
        segments=(segment,),
        columns=("amount", "country"),
        window_end_ts=np.array([ts]),
        rows=np.array([1_200]),
        n=np.array([[1_150, 1_200]]),
        missing_rate=np.array([[50 / 1_200, 0.0]]),
        scores={"psi": np.array([psi]), "ks": np.array([ks])},
        p_values={"psi": np.full((1, 2), NAN), "ks": np.array([ks_p])},
    )


def drift_setup(
    registry: CollectorRegistry,
    lag: Callable[[], dict[tuple[str, int], int]] | None = None,
    poll_age: Callable[[], float | None] | None = None,
    extra: tuple[Callable[[], list[Metric]], ...] = (),
    detail: Detail = "full",
) -> tuple[LatestResults, DecisionBook]:
    """Latest results and a decision book of model fraud, collected on ``registry``."""
    latest = LatestResults("fraud")
    detectors = DetectorsConfig(
        consecutive=2, overrides={"country": {"psi": MethodConfig(threshold=0.5, clear=0.3)}}
    )
    decisions = DecisionBook("fraud", detectors, min_samples=500)
    registry.register(DriftCollector(latest, decisions, lag, poll_age, extra, detail=detail))
    return latest, decisions


def feed(latest: LatestResults, decisions: DecisionBook, r: WindowResults) -> None:
    """What the pipeline does with each evaluation."""
    latest.record(r)
    decisions.observe(r)


def test_daemon_counters_and_histogram(registry: CollectorRegistry) -> None:
    """Counters count under their _total names with bounded labels; the histogram observes."""
    m = DaemonMetrics(registry, "fraud", version="1.2.3")
    assert registry.get_sample_value("driftd_events_consumed_total", {"model": "fraud"}) == 0
    m.consumed(5_000)
    m.rejected("invalid_json")
    m.rejected("invalid_json", 2)
    m.dead_lettered("invalid_json", 3)
    m.record_segments(SegmentCounts(0, 0, 0, 0), SegmentCounts(7, 0, 0, 0), tracked=3)
    m.commit("ok")
    m.commit("error")
    m.commit("ok")
    m.record_windows(results([0.1, 0.1], [0.1, NAN], [0.5, NAN]))
    m.batch_processing.observe(0.0005)
    get = registry.get_sample_value
    assert get("driftd_events_consumed_total", {"model": "fraud"}) == 5_000
    assert get("driftd_events_rejected_total", {"model": "fraud", "reason": "invalid_json"}) == 3
    assert get("driftd_dead_letter_total", {"model": "fraud", "reason": "invalid_json"}) == 3
    assert get("driftd_segments_overflow_total", {"model": "fraud"}) == 7
    assert get("driftd_commit_total", {"outcome": "ok"}) == 2
    assert get("driftd_commit_total", {"outcome": "error"}) == 1
    assert get("driftd_windows_closed_total", {"model": "fraud", "segment": "eu"}) == 1
    assert get("driftd_batch_processing_seconds_count") == 1
    assert get("driftd_batch_processing_seconds_bucket", {"le": "0.001"}) is not None
    assert get("driftd_batch_processing_seconds_bucket", {"le": "10.0"}) == 1
    assert get("driftd_batch_processing_seconds_bucket", {"le": "+Inf"}) == 1


@dataclass
class Outcome:
    """The fields of the pipeline's batch outcome that observe_batch reads."""

    accepted: int
    rejected: list[tuple[object, str, str]]
    results: WindowResults | None
    transitions: list[Transition]


def test_observe_batch_accounts_for_a_whole_batch(registry: CollectorRegistry) -> None:
    """observe_batch counts accepted events, rejections by reason, windows and transitions."""
    m = DaemonMetrics(registry, "fraud")
    decisions = DecisionBook("fraud", DetectorsConfig(consecutive=1), min_samples=1)
    r = results([0.3, 0.0], [NAN, NAN], [NAN, NAN])
    rejected: list[tuple[object, str, str]] = [
        (None, "bad_json", "x"),
        (None, "no_ts", "y"),
        (None, "bad_json", "z"),
    ]
    m.observe_batch(Outcome(997, rejected, r, decisions.observe(r)), 0.02)
    m.observe_batch(Outcome(10, [], None, []), 0.5)
    get = registry.get_sample_value
    assert get("driftd_events_consumed_total", {"model": "fraud"}) == 1_007
    assert get("driftd_events_rejected_total", {"model": "fraud", "reason": "bad_json"}) == 2
    assert get("driftd_events_rejected_total", {"model": "fraud", "reason": "no_ts"}) == 1
    assert get("driftd_windows_closed_total", {"model": "fraud", "segment": "eu"}) == 1
    firing = {"model": "fraud", "segment": "eu", "feature": "amount", "method": "psi"}
    assert get("driftd_drift_transitions_total", {**firing, "to": "firing"}) == 1
    assert get("driftd_batch_processing_seconds_count") == 2
    assert get("driftd_batch_processing_seconds_sum") == pytest.approx(0.52)
    assert get("driftd_batch_processing_seconds_bucket", {"le": "0.025"}) == 1


def test_info_metrics(registry: CollectorRegistry) -> None:
    """Build and reference versions are _info series with value 1; a new reference replaces."""
    m = DaemonMetrics(registry, "fraud", version="1.2.3")
    build = {"version": "1.2.3", "python": platform.python_version()}
    assert registry.get_sample_value("driftd_build_info", build) == 1
    m.set_reference("sha256:aaa")
    m.set_reference("sha256:bbb")
    get = registry.get_sample_value
    assert get("driftd_reference_info", {"model": "fraud", "version": "sha256:bbb"}) == 1
    assert get("driftd_reference_info", {"model": "fraud", "version": "sha256:aaa"}) is None


def test_transitions_are_counted_by_target_state(registry: CollectorRegistry) -> None:
    """record_transitions counts firing and resolved per model, segment, feature and method."""
    m = DaemonMetrics(registry, "fraud")
    decisions = DecisionBook("fraud", DetectorsConfig(consecutive=1), min_samples=1)
    m.record_transitions(decisions.observe(results([0.3, 0.0], [NAN, NAN], [NAN, NAN])))
    m.record_transitions(decisions.observe(results([0.0, 0.0], [NAN, NAN], [NAN, NAN])))
    labels = {"model": "fraud", "segment": "eu", "feature": "amount", "method": "psi"}
    get = registry.get_sample_value
    assert get("driftd_drift_transitions_total", {**labels, "to": "firing"}) == 1
    assert get("driftd_drift_transitions_total", {**labels, "to": "resolved"}) == 1


def test_collector_reads_scores_states_and_windows(registry: CollectorRegistry) -> None:
    """Scores, p-values, thresholds, active, streak, window size and missing rate at scrape time."""
    latest, decisions = drift_setup(registry)
    for _ in range(2):
        feed(latest, decisions, results([0.4, 0.4], [0.3, NAN], [1e-6, NAN]))
    feed(latest, decisions, results([0.05, 0.05], [0.01, NAN], [0.9, NAN], segment="us"))
    get = registry.get_sample_value

    def lab(feature: str, method: str, segment: str = "eu") -> dict[str, str]:
        return {"model": "fraud", "segment": segment, "feature": feature, "method": method}

    assert get("driftd_drift_score", lab("amount", "psi")) == 0.4
    assert get("driftd_drift_score", lab("amount", "ks")) == 0.3
    assert get("driftd_drift_score", lab("country", "ks")) is None
    assert get("driftd_drift_p_value", lab("amount", "ks")) == 1e-6
    assert get("driftd_drift_p_value", lab("amount", "psi")) is None
    assert get("driftd_drift_threshold", lab("amount", "psi")) == 0.25
    assert get("driftd_drift_threshold", lab("country", "psi")) == 0.5
    assert get("driftd_drift_clear_threshold", lab("country", "psi")) == 0.3
    assert get("driftd_drift_active", lab("amount", "psi")) == 1
    assert get("driftd_drift_active", lab("amount", "ks")) == 1
    assert get("driftd_drift_active", lab("country", "psi")) == 0
    assert get("driftd_drift_breach_streak", lab("amount", "psi")) == 2
    assert get("driftd_drift_active", lab("amount", "psi", "us")) == 0
    assert get("driftd_drift_breach_streak", lab("amount", "psi", "us")) == 0
    assert get("driftd_window_size", {"model": "fraud", "segment": "eu"}) == 1_200
    assert get("driftd_window_end_timestamp_seconds", {"model": "fraud", "segment": "eu"}) == 100
    missing = {"model": "fraud", "segment": "eu", "feature": "amount"}
    assert get("driftd_feature_missing_rate", missing) == pytest.approx(50 / 1_200)


def test_pending_shows_as_inactive_with_a_streak(registry: CollectorRegistry) -> None:
    """One breach of two needed: active 0, breach streak 1."""
    latest, decisions = drift_setup(registry)
    feed(latest, decisions, results([0.4, 0.0], [NAN, NAN], [NAN, NAN]))
    labels = {"model": "fraud", "segment": "eu", "feature": "amount", "method": "psi"}
    assert registry.get_sample_value("driftd_drift_active", labels) == 0
    assert registry.get_sample_value("driftd_drift_breach_streak", labels) == 1


def test_skipped_evaluations_are_counted(registry: CollectorRegistry) -> None:
    """Windows below min_samples show up in driftd_drift_evaluations_skipped_total."""
    latest, decisions = drift_setup(registry)
    small = results([0.4, 0.4], [0.3, NAN], [1e-6, NAN])
    small = WindowResults(**{**vars(small), "n": np.array([[10, 10]])})
    feed(latest, decisions, small)
    labels = {"model": "fraud", "segment": "eu"}
    assert registry.get_sample_value("driftd_drift_evaluations_skipped_total", labels) == 3


def test_lag_poll_age_and_extra_providers(registry: CollectorRegistry) -> None:
    """Lag per topic/partition, seconds since last poll, and extra families are exposed."""

    def extra() -> list[Metric]:
        return [GaugeMetricFamily("driftd_outbox_depth", "Queued alerts.", value=3)]

    drift_setup(
        registry, lambda: {("inference", 0): 12, ("inference", 3): 0}, lambda: 1.5, (extra,)
    )
    get = registry.get_sample_value
    assert get("driftd_consumer_lag", {"topic": "inference", "partition": "0"}) == 12
    assert get("driftd_consumer_lag", {"topic": "inference", "partition": "3"}) == 0
    assert get("driftd_seconds_since_last_poll") == 1.5
    assert get("driftd_outbox_depth") == 3


def test_failing_provider_is_logged_and_the_scrape_goes_on(registry: CollectorRegistry) -> None:
    """A lag provider that raises drops only its own family."""

    def broken() -> dict[tuple[str, int], int]:
        raise RuntimeError("broker down")

    latest, decisions = drift_setup(registry, broken, lambda: None)
    feed(latest, decisions, results([0.4, 0.0], [NAN, NAN], [NAN, NAN]))
    with capture_logs() as logs:
        text = generate_latest(registry).decode()
    assert 'driftd_window_size{model="fraud",segment="eu"} 1200.0' in text
    assert "driftd_consumer_lag" not in text
    assert "driftd_seconds_since_last_poll" not in text
    assert [e["family"] for e in logs if e["event"] == "metrics_provider_failed"] == [
        "driftd_consumer_lag"
    ]


def test_collector_and_daemon_metrics_share_a_registry_without_clashes(
    registry: CollectorRegistry,
) -> None:
    """Both register on one registry, and a second collector with the same names is refused."""
    DaemonMetrics(registry, "fraud")
    latest, decisions = drift_setup(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(DriftCollector(latest, decisions))


def test_heartbeat_goes_stale_after_max_age() -> None:
    """Alive before the first beat and within max_age of the last; dead after."""
    now = [0.0]
    hb = Heartbeat(30.0, clock=lambda: now[0])
    assert hb.alive() and hb.age() is None
    hb.beat()
    now[0] = 30.0
    assert hb.alive() and hb.age() == 30.0
    now[0] = 30.5
    assert not hb.alive()


Response = tuple[int, dict[str, str], bytes]


def get(server: MetricsServer, path: str, headers: dict[str, str] | None = None) -> Response:
    """GET ``path`` from the real server."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def served(
    registry: CollectorRegistry,
) -> Iterator[tuple[MetricsServer, list[bool], list[tuple[bool, str]]]]:
    """A running server on a free port with switchable liveness and readiness."""
    live = [True]
    ready: list[tuple[bool, str]] = [(False, "starting")]
    latest, decisions = drift_setup(registry)
    DaemonMetrics(registry, "fraud", version="1.2.3")
    feed(latest, decisions, results([0.4, 0.0], [0.2, NAN], [1e-4, NAN]))
    server = MetricsServer(registry, "127.0.0.1", 0, lambda: live[0], lambda: ready[0])
    server.start()
    try:
        yield server, live, ready
    finally:
        server.stop()


def test_metrics_endpoint_serves_prometheus_text(served) -> None:
    """/metrics answers 200 in the 0.0.4 text format, parseable, with the drift series."""
    server, _, _ = served
    assert server.port != 0
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {"driftd_drift_score", "driftd_events_consumed", "driftd_build_info"} <= set(families)
    (sample,) = [s for s in families["driftd_drift_score"].samples if s.labels["method"] == "ks"]
    assert sample.labels == {"model": "fraud", "segment": "eu", "feature": "amount", "method": "ks"}
    assert sample.value == 0.2


def test_metrics_endpoint_negotiates_openmetrics_and_gzip(served) -> None:
    """An OpenMetrics Accept header gets OpenMetrics; Accept-Encoding gzip gets gzip."""
    server, _, _ = served
    status, headers, body = get(
        server,
        "/metrics",
        {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
    )
    assert status == 200
    assert headers["content-type"].startswith(OPENMETRICS)
    assert headers["content-encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    assert "driftd_drift_active" in text


def test_healthz_follows_liveness(served) -> None:
    """/healthz is 200 ok while live and 503 once liveness fails."""
    server, live, _ = served
    assert get(server, "/healthz")[::2] == (200, b"ok\n")
    live[0] = False
    assert get(server, "/healthz")[0] == 503


def test_readyz_answers_what_readiness_says(served) -> None:
    """/readyz is 503 with the reason while not ready, 200 with it once ready."""
    server, _, ready = served
    assert get(server, "/readyz")[::2] == (503, b"starting\n")
    ready[0] = (True, "ok")
    assert get(server, "/readyz")[::2] == (200, b"ok\n")
    ready[0] = (False, "shutting down")
    assert get(server, "/readyz")[::2] == (503, b"shutting down\n")


def test_failing_probe_is_unavailable(registry: CollectorRegistry) -> None:
    """A readiness check that raises answers 503 instead of breaking the server."""

    def broken() -> tuple[bool, str]:
        raise RuntimeError("bug")

    with capture_logs(), MetricsServer(registry, "127.0.0.1", 0, lambda: True, broken) as server:
        assert get(server, "/readyz")[::2] == (503, b"check failed\n")
        assert get(server, "/healthz")[0] == 200


def test_unknown_paths_are_404(served) -> None:
    """Anything but the three endpoints is 404."""
    server, _, _ = served
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/extra")[0] == 404


def test_stop_releases_the_port(registry: CollectorRegistry) -> None:
    """After stop() the port refuses connections, and stop() is idempotent."""
    server = MetricsServer(registry, "127.0.0.1", 0, lambda: True, lambda: (True, "ready"))
    server.start()
    port = server.port
    assert get(server, "/healthz")[0] == 200
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_port_in_use_is_a_config_error(registry: CollectorRegistry) -> None:
    """Binding a port already in use raises ConfigError naming metrics.port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(registry, "127.0.0.1", port, lambda: True, lambda: (True, ""))
        with pytest.raises(ConfigError) as info:
            server.start()
    assert info.value.key == "metrics.port"
