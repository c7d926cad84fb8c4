"""Every dashboard query against a real Prometheus scraping a real daemon on real Kafka.

The daemon consumes a drift scenario (the demo stream with a feature shift in ``west``,
whose events carry a short embedding vector, plus a few poison messages for the
rejection and dead-letter series, and its delayed labels) from a real broker,
checkpointing every second and writing a relabel queue. Prometheus scrapes it every second and
evaluates driftd's recording and alert rules. Then every panel expression and every
variable query of the generated dashboards, with the variables substituted, must
evaluate without error and return data through the HTTP API.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.profile import build_profile
from detectors.segment_mix import SegmentMix
from monitor.app import Daemon
from monitor.config import EmbeddingDriftConfig, MultivariateDriftConfig, Settings
from monitor.engine.embedding_window import fit_embeddings
from monitor.engine.labels.calibration_fit import fit_performance
from monitor.engine.multivariate_window import fit_multivariate
from monitor.ingest.demo_stream import DemoStream
from monitor.wiring import build_daemon
from tests.alertmanager_server import wait_for
from tests.deploy.dashboards import ROOT, Query, VariableQuery, all_queries, all_variable_queries
from tests.kafka_broker import (
    create_topic,
    produce,
    unique_topic,
)
from tests.prometheus_server import Prometheus, prometheus_server

pytestmark = pytest.mark.integration

RULES = ROOT / "deploy" / "prometheus" / "rules" / "driftd.rules.yml"
MODEL = "credit-risk"
SEGMENT = "west"
EVENTS = 30_000
SHIFT_AT = 12_000
NEW_SEGMENT = "east"
VECTOR = "embedding"
"""The vector feature (schema.vector_features) of every event, for the embedding panel."""
VECTOR_DIM = 8
POISON = [b"{not json", b"", b'{"id": "x", "ts": "yesterday", "features": {}}', b"[1, 2]"]

SUBSTITUTIONS = {
    "${__rate_interval}": "1m",
    "$__rate_interval": "1m",
    "${__interval}": "15s",
    "$__interval": "15s",
    "${__range}": "5m",
    "$__range": "5m",
    "${model}": MODEL,
    "$model": MODEL,
    "${segment}": SEGMENT,
    "$segment": SEGMENT,
    "${feature}": ".*",  # the All value
    "$feature": ".*",
}


def substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced as the dashboard would for west."""
    for name, value in SUBSTITUTIONS.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable left in {expr!r}"
    return expr


@dataclass
class Live:
    """The running scenario: Prometheus scraping a daemon that has consumed everything."""

    prometheus: Prometheus
    daemon: Daemon


def _vectors(n: int, seed: int) -> list[list[float]]:
    """``n`` short embedding vectors, rounded so the messages stay small."""
    rows = np.random.default_rng(seed).normal(size=(n, VECTOR_DIM)).round(3)
    return [list(row) for row in rows.tolist()]


def _write_reference(path: Path) -> None:
    """A reference built as ``driftd reference build`` would from labelled training data (a
    separate demo sample): profiles, the segment mix, the multivariate model, the score
    calibration and an embedding model, so that every panel of the new methods has data."""
    batch = DemoStream(seed=99).next_batch(40_000)
    columns: dict[str, Any] = dict(batch.numeric)
    # The segment path is no feature (inside a segment it is constant), as in a build.
    categorical = {k: v.astype(object) for k, v in batch.categorical.items() if k != "region"}
    columns.update(categorical)
    columns["prediction"] = batch.prediction
    profile = build_profile(columns, categorical=list(categorical), prediction="prediction")
    performance, why_not = fit_performance(batch.prediction, batch.label)
    multivariate, why_not_mv = fit_multivariate(
        columns, list(batch.numeric), MultivariateDriftConfig()
    )
    assert performance is not None and multivariate is not None, (why_not, why_not_mv)
    embeddings, why_not_embedded = fit_embeddings(
        {VECTOR: _vectors(4_000, seed=98)}, EmbeddingDriftConfig(dimensions=4)
    )
    assert VECTOR in embeddings, why_not_embedded
    regions, counts = np.unique(batch.segment, return_counts=True)
    segments = SegmentMix.from_counts(dict(zip(regions.tolist(), counts.tolist(), strict=True)))
    profile = replace(
        profile,
        segments=segments,
        performance=performance,
        multivariate=multivariate,
        embeddings=embeddings,
        version="",
    )
    path.write_bytes(orjson.dumps(profile.to_dict()))


def _settings(
    bootstrap: str, topic: str, dlq: str, labels_topic: str, state: Path, reference: Path
) -> Settings:
    kafka: dict[str, Any] = {
        "bootstrap_servers": [bootstrap],
        "topics": [topic],
        "group_id": unique_topic("driftd-dash-group"),
        "dead_letter_topic": dlq,
        "max_poll_records": 2_000,
        "poll_timeout_ms": 200,
    }
    kafka["labels_topic"] = labels_topic
    return Settings(
        model=MODEL,
        kafka=kafka,  # type: ignore[arg-type]
        schema={"segment_by": ["features.region"], "vector_features": [VECTOR]},  # type: ignore[arg-type]
        reference={"path": reference},  # type: ignore[arg-type]
        windows={"size_events": 1_500, "min_samples": 500},  # type: ignore[arg-type]
        metrics={"host": "127.0.0.1", "port": 0},  # type: ignore[arg-type]
        labels={  # type: ignore[arg-type]
            "enabled": True,
            "window_pairs": 500,
            "group_by": "features.employment_type",
            "relabel": {"enabled": True, "path": state / "relabel.jsonl"},
        },
        checkpoint={"directory": state, "interval_s": 1.0},  # type: ignore[arg-type]
    )


