"""The live state behind /api/v1/state: states, since, ordering, and agreement with /metrics."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import DetectorsConfig, Settings
from monitor.emit.http import STATE_PATH, Heartbeat, LoopHealth, MetricsServer
from monitor.emit.state_api import LiveState, StateRow, row_state
from monitor.engine.decision import DecisionBook
from monitor.engine.outcome import BatchOutcome
from monitor.engine.results import LatestResults, WindowResults
from monitor.wiring import build_daemon

MODEL = "m"


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log with structlog's defaults, whatever an earlier test configured."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def window(
    segment: str, psi: Sequence[float], ts: float, columns: Sequence[str] = ("a", "b")
) -> WindowResults:
    """One closed window of ``segment`` with one psi score per column."""
    f = len(columns)
    return WindowResults(
        model=MODEL,
        segments=(segment,),
        columns=tuple(columns),
        window_end_ts=np.array([ts]),
        rows=np.array([1_000], dtype=np.int64),
        n=np.full((1, f), 1_000, dtype=np.int64),
        missing_rate=np.zeros((1, f)),
        scores={"psi": np.asarray(psi, dtype=np.float64).reshape(1, f)},
        p_values={},
    )


class Feed:
    """A results store, a decision book (psi 0.25/0.1, two breaches fire) and their state."""

    def __init__(self) -> None:
        self.results = LatestResults(MODEL)
        self.book = DecisionBook(MODEL, DetectorsConfig(consecutive=2), min_samples=100)
        self.clock = 1_000.0
        self.state = LiveState(
            self.results,
            self.book,
            lag=lambda: {("events", 1): 7, ("events", 0): 3},
            reference_version=lambda: "abc123",
            clock=lambda: self.clock,
        )

    def close(self, segment: str, psi: Sequence[float], ts: float) -> None:
        """Close one window: record, decide, then refresh as the daemon does after a batch."""
        results = window(segment, psi, ts)
        self.results.record(results)
        transitions = self.book.observe(results)
        self.state(
            BatchOutcome(
                records=10, accepted=9, rejected=[], results=results, transitions=transitions
            )
        )

    def rows(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The served rows by key, read back from the JSON bytes."""
        document = json.loads(self.state.json_bytes())
        return {(r["segment"], r["feature"], r["method"]): r for r in document["rows"]}


def test_before_the_first_window_the_document_is_valid_and_empty() -> None:
    """No window yet: valid JSON with empty rows and segments, and the lag already."""
    feed = Feed()
    document = json.loads(feed.state.json_bytes())
    assert document["rows"] == [] and document["segments"] == []
    assert document["model"] == MODEL
    assert document["updated_at"] is None
    assert document["generated_at"] == 1_000.0
    assert document["events_consumed"] == 0
    assert document["consumer_lag"] == [
        {"topic": "events", "partition": 0, "lag": 3},
        {"topic": "events", "partition": 1, "lag": 7},
    ]


def test_states_follow_the_decision_book() -> None:
    """ok below clear, band between clear and threshold, band while pending, firing after two."""
    feed = Feed()
    feed.close("eu", [0.05, 0.15], ts=10.0)  # a clear, b in the band
    rows = feed.rows()
    assert rows[("eu", "a", "psi")]["state"] == "ok"
    assert rows[("eu", "b", "psi")]["state"] == "band"
    feed.close("eu", [0.30, 0.05], ts=20.0)  # a breaches once: pending
    rows = feed.rows()
    assert rows[("eu", "a", "psi")]["state"] == "band"
    assert rows[("eu", "a", "psi")]["breach_streak"] == 1
    assert rows[("eu", "b", "psi")]["state"] == "ok"
    feed.close("eu", [0.40, 0.05], ts=30.0)  # a breaches twice: firing
    rows = feed.rows()
    a = rows[("eu", "a", "psi")]
    assert a["state"] == "firing"
    assert a["score"] == pytest.approx(0.40)
    assert a["threshold"] == pytest.approx(0.25)
    assert a["clear_threshold"] == pytest.approx(0.1)
    assert a["breach_streak"] == 2
    assert a["ratio"] == pytest.approx(0.40 / 0.25)
    assert a["window_end"] == 30.0
    assert a["window_rows"] == 1_000
    assert {s.state for s in feed.book.states() if s.column == "a"} == {"firing"}


