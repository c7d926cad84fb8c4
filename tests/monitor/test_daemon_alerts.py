"""Alerts end to end: real Kafka -> the daemon -> real Alertmanager, PagerDuty and a webhook.

One drift scenario drives everything: the demo stream's ``west`` segment shifts, then
recovers. The daemon must page for it (Alertmanager shows the alert with its labels,
and Alertmanager's own webhook fires), resolve it after recovery, and deliver every
trigger and resolve to PagerDuty in order although PagerDuty answers 500 throughout:
its outage lasts until the whole scenario has run and the outbox's retry backoff has
reached its cap, then ends (no fixed wall-clock outage to sleep through).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.app import Daemon, make_results
from monitor.config import Settings
from monitor.engine.decision import dedup_key
from monitor.engine.pipeline import Pipeline
from monitor.ingest.demo_stream import DemoStream
from monitor.ingest.kafka.source import KafkaSource
from tests import alertmanager_server as am_server
from tests.alertmanager_server import Alertmanager, alertmanager_server, http_receiver
from tests.kafka_broker import create_topic, produce, unique_topic
from tests.monitor.alerts.helpers import ROUTING_KEY
from tests.monitor.alerts.receivers import Receiver, receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "credit-risk"  # the demo stream's events name this model
HMAC_SECRET = "hook-signing-secret"
RETRY_INITIAL_S, RETRY_MAX_S = 0.5, 4.0
# Refused attempts before PagerDuty comes back: with the delays 0.5, 1, 2, 4, 4 s (less
# up to half of each for jitter), the sixth attempt comes after the backoff hit its cap.
OUTAGE_MIN_REFUSALS = 6
SHIFT_AT, SHIFT_END, TOTAL = 14_000, 30_000, 52_000


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _settings(bootstrap: str, topic: str, am_url: str, pd_url: str, hook_url: str) -> Settings:
    return Settings(
        model=MODEL,
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": unique_topic("driftd-alerts-group"),
            "dead_letter_topic": None,
            "max_poll_records": 2_000,
            "poll_timeout_ms": 200,
        },
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"warmup_events": 6_000},  # type: ignore[arg-type]
        windows={"size_events": 2_000, "min_samples": 500},  # type: ignore[arg-type]
        metrics={"port": 0},  # type: ignore[arg-type]
        alerts={  # type: ignore[arg-type]
            "sinks": [
                {"type": "alertmanager", "name": "am", "url": am_url, "resend_interval_s": 5},
                {
                    "type": "pagerduty",
                    "name": "pd",
                    "routing_key": ROUTING_KEY,
                    "url": pd_url,
                    "grafana_url": "https://grafana.example/d/driftd?var-segment={segment}",
                },
                {"type": "webhook", "name": "hook", "url": hook_url, "hmac_secret": HMAC_SECRET},
            ],
            "routes": [{"sinks": ["am", "pd", "hook"]}],
            "retry": {"initial_s": RETRY_INITIAL_S, "max_s": RETRY_MAX_S},
            "shutdown_flush_s": 5.0,
        },
    )


def _active(am: Alertmanager) -> list[dict[str, Any]]:
    return [a for a in am.alerts(model=MODEL) if a["status"]["state"] == "active"]


@pytest.fixture
def services() -> Iterator[tuple[Alertmanager, Any, Receiver, Receiver]]:
    """Alertmanager (notifying a local webhook), a PagerDuty receiver and a plain webhook."""
    am_server.find_alertmanager()
    with (
        http_receiver() as am_hook,
        alertmanager_server(am_hook.url + "/hook") as am,
        receiver() as pd,
        receiver(validate=False, ok_status=200) as hook,
    ):
        yield am, am_hook, pd, hook


def test_drift_pages_every_sink_and_resolves_after_recovery(
    kafka_bootstrap: str,
    services: tuple[Alertmanager, Any, Receiver, Receiver],
) -> None:
    """West's shift fires in Alertmanager and resolves after recovery; PagerDuty loses nothing."""
    am, am_hook, pd, hook = services
    topic = unique_topic("driftd-alerts-in")
    create_topic(kafka_bootstrap, topic, partitions=1)
    stream = DemoStream(
        feature_shift_at=SHIFT_AT, feature_shift_end=SHIFT_END, prediction_shift_at=10**9
    )
    stream.start_ts = time.time() - TOTAL / stream.rate
    drifting = [orjson.dumps(e) for e in stream.next_batch(SHIFT_END).events()]
    recovered = [orjson.dumps(e) for e in stream.next_batch(TOTAL - SHIFT_END).events()]

    settings = _settings(kafka_bootstrap, topic, am.url, pd.url, hook.url + "/hook")
    registry = CollectorRegistry()
    daemon = Daemon(
        settings,
        KafkaSource(settings.kafka),
        Pipeline(settings, None, make_results(settings)),
        registry=registry,
    )
    pd.down = True  # PagerDuty answers 500 until the scenario is over
    produce(kafka_bootstrap, topic, drifting)
    thread = threading.Thread(target=daemon.run, daemon=True)
    with capture_logs() as logs:
        thread.start()
        try:
            firing = _wait("west alerts active in Alertmanager", lambda: _active(am))
            assert {a["labels"]["segment"] for a in firing} == {"west"}
            income = next(a for a in firing if a["labels"]["feature"] == "income")
            assert income["labels"] == {
                "alertname": "DriftDetected",
                "model": MODEL,
                "segment": "west",
                "feature": "income",
                "method": income["labels"]["method"],
                "severity": "warning",
            }
            assert income["labels"]["method"] in {"psi", "ks"}
            assert "summary" in income["annotations"] and "description" in income["annotations"]
            _wait(
                "Alertmanager's webhook notification of the firing alert",
                lambda: any(p["status"] == "firing" for p in am_hook.notifications(model=MODEL)),
            )

            produce(kafka_bootstrap, topic, recovered)
            _wait("the alerts to resolve in Alertmanager", lambda: not _active(am))
            _wait(
                "Alertmanager's webhook notification of the resolve",
                lambda: any(p["status"] == "resolved" for p in am_hook.notifications(model=MODEL)),
            )
            _wait("all events consumed", lambda: daemon.stats.records == TOTAL, 60)
            _wait(
                f"PagerDuty to refuse {OUTAGE_MIN_REFUSALS} attempts",
                lambda: len(pd.requests) >= OUTAGE_MIN_REFUSALS,
                60,
            )
            assert pd.accepted == []  # the whole scenario ran inside the outage
            pd.down = False
            transitions = list(daemon.stats.transitions)
            _wait("PagerDuty to catch up", lambda: len(pd.accepted) >= len(transitions), 60)
        finally:
            daemon.should_exit.set()
            thread.join(timeout=60)
    assert not thread.is_alive()

    # Every transition reached PagerDuty exactly once, in order, despite the outage.
    expected = [
        ("trigger" if t.rsplit(":", 1)[1] == "firing" else "resolve", t.rsplit(":", 1)[0])
        for t in transitions
    ]
    assert any(a == "resolve" for a, _ in expected)
    assert pd.actions() == expected
    assert pd.violations == []
    assert all("/west/" in key for _, key in expected)
    retries = registry.get_sample_value(
        "driftd_alerts_total", {"sink": "pd", "action": "trigger", "outcome": "retry"}
    )
    assert retries is not None and retries >= 1

    # The page explains itself: the top drifting bins of income, with shares.
    key = dedup_key(MODEL, "west", "income", "psi")
    trigger = next(e for e in pd.accepted if e["dedup_key"] == key)
    details = trigger["payload"]["custom_details"]
    top = details["top_bins"]
    assert 1 <= len(top) <= 5 and top[0]["psi_contribution"] > 0
    assert details["reference_version"] and details["window_size"] >= 500
    assert trigger["links"][0]["href"].endswith("var-segment=west")

    # The generic webhook got the same sequence, each body signed with HMAC-SHA256
    # together with its send time (t=<unix>,v1=<hex of "t." + body>).
    bodies = [(r.json()["event_action"], r.json()["dedup_key"]) for r in hook.requests]
    assert bodies == expected
    for r in hook.requests:
        sent = r.headers["X-Driftd-Signature"].split(",")[0].removeprefix("t=")
        digest = hmac.new(HMAC_SECRET.encode(), sent.encode() + b"." + r.raw, hashlib.sha256)
        assert r.headers["X-Driftd-Signature"] == f"t={sent},v1={digest.hexdigest()}"
        assert abs(int(sent) - time.time()) < 3_600

    # Secrets never reach the logs.
    rendered = repr(logs)
    assert ROUTING_KEY not in rendered and HMAC_SECRET not in rendered
