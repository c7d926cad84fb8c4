"""The HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``, ``/api/v1/state``, and the
loop's heartbeat.

:class:`MetricsServer` serves an injected ``CollectorRegistry`` (no global registry)
from a threaded stdlib HTTP server on its own daemon thread; it knows nothing of the
collectors in it.

Readiness policy (a sidecar's readiness gates its model server's pod): the daemon is
*not ready* only while it is starting (before the first successful source poll or
restore) or shutting down. A broker outage, a slow sink or drift are reported in
metrics (``driftd_seconds_since_last_poll``, ``driftd_consumer_lag``,
``driftd_drift_active``) and never flip readiness; the daemon's ``readiness``
implements exactly that policy, and the server only asks it. :class:`Heartbeat` is a
liveness check for a stuck consumer loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import CollectorRegistry

from monitor.emit.exposition import ExpositionCache
from monitor.errors import ConfigError

STATE_PATH = "/api/v1/state"

__all__ = ["STATE_PATH", "Heartbeat", "MetricsServer"]

_log = structlog.get_logger()


class Heartbeat:
    """Liveness of a loop: alive while ``beat()`` was called within ``max_age`` seconds.

    Before the first beat the loop counts as alive (startup is readiness's business).
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be > 0, got {max_age}")
        self.max_age = max_age
        self._clock = clock
        self._last: float | None = None

    def beat(self) -> None:
        """Record that the loop made progress (call after each poll returns)."""
        self._last = self._clock()

    def age(self) -> float | None:
        """Seconds since the last beat, or None before the first."""
        last = self._last
        return None if last is None else self._clock() - last

    def alive(self) -> bool:
        """False once the loop has not beaten for longer than ``max_age``."""
        age = self.age()
        return age is None or age <= self.max_age


class LoopHealth:
    """What ``/healthz`` and ``/readyz`` say of the daemon's loop.

    Alive while the loop beats (:class:`Heartbeat`). Ready only from the end of startup
    (``started``) until a stop is requested (``stop_requested``, the event the loop
    watches): lenient on purpose, because a sidecar's readiness gates its model
    server's pod, so a broker outage must not make it unready.
    """

    def __init__(self, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat
        self.started = False
        self.stop_requested = threading.Event()

    def alive(self) -> bool:
        """False once the loop has not beaten for longer than the heartbeat's ``max_age``."""
        return self.heartbeat.alive()

    def readiness(self) -> tuple[bool, str]:
        """Ready, and why: ``starting``, ``ok`` or ``shutting down``."""
        if not self.started:
            return False, "starting"
        if self.stop_requested.is_set():
            return False, "shutting down"
        return True, "ok"


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread.

    - ``/metrics``: the registry in the format the ``Accept`` header asks for
      (Prometheus text or OpenMetrics), gzipped if the client accepts it; rendered at
      most once per batch (:meth:`invalidate`) and per ``cache_seconds``
      (``monitor.emit.exposition``).
    - ``/healthz``: 200 ``ok`` while ``liveness()`` is true, else 503.
    - ``/readyz``: 200 with the reason while ``readiness()`` says ready, else 503.
    - ``/api/v1/state``: the JSON ``state()`` returns (``monitor.emit.state_api``), when
      a state provider is given; 404 otherwise.
    - anything else: 404. Only GET and HEAD are served.

    ``port=0`` binds a free port; :attr:`port` is the bound one after ``start()``.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        liveness: Callable[[], bool],
        readiness: Callable[[], tuple[bool, str]],
        request_timeout: float = 10.0,
        state: Callable[[], bytes] | None = None,
        cache_seconds: float = 0.0,
    ) -> None:
        self.registry = registry
        self.exposition = ExpositionCache(registry, cache_seconds)
        self.state = state
        self.host = host
        self._port = port
        self.liveness = liveness
        self.readiness = readiness
        self.request_timeout = request_timeout
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def invalidate(self) -> None:
        """The metrics changed (a batch was processed): the next scrape renders them."""
        self.exposition.invalidate()

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve on a daemon thread; ``ConfigError`` if the address is unusable."""
        if self._server is not None:
            return
        handler = _handler_class(self)
        try:
            server = _Server((self.host, self._port), handler)
        except (OSError, OverflowError) as exc:  # busy port, unknown host, no permission
            why = getattr(exc, "strerror", None) or str(exc)
            host = f"[{self.host}]" if ":" in self.host else self.host
            where = f"{host}:{self._port}"
            raise ConfigError("metrics.port", f"cannot listen on {where}: {why}") from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="driftd-metrics"
        )
        self._thread.daemon = True
        self._thread.start()
        _log.info("metrics_server_started", host=self.host, port=self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = self._thread = None
        _log.info("metrics_server_stopped")

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler_class(owner: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = owner.request_timeout
        server_version = "driftd"
        sys_version = ""

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError as exc:
                # A scraper that hangs up (a timeout, a restart) is routine, not a
                # server fault: socketserver would print a traceback to stderr.
                _log.debug(
                    "metrics_client_disconnected", client=self.client_address[0], error=repr(exc)
                )

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._metrics(body)
            elif path == "/healthz":
                self._probe(owner.liveness, body)
            elif path == "/readyz":
                self._probe(owner.readiness, body)
            elif path == STATE_PATH and owner.state is not None:
                self._state(owner.state, body)
            else:
                self._reply(HTTPStatus.NOT_FOUND, b"not found\n", body=body)

        def _metrics(self, body: bool) -> None:
            try:
                answer = owner.exposition.render(self.headers.get("Accept", ""))
                output, encoding = answer.body, None
                if "gzip" in self.headers.get("Accept-Encoding", ""):
                    output, encoding = answer.gzip(), "gzip"
            except Exception as exc:
                _log.error("metrics_scrape_failed", error=repr(exc))
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, b"scrape failed\n", body=body)
                return
            self._reply(HTTPStatus.OK, output, answer.content_type, encoding, body)

        def _state(self, build: Callable[[], bytes], body: bool) -> None:
            try:
                payload = build()
            except Exception as exc:
                _log.error("state_request_failed", error=repr(exc))
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, b"state failed\n", body=body)
                return
            self._reply(HTTPStatus.OK, payload, "application/json", body=body)

        def _probe(self, check: Callable[[], bool | tuple[bool, str]], body: bool) -> None:
            try:
                result = check()
            except Exception as exc:
                _log.error("probe_failed", path=self.path, error=repr(exc))
                result = (False, "check failed")
            ok, reason = result if isinstance(result, tuple) else (result, "")
            text = (reason or ("ok" if ok else "not live")) + "\n"
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._reply(status, text.encode(), body=body)

        def _reply(
            self,
            status: HTTPStatus,
            payload: bytes,
            content_type: str = "text/plain; charset=utf-8",
            encoding: str | None = None,
            body: bool = True,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            if encoding is not None:
                self.send_header("Content-Encoding", encoding)
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            _log.debug("metrics_http_request", client=self.client_address[0], line=format % args)

    return Handler