def test_since_is_the_window_of_the_transition_into_the_state() -> None:
    """since is the window of the move into pending, firing, ok or the band; null if always ok."""
    feed = Feed()
    feed.close("eu", [0.30, 0.05], ts=10.0)
    assert feed.rows()[("eu", "a", "psi")]["since"] == 10.0  # pending from here
    assert feed.rows()[("eu", "b", "psi")]["since"] is None  # never left ok
    feed.close("eu", [0.30, 0.05], ts=20.0)
    assert feed.rows()[("eu", "a", "psi")]["since"] == 20.0  # fired here
    feed.close("eu", [0.15, 0.05], ts=30.0)  # band: still firing, since unchanged
    assert feed.rows()[("eu", "a", "psi")]["state"] == "firing"
    assert feed.rows()[("eu", "a", "psi")]["since"] == 20.0
    feed.close("eu", [0.01, 0.15], ts=40.0)  # a resolves; b enters the band by score
    rows = feed.rows()
    assert (rows[("eu", "a", "psi")]["state"], rows[("eu", "a", "psi")]["since"]) == ("ok", 40.0)
    assert (rows[("eu", "b", "psi")]["state"], rows[("eu", "b", "psi")]["since"]) == ("band", 40.0)
    feed.close("eu", [0.01, 0.12], ts=50.0)  # b stays in the band: since holds
    assert feed.rows()[("eu", "b", "psi")]["since"] == 40.0
    feed.close("eu", [0.01, 0.01], ts=60.0)  # b clears by score alone
    assert feed.rows()[("eu", "b", "psi")]["since"] == 60.0
    assert feed.rows()[("eu", "a", "psi")]["since"] == 40.0


def test_rows_and_segments_are_sorted_and_stable() -> None:
    """Rows sort by segment, feature, method; the same state serialises to the same bytes."""
    feed = Feed()
    feed.close("us", [0.01, 0.02], ts=10.0)
    feed.close("eu", [0.01, 0.02], ts=11.0)
    feed.close("asia", [0.01, 0.02], ts=12.0)
    document = json.loads(feed.state.json_bytes())
    keys = [(r["segment"], r["feature"], r["method"]) for r in document["rows"]]
    assert keys == sorted(keys) and len(keys) == 6
    assert [s["segment"] for s in document["segments"]] == ["asia", "eu", "us"]
    assert document["segments"][0] == {
        "segment": "asia",
        "window_rows": 1_000,
        "window_end": 12.0,
        "windows_closed": 1,
    }
    assert feed.state.json_bytes() == feed.state.json_bytes()
    assert document["events_consumed"] == 30 and document["events_accepted"] == 27
    assert document["reference_version"] == "abc123"
    assert document["updated_at"] == 1_000.0


def test_the_first_batch_shows_every_restored_row() -> None:
    """After a restore, the first batch shows every row, not only those it touched."""
    feed = Feed()
    for segment in ("eu", "us"):
        results = window(segment, [0.3, 0.3], ts=10.0)
        feed.results.record(results)
        feed.book.observe(results)
    assert json.loads(feed.state.json_bytes())["rows"] == []
    feed.state(BatchOutcome(records=1, accepted=1, rejected=[], results=None, transitions=[]))
    assert {k[0] for k in feed.rows()} == {"eu", "us"}
    assert {r["state"] for r in feed.rows().values()} == {"band"}  # pending after one breach


def test_a_batch_that_closed_nothing_keeps_the_snapshot() -> None:
    """Counters move with every batch; the rows are rebuilt only when something changed."""
    feed = Feed()
    feed.close("eu", [0.01, 0.02], ts=10.0)
    feed.clock = 2_000.0
    feed.state(BatchOutcome(records=5, accepted=5, rejected=[], results=None, transitions=[]))
    document = json.loads(feed.state.json_bytes())
    assert document["updated_at"] == 1_000.0
    assert document["generated_at"] == 2_000.0
    assert document["events_consumed"] == 15


def test_evicted_segments_leave_the_state() -> None:
    """A segment forgotten by the results and the book leaves the rows at the next batch."""
    feed = Feed()
    feed.close("eu", [0.01, 0.02], ts=10.0)
    feed.close("us", [0.01, 0.02], ts=10.0)
    feed.results.forget_segments(["eu"])
    feed.book.forget_segments(["eu"], end=20.0)
    feed.state(
        BatchOutcome(
            records=1, accepted=1, rejected=[], results=None, transitions=[], evicted=["eu"]
        )
    )
    assert {k[0] for k in feed.rows()} == {"us"}


def test_a_failing_lag_provider_gives_null_lag_not_an_error() -> None:
    """The lag is read per request; a source that raises leaves it null."""
    results = LatestResults(MODEL)

    def broken() -> Mapping[tuple[str, int], int]:
        raise RuntimeError("broker gone")

    state = LiveState(results, DecisionBook(MODEL, DetectorsConfig(), 100), lag=broken)
    assert json.loads(state.json_bytes())["consumer_lag"] is None


def test_ratio_is_inverted_for_a_method_that_breaches_low() -> None:
    """score/threshold for psi; threshold/score for samples (few values breach)."""
    common: dict[str, Any] = {
        "segment": "eu",
        "feature": "a",
        "state": "ok",
        "p_value": math.nan,
        "clear_threshold": 0.1,
        "breach_streak": 0,
        "n": 10,
        "window_rows": 10,
        "window_end": 1.0,
        "since": None,
    }
    assert StateRow(method="psi", score=0.5, threshold=0.25, **common).ratio == 2.0
    assert StateRow(method="samples", score=5_000, threshold=500, **common).ratio == 0.1
    assert StateRow(method="samples", score=0, threshold=500, **common).ratio == 500
    assert StateRow(method="psi", score=0.5, threshold=None, **common).as_json()["ratio"] is None


