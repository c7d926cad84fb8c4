"""Slack incoming-webhook and generic JSON webhook sinks.

Both treat their URL as a secret (a Slack webhook URL *is* the credential): it never
appears in logs, metrics or errors. Status rules are those of every HTTP sink: 2xx
delivered; 408, 429 (with ``Retry-After``), 5xx and connection failures retriable;
other 4xx rejected for good.

The generic webhook posts :meth:`WebhookSink.body` as JSON. With an HMAC secret it
adds ``X-Driftd-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body bytes
under the secret; receivers verify it with :func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Final

import structlog

from monitor.alerts._http import check_status, post, register_secret, register_secret_url
from monitor.alerts.model import AlertAction, iso8601, render_link
from monitor.config import SlackSinkConfig, WebhookSinkConfig

__all__ = ["SIGNATURE_HEADER", "SlackSink", "WebhookSink", "sign", "verify_signature"]

SIGNATURE_HEADER: Final = "X-Driftd-Signature"
_SLACK_TEXT_LIMIT: Final = 3_000
_log = structlog.get_logger()


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class WebhookSink:
    """Posts each action as a JSON document, optionally HMAC-signed."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        hmac_secret: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._name = name
        self._url = url
        self._secret = hmac_secret.encode() if hmac_secret else None
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
        headers = {SIGNATURE_HEADER: sign(self._secret, raw)} if self._secret else {}
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