def _produce_scenario(bootstrap: str, topic: str, labels_topic: str) -> int:
    stream = DemoStream(feature_shift_at=SHIFT_AT, prediction_shift_at=10**9)
    stream.concept_shift_at = SHIFT_AT
    stream.start_ts = time.time() - EVENTS / stream.rate
    batch = stream.next_batch(EVENTS)
    events = batch.events()
    # Vectors in the drill-down's segment only: the embedding panel reads west, and the
    # scenario stays about as quick to produce and consume as without them.
    in_west = [e for e in events if e["features"]["region"] == SEGMENT]
    for event, vector in zip(in_west, _vectors(len(in_west), seed=7), strict=True):
        event["features"][VECTOR] = vector
    # A trickle of a region the reference never saw, for the new-segment series: an odd
    # step, so that both partitions carry it (each segment-mix window then holds some).
    for i in range(9_000, EVENTS, 101):
        events[i]["features"]["region"] = NEW_SEGMENT
    messages = [orjson.dumps(e) for e in events]
    for i, bad in enumerate(POISON):
        messages.insert(1_000 + i * 5_000, bad)
    # Every other message to each partition, so both end after the shift, in whatever
    # order the consumer reads them (with halves, reading the first half last ended
    # west's windows before the shift: nothing was firing at the end).
    produce(bootstrap, topic, messages[0::2], partition=0)
    produce(bootstrap, topic, messages[1::2], partition=1)
    produce(bootstrap, labels_topic, [orjson.dumps(e) for e in batch.labels()])
    return len(messages)


@pytest.fixture(scope="module")
def live(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    """A daemon that consumed the drift scenario, scraped every second by Prometheus."""
    topic, dlq = unique_topic("driftd-dash-in"), unique_topic("driftd-dash-dlq")
    labels_topic = unique_topic("driftd-dash-labels")
    create_topic(kafka_bootstrap, topic, partitions=2)
    create_topic(kafka_bootstrap, dlq, partitions=1)
    create_topic(kafka_bootstrap, labels_topic, partitions=1)
    produced = _produce_scenario(kafka_bootstrap, topic, labels_topic)

    reference = tmp_path_factory.mktemp("reference") / "reference.json"
    _write_reference(reference)
    settings = _settings(
        kafka_bootstrap, topic, dlq, labels_topic, tmp_path_factory.mktemp("state"), reference
    )
    registry = CollectorRegistry()
    daemon = build_daemon(settings, registry=registry)
    thread = threading.Thread(target=daemon.run, daemon=True, name="driftd-under-test")
    thread.start()
    try:
        server = daemon.server
        assert server is not None
        port = wait_for(lambda: server.port, timeout_s=30, what="the metrics port")
        with prometheus_server([f"127.0.0.1:{port}"], [RULES]) as prom:
            wait_for(
                lambda: daemon.stats.records >= produced,
                timeout_s=180,
                interval_s=0.2,
                what=f"the daemon to read {produced} messages",
            )

            def scraped_enough() -> bool:
                # a few scrapes after the last batch, so rates have samples on both sides
                answer = prom.query(
                    f'count_over_time(driftd_events_consumed_total{{model="{MODEL}"}}[1m]) >= 6'
                )
                return bool(answer.get("data", {}).get("result"))

            wait_for(scraped_enough, timeout_s=60, interval_s=0.5, what="six scrapes")
            # the recording rules run every second; give them one round after the scrapes
            wait_for(
                lambda: prom.query("model_segment:driftd_drift_score_over_threshold:max")["data"][
                    "result"
                ],
                timeout_s=30,
                interval_s=0.5,
                what="the recording rules",
            )
            yield Live(prom, daemon)
    finally:
        daemon.should_exit.set()
        thread.join(timeout=60)


def test_prometheus_scrapes_the_daemon(live: Live) -> None:
    """Prometheus's only target is the daemon under job=driftd, and it is up."""
    targets = live.prometheus.targets()
    assert [t["labels"]["job"] for t in targets] == ["driftd"]
    assert targets[0]["health"] == "up", targets[0].get("lastError")


def test_the_scenario_drifts_in_west(live: Live) -> None:
    """The injected shift is firing in west, so the panels show live drift."""
    result = live.prometheus.query(
        f'driftd_drift_active{{model="{MODEL}", segment="west", feature="income"}} == 1'
    )["data"]["result"]
    assert result, "no drift alert firing for west/income"


@pytest.mark.parametrize("q", all_queries(), ids=lambda q: q.id)
def test_panel_query_returns_data(live: Live, q: Query) -> None:
    """The panel expression, variables substituted, evaluates and returns data."""
    expr = substitute(q.expr)
    answer = live.prometheus.query(expr)
    assert answer.get("status") == "success", f"{q.id}: {expr}\n{answer.get('error')}"
    assert answer["data"]["result"], f"{q.id}: no data for {expr}"


@pytest.mark.parametrize("v", all_variable_queries(), ids=lambda v: f"{v.dashboard}/${v.name}")
def test_variable_query_returns_values(live: Live, v: VariableQuery) -> None:
    """label_values, with the variables it chains substituted, lists the scenario's values."""
    params = {"match[]": substitute(v.selector)} if v.selector else {}
    answer = live.prometheus.api(f"label/{v.label}/values", **params)
    assert answer.get("status") == "success", answer.get("error")
    expected = {"model": MODEL, "segment": SEGMENT, "feature": "income"}[v.label]
    assert expected in answer["data"], f"{v.dashboard} ${v.name}: {answer['data']}"
