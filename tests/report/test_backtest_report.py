"""The report from a real ``driftd backtest -o report.html`` run on a drifting demo stream.

The backtest (``monitor.backtest``) replays 25,000 demo events whose ``west`` segment
drifts from event 12,000, with their labels, and writes both ``--json`` and ``-o``. The
report must be exactly what ``render_html`` makes of that JSON, show every alert of it,
and open cleanly in Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.report import render_html
from tests.backtest.streams import SMALL, write_config, write_stream
from tests.report.browser import DRAWN_CHARTS, Browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backtest_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The JSON and the report of one backtest of a drifting demo stream."""
    directory = tmp_path_factory.mktemp("backtest")
    events, labels = write_stream(directory, 25_000, feature_shift_at=12_000)
    config = write_config(directory / "driftd.yaml", SMALL)
    report, windows = directory / "report.html", directory / "windows.json"
    inputs = ["-c", str(config), "--events", str(events), "--labels", str(labels)]
    code = main(["backtest", *inputs, "--json", str(windows), "-o", str(report)])
    assert code == 0
    data: dict[str, Any] = json.loads(windows.read_text())
    return data, report


def test_the_cli_report_is_the_render_of_its_json(
    backtest_run: tuple[dict[str, Any], Path],
) -> None:
    """-o writes what render_html makes of the --json data, listing every alert of it."""
    data, report = backtest_run
    page = report.read_text(encoding="utf-8")
    assert page == render_html(data)
    assert data["alerts"], "the west drift must page"
    alerts = page[page.index("<h3>Every alert</h3>") : page.index('<section id="scores">')]
    assert len(re.findall(r"<tr><td>", alerts)) == len(data["alerts"])
    paged_columns = {a["column"] for a in data["alerts"] if a["segment"] == "west"}
    for column in paged_columns:
        assert f"{column} · " in page  # its score charts (SVG titles) are drawn


@pytest.mark.integration
def test_the_cli_report_opens_in_chromium(
    backtest_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """The real report loads with no console error or request, and every chart is drawn."""
    _, report = backtest_run
    with Browser(tmp_path / "profile") as browser:
        load = browser.load(report)
        drawn: list[dict[str, Any]] = browser.evaluate(DRAWN_CHARTS)
    assert load.errors == []
    assert load.requests == [report.resolve().as_uri()]
    assert len(drawn) == report.read_text(encoding="utf-8").count('<figure class="chart"')
    assert {c["kind"] for c in drawn} >= {"timeline", "scores", "distribution", "performance"}
    assert [c for c in drawn if c["width"] < 200 or c["height"] < 100 or c["shapes"] < 10] == []


@pytest.mark.usefixtures("without_matplotlib")
def test_without_matplotlib_the_cli_says_so_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o without the report extra: the table still prints, then one line naming it, exit 2."""
    events, _ = write_stream(tmp_path, 6_000)
    config = write_config(tmp_path / "driftd.yaml", SMALL)
    report = tmp_path / "report.html"
    code = main(["backtest", "-c", str(config), "--events", str(events), "-o", str(report)])
    captured = capsys.readouterr()
    assert code == 2
    assert "Events: 6,000 read" in captured.out
    failures = [line for line in captured.err.splitlines() if str(report) in line]
    assert len(failures) == 1 and "pip install 'driftd[report]'" in failures[0]
    assert "Traceback" not in captured.err
    assert not report.exists()
