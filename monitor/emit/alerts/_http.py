"""Shared HTTP posting for the sinks: stdlib only, timeouts, no secret in any error."""

from __future__ import annotations

import email.utils
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import Final

from monitor.errors import AlertDeliveryError

BODY_LOG_LIMIT: Final = 2_000
RETRIABLE_4XX: Final = frozenset({408, 429})
MASK: Final = "***"


@dataclass(frozen=True)
class Response:
    """Status, headers and (truncated, decoded) body of an HTTP response."""

    status: int
    body: str
    retry_after: float | None


_MIN_SECRET_PART: Final = 8
_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Remember ``secret`` so :func:`redact` masks it in any sink's text."""
    if secret:
        with _known_lock:
            _known.add(secret)


def register_secret_url(url: str) -> None:
    """Remember a secret URL and its telling parts (path with query, query, password).

    A receiver may echo just the path of a Slack webhook URL, which is the token.
    """
    register_secret(url)
    parts = urllib.parse.urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    for part in (tail, parts.query, parts.password or ""):
        if len(part) >= _MIN_SECRET_PART:
            register_secret(part)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with ``secrets`` and every registered secret replaced by ``***``."""
    with _known_lock:
        every = {*_known, *secrets}
    for secret in sorted(every, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def post(
    sink: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
) -> Response:
    """POST ``body``; any HTTP status is returned, transport failures raise.

    Connection errors and timeouts raise a retriable :class:`AlertDeliveryError`
    naming only ``sink`` (never the URL, which may be a secret).
    """
    all_headers = {"Content-Type": "application/json", "User-Agent": "driftd", **headers}
    request = urllib.request.Request(url, data=body, headers=all_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read(BODY_LOG_LIMIT)
            status = int(response.status)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except urllib.error.HTTPError as e:
        status = e.code
        retry_after = parse_retry_after(e.headers.get("Retry-After") if e.headers else None)
        try:
            raw = e.read(BODY_LOG_LIMIT)
        except (OSError, HTTPException):
            raw = b""
        finally:
            e.close()
    except (urllib.error.URLError, HTTPException, OSError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if isinstance(reason, TimeoutError):
            message = f"timed out after {timeout_s:g} s"
        elif isinstance(reason, OSError):
            message = f"{type(reason).__name__} (errno {reason.errno})"
        else:
            message = type(reason).__name__
        raise AlertDeliveryError(sink, message, retriable=True, reason="unreachable") from None
    return Response(status, raw.decode("utf-8", errors="replace"), retry_after)


def check_status(sink: str, response: Response, secrets: Iterable[str]) -> None:
    """Raise for a non-2xx status: retriable for 408, 429 and 5xx, permanent otherwise."""
    status = response.status
    if 200 <= status < 300:
        return
    body = redact(response.body, secrets)[:200]
    retriable = status >= 500 or status in RETRIABLE_4XX
    raise AlertDeliveryError(
        sink,
        f"HTTP {status}: {body}",
        retriable=retriable,
        status=status,
        retry_after=response.retry_after,
        reason="http_error" if retriable else "rejected",
    )
