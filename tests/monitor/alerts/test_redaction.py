"""Secrets (routing keys, webhook URLs, HMAC secrets) never reach logs, metrics or errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from monitor.config import AlertsConfig, Settings, redacted
from monitor.emit.alerts.model import Sink
from monitor.emit.alerts.outbox import AlertOutbox
from monitor.emit.alerts.pagerduty import PagerDutySink, TokenBucket
from monitor.emit.alerts.service import AlertService, build_sink
from monitor.emit.alerts.webhook import SlackSink, WebhookSink
from monitor.errors import AlertDeliveryError
from tests.monitor.alerts.helpers import FAST, ROUTING_KEY, action, transition
from tests.monitor.alerts.receivers import Receiver, receiver

SLACK_TOKEN = "T000SLACK/B000HOOK/XXXXsecrettokenXXXX"
HMAC_SECRET = "hmac-very-secret-42"


@pytest.fixture
def server() -> Iterator[Receiver]:
    with receiver(validate=False) as r:
        yield r


def secrets_in(text: str) -> list[str]:
    return [s for s in (ROUTING_KEY, SLACK_TOKEN, HMAC_SECRET) if s in text]


def test_no_secret_in_logs_metrics_or_errors_under_failures(server: Receiver) -> None:
    """400s echoing the key, 500s and refused connections leak no secret anywhere."""
    registry = CollectorRegistry()
    slack_url = server.url.replace("/v2/enqueue", "/services/" + SLACK_TOKEN)
    hook_url = server.url + "?token=" + HMAC_SECRET
    sinks: list[Sink] = [
        PagerDutySink("pd", ROUTING_KEY, url=server.url, bucket=TokenBucket(1e5, 100)),
        SlackSink("slack", slack_url),
        WebhookSink("hook", hook_url, hmac_secret=HMAC_SECRET),
    ]
    # Every receiver answer echoes every secret back, as a careless server might.
    server.error_body = json.dumps({"echo": [ROUTING_KEY, slack_url, hook_url, HMAC_SECRET]})
    errors: list[str] = []
    with capture_logs() as logs:
        for sink in sinks:
            for status in (400, 500, 429):
                server.script([status])
                with pytest.raises(AlertDeliveryError) as info:
                    sink.send(action())
                errors += [str(info.value), repr(info.value), info.value.message]
        outbox = AlertOutbox(sinks, registry, backoff=FAST)
        outbox.start()
        server.script([400, 400, 400, 500, 500, 500])
        outbox.enqueue(action("x"))
        assert outbox.close(5.0)
        dead: list[Sink] = [
            PagerDutySink("pd", ROUTING_KEY, url="http://127.0.0.1:9/", timeout_s=0.5),
            SlackSink("slack", "http://127.0.0.1:9/services/" + SLACK_TOKEN, timeout_s=0.5),
        ]
        for sink in dead:
            with pytest.raises(AlertDeliveryError) as info:
                sink.send(action())
            assert info.value.retriable
            assert info.value.__cause__ is None and info.value.__suppress_context__
            errors += [str(info.value), repr(info.value)]
    assert any(e["event"] == "pagerduty_rejected" for e in logs)
    assert any(e["event"] == "alert_rejected" for e in logs)
    assert secrets_in(repr(logs)) == []
    assert secrets_in("\n".join(errors)) == []
    assert secrets_in(generate_latest(registry).decode()) == []
    assert secrets_in(" ".join(repr(s) for s in sinks)) == []


def test_config_dump_masks_secrets_from_value_file_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redacted() shows secrets masked, and file/env secrets only by their name."""
    key_file = tmp_path / "pd.key"
    key_file.write_text(ROUTING_KEY + "\n")
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.com/services/" + SLACK_TOKEN)
    settings = Settings.model_validate(
        {
            "alerts": {
                "sinks": [
                    {"type": "pagerduty", "name": "pd", "routing_key": {"file": str(key_file)}},
                    {"type": "slack", "name": "slack", "url": {"env": "SLACK_URL"}},
                    {
                        "type": "webhook",
                        "name": "hook",
                        "url": "https://example.com/hook",
                        "hmac_secret": HMAC_SECRET,
                    },
                ],
                "routes": [{"sinks": ["pd", "slack", "hook"]}],
            }
        }
    )
    dump = json.dumps(redacted(settings))
    assert secrets_in(dump) == []
    assert secrets_in(repr(settings)) == []
    assert secrets_in(str(settings)) == []
    pd = settings.alerts.sinks[0]
    assert pd.type == "pagerduty"
    assert pd.routing_key.get().get_secret_value() == ROUTING_KEY
    slack = build_sink(settings.alerts.sinks[1])
    assert secrets_in(repr(slack)) == []


def test_service_logs_carry_no_secret_on_success(server: Receiver) -> None:
    """A normal trigger/resolve cycle through every sink type logs no secret."""
    cfg = AlertsConfig.model_validate(
        {
            "sinks": [
                {"type": "log", "name": "log"},
                {"type": "pagerduty", "name": "pd", "routing_key": ROUTING_KEY, "url": server.url},
                {"type": "webhook", "name": "hook", "url": server.url, "hmac_secret": HMAC_SECRET},
            ],
            "routes": [{"sinks": ["log", "pd", "hook"]}],
        }
    )
    registry = CollectorRegistry()
    service = AlertService(cfg, registry)
    with capture_logs() as logs:
        service.start()
        service.submit([transition("age"), transition("age", current="resolved")])
        assert service.close(5.0)
    assert len(server.requests) == 4
    assert {e["event"] for e in logs} >= {"alert_trigger", "alert_resolve"}
    assert secrets_in(repr(logs)) == []
    assert secrets_in(generate_latest(registry).decode()) == []
