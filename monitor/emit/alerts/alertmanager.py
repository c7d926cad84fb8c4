"""Alertmanager API v2 sink: decision transitions as Alertmanager alerts.

A firing :class:`~monitor.engine.decision.Transition` becomes one alert posted to
``POST {url}/api/v2/alerts`` (a JSON list) with

- labels ``alertname`` (``DriftDetected``, or ``ConceptDrift`` for ``adwin``),
  ``model``, ``segment``, ``feature`` (the transition's column), ``method`` and
  ``severity``;
- annotations ``summary``, ``description``, ``dedup_key`` and, when configured,
  ``runbook_url``;
- ``startsAt`` the window end (event time) of the firing transition, never later
  than now, and ``endsAt`` now + ``expire_after_s``.

Alertmanager resolves an alert by itself once its ``endsAt`` passes, so the sink
keeps the set of firing alerts and re-posts them every ``resend_interval_s``
(:meth:`AlertmanagerSink.resend_due` / :meth:`AlertmanagerSink.resend`), pushing
``endsAt`` forward each time; ``expire_after_s`` defaults to four resend intervals,
as Prometheus does, so a dead driftd stops paging on its own. A resolved transition
posts the same labels with ``endsAt`` = now and leaves the firing set.

Delivery outcomes: :meth:`AlertmanagerSink.deliver` returns True when Alertmanager
accepted the alerts (2xx), and False when it rejected them for good (a 4xx other
than 408 and 429: the request is wrong and a retry would be too); the rejection is
logged with the response body. Connection errors, timeouts, 408, 429 and 5xx raise
:class:`AlertmanagerUnavailableError`, which is retriable: the caller (the outbox)
retries the same transitions later, and re-posting is idempotent because
Alertmanager merges alerts by their label set.

The URL may carry credentials (``https://user:pass@host``); they are sent as HTTP
basic auth and never appear in logs or errors. Standard library HTTP only.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from typing import Any, Final

import structlog

from monitor.engine.decision import Transition
from monitor.errors import DriftdError

__all__ = [
    "ALERTS_PATH",
    "AlertmanagerSink",
    "AlertmanagerUnavailableError",
    "alertname_for",
]

ALERTS_PATH: Final = "/api/v2/alerts"
_BODY_LOG_LIMIT: Final = 2000
_RETRIABLE_4XX: Final = frozenset({408, 429})

_log = structlog.get_logger()


class AlertmanagerUnavailableError(DriftdError):
    """Alertmanager could not take the alerts now (connection error, timeout, 408/429/5xx).

    Always retriable; ``status`` is the HTTP status, or None when no response came.
    ``url`` is the endpoint with any credentials removed.
    """

    retriable: Final = True

    def __init__(self, url: str, status: int | None, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.status = status
        self.message = message


def alertname_for(method: str) -> str:
    """The ``alertname`` label of a drift method: ADWIN watches the model's errors."""
    return "ConceptDrift" if method == "adwin" else "DriftDetected"


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _split_credentials(url: str) -> tuple[str, str | None]:
    """(the URL without user info, a basic-auth header value or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Never echo the URL itself: it may hold credentials.
        raise ValueError("Alertmanager url must be an absolute http(s) URL")
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return clean, f"Basic {token}"


@dataclass
class _Firing:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    last_sent: float | None


class AlertmanagerSink:
    """Posts transitions to one Alertmanager and keeps its firing alerts alive.

    Thread-safe: the outbox worker may call :meth:`deliver` and :meth:`resend` while
    another thread reads :meth:`firing`.
    """

    name: Final = "alertmanager"

    def __init__(
        self,
        url: str,
        *,
        resend_interval_s: float = 60.0,
        timeout_s: float = 5.0,
        runbook_url: str | None = None,
        generator_url: str | None = None,
        severity: str = "warning",
        expire_after_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if resend_interval_s <= 0:
            raise ValueError("resend_interval_s must be positive")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        expire = 4 * resend_interval_s if expire_after_s is None else expire_after_s
        if expire <= resend_interval_s:
            raise ValueError("expire_after_s must exceed resend_interval_s")
        base, self._auth = _split_credentials(url)
        self._endpoint = base.rstrip("/") + ALERTS_PATH
        self.resend_interval_s = resend_interval_s
        self.expire_after_s = expire
        self.timeout_s = timeout_s
        self.runbook_url = runbook_url
        self.generator_url = generator_url
        self.severity = severity
        self._clock = clock
        self._lock = threading.Lock()
        self._firing: dict[str, _Firing] = {}

    @property
    def endpoint(self) -> str:
        """The alerts endpoint, without credentials (safe to log)."""
        return self._endpoint

    # -- building alerts -------------------------------------------------------

    def labels(self, t: Transition, severity: str | None = None) -> dict[str, str]:
        """The label set that identifies the alert of ``t`` in Alertmanager."""
        return {
            "alertname": alertname_for(t.method),
            "model": t.model,
            "segment": t.segment,
            "feature": t.column,
            "method": t.method,
            "severity": severity or self.severity,
        }

    def annotations(self, t: Transition) -> dict[str, str]:
        """Human-readable context of ``t``: summary, description, runbook and dedup key."""
        where = f"{t.model}/{t.segment}/{t.column}"
        p_value = "n/a" if t.p_value != t.p_value else f"{t.p_value:.3g}"
        if t.current == "firing":
            summary = (
                f"{alertname_for(t.method)}: {where} drifted ({t.method} score "
                f"{t.score:.4g} >= threshold {t.threshold:.4g})"
            )
        else:
            summary = (
                f"{alertname_for(t.method)} resolved: {where} ({t.method} score "
                f"{t.score:.4g} < clear {t.clear:.4g})"
            )
        description = (
            f"Model {t.model}, segment {t.segment}, feature {t.column}, method {t.method}: "
            f"score {t.score:.6g} (threshold {t.threshold:.6g}, clear {t.clear:.6g}), "
            f"p-value {p_value}, window of {t.n} samples ending {_rfc3339(t.window_end_ts)}, "
            f"{t.consecutive} consecutive breaching window(s)."
        )
        out = {"summary": summary, "description": description, "dedup_key": t.dedup_key}
        if self.runbook_url:
            out["runbook_url"] = self.runbook_url
        return out

    def _alert(self, f: _Firing, ends_at: float) -> dict[str, Any]:
        alert: dict[str, Any] = {
            "labels": f.labels,
            "annotations": f.annotations,
            "startsAt": _rfc3339(min(f.starts_at, ends_at)),
            "endsAt": _rfc3339(ends_at),
        }
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        return alert

    # -- delivery --------------------------------------------------------------

    def deliver(
        self, transitions: Iterable[Transition], severities: Mapping[str, str] | None = None
    ) -> bool:
        """Post ``transitions`` as alerts; True if accepted, False if rejected for good.

        ``severities`` (by dedup key) overrides the sink's default severity label, as
        the alert routes decide it. Several transitions of one state machine collapse
        to the last one. Raises
        :class:`AlertmanagerUnavailableError` when a retry may succeed.
        """
        now = self._clock()
        latest: dict[str, Transition] = {}
        for t in transitions:
            latest.pop(t.dedup_key, None)
            latest[t.dedup_key] = t
        if not latest:
            return True
        alerts: list[dict[str, Any]] = []
        sent_firing: list[str] = []
        before: dict[str, _Firing | None] = {}
        with self._lock:
            for key, t in latest.items():
                known = self._firing.get(key)
                before[key] = known
                entry = _Firing(
                    labels=self.labels(t, (severities or {}).get(key)),
                    annotations=self.annotations(t),
                    starts_at=known.starts_at if known else min(t.window_end_ts, now),
                    last_sent=known.last_sent if known else None,
                )
                if t.current == "firing":
                    self._firing[key] = entry
                    sent_firing.append(key)
                    alerts.append(self._alert(entry, now + self.expire_after_s))
                else:
                    self._firing.pop(key, None)
                    alerts.append(self._alert(entry, now))
        ok = self._post(alerts, list(latest))
        if ok:
            self._mark_sent(sent_firing, now)
        else:
            # Rejected for good: resending would be rejected too, so a rejected trigger
            # goes back to what Alertmanager last accepted. A rejected resolve stays
            # out of the firing set: no longer re-sent, the alert expires by itself.
            with self._lock:
                for key in sent_firing:
                    known = before[key]
                    if known is None:
                        self._firing.pop(key, None)
                    else:
                        self._firing[key] = known
        return ok

    def state_dict(self) -> dict[str, Any]:
        """The firing alerts this sink keeps alive, for checkpoints."""
        with self._lock:
            return {
                key: {"labels": f.labels, "annotations": f.annotations, "starts_at": f.starts_at}
                for key, f in self._firing.items()
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Keep re-sending the alerts of ``state`` (first re-send at the next tick)."""
        with self._lock:
            for key, f in state.items():
                self._firing[str(key)] = _Firing(
                    dict(f["labels"]), dict(f["annotations"]), float(f["starts_at"]), None
                )

    def firing(self) -> list[str]:
        """The dedup keys of the alerts this sink holds as firing, sorted."""
        with self._lock:
            return sorted(self._firing)

    def resend_due(self, now: float | None = None) -> bool:
        """Whether some firing alert was last posted ``resend_interval_s`` or more ago."""
        now = self._clock() if now is None else now
        with self._lock:
            return any(
                f.last_sent is None or now - f.last_sent >= self.resend_interval_s
                for f in self._firing.values()
            )

    def resend(self, now: float | None = None) -> bool:
        """Re-post every firing alert with ``endsAt`` pushed forward; same outcomes as deliver.

        True with nothing to send when no alert is firing.
        """
        now = self._clock() if now is None else now
        with self._lock:
            keys = list(self._firing)
            alerts = [self._alert(self._firing[k], now + self.expire_after_s) for k in keys]
        if not alerts:
            return True
        ok = self._post(alerts, keys)
        if ok:
            self._mark_sent(keys, now)
        return ok

    def _mark_sent(self, keys: list[str], now: float) -> None:
        with self._lock:
            for key in keys:
                entry = self._firing.get(key)
                if entry is not None:
                    entry.last_sent = now

    def _post(self, alerts: list[dict[str, Any]], keys: list[str]) -> bool:
        body = json.dumps(alerts, allow_nan=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "driftd"}
        if self._auth is not None:
            headers["Authorization"] = self._auth
        request = urllib.request.Request(self._endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = int(response.status)
                response.read()
        except urllib.error.HTTPError as e:
            status = e.code
            text = _read_body(e)
            if status >= 500 or status in _RETRIABLE_4XX:
                raise AlertmanagerUnavailableError(
                    self._endpoint, status, f"HTTP {status}: {text[:200]}"
                ) from None
            _log.error(
                "alertmanager_rejected",
                endpoint=self._endpoint,
                status=status,
                body=text,
                alerts=len(alerts),
                dedup_keys=keys,
            )
            return False
        except (urllib.error.URLError, HTTPException, OSError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            if isinstance(reason, TimeoutError):
                message = f"timed out after {self.timeout_s:g} s"
            else:
                message = f"{type(reason).__name__}: {reason}"
            raise AlertmanagerUnavailableError(self._endpoint, None, message) from None
        _log.debug(
            "alertmanager_delivered", endpoint=self._endpoint, status=status, alerts=len(alerts)
        )
        return True


def _read_body(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read()
    except (OSError, HTTPException):
        return ""
    finally:
        e.close()
    return raw[:_BODY_LOG_LIMIT].decode("utf-8", errors="replace")
