"""``metrics.detail: summary``: bounded series, drifting rows in full, top-K, and the
cached exposition of ``/metrics``."""

from __future__ import annotations

import gzip
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Info, Summary
from prometheus_client import generate_latest as prometheus_text
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from detectors.rules import BAND, BREACH, CLEAR
from monitor.config import DetectorsConfig, MetricsConfig, Settings
from monitor.emit.drift_collector import Detail, DriftCollector
from monitor.emit.drift_summary import COUNTING_METHODS, is_drifting
from monitor.emit.exposition import ExpositionCache, text_exposition
from monitor.emit.http import MetricsServer
from monitor.emit.state_api import LiveState
from monitor.engine.decision import DecisionBook
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import LatestResults, WindowResults
from monitor.wiring import build_daemon

MODEL = "m"
METHODS = ("psi", "ks", "missing", "samples")
Key = tuple[str, str, str]


@pytest.fixture(autouse=True)
def _quiet_structlog() -> Iterator[None]:
    """Random drift fires alerts; their log lines are not under test."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    yield
    structlog.reset_defaults()


def windows(
    segments: int, features: int, seed: int, *, calibrated: bool = True, drifting: float = 0.02
) -> WindowResults:
    """One window per segment: random scores, a ``drifting`` share of (segment, feature)
    breaching psi and ks; thresholds per segment (``calibrated``) or one per method."""
    rng = np.random.default_rng(seed)
    shape = (segments, features)
    breach = np.random.default_rng(7).random(shape) < drifting
    scores, thresholds, verdicts = {}, {}, {}
    for i, method in enumerate(("psi", "ks", "missing")):
        level = 0.1 * (i + 1)
        spread = np.random.default_rng(3).random((segments, 1)) if calibrated else 0.0
        threshold = level * (1 + spread) * np.ones(shape)
        score = rng.random(shape) * threshold * 0.9
        if method != "missing":
            score = np.where(breach, threshold * 1.5, score)
        scores[method], thresholds[method] = score, threshold
        verdicts[method] = np.where(
            score >= threshold, BREACH, np.where(score < threshold / 2, CLEAR, BAND)
        ).astype(np.int8)
    scores["samples"] = np.full(shape, 1_000.0)
    thresholds["samples"] = np.full(shape, 100.0)
    verdicts["samples"] = np.full(shape, CLEAR, dtype=np.int8)
    return WindowResults(
        model=MODEL,
        segments=tuple(f"s{i:02d}" for i in range(segments)),
        columns=tuple(f"f{j:02d}" for j in range(features)),
        window_end_ts=np.full(segments, float(seed)),
        rows=np.full(segments, 1_000),
        n=np.full(shape, 1_000),
        missing_rate=np.full(shape, 0.01),
        scores=scores,
        p_values={"ks": np.where(breach, 1e-9, rng.random(shape))},
        thresholds=thresholds,
        clears={m: t / 2 for m, t in thresholds.items()},
        verdicts=verdicts,
    )


class Daemonish:
    """The stores, the state API's rows and a collector on one registry, fed like the daemon."""

    def __init__(self, detail: Detail = "summary", top_k: int = 2) -> None:
        self.results = LatestResults(MODEL)
        self.book = DecisionBook(MODEL, DetectorsConfig(consecutive=2), min_samples=100)
        self.rows = LiveState(self.results, self.book)
        self.registry = CollectorRegistry()
        self.collector = DriftCollector(
            self.results,
            self.book,
            detail=detail,
            top_k=top_k,
            segment_rows=self.rows.segment_rows,
        )
        self.registry.register(self.collector)

    def feed(self, closed: WindowResults) -> None:
        """What a batch does: results, decisions, the state API, then the summary."""
        self.results.record(closed)
        transitions = self.book.observe(closed)
        self.rows(BatchOutcome(len(closed), len(closed), [], closed, transitions))
        self.collector.refresh_summary()

    def state_rows(self) -> dict[Key, dict[str, Any]]:
        """Every row of the state API: the brute-force truth the summary is checked on."""
        return {(r["segment"], r["feature"], r["method"]): r for r in self.rows.document()["rows"]}

    def samples(self) -> dict[str, dict[tuple[str, ...], float]]:
        """Every exported sample: by metric name, its label values (sorted keys) to value."""
        text = text_exposition(self.registry).decode()
        out: dict[str, dict[tuple[str, ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = tuple(s.labels[k] for k in sorted(s.labels) if k != "model")
                out.setdefault(s.name, {})[key] = s.value
        return out


def drift_key(labels: tuple[str, ...]) -> Key:
    """(segment, feature, method) from sorted label values (feature, method, segment)."""
    feature, method, segment = labels
    return segment, feature, method


def test_summary_series_are_bounded_by_segments_plus_features_not_their_product() -> None:
    """50 segments x 20 features: O(segments + features x methods + drifting + top-K)."""
    segments, features, top_k = 50, 20, 2
    daemon = Daemonish(top_k=top_k)
    for seed in (1, 2):
        daemon.feed(windows(segments, features, seed))
    rows = daemon.state_rows()
    drifting = [k for k, r in rows.items() if is_drifting(r)]
    assert 0 < len(drifting) < len(rows) / 10  # the scenario drifts, a little
    text = text_exposition(daemon.registry).decode()
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    pairs = features * len(METHODS)
    per_segment = 4  # worst ratio, features drifting, window size, window end
    per_pair = 4  # worst ratio, segments drifting, threshold, clear threshold
    per_drifting_row = 5  # score, threshold, clear threshold, active, p-value
    bound = (
        segments * per_segment
        + pairs * per_pair
        + len(drifting) * per_drifting_row
        + len(drifting)  # the missing rate of a drifting feature
        + segments * top_k * 2  # score and threshold
        + features  # driftd_feature_unmonitored
    )
    assert len(series) <= bound
    full = Daemonish(detail="full")
    for seed in (1, 2):
        full.feed(windows(segments, features, seed))
    full_text = text_exposition(full.registry).decode()
    full_series = [line for line in full_text.splitlines() if line and not line.startswith("#")]
    assert len(full_series) >= 5 * segments * pairs
    assert len(series) * 5 < len(full_series)


def test_firing_and_pending_rows_are_exported_in_full() -> None:
    """Every firing or pending row: score, p-value, both thresholds, active 1 or 0."""
    daemon = Daemonish(top_k=0)
    daemon.feed(windows(20, 10, 1))  # one breach each: pending
    daemon.feed(windows(20, 10, 2, drifting=0.0, calibrated=True))
    daemon.feed(windows(20, 10, 3))
    rows = daemon.state_rows()
    states = {r["state"] for r in rows.values() if is_drifting(r)}
    assert states == {"firing", "band"}  # both kinds are in the scenario
    got = daemon.samples()
    scores = {drift_key(k): v for k, v in got["driftd_drift_score"].items()}
    active = {drift_key(k): v for k, v in got["driftd_drift_active"].items()}
    clears = {drift_key(k): v for k, v in got["driftd_drift_clear_threshold"].items()}
    thresholds = {drift_key(k): v for k, v in got["driftd_drift_threshold"].items()}
    p_values = {drift_key(k): v for k, v in got["driftd_drift_p_value"].items()}
    drifting = {k for k, r in rows.items() if is_drifting(r)}
    assert set(scores) == drifting == set(active) == set(thresholds) == set(clears)
    for key in drifting:
        row = rows[key]
        assert scores[key] == row["score"]
        assert thresholds[key] == row["threshold"]
        assert clears[key] == row["clear_threshold"]
        assert active[key] == (1.0 if row["state"] == "firing" else 0.0)
        if row["p_value"] is not None:
            assert p_values[key] == row["p_value"]
    assert {k for k in drifting if rows[k]["p_value"] is not None} == set(p_values)
    assert "driftd_drift_breach_streak" not in got


@pytest.mark.parametrize("top_k", [0, 1, 3])
def test_top_k_per_segment_matches_a_brute_force_sort(top_k: int) -> None:
    """The non-drifting rows exported per segment are the top_k by ratio, counting rows out."""
    daemon = Daemonish(top_k=top_k)
    daemon.feed(windows(12, 8, 1))
    rows = daemon.state_rows()
    exported = {drift_key(k) for k in daemon.samples()["driftd_drift_score"]}
    for segment in {k[0] for k in rows}:
        candidates = [
            (r["ratio"], k)
            for k, r in rows.items()
            if k[0] == segment
            and not is_drifting(r)
            and r["ratio"] is not None
            and k[2] not in COUNTING_METHODS
        ]
        expected = {k for _, k in sorted(candidates, reverse=True)[:top_k]}
        drifting = {k for k, r in rows.items() if k[0] == segment and is_drifting(r)}
        assert {k for k in exported if k[0] == segment} == expected | drifting


def test_segment_and_feature_digests_agree_with_the_rows() -> None:
    """Worst ratios and drifting counts per segment and per (feature, method), brute force."""
    daemon = Daemonish()
    for seed in (1, 2):
        daemon.feed(windows(15, 6, seed))
    rows = daemon.state_rows()
    got = daemon.samples()
    for (segment,), worst in got["driftd_segment_drift_worst_ratio"].items():
        ratios = [
            float(r["ratio"])
            for k, r in rows.items()
            if k[0] == segment and r["ratio"] is not None and k[2] not in COUNTING_METHODS
        ]
        assert worst == max(ratios)
    for (segment,), count in got["driftd_segment_features_drifting"].items():
        assert count == len({k[1] for k, r in rows.items() if k[0] == segment and is_drifting(r)})
    assert len(got["driftd_segment_features_drifting"]) == 15
    for (feature, method), worst in got["driftd_feature_drift_worst_ratio"].items():
        ratios = [
            float(r["ratio"])
            for k, r in rows.items()
            if k[1:] == (feature, method) and r["ratio"] is not None
        ]
        assert worst == pytest.approx(max(ratios), rel=1e-12)
    for (feature, method), count in got["driftd_feature_segments_drifting"].items():
        expected = sum(1 for k, r in rows.items() if k[1:] == (feature, method) and is_drifting(r))
        assert count == expected
    assert any(v > 0 for v in got["driftd_feature_segments_drifting"].values())


def test_a_threshold_is_exported_per_feature_only_where_every_segment_shares_it() -> None:
    """Fixed thresholds once per (feature, method); calibrated ones that differ, not at all."""
    shared = Daemonish()
    shared.feed(windows(10, 4, 1, calibrated=False))
    thresholds = shared.samples()["driftd_feature_drift_threshold"]
    assert thresholds[("f00", "psi")] == pytest.approx(0.1)
    assert thresholds[("f00", "ks")] == pytest.approx(0.2)
    assert thresholds[("f03", "samples")] == 100.0
    clears = shared.samples()["driftd_feature_drift_clear_threshold"]
    assert clears[("f00", "psi")] == pytest.approx(0.05)
    varying = Daemonish()
    varying.feed(windows(10, 4, 1, calibrated=True))
    thresholds = varying.samples()["driftd_feature_drift_threshold"]
    assert ("f00", "psi") not in thresholds and ("f00", "ks") not in thresholds
    assert thresholds[("f00", "samples")] == 100.0  # the same in every segment


def test_full_detail_keeps_every_row_and_the_breach_streak() -> None:
    """``full``: a score, streak and active for every row; no summary families."""
    daemon = Daemonish(detail="full")
    daemon.feed(windows(6, 5, 1))
    rows = daemon.state_rows()
    got = daemon.samples()
    assert {drift_key(k) for k in got["driftd_drift_score"]} == set(rows)
    assert {drift_key(k) for k in got["driftd_drift_breach_streak"]} == set(rows)
    assert len(got["driftd_feature_missing_rate"]) == 6 * 5
    assert not {n for n in got if n.startswith(("driftd_segment_", "driftd_feature_drift"))}


def test_without_the_state_api_the_summary_is_built_from_the_book() -> None:
    """A collector with no rows provider digests the book itself, with the same result."""
    daemon = Daemonish()
    for seed in (1, 2):
        daemon.feed(windows(8, 5, seed))
    alone = CollectorRegistry()
    alone.register(DriftCollector(daemon.results, daemon.book, top_k=2))
    assert text_exposition(alone) == text_exposition(daemon.registry)


def test_an_evicted_segment_leaves_the_summary() -> None:
    """Forgotten segments take their digest and their rows with them."""
    daemon = Daemonish()
    daemon.feed(windows(4, 3, 1))
    assert ("s01",) in daemon.samples()["driftd_segment_features_drifting"]
    daemon.results.forget_segments({"s01"})
    daemon.book.forget_segments({"s01"}, 10.0)
    empty = WindowResults(**{**vars(windows(1, 3, 2)), "segments": ("s00",)})
    daemon.results.record(empty)
    transitions = daemon.book.observe(empty)
    daemon.rows(BatchOutcome(1, 1, [], empty, transitions, evicted=["s01"]))
    daemon.collector.refresh_summary()
    got = daemon.samples()
    assert ("s01",) not in got["driftd_segment_features_drifting"]
    assert not [k for k in got.get("driftd_drift_score", {}) if k[2] == "s01"]


def test_metrics_config_validates_detail_and_top_k() -> None:
    """detail is summary or full (summary by default); top_k is 0 or more."""
    assert MetricsConfig().detail == "summary"
    assert MetricsConfig(top_k=0).top_k == 0
    with pytest.raises(ValidationError, match="top_k"):
        MetricsConfig(top_k=-1)
    with pytest.raises(ValidationError, match="detail"):
        MetricsConfig(detail="some")  # type: ignore[arg-type]


# -- the rendered exposition ---------------------------------------------------------


def test_text_exposition_is_byte_for_byte_prometheus_client_s() -> None:
    """Every metric type, escapes in label values and help, big and special floats."""
    daemon = Daemonish(detail="full")
    daemon.feed(windows(3, 3, 1))
    registry = daemon.registry
    Counter("odd_total", "help with \\ and\nnewline", ["a"], registry=registry).labels(
        a='quote " back \\ new\nline'
    ).inc()
    Summary("latency", "s", registry=registry).observe(0.5)
    Enum("mode", "e", states=["a", "b"], registry=registry)
    Info("build", "i", registry=registry).info({"version": "1.0"})
    Gauge("big", "b", ["l"], registry=registry).labels(l="été").set(123456789.0)
    Gauge("edges", "e", ["l"], registry=registry).labels(l="inf").set(math.inf)
    Gauge("edges_nan", "e", registry=registry).set(math.nan)
    assert text_exposition(registry) == prometheus_text(registry)


def test_a_batch_invalidates_the_cached_scrape() -> None:
    """Cached while nothing changed; the scrape after a batch sees the batch."""
    registry = CollectorRegistry()
    gauge = Gauge("events", "e", registry=registry)
    cache = ExpositionCache(registry, max_age=60)
    gauge.set(1)
    first = cache.render("")
    gauge.set(2)
    assert cache.render("") is first  # no batch since: the same bytes
    cache.invalidate()  # a batch was processed
    assert b"events 2.0" in cache.render("").body
    assert cache.renders == 2


def test_the_cache_expires_after_max_age_and_zero_renders_every_scrape() -> None:
    """Idle, an answer is served for max_age seconds only; max_age 0 never reuses one."""
    now = [0.0]
    registry = CollectorRegistry()
    gauge = Gauge("age", "a", registry=registry)
    cache = ExpositionCache(registry, max_age=1.0, clock=lambda: now[0])
    cache.render("")
    gauge.set(5)
    now[0] = 0.5
    assert b"age 0.0" in cache.render("").body
    now[0] = 1.5
    assert b"age 5.0" in cache.render("").body
    eager = ExpositionCache(registry, max_age=0)
    eager.render("")
    eager.render("")
    assert eager.renders == 2


def test_openmetrics_and_text_are_cached_apart() -> None:
    """Each format has its own answer; gzip is the same body compressed."""
    registry = CollectorRegistry()
    Gauge("g", "g", registry=registry).set(3)
    cache = ExpositionCache(registry, max_age=60)
    text = cache.render("")
    openmetrics = cache.render("application/openmetrics-text; version=1.0.0")
    assert openmetrics.body.endswith(b"# EOF\n") and not text.body.endswith(b"# EOF\n")
    assert gzip.decompress(text.gzip()) == text.body


def test_concurrent_scrapes_share_one_render() -> None:
    """Scrapes that arrive during a render wait for it instead of rendering again."""
    registry = CollectorRegistry()
    started, release = threading.Event(), threading.Event()

    class Slow:
        def collect(self) -> Iterator[object]:
            started.set()
            release.wait(5)
            yield from ()

    registry.register(Slow())  # type: ignore[arg-type]
    cache = ExpositionCache(registry, max_age=60)
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.render("").body))]
    threads[0].start()
    assert started.wait(5)
    threads += [threading.Thread(target=lambda: answers.append(cache.render("").body))]
    threads[1].start()
    time.sleep(0.05)  # let the second scrape reach the lock (it shares either way)
    release.set()
    for t in threads:
        t.join(5)
    assert len(answers) == 2 and cache.renders == 1


