"""PagerDuty Events API v2 sink.

Each action becomes one ``POST {url}`` (``https://events.pagerduty.com/v2/enqueue``)::

    {"routing_key": ..., "event_action": "trigger" | "resolve",
     "dedup_key": "driftd/<model>/<segment>/<feature>/<method>",
     "payload": {"summary" (<= 1024 chars), "source", "severity", "timestamp",
                 "component" (model), "group" (segment), "class" (method),
                 "custom_details": {score, threshold, p_value, window_size,
                                    reference_version, ...}},
     "links": [{"href": <templated Grafana URL>, "text": "Grafana"}]}

Dedup keys over 255 characters are shortened deterministically
(:func:`pagerduty_dedup_key`). A resolve carries only routing key, action and dedup
key.

Outcomes: 202 (any 2xx) is delivered. 429 and 5xx (also 408 and connection
failures) raise a retriable :class:`~monitor.errors.AlertDeliveryError` carrying
the ``Retry-After`` when given. 400 and other 4xx raise a permanent one, logged
with status and body.

A local token bucket per routing key (shared by the sinks using that key) keeps the
rate under 120 events/min: without a token the sink raises a retriable
``rate_limited`` error whose ``retry_after`` is the wait for the next token, so the
outbox waits, in order.

The routing key never appears in logs, metrics or errors.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import structlog

from monitor.config import PAGERDUTY_EVENTS_URL, PagerDutySinkConfig
from monitor.emit.alerts._http import check_status, post, redact, register_secret
from monitor.emit.alerts.model import AlertAction, iso8601, render_link
from monitor.errors import AlertDeliveryError

__all__ = [
    "DEDUP_KEY_LIMIT",
    "SUMMARY_LIMIT",
    "PagerDutySink",
    "TokenBucket",
    "bucket_for",
    "pagerduty_dedup_key",
]

SUMMARY_LIMIT: Final = 1024
DEDUP_KEY_LIMIT: Final = 255
_log = structlog.get_logger()


def pagerduty_dedup_key(key: str) -> str:
    """``key``, or when longer than 255 characters its prefix plus a hash of the whole.

    Deterministic, so a resolve always names the incident its trigger opened.
    """
    if len(key) <= DEDUP_KEY_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return key[: DEDUP_KEY_LIMIT - len(digest) - 1] + "~" + digest


class TokenBucket:
    """``rate_per_minute`` tokens a minute, at most ``burst`` saved up; thread-safe."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be > 0 and burst >= 1")
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token: 0.0 on success, else the seconds until one is available."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


_buckets: dict[str, TokenBucket] = {}
_buckets_lock = threading.Lock()


def bucket_for(routing_key: str, rate_per_minute: float, burst: int) -> TokenBucket:
    """The process-wide bucket of ``routing_key`` (keyed by its hash), created on first use."""
    digest = hashlib.sha256(routing_key.encode()).hexdigest()
    with _buckets_lock:
        bucket = _buckets.get(digest)
        if bucket is None:
            bucket = _buckets[digest] = TokenBucket(rate_per_minute, burst)
        return bucket


class PagerDutySink:
    """Sends actions to one PagerDuty integration (routing key)."""

    def __init__(
        self,
        name: str,
        routing_key: str,
        *,
        url: str = PAGERDUTY_EVENTS_URL,
        timeout_s: float = 5.0,
        source: str = "driftd",
        grafana_url: str | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        if not routing_key:
            raise ValueError("routing_key must not be empty")
        self._name = name
        self._routing_key = routing_key
        register_secret(routing_key)
        self.url = url
        self.timeout_s = timeout_s
        self.source = source
        self.grafana_url = grafana_url
        self.bucket = bucket if bucket is not None else TokenBucket(100.0, 10)

    @classmethod
    def from_config(cls, cfg: PagerDutySinkConfig) -> PagerDutySink:
        """The sink of one ``alerts.sinks`` entry; the bucket is shared per routing key."""
        key = cfg.routing_key.get().get_secret_value()
        return cls(
            cfg.name,
            key,
            url=cfg.url,
            timeout_s=cfg.timeout_s,
            source=cfg.source,
            grafana_url=cfg.grafana_url,
            bucket=bucket_for(key, cfg.rate_per_minute, cfg.burst),
        )

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    def __repr__(self) -> str:
        return f"PagerDutySink(name={self._name!r})"

    def event(self, action: AlertAction) -> dict[str, Any]:
        """The Events v2 body of ``action``."""
        body: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": action.action,
            "dedup_key": pagerduty_dedup_key(action.dedup_key),
        }
        if action.action == "resolve":
            return body
        summary = action.summary()
        if len(summary) > SUMMARY_LIMIT:
            summary = summary[: SUMMARY_LIMIT - 1] + "…"
        body["payload"] = {
            "summary": summary,
            "source": self.source,
            "severity": action.severity,
            "timestamp": iso8601(action.window_end_ts),
            "component": action.model,
            "group": action.segment,
            "class": action.method,
            "custom_details": action.details(),
        }
        body["client"] = "driftd"
        if self.grafana_url:
            body["links"] = [{"href": render_link(self.grafana_url, action), "text": "Grafana"}]
        return body

    def send(self, action: AlertAction) -> None:
        """Post ``action``; raises ``AlertDeliveryError`` (see the module docstring)."""
        wait = self.bucket.take()
        if wait > 0:
            raise AlertDeliveryError(
                self._name,
                f"local rate limit, next token in {wait:.2f} s",
                retriable=True,
                retry_after=wait,
                reason="rate_limited",
            )
        raw = json.dumps(self.event(action), allow_nan=False).encode()
        response = post(self._name, self.url, raw, {}, self.timeout_s)
        if response.status >= 400 and response.status not in (408, 429) and response.status < 500:
            _log.error(
                "pagerduty_rejected",
                sink=self._name,
                status=response.status,
                body=redact(response.body, [self._routing_key]),
                action=action.action,
                dedup_key=action.dedup_key,
            )
        check_status(self._name, response, [self._routing_key])
        _log.debug(
            "pagerduty_delivered",
            sink=self._name,
            status=response.status,
            action=action.action,
            dedup_key=action.dedup_key,
        )
