"""The HTML report opened in a real headless Chromium (Debian's ``chromium``).

The page must load with no console error, no request but its own file, and every chart
drawn (an ``<svg>`` with a real size and shapes in it), and a screenshot of it must show
something. Without Chromium these tests skip for a developer and fail under
``make test`` (``scripts/install-test-services`` installs it).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.report import render_report
from tests.report.backtest_data import build_backtest
from tests.report.browser import DRAWN_CHARTS, Browser

pytestmark = pytest.mark.integration

HOSTILE_COLUMN = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with Browser(tmp_path_factory.mktemp("chromium") / "profile") as opened:
        yield opened


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_report_opens_without_errors_and_draws_every_chart(
    browser: Browser, tmp_path: Path
) -> None:
    """No console error, no request but the file itself, and all 30 charts drawn with shapes."""
    path = tmp_path / "report.html"
    render_report(build_backtest(segments=("west",), n_windows=16), path, top_columns=100)
    load = browser.load(path)
    assert load.errors == []
    assert load.requests == [path.resolve().as_uri()]
    drawn: list[dict[str, Any]] = browser.evaluate(DRAWN_CHARTS)
    kinds = {k: sum(1 for c in drawn if c["kind"] == k) for k in {c["kind"] for c in drawn}}
    assert kinds == {
        "scores": 24,
        "timeline": 1,
        "distribution": 2,
        "performance": 2,
        "fairness": 1,
    }
    small = [c for c in drawn if c["width"] < 200 or c["height"] < 100 or c["shapes"] < 10]
    assert small == []
    assert browser.evaluate("document.querySelectorAll('svg').length") == len(drawn)
    shot = tmp_path / "report.png"
    browser.screenshot(shot)
    assert _png_size(shot) == (1400, 4000)
    assert shot.stat().st_size > 50_000, "a blank page compresses to almost nothing"


def test_hostile_names_stay_text_in_the_browser(browser: Browser, tmp_path: Path) -> None:
    """A feature named <script>...</script> shows as text; the page has no script at all."""
    data = build_backtest(segments=("west",), n_windows=8, labels=False)
    data = json.loads(json.dumps(data).replace('"income"', json.dumps(HOSTILE_COLUMN)))
    path = tmp_path / "hostile.html"
    render_report(data, path, top_columns=2)
    load = browser.load(path)
    assert load.errors == []
    assert browser.evaluate("document.querySelectorAll('script, img, iframe').length") == 0
    assert HOSTILE_COLUMN in browser.evaluate("document.body.textContent")
    titles = browser.evaluate(
        "Array.from(document.querySelectorAll('svg text')).map(t => t.textContent)"
    )
    assert f"{HOSTILE_COLUMN} · psi" in titles


def test_the_check_sees_errors_and_requests_when_a_page_has_them(
    browser: Browser, tmp_path: Path
) -> None:
    """The harness is not blind: a console error and a fetch in a page are both reported."""
    path = tmp_path / "bad.html"
    path.write_text(
        "<!DOCTYPE html><html><body><p>bad</p>"
        "<script>console.error('report-test-boom')</script>"
        '<img src="http://127.0.0.1:9/never.png"></body></html>',
        encoding="utf-8",
    )
    load = browser.load(path)
    assert any("report-test-boom" in e for e in load.errors), load.errors
    assert "http://127.0.0.1:9/never.png" in load.requests