# -- on a daemon ---------------------------------------------------------------------


def _scrape(server: MetricsServer) -> dict[str, dict[tuple[str, ...], float]]:
    """GET /metrics; by metric name, the sorted label values (model left out) to value."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = tuple(s.labels[k] for k in sorted(s.labels) if k != "model")
            out.setdefault(s.name, {})[key] = s.value
    return out


def test_the_daemon_s_scrape_sees_every_batch_and_every_rebalance() -> None:
    """Cached for a minute, each scrape after a batch sees it; a handed-over segment leaves."""
    settings = Settings(
        model="credit-risk",
        source={"type": "demo", "batch_size": 2_000},  # type: ignore[arg-type]
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"warmup_events": 4_000},  # type: ignore[arg-type]
        windows={"size_events": 1_000, "min_samples": 200},  # type: ignore[arg-type]
        metrics={"host": "127.0.0.1", "port": 0, "cache_seconds": 60},  # type: ignore[arg-type]
    )
    daemon = build_daemon(settings, source_kind="demo", demo_events=12_000, demo_rate=0)
    server = daemon.server
    assert server is not None and daemon.collector.detail == "summary"
    server.start()
    try:
        consumed = 0
        for _ in range(6):
            outcome = daemon.handle(daemon.source.poll(0.5))
            consumed += outcome.accepted
            got = _scrape(server)
            assert got["driftd_events_consumed_total"][()] == consumed
        assert ("west",) in got["driftd_segment_drift_worst_ratio"]
        assert [k for k in got["driftd_drift_score"] if k[2] == "west"]  # its top-K row
        daemon.pipeline.decisions.drop({"west"})  # as a hand-over of its partition does
        daemon.on_partitions_revoked([])
        got = _scrape(server)
        assert ("west",) not in got["driftd_segment_drift_worst_ratio"]
        assert not [k for k in got.get("driftd_drift_score", {}) if k[2] == "west"]
        assert ("north",) in got["driftd_segment_drift_worst_ratio"]
    finally:
        server.stop()
