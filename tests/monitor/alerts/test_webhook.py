"""Generic JSON webhook (HMAC-signed) and Slack incoming-webhook sinks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from monitor.alerts.routing import Router
from monitor.alerts.webhook import (
    SIGNATURE_HEADER,
    SlackSink,
    WebhookSink,
    sign,
    verify_signature,
)
from monitor.config import RouteConfig
from monitor.errors import AlertDeliveryError
from tests.monitor.alerts.helpers import action, transition
from tests.monitor.alerts.receivers import Receiver, receiver

SECRET = "hmac-s3cret-value"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver(validate=False, ok_status=200) as r:
        yield r


def test_webhook_signs_the_raw_body_with_hmac_sha256(hook: Receiver) -> None:
    """X-Driftd-Signature is sha256=<hex> of the raw body under the secret, and verifies."""
    WebhookSink("hook", hook.url, hmac_secret=SECRET).send(action("age"))
    (req,) = hook.requests
    header = req.headers[SIGNATURE_HEADER]
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET.encode(), req.raw, header)
    assert not verify_signature(b"wrong", req.raw, header)
    assert not verify_signature(SECRET.encode(), req.raw + b" ", header)
    assert not verify_signature(SECRET.encode(), req.raw, None)
    body = req.json()
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "driftd/fraud/eu/age/psi"
    assert body["details"]["window_size"] == 5000


def test_webhook_without_secret_sends_no_signature(hook: Receiver) -> None:
    """Without an HMAC secret the body is posted unsigned."""
    WebhookSink("hook", hook.url).send(action("age", "resolve"))
    (req,) = hook.requests
    assert SIGNATURE_HEADER not in req.headers
    assert req.json()["event_action"] == "resolve"


def test_sign_matches_a_known_vector() -> None:
    """sign() is HMAC-SHA256 (RFC 4231 test case 2)."""
    assert sign(b"Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


@pytest.mark.parametrize(("status", "retriable"), [(500, True), (429, True), (400, False)])
def test_webhook_status_rules(hook: Receiver, status: int, retriable: bool) -> None:
    """5xx and 429 are retriable, 400 is not."""
    hook.script([status])
    with capture_logs(), pytest.raises(AlertDeliveryError) as info:
        WebhookSink("hook", hook.url).send(action())
    assert info.value.retriable is retriable


def test_slack_message_has_text_and_blocks(hook: Receiver) -> None:
    """Slack gets a text fallback plus blocks with scores, features and the Grafana link."""
    (grouped,) = Router([RouteConfig(sinks=["s"], group_by_segment=True)]).route(
        [transition("age"), transition("amount")]
    )
    SlackSink("slack", hook.url, grafana_url="https://g.example/d?m={model}").send(grouped.action)
    body = json.loads(hook.requests[0].raw)
    assert "Drift in fraud/eu: 2 feature(s) firing" in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["section", "section", "context", "section"]
    assert "age (psi)" in body["blocks"][2]["elements"][0]["text"]
    assert "<https://g.example/d?m=fraud|Grafana>" in body["blocks"][3]["text"]["text"]
