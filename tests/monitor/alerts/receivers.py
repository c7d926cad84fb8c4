"""Local HTTP receivers for the alert sink tests (127.0.0.1, port 0, own thread).

:class:`PagerDutyReceiver` validates every request against the Events API v2
contract and records violations; it answers 202 unless a status is scripted
(``script([500, 429, ...])``, consumed in order) or ``down`` is set (500 to all).
:class:`RecordingReceiver` records raw bodies and headers for the webhook sinks.
``receiver(hmac_secret=...)`` checks each request's ``X-Driftd-Signature`` as a real
webhook receiver would (timestamp within 5 minutes, HMAC over ``"<t>." + body``) and
answers 401, recording a violation, when it does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "X-Driftd-Signature"
SIGNATURE_TOLERANCE_S = 300

DEDUP_RE = re.compile(r"^driftd/([^/]+/[^/]+/[^/]+/[^/]+|.+~[0-9a-f]{16})$")
"""driftd/<model>/<segment>/<feature>/<method>, or a long one cut to 255 plus its hash."""
SEVERITIES = {"critical", "error", "warning", "info"}
ACTIONS = {"trigger", "acknowledge", "resolve"}
TOP_KEYS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
PAYLOAD_KEYS = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}
DETAIL_KEYS = {"score", "threshold", "p_value", "window_size", "reference_version"}


def pagerduty_violations(event: Any) -> list[str]:
    """Every way ``event`` breaks the Events v2 contract (empty when valid)."""
    bad: list[str] = []
    if not isinstance(event, dict):
        return ["body is not a JSON object"]
    extra = set(event) - TOP_KEYS
    if extra:
        bad.append(f"unknown keys {sorted(extra)}")
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        bad.append("routing_key must be a 32-character string")
    action = event.get("event_action")
    if action not in ACTIONS:
        bad.append(f"event_action {action!r}")
    dedup = event.get("dedup_key")
    if not isinstance(dedup, str) or not 0 < len(dedup) <= 255 or not DEDUP_RE.match(dedup):
        bad.append(f"dedup_key {dedup!r}")
    if action == "trigger" or "payload" in event:
        p = event.get("payload")
        if not isinstance(p, dict):
            return [*bad, "trigger without payload"]
        if set(p) - PAYLOAD_KEYS:
            bad.append(f"unknown payload keys {sorted(set(p) - PAYLOAD_KEYS)}")
        summary = p.get("summary")
        if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
            bad.append("summary must be 1..1024 characters")
        if not isinstance(p.get("source"), str) or not p["source"]:
            bad.append("source is required")
        if p.get("severity") not in SEVERITIES:
            bad.append(f"severity {p.get('severity')!r}")
        try:
            datetime.fromisoformat(str(p.get("timestamp")))
        except ValueError:
            bad.append(f"timestamp {p.get('timestamp')!r} is not ISO 8601")
        for name in ("component", "group", "class"):
            if not isinstance(p.get(name), str) or not p[name]:
                bad.append(f"{name} must be a non-empty string")
        details = p.get("custom_details")
        if not isinstance(details, dict) or not set(details) >= DETAIL_KEYS:
            bad.append("custom_details misses score/threshold/p_value/window_size/reference")
        for link in event.get("links", []):
            if not isinstance(link, dict) or not str(link.get("href", "")).startswith("http"):
                bad.append(f"link {link!r}")
    return bad


def reference_verify(
    secret: bytes, body: bytes, header: str | None, now: float | None = None
) -> bool:
    """A receiver's check of ``X-Driftd-Signature``, written from docs/alerts.md and not
    from driftd's code: ``t=<unix>,v1=<hex>`` with the HMAC-SHA256 of ``"<t>." + body``,
    ``t`` within 5 minutes of the receiver's clock."""
    if header is None:
        return False
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    t = parts.get("t", "")
    if not (t.isascii() and t.isdigit() and len(t) <= 12 and "v1" in parts):
        return False
    if abs((time.time() if now is None else now) - int(parts["t"])) > SIGNATURE_TOLERANCE_S:
        return False
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@dataclass
class Received:
    """One request as received."""

    path: str
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    """State shared with the handler threads."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    scripted: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    down: bool = False
    ok_status: int = 202
    error_body: str | None = None
    validate: bool = True
    hmac_secret: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, statuses: list[int], retry_after: str | None = None) -> None:
        """Answer the next requests with ``statuses`` (then 202 again)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self.lock:
            self.scripted.extend((s, headers) for s in statuses)

    def actions(self) -> list[tuple[str, str]]:
        """(event_action, dedup_key) of every accepted event, in order."""
        with self.lock:
            return [(e["event_action"], e["dedup_key"]) for e in self.accepted]


def _handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), raw))
                problems: list[str] = []
                if state.validate:
                    try:
                        event = json.loads(raw)
                    except ValueError:
                        event = None
                    problems = pagerduty_violations(event)
                    if self.headers.get("Content-Type") != "application/json":
                        problems.append("Content-Type must be application/json")
                signature = self.headers.get(SIGNATURE_HEADER)
                unsigned = state.hmac_secret is not None and not reference_verify(
                    state.hmac_secret, raw, signature
                )
                headers: dict[str, str]
                if unsigned:
                    problems.append(f"{SIGNATURE_HEADER} {signature!r} does not verify")
                    status, headers = 401, {}
                    state.violations.extend(problems)
                elif state.scripted:
                    status, headers = state.scripted.popleft()
                elif state.down:
                    status, headers = 500, {}
                elif problems:
                    status, headers = 400, {}
                    state.violations.extend(problems)
                else:
                    status, headers = state.ok_status, {}
                if 200 <= status < 300:
                    state.accepted.append(json.loads(raw))
            if status >= 400 and state.error_body is not None:
                body = state.error_body
            elif status == 400:
                body = json.dumps({"status": "invalid event", "errors": problems or ["bad"]})
            elif 200 <= status < 300:
                body = json.dumps({"status": "success", "message": "Event processed"})
            else:
                body = json.dumps({"status": "error"})
            data = body.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def receiver(
    *, validate: bool = True, ok_status: int = 202, hmac_secret: str | None = None
) -> Iterator[Receiver]:
    """A running receiver; ``validate=False`` for non-PagerDuty sinks, ``hmac_secret``
    to refuse (401) webhook requests whose signature does not verify."""
    secret = hmac_secret.encode() if hmac_secret is not None else None
    state = Receiver(validate=validate, ok_status=ok_status, hmac_secret=secret)
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v2/enqueue"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
