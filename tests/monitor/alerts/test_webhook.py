"""Generic JSON webhook (HMAC-signed with a timestamp) and Slack incoming-webhook sinks."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from monitor.config import RouteConfig
from monitor.emit.alerts.routing import Router
from monitor.emit.alerts.webhook import (
    SIGNATURE_HEADER,
    SlackSink,
    WebhookSink,
    sign,
    verify_signature,
)
from monitor.errors import AlertDeliveryError
from tests.monitor.alerts.helpers import action, transition
from tests.monitor.alerts.receivers import Receiver, receiver, reference_verify

SECRET = "hmac-s3cret-value"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver(validate=False, ok_status=200) as r:
        yield r


def test_webhook_signs_timestamp_and_raw_body_with_hmac_sha256(hook: Receiver) -> None:
    """X-Driftd-Signature is t=<unix>,v1=<hex HMAC-SHA256 of "t." + body>, and verifies."""
    now = 1_780_000_000.7
    WebhookSink("hook", hook.url, hmac_secret=SECRET, clock=lambda: now).send(action("age"))
    (req,) = hook.requests
    header = req.headers[SIGNATURE_HEADER]
    assert re.fullmatch(r"t=1780000000,v1=[0-9a-f]{64}", header), header
    expected = hmac.new(SECRET.encode(), b"1780000000." + req.raw, hashlib.sha256).hexdigest()
    assert header.endswith(expected)
    for verify in (verify_signature, reference_verify):
        assert verify(SECRET.encode(), req.raw, header, now=now)
        assert not verify(b"wrong", req.raw, header, now=now)
        assert not verify(SECRET.encode(), req.raw + b" ", header, now=now)
        assert not verify(SECRET.encode(), req.raw, None, now=now)
    body = req.json()
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "driftd/fraud/eu/age/psi"
    assert body["details"]["window_size"] == 5000


def test_receiver_refuses_a_replayed_old_request_and_a_moved_timestamp() -> None:
    """A request captured 10 minutes ago is refused (401) when replayed; so is a new t."""
    sent_at = time.time() - 600
    with receiver(validate=False, ok_status=200) as capture:
        WebhookSink("hook", capture.url, hmac_secret=SECRET, clock=lambda: sent_at).send(action())
    (old,) = capture.requests
    header = old.headers[SIGNATURE_HEADER]
    assert not reference_verify(SECRET.encode(), old.raw, header)
    assert reference_verify(SECRET.encode(), old.raw, header, now=sent_at + 299)
    assert not verify_signature(SECRET.encode(), old.raw, header)
    assert verify_signature(SECRET.encode(), old.raw, header, now=sent_at + 299)
    assert not verify_signature(SECRET.encode(), old.raw, header, now=sent_at + 301)
    # The timestamp is signed: moving it forward to look fresh breaks the signature.
    fresh = f"t={int(time.time())}," + header.split(",", 1)[1]
    assert not verify_signature(SECRET.encode(), old.raw, fresh)
    assert not reference_verify(SECRET.encode(), old.raw, fresh)
    with receiver(validate=False, ok_status=200, hmac_secret=SECRET) as strict:
        for signature in (header, fresh):
            replay = urllib.request.Request(
                strict.url,
                old.raw,
                {SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(replay, timeout=5)
            info.value.close()
            assert info.value.code == 401
        assert strict.accepted == [] and len(strict.violations) == 2
        # The same sink, sending now, is accepted.
        WebhookSink("hook", strict.url, hmac_secret=SECRET).send(action())
        assert len(strict.accepted) == 1


@pytest.mark.parametrize(
    "header",
    [
        "",
        "sha256=" + "0" * 64,
        "v1=" + "0" * 64,
        "t=,v1=" + "0" * 64,
        "t=+1780000000,v1=" + "0" * 64,
        "t=1780000000,t=1780000000,v1=" + "0" * 64,
        "t=" + "9" * 5000 + ",v1=" + "0" * 64,
        "t=1780000000",
    ],
)
def test_malformed_signatures_never_verify(header: str) -> None:
    """Headers without exactly one plain timestamp and a v1 digest are refused, never raised on."""
    assert not verify_signature(SECRET.encode(), b"{}", header, now=1_780_000_000)


def test_verify_accepts_any_of_several_v1_digests() -> None:
    """During a key rotation a header may carry one v1 per key; one matching is enough."""
    good = sign(SECRET.encode(), b"{}", 1_780_000_000)
    other = sign(b"old-key", b"{}", 1_780_000_000).split(",")[1]
    assert verify_signature(SECRET.encode(), b"{}", f"{good},{other}", now=1_780_000_000)
    assert verify_signature(b"old-key", b"{}", f"{good},{other}", now=1_780_000_000)


def _documented_verify() -> Callable[[bytes, bytes, str | None], bool]:
    """The ``verify`` function of docs/alerts.md's webhook section, as a receiver copies it."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "alerts.md").read_text("utf-8")
    section = page[page.index("### Webhook") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    namespace: dict[str, Any] = {}
    exec(code[: code.index("```")], namespace)  # our own docs page, run as a receiver would
    verify: Callable[[bytes, bytes, str | None], bool] = namespace["verify"]
    return verify


def test_documented_verifier_accepts_a_fresh_request_and_refuses_a_replay(hook: Receiver) -> None:
    """docs/alerts.md's snippet verifies what the sink sends now, not what it sent 10 min ago."""
    verify = _documented_verify()
    WebhookSink("hook", hook.url, hmac_secret=SECRET).send(action())
    sent_at = time.time() - 600
    WebhookSink("hook", hook.url, hmac_secret=SECRET, clock=lambda: sent_at).send(action())
    fresh, old = hook.requests
    assert verify(SECRET.encode(), fresh.raw, fresh.headers[SIGNATURE_HEADER])
    assert not verify(b"other", fresh.raw, fresh.headers[SIGNATURE_HEADER])
    assert not verify(SECRET.encode(), old.raw, old.headers[SIGNATURE_HEADER])
    assert not verify(SECRET.encode(), fresh.raw, None)


def test_webhook_without_secret_sends_no_signature(hook: Receiver) -> None:
    """Without an HMAC secret the body is posted unsigned."""
    WebhookSink("hook", hook.url).send(action("age", "resolve"))
    (req,) = hook.requests
    assert SIGNATURE_HEADER not in req.headers
    assert req.json()["event_action"] == "resolve"


def test_sign_matches_a_known_vector() -> None:
    """sign() is HMAC-SHA256 of "<t>." + body (digest computed with openssl dgst -hmac)."""
    assert sign(b"Jefe", b"what do ya want for nothing?", 1_700_000_000) == (
        "t=1700000000,v1=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e"
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