def test_row_state_of_an_unjudged_row_is_ok() -> None:
    """A score with no decision (a method not configured) is ok, with a null threshold."""
    assert row_state(None) == "ok"
    results = LatestResults(MODEL)
    results.record(
        WindowResults(
            model=MODEL,
            segments=("eu",),
            columns=("a",),
            window_end_ts=np.array([5.0]),
            rows=np.array([10], dtype=np.int64),
            n=np.full((1, 1), 10, dtype=np.int64),
            missing_rate=np.zeros((1, 1)),
            scores={"nosuch": np.array([[0.5]])},
            p_values={},
        )
    )
    state = LiveState(results, DecisionBook(MODEL, DetectorsConfig(), 100))
    state.refresh()
    (row,) = json.loads(state.json_bytes())["rows"]
    assert (row["state"], row["threshold"], row["score"]) == ("ok", None, 0.5)


def test_the_server_serves_the_state_as_json_and_404_without_it() -> None:
    """/api/v1/state answers application/json from the provider; a server without one 404s."""
    feed = Feed()
    feed.close("eu", [0.3, 0.02], ts=10.0)
    health = LoopHealth(Heartbeat(60.0))
    with (
        MetricsServer(
            CollectorRegistry(),
            "127.0.0.1",
            0,
            health.alive,
            health.readiness,
            state=feed.state.json_bytes,
        ) as server,
        urllib.request.urlopen(server.url + STATE_PATH, timeout=5) as response,
    ):
        assert response.headers["Content-Type"] == "application/json"
        document = json.loads(response.read())
    assert len(document["rows"]) == 2
    bare = MetricsServer(CollectorRegistry(), "127.0.0.1", 0, health.alive, health.readiness)
    with bare, pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(bare.url + STATE_PATH, timeout=5)
    exc.value.close()
    assert exc.value.code == 404


def _gauges(text: str, name: str) -> dict[tuple[str, str, str], float]:
    """One gauge family of a /metrics page, by (segment, feature, method)."""
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                labels = sample.labels
                out[(labels["segment"], labels["feature"], labels["method"])] = sample.value
    return out


@pytest.mark.slow
def test_state_agrees_with_metrics_on_the_same_daemon() -> None:
    """On one demo daemon, scores and thresholds equal the gauges, firing equals active == 1."""
    settings = Settings(
        model="credit-risk",
        source={"type": "demo", "batch_size": 2_000},  # type: ignore[arg-type]
        schema={"segment_by": ["features.region"], "categorical": []},  # type: ignore[arg-type]
        reference={"warmup_events": 30_000},  # type: ignore[arg-type]
        windows={"size_events": 5_000, "min_samples": 500},  # type: ignore[arg-type]
        # Every row as a gauge, to compare with every row of the state.
        metrics={"host": "127.0.0.1", "port": 0, "detail": "full"},  # type: ignore[arg-type]
    )
    daemon = build_daemon(
        settings,
        source_kind="demo",
        registry=CollectorRegistry(),
        demo_events=80_000,
        demo_rate=0,
    )
    pages: dict[str, str] = {}

    def read_both() -> None:
        assert daemon.server is not None
        url = daemon.server.url
        with urllib.request.urlopen(url + STATE_PATH, timeout=10) as response:
            pages["state"] = response.read().decode()
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            pages["metrics"] = response.read().decode()
        daemon.should_exit.set()  # as a signal would: the daemon then shuts down

    daemon.on_end = read_both
    daemon.serve_after_end = True
    assert daemon.run() == 0
    rows = {
        (r["segment"], r["feature"], r["method"]): r for r in json.loads(pages["state"])["rows"]
    }
    scores = _gauges(pages["metrics"], "driftd_drift_score")
    thresholds = _gauges(pages["metrics"], "driftd_drift_threshold")
    clears = _gauges(pages["metrics"], "driftd_drift_clear_threshold")
    active = _gauges(pages["metrics"], "driftd_drift_active")
    assert rows and set(rows) == set(scores)
    for key, row in rows.items():
        assert row["score"] == pytest.approx(scores[key], rel=1e-12, abs=0), key
        if row["threshold"] is None:
            assert key not in thresholds or not math.isfinite(thresholds[key])
        else:
            assert row["threshold"] == pytest.approx(thresholds[key], rel=1e-12), key
            assert row["clear_threshold"] == pytest.approx(clears[key], rel=1e-12), key
    firing = {k for k, r in rows.items() if r["state"] == "firing"}
    assert firing == {k for k, v in active.items() if v == 1.0}
    assert any(k[0] == "west" and k[1] == "income" for k in firing)  # the injected drift
