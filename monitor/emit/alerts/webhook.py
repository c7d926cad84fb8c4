"""Slack incoming-webhook and generic JSON webhook sinks.

Both treat their URL as a secret (a Slack webhook URL *is* the credential): it never
appears in logs, metrics or errors. Status rules are those of every HTTP sink: 2xx
delivered; 408, 429 (with ``Retry-After``), 5xx and connection failures retriable;
other 4xx rejected for good.

The generic webhook posts :meth:`WebhookSink.body` as JSON. With an HMAC secret it
adds ``X-Driftd-Signature: t=<unix seconds>,v1=<hex>``, where the hex is the
HMAC-SHA256 under the secret of ``"<t>."`` followed by the raw body bytes (the scheme
Stripe uses). The timestamp is signed with the body, so a receiver that refuses a
``t`` older than a few minutes (:func:`verify_signature`, 5 minutes by default) cannot
be fed a captured request again later. Each attempt, retries included, is signed
afresh at its own send time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, Final

import structlog

from monitor.config import SlackSinkConfig, WebhookSinkConfig
from monitor.emit.alerts._http import check_status, post, register_secret, register_secret_url
from monitor.emit.alerts.model import AlertAction, iso8601, render_link

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE_S",
    "SlackSink",
    "WebhookSink",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-Driftd-Signature"
SIGNATURE_TOLERANCE_S: Final = 300.0
"""How far a signature's timestamp may lie from the receiver's clock (either way)."""
_SLACK_TEXT_LIMIT: Final = 3_000
_log = structlog.get_logger()


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def _is_unix_seconds(text: str) -> bool:
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header value of ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: bytes,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Whether ``header`` signs ``body`` under ``secret`` at a time within ``tolerance_s``
    of ``now`` (default: the current time). Several ``v1`` entries may be given (a key
    rotation); one matching is enough. Digests are compared in constant time."""
    if header is None:
        return False
    timestamps: list[str] = []
    digests: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            digests.append(value)
    # Exactly one plain decimal timestamp of sane length: int() alone would also take
    # "+1_0", and refuses (raises on) strings of thousands of digits.
    if len(timestamps) != 1 or not _is_unix_seconds(timestamps[0]):
        return False
    timestamp = int(timestamps[0])
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    # Every candidate is compared, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(expected, digest) for digest in digests]
    return any(matches)


class WebhookSink:
    """Posts each action as a JSON document, optionally HMAC-signed."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        hmac_secret: str | None = None,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._url = url
        self._secret = hmac_secret.encode() if hmac_secret else None
        self._clock = clock
        register_secret_url(url)
        if hmac_secret:
            register_secret(hmac_secret)
        self.timeout_s = timeout_s

    @classmethod
    def from_config(cls, cfg: WebhookSinkConfig) -> WebhookSink:
        """The sink of one ``alerts.sinks`` entry."""
        secret = cfg.hmac_secret.get().get_secret_value() if cfg.hmac_secret else None
        return cls(
            cfg.name,
            cfg.url.get().get_secret_value(),
            hmac_secret=secret,
            timeout_s=cfg.timeout_s,
        )

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    def __repr__(self) -> str:
        return f"WebhookSink(name={self._name!r})"

    @staticmethod
    def body(action: AlertAction) -> dict[str, Any]:
        """The JSON document of ``action``."""
        return {
            "version": 1,
            "event_action": action.action,
            "dedup_key": action.dedup_key,
            "severity": action.severity,
            "summary": action.summary(),
            "timestamp": iso8601(action.window_end_ts),
            "details": action.details(),
        }

    def send(self, action: AlertAction) -> None:
        """Post ``action``; raises ``AlertDeliveryError`` on failure."""
        raw = json.dumps(self.body(action), allow_nan=False, sort_keys=True).encode()
        headers = {}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, raw, int(self._clock()))
        secrets = [self._url] + ([self._secret.decode()] if self._secret else [])
        response = post(self._name, self._url, raw, headers, self.timeout_s)
        check_status(self._name, response, secrets)
        _log.debug("webhook_delivered", sink=self._name, status=response.status)


class SlackSink:
    """Posts each action to a Slack incoming webhook as ``text`` plus ``blocks``."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout_s: float = 5.0,
        grafana_url: str | None = None,
    ) -> None:
        self._name = name
        self._url = url
        self.timeout_s = timeout_s
        self.grafana_url = grafana_url
        register_secret_url(url)

    @classmethod
    def from_config(cls, cfg: SlackSinkConfig) -> SlackSink:
        """The sink of one ``alerts.sinks`` entry."""
        return cls(
            cfg.name,
            cfg.url.get().get_secret_value(),
            timeout_s=cfg.timeout_s,
            grafana_url=cfg.grafana_url,
        )

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    def __repr__(self) -> str:
        return f"SlackSink(name={self._name!r})"

    def body(self, action: AlertAction) -> dict[str, Any]:
        """The Slack message of ``action``."""
        icon = ":rotating_light:" if action.action == "trigger" else ":white_check_mark:"
        text = f"{icon} [{action.severity}] {action.summary()}"[:_SLACK_TEXT_LIMIT]
        d = action.details()
        fields = [
            f"*Score*\n{d['score']}",
            f"*Threshold*\n{d['threshold']}",
            f"*p-value*\n{d['p_value']}",
            f"*Window*\n{action.n} samples, ends {d['window_end']}",
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f} for f in fields],
            },
        ]
        if action.members:
            names = ", ".join(f"{m.feature} ({m.method})" for m in action.members)
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"Features: {names}"[:2_000]}],
                }
            )
        if self.grafana_url:
            link = render_link(self.grafana_url, action)
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Grafana>"}}
            )
        return {"text": text, "blocks": blocks}

    def send(self, action: AlertAction) -> None:
        """Post ``action``; raises ``AlertDeliveryError`` on failure."""
        raw = json.dumps(self.body(action), allow_nan=False).encode()
        response = post(self._name, self._url, raw, {}, self.timeout_s)
        check_status(self._name, response, [self._url])
        _log.debug("slack_delivered", sink=self._name, status=response.status)
