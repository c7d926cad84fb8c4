"""The HTML report of a backtest: sections, charts, escaping, determinism, errors, size.

Rendered from a realistic result dict built in code (``backtest_data``); the browser
side (console errors, drawn charts, a screenshot) is in ``test_report_in_chromium``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ReportError
from monitor.report import render_html, render_report
from monitor.report.digest import bin_labels
from monitor.report.parts import CheckRow
from tests.report.backtest_data import build_backtest

HOSTILE_COLUMN = "<script>alert(1)</script>"
HOSTILE_SEGMENT = '"><img src=x onerror=alert(2)>'
DOLLAR_COLUMN = r"cost $x^2$ \ usd & <b>"
FIVE_MB = 5_000_000


class _Page(HTMLParser):
    """The tags, attributes and text of a page, as a browser's parser reads them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str]] = []
        self.chart_kinds: Counter[str] = Counter()
        self.text: list[str] = []
        self._in_chart = 0
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        values = dict(attrs)
        self.attributes.extend((tag, k, v or "") for k, v in attrs)
        if tag == "figure" and "chart" in (values.get("class") or ""):
            self.chart_kinds[values.get("data-chart") or "?"] += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def svg_per_chart(self) -> bool:
        """Whether there is exactly one <svg> root per chart figure."""
        return self.tags["svg"] == sum(self.chart_kinds.values())


