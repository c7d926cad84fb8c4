"""With ``checkpoint.store: kafka`` the alert state survives a restart, as with ``store: file``.

A daemon reads a topic, then an alert is routed that its sink cannot deliver (a
queued action) into a per-segment group (an open group). The daemon stops; a new
daemon of the same group starts on the same checkpoint topic and finds both again.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import Daemon
from monitor.config import Settings
from monitor.emit.alerts.model import AlertAction
from monitor.emit.alerts.service import AlertService
from monitor.engine.decision import Transition, dedup_key
from monitor.errors import AlertDeliveryError
from monitor.ingest.demo_stream import DemoStream
from monitor.wiring import build_daemon
from tests.kafka_broker import create_topic, produce, unique_topic
from tests.monitor.scenarios import write_reference

pytestmark = pytest.mark.integration

MODEL = "credit-risk"
EVENTS = 3_000


class StuckSink:
    """A sink whose endpoint is down: every delivery fails, retriably."""

    name = "stuck"

    def send(self, action: AlertAction) -> None:
        """Never delivers."""
        raise AlertDeliveryError(self.name, "endpoint down", retriable=True)


def _settings(bootstrap: str, topic: str, group: str, reference: Path) -> Settings:
    return Settings(
        model=MODEL,
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            "dead_letter_topic": None,
            "poll_timeout_ms": 200,
            "commit_interval_ms": 0,
        },
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"path": reference},  # type: ignore[arg-type]
        windows={"size_events": 3_000, "min_samples": 500},  # type: ignore[arg-type]
        metrics={"port": 0},  # type: ignore[arg-type]
        checkpoint={"store": "kafka", "topic": f"{group}-checkpoints"},  # type: ignore[arg-type]
        alerts={  # type: ignore[arg-type]
            "sinks": [{"type": "log", "name": "stuck"}],
            "routes": [{"sinks": ["stuck"], "group_by_segment": True}],
            "retry": {"initial_s": 3600, "max_s": 3600},
            "shutdown_flush_s": 0,
        },
    )


def _firing(segment: str) -> Transition:
    return Transition(
        model=MODEL,
        segment=segment,
        column="income",
        method="psi",
        previous="pending",
        current="firing",
        score=0.9,
        threshold=0.2,
        clear=0.1,
        p_value=math.nan,
        n=3_000,
        window_end_ts=time.time(),
        dedup_key=dedup_key(MODEL, segment, "income", "psi"),
        consecutive=3,
    )


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    """A one-partition topic holding a few thousand events, and a group to read it."""
    topic = unique_topic("driftd-alert-state")
    create_topic(kafka_bootstrap, topic, partitions=1)
    stream = DemoStream(prediction_shift_at=10**9)
    stream.start_ts = time.time() - EVENTS / stream.rate
    produce(kafka_bootstrap, topic, [orjson.dumps(e) for e in stream.next_batch(EVENTS).events()])
    reference = tmp_path / "reference.json"
    write_reference(reference)
    yield _settings(kafka_bootstrap, topic, unique_topic("driftd-alert-state-group"), reference)


def _start(settings: Settings) -> tuple[Daemon, AlertService, threading.Thread]:
    registry = CollectorRegistry()
    alerts = AlertService(settings.alerts, registry, sinks=[StuckSink()])
    daemon = build_daemon(settings, registry=registry, alerts=alerts, serve_metrics=False)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return daemon, alerts, thread


def _wait(what: str, check: Any, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _stop(daemon: Daemon, thread: threading.Thread) -> None:
    daemon.should_exit.set()
    thread.join(timeout=60)
    assert not thread.is_alive()


def test_queued_action_and_open_group_survive_a_restart_with_the_kafka_store(
    settings: Settings,
) -> None:
    """An undelivered action and its open group are back after a restart (store: kafka)."""
    first, alerts, thread = _start(settings)
    try:
        _wait("the first daemon to read the topic", lambda: first.stats.records >= EVENTS)
        assert alerts.submit([_firing("west")]) == 1
        before = alerts.state_dict()  # what the checkpoint at shutdown holds
    finally:
        _stop(first, thread)
    queued = [t["dedup_key"] for a in before["pending"]["stuck"] for t in a["transitions"]]
    assert queued == [_firing("west").dedup_key]
    assert [g["segment"] for g in before["groups"]] == ["west"]

    second, restored, thread = _start(settings)
    try:
        _wait("the queued action to be restored", lambda: restored.state_dict()["pending"]["stuck"])
        after = restored.state_dict()
    finally:
        _stop(second, thread)
    assert after["pending"] == before["pending"]
    assert after["groups"] == before["groups"]
    assert second.stats.records == 0  # the offsets were committed with that state
