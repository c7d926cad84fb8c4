"""Open a page in a real headless Chromium and report what a person's browser would see.

The browser runs with ``--remote-debugging-port=0``; the port it picked is read from
``DevToolsActivePort`` in its profile directory, and the page is driven over the
DevTools protocol with a plain websocket client: console errors, uncaught exceptions,
log entries of level error (a Content-Security-Policy violation is one), every network
request the page makes, values computed in the page, and a PNG screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.required_tools import missing_tool

CHROMIUM_NAMES = ("chromium", "chromium-browser")
STARTUP_TIMEOUT_S = 60.0
LOAD_TIMEOUT_S = 60.0
DRAWN_CHARTS = """
Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const svg = f.querySelector(':scope > svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {kind: f.dataset.chart, width: box.width, height: box.height,
          shapes: svg ? svg.querySelectorAll('path, use, rect, text').length : 0};
})
"""
"""JavaScript: per chart figure, its kind, the drawn size of its SVG and the shapes in it."""


def chromium_binary() -> str:
    """The Chromium on PATH; skip (or fail under make test) when there is none."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    missing_tool("chromium not found (Debian package chromium)")


@dataclass
class PageLoad:
    """What loading one page produced."""

    errors: list[str] = field(default_factory=list)
    """Console errors, uncaught exceptions and error log entries, as text."""
    requests: list[str] = field(default_factory=list)
    """The URL of every request the page made (its own file:// load included)."""


class Browser:
    """One headless Chromium with one tab, driven over the DevTools protocol."""

    def __init__(self, profile_dir: Path, *, width: int = 1400, height: int = 4000) -> None:
        try:
            import websocket
        except ImportError:
            missing_tool("websocket-client is not installed (pip install -e '.[test]')")
        self._width, self._height = width, height
        profile_dir.mkdir(parents=True, exist_ok=True)
        self._log = (profile_dir / "chromium.log").open("wb")
        self._process = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--disable-gpu",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile_dir}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            port = self._wait_for_port(profile_dir / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.loads(r.read())
            page = next(t for t in targets if t.get("type") == "page")
            self._ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=LOAD_TIMEOUT_S, suppress_origin=True
            )
        except BaseException:
            self.close()
            raise
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")

    def _wait_for_port(self, path: Path) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            if path.exists():
                first = path.read_text().split("\n", 1)[0].strip()
                if first.isdigit():
                    return int(first)
            time.sleep(0.05)
        raise TimeoutError(f"chromium wrote no {path.name} in {STARTUP_TIMEOUT_S:.0f} s")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result; events met on the way are kept."""
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._events.append(message)

    def _wait_for_event(self, method: str) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not any(e["method"] == method for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} in {LOAD_TIMEOUT_S:.0f} s")
            message = json.loads(self._ws.recv())
            if "method" in message:
                self._events.append(message)

    def load(self, path: Path) -> PageLoad:
        """Navigate to ``path`` and wait for its load event; report errors and requests."""
        self._events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self._wait_for_event("Page.loadEventFired")
        self.evaluate("1")  # drains the events queued before the load event's reply
        return self._page_load()

    def _page_load(self) -> PageLoad:
        load = PageLoad()
        for event in self._events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
                load.errors.append("console: " + " ".join(args))
            elif method == "Runtime.exceptionThrown":
                load.errors.append("exception: " + str(params["exceptionDetails"].get("text")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                load.errors.append("log: " + str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                load.requests.append(str(params["request"]["url"]))
        return load

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        """Write a PNG of the page: the window, or the whole page when ``full_page``."""
        height = self._height
        if full_page:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self._width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        clip = {"x": 0, "y": 0, "width": self._width, "height": height, "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=full_page
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        """Close the browser (asking first, killing what we started if it does not listen)."""
        import websocket

        ws = getattr(self, "_ws", None)
        if ws is not None:
            # Already gone is fine: the wait below settles it.
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
            ws.close()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