def _renamed(data: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """``data`` with every string token equal to a key replaced (keys of maps included)."""
    text = json.dumps(data)
    for old, new in renames.items():
        text = text.replace(json.dumps(old), json.dumps(new))
    result: dict[str, Any] = json.loads(text)
    return result


def test_one_segment_report_has_every_section_and_one_chart_per_figure() -> None:
    """Every section is there, with exactly the charts the data calls for, and no more."""
    data = build_backtest(segments=("west",), n_windows=16)
    page = render_html(data, top_columns=100)
    parsed = _Page(page)
    # 11 columns x 2 drift methods, plus __error__ (adwin) and __label__ (chi2).
    assert parsed.chart_kinds == Counter(
        scores=24, timeline=1, distribution=2, performance=2, fairness=1
    )
    assert parsed.svg_per_chart()
    for anchor in ("alerts", "scores", "distributions", "performance", "quality", "tests"):
        assert f'<section id="{anchor}">' in page
    text = " ".join(parsed.text)
    assert "6 alert(s) would have paged" in text
    assert "ref-2026-11-30" in text
    # The two drifting label-side columns have no recorded distribution: said, not hidden.
    assert "No distribution was recorded for: __error__, __label__." in text
    assert "wrong_model" in text and "still firing" in text
    # The count methods are tested rows, never charts.
    assert "samples" not in text


def test_the_test_table_has_a_row_per_column_and_method_with_pass_or_fail() -> None:
    """Each (column, method) gets a row; exactly the paging ones fail, and they come first."""
    data = build_backtest(segments=("west",), n_windows=12)
    page = render_html(data, top_columns=1)
    table = page[page.index('<table class="checks">') :]
    rows = re.findall(
        r'<tr><td class="(pass|warn|fail)">\w+</td><td>([^<]*)</td>'
        r"<td>([^<]*)</td><td>([^<]*)</td>",
        table,
    )
    assert len(rows) == 24 + 1  # the fairness gap is a test too
    failing = {(column, method) for status, _, column, method in rows if status == "fail"}
    paged = {(a["column"], a["method"]) for a in data["alerts"]}
    assert failing == paged and len(paged) == 6
    statuses = [status for status, *_ in rows]
    assert statuses[: len(paged)] == ["fail"] * len(paged)


def test_fifty_features_draw_only_the_top_columns_and_name_the_rest() -> None:
    """With 51 columns and top 5, 10 score charts are drawn and 46 columns named as left out."""
    data = build_backtest(
        segments=("north",), n_windows=6, n_extra_numeric=40, labels=False, drift=False
    )
    page = render_html(data, top_columns=5)
    parsed = _Page(page)
    assert parsed.chart_kinds == Counter(scores=10)
    text = " ".join(parsed.text)
    assert "The 5 most drifting of 51 columns are drawn; 46 left out" in text
    assert "No labels given" in text
    assert "No alert fired in any segment." in text
    assert "No column went over its threshold in north." in text
    assert "Nothing would have paged." in text
    assert page.count('<td class="pass">pass</td>') == 51 * 2


def test_names_from_the_data_are_escaped_everywhere() -> None:
    """A feature named <script>..., a hostile segment and a "$" name render as plain text."""
    data = _renamed(
        build_backtest(segments=("west",), n_windows=8),
        {
            "income": HOSTILE_COLUMN,
            "west": HOSTILE_SEGMENT,
            "loan_amount": DOLLAR_COLUMN,
            "credit-risk": HOSTILE_COLUMN,
            "wrong_model": HOSTILE_SEGMENT,
            "accuracy": HOSTILE_COLUMN,
        },
    )
    page = render_html(data, top_columns=100)
    for raw in (HOSTILE_COLUMN, HOSTILE_SEGMENT, DOLLAR_COLUMN):
        assert raw not in page
    parsed = _Page(page)
    assert not {"script", "img", "iframe", "b", "object", "embed"} & set(parsed.tags)
    assert not [a for a in parsed.attributes if a[1].startswith("on")]
    text = "".join(parsed.text)
    # As text in the header, the tables and the charts' own titles (SVG text).
    assert text.count(HOSTILE_COLUMN) >= 5
    assert text.count(HOSTILE_SEGMENT) >= 3
    assert f"{DOLLAR_COLUMN} · psi" in text  # a dollar pair is not math mode


def test_the_page_loads_nothing_from_anywhere() -> None:
    """No src or href leaves the page (in-page anchors only) and a CSP forbids every fetch."""
    page = render_html(build_backtest(segments=("west",), n_windows=8), top_columns=2)
    parsed = _Page(page)
    links = [
        (tag, name, value)
        for tag, name, value in parsed.attributes
        if name in ("src", "href", "xlink:href", "action", "data", "poster")
    ]
    assert links, "the navigation and the SVG <use> elements link inside the page"
    assert all(value.startswith("#") for _, _, value in links), links
    assert not re.search(r"url\(\s*['\"]?(?!#)", page), "CSS url() to anything but an id"
    assert not re.search(r"@import|<link\b|<script\b", page)
    assert "default-src 'none'" in page


def test_the_same_data_gives_the_same_bytes_and_ids_are_unique() -> None:
    """Rendering twice gives identical pages, and no two SVG elements share an id."""
    data = build_backtest(segments=("south", "west"), n_windows=8)
    first = render_html(data, top_columns=2)
    assert render_html(json.loads(json.dumps(data)), top_columns=2) == first
    ids = re.findall(r'\bid="([^"]+)"', first)
    duplicated = [i for i, n in Counter(ids).items() if n > 1]
    charts = first.count('<figure class="chart"')
    assert charts >= 5 and len(ids) > charts  # a clip path per chart, and markers
    assert duplicated == []


def test_render_report_writes_the_file(tmp_path: Path) -> None:
    """render_report writes the page render_html returns, as UTF-8, leaving no temporary."""
    data = build_backtest(segments=("west",), n_windows=6, labels=False)
    path = tmp_path / "report.html"
    render_report(data, path, top_columns=1)
    assert path.read_text(encoding="utf-8") == render_html(data, top_columns=1)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_an_unwritable_path_is_a_report_error_naming_it(tmp_path: Path) -> None:
    """Writing into a directory that does not exist raises ReportError with the path as key."""
    path = tmp_path / "missing" / "report.html"
    with pytest.raises(ReportError) as caught:
        render_report(build_backtest(segments=("west",), n_windows=4), path, top_columns=1)
    assert caught.value.key == str(path)
    assert "cannot write the report" in str(caught.value)


def test_no_window_says_so_and_draws_nothing() -> None:
    """A backtest that closed no window renders, saying why, with no chart."""
    data = build_backtest(segments=("west",), n_windows=4, labels=False)
    data.update(windows=[], alerts=[], transitions=[], performance=[], distributions=[])
    parsed = _Page(render_html(data))
    text = " ".join(parsed.text)
    assert "No window closed, so nothing was scored" in text and "(500 events)" in text
    assert "No test ran" in text
    assert parsed.tags["svg"] == 0


@pytest.mark.usefixtures("without_matplotlib")
def test_without_matplotlib_the_error_names_the_extra() -> None:
    """With matplotlib missing, rendering raises ReportError telling to install driftd[report]."""
    with pytest.raises(ReportError) as caught:
        render_html(build_backtest(segments=("west",), n_windows=2))
    assert caught.value.missing_package == "matplotlib"
    assert "pip install 'driftd[report]'" in str(caught.value)


def _break(data: dict[str, Any], how: str) -> None:
    if how == "scores":
        data["windows"][3]["scores"] = [1, 2]
    elif how == "nan":
        data["windows"][0]["scores"]["psi"]["age"] = float("nan")
    elif how == "verdict":
        data["windows"][1]["verdicts"]["ks"]["age"] = "awful"
    elif how == "shares":
        data["distributions"][0]["current"].pop()
    elif how == "edges":
        data["distributions"][0]["edges"] = [1.0]
    elif how == "model":
        del data["model"]


@pytest.mark.parametrize(
    ("how", "key"),
    [
        ("scores", "windows[3].scores"),
        ("nan", "windows[0].scores.psi.age"),
        ("verdict", "windows[1].verdicts.ks.age"),
        ("shares", "distributions[0].current"),
        ("edges", "distributions[0].edges"),
        ("model", "model"),
    ],
)
def test_malformed_data_is_a_report_error_naming_the_part(how: str, key: str) -> None:
    """A part of the wrong shape raises ReportError whose key names it, not a traceback."""
    data = build_backtest(segments=("west",), n_windows=4, labels=False)
    _break(data, how)
    with pytest.raises(ReportError) as caught:
        render_html(data)
    assert caught.value.key == key


def test_null_scores_and_values_are_left_out_not_fatal() -> None:
    """Non-finite numbers arrive as null (strict JSON): those points are skipped."""
    data = build_backtest(segments=("west",), n_windows=6)
    first, second = [w for w in data["windows"] if w["kind"] == "window"][:2]
    first["scores"]["psi"]["age"] = None
    second["thresholds"]["psi"]["age"] = None
    data["performance"][0]["value"] = None
    data["alerts"][0]["peak_score"] = None
    page = render_html(data, top_columns=100)
    row = re.search(r"<td>west</td><td>age</td><td>psi</td><td class=\"num\">(\d+)</td>", page)
    assert row is not None and row.group(1) == "4"


@pytest.mark.parametrize(
    ("edges", "n_bins", "labels"),
    [
        ([1.0, 2.5], 3, ["(-inf, 1]", "(1, 2.5]", "(2.5, inf)"]),
        ([0.0, 1.0, 2.0], 2, ["(0, 1]", "(1, 2]"]),
        ([], 1, ["all"]),
    ],
)
def test_numeric_bins_are_named_from_their_edges(
    edges: list[float], n_bins: int, labels: list[str]
) -> None:
    """Inner edges give open first and last bins; full edges give closed intervals."""
    assert bin_labels(edges, n_bins, "distributions[0]") == labels


@pytest.mark.parametrize(
    ("pages", "worst_verdict", "status"),
    [(True, "severe", "fail"), (False, "breach", "warn"), (False, "band", "pass")],
)
def test_a_test_fails_when_it_pages_and_warns_when_hysteresis_held_it(
    pages: bool, worst_verdict: str, status: str
) -> None:
    """fail: an alert fired; warn: over the threshold without paging; pass: never over."""
    row = CheckRow("west", "income", "psi", 10, 0.3, 0.2, worst_verdict, pages)
    assert row.status == status


@pytest.mark.slow
def test_a_200_window_20_feature_report_stays_under_5_mb(tmp_path: Path) -> None:
    """200 windows of 20 features in 3 segments, with labels, make a file under 5 MB."""
    data = build_backtest(n_windows=200, n_extra_numeric=10)
    path = tmp_path / "report.html"
    render_report(data, path)
    size = path.stat().st_size
    print(f"report of 200 windows x 20 features x 3 segments: {size:,} bytes")
    parsed = _Page(path.read_text(encoding="utf-8"))
    # Top 8 columns a segment, 2 methods each; west's top 8 hold __error__ and __label__,
    # which have one method each (adwin, chi2).
    assert parsed.chart_kinds["scores"] == 2 * 8 * 2 + 6 * 2 + 2
    assert parsed.svg_per_chart()
    assert size < FIVE_MB
