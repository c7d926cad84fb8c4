"""Concept drift pages in the batch of the ADWIN detection, and resolves after the quiet period."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import structlog

from benchmarks.concept_pairs import (
    BATCH,
    CHANGE_AT,
    LABEL_DELAY,
    START_TS,
    Fed,
    concept_pages,
    error_stream,
    feed,
    run,
    settings,
    stepped_stream,
)
from monitor.engine.decision import DecisionBook
from monitor.engine.labels.monitor import ERROR_COLUMN, LabelMonitor

WINDOW = 2_000  # labels.window_pairs, the default


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log with structlog's defaults, whatever an earlier test configured (a closed stream)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def _label_ts(pair: int) -> float:
    """The label time of pair ``pair`` (0-based) in the benchmark streams."""
    return START_TS + pair + LABEL_DELAY


def _batch_end(pair: int, batch: int) -> int:
    """Pairs fed up to the end of the batch (of ``batch`` pairs) holding pair ``pair``."""
    return (pair // batch + 1) * batch


def _concept(transitions: list[Fed]) -> list[Fed]:
    """The concept-drift transitions (label drift has its own warm-up and tests)."""
    return [f for f in transitions if f.transition.column == ERROR_COLUMN]


def _ends(cut: int | list[int], n: int) -> list[int]:
    """Pairs fed at the end of each batch when ``n`` pairs are cut by ``cut`` (as ``run``)."""
    sizes = [cut] if isinstance(cut, int) else cut
    ends = [0]
    while ends[-1] < n:
        ends.append(min(n, ends[-1] + sizes[(len(ends) - 1) % len(sizes)]))
    return ends[1:]


def _key(f: Fed) -> tuple[object, ...]:
    """A transition; a page without its score (a detection row's score is its batch's count)."""
    t = f.transition
    score = t.score if t.current == "resolved" else None
    return (t.segment, t.column, t.method, t.current, t.window_end_ts, t.n, t.consecutive, score)


def test_abrupt_error_shift_pages_in_the_batch_adwin_detects() -> None:
    """10% -> 16% errors at pair 20,000: the page leaves with ADWIN's batch, not before."""
    # Measured (ADWIN at the default delta 0.002, clock 32): ADWIN itself needs a median
    # of ~750 pairs (60 seeds: 10th percentile ~410, 90th ~1,030, max 1,632) to see a
    # +6 point shift, so pairs-to-page in batches of 500 is 500 or 1,000 for most seeds;
    # the window-close path paged at 2,000 at best. 600 pairs is below ADWIN's own median
    # delay, so it is not asserted over seeds (seeds 0-9 happen to give a median of 500);
    # what paging controls, the page leaving with the detecting batch, is, per seed.
    delays = []
    for seed in range(10):
        outcome = run(error_stream(seed), BATCH)
        assert all(at >= CHANGE_AT for _, at in outcome.detections), (seed, outcome.detections)
        assert all(f.pairs > CHANGE_AT for f in outcome.transitions), seed
        pages = concept_pages(outcome.transitions)
        assert pages, f"seed {seed}: no page"
        first = outcome.detections[0][1]
        page = pages[0]
        assert outcome.transitions[0] == page  # the page is the first transition
        assert page.pairs == _batch_end(first, BATCH), (seed, first, page.pairs)
        assert page.transition.window_end_ts == _label_ts(first)
        assert page.transition.n == first + 1  # past windows.min_samples: never skipped
        assert page.transition.score >= 1.0
        # The old path: the performance row of the window holding the detection.
        legacy = concept_pages(outcome.window_close)
        assert legacy[0].pairs == (first // WINDOW + 1) * WINDOW
        delays.append(page.pairs - CHANGE_AT)
    print("pairs after the change to the page, per seed:", delays)
    assert statistics.median(delays) <= 1_000  # the window-close path: >= 2,000
    assert max(delays) <= 2_000


@pytest.mark.parametrize("hold", [2, 5])
def test_alert_resolves_after_the_quiet_period(hold: int) -> None:
    """Fires once for two shifts in a row, resolves ``adwin_hold_windows`` quiet windows later."""
    stream = stepped_stream(0, [(20_000, 0.10), (4_000, 0.16), (26_000, 0.25)])
    outcome = run(stream, BATCH, settings(adwin_hold_windows=hold))
    detections = [at for _, at in outcome.detections]
    assert len(detections) >= 2 and detections[0] >= CHANGE_AT  # one per shift at least
    assert detections[-1] < 26_000  # then stationary: no detection for the rest
    transitions = _concept(outcome.transitions)
    states = [(f.transition.current, f.transition.column, f.transition.method) for f in transitions]
    assert states == [
        ("firing", ERROR_COLUMN, "adwin"),
        ("resolved", ERROR_COLUMN, "adwin"),
    ]  # the second shift's detections hold the page open, no second firing
    resolved = transitions[1]
    # Closed at the window ``hold`` windows after the last detection's window.
    close = (detections[-1] // WINDOW + hold + 1) * WINDOW
    assert resolved.transition.window_end_ts == _label_ts(close - 1)
    assert resolved.pairs == close
    assert resolved.transition.score == 0.0


def test_batch_cut_changes_only_when_the_page_is_sent() -> None:
    """Batches of 500, 137, uneven sizes or one batch: same detections, same transitions."""
    stream = stepped_stream(3, [(20_000, 0.10), (4_000, 0.16), (16_000, 0.25)])
    cuts: list[int | list[int]] = [BATCH, 137, [1, 999, 250, 3_000, 64, 4_100], len(stream)]
    reference = run(stream, BATCH)
    expected = [_key(f) for f in _concept(reference.transitions)]
    assert [key[3] for key in expected] == ["firing", "resolved"]
    first = reference.detections[0][1]
    for cut in cuts:
        outcome = run(stream, cut)
        assert outcome.detections == reference.detections, cut
        transitions = _concept(outcome.transitions)
        assert [_key(f) for f in transitions] == expected, cut
        # The page leaves with the batch that holds the detecting pair.
        assert transitions[0].pairs == min(e for e in _ends(cut, len(stream)) if e > first), cut


def test_detection_row_before_min_samples_still_pages() -> None:
    """A detection at the segment's ~300th pair pages: n is raised to windows.min_samples."""
    stream = stepped_stream(1, [(250, 0.0), (3_000, 0.6)])
    cfg = settings()
    monitor = LabelMonitor(cfg, None)
    book = DecisionBook(cfg.model, cfg.detectors, cfg.windows.min_samples)
    rows = []
    transitions = []
    for lo in range(0, 500, 100):
        outcome = feed(monitor, stream, lo, lo + 100)
        for results in outcome.results:
            rows.append(results)
            transitions += book.observe(results)
    assert rows, "ADWIN missed a 0% -> 60% shift"
    row = rows[0]
    assert row.columns == (ERROR_COLUMN,) and set(row.scores) == {"adwin"}
    seen = int(row.rows[0])
    assert seen < cfg.windows.min_samples
    assert int(row.n[0, 0]) == cfg.windows.min_samples
    assert [t.current for t in transitions] == ["firing"]
    assert transitions[0].window_end_ts == _label_ts(seen - 1)
    assert book.skipped_counts() == {}


@pytest.mark.parametrize("batch", [700, 8_000])
def test_rows_in_pair_order_and_a_checkpoint_round_trips(batch: int) -> None:
    """A batch's rows follow pair order; a restore mid-alert continues identically."""
    # Batches of 8,000 pairs close four windows each, so the detection row sits between
    # the closing rows of the windows before and after the detecting pair.
    stream = stepped_stream(2, [(20_000, 0.10), (12_000, 0.16)])
    cfg = settings()
    end = 32_000

    def batches(monitor: LabelMonitor, lo: int, hi: int) -> list[list[tuple[Any, ...]]]:
        out = []
        for start in range(lo, hi, batch):
            results = feed(monitor, stream, start, min(hi, start + batch)).results
            out.append(
                [
                    (
                        r.columns,
                        r.window_end_ts.tolist(),
                        r.n.tolist(),
                        {m: np.nan_to_num(v, nan=-1.0).tolist() for m, v in r.scores.items()},
                    )
                    for r in results
                ]
            )
        return out

    expected = batches(LabelMonitor(cfg, None), 0, end)
    detecting = [b for b in expected if any(r[0] == (ERROR_COLUMN,) for r in b)]
    assert detecting, "no detection"
    for rows in expected:  # one segment: its __error__ rows' end times never go back
        ends = [ts for r in rows if r[0][0] == ERROR_COLUMN for ts in r[1]]
        assert ends == sorted(ends)
    kinds = [r[0] == (ERROR_COLUMN,) for r in detecting[0] if r[0][0] == ERROR_COLUMN]
    if batch == 8_000:
        assert kinds.index(True) not in (0, len(kinds) - 1), kinds
    else:
        assert kinds[0], kinds  # before the batch's performance row, if it has one
    # Cut right after the first detection's batch: the alert is open, its window too.
    cut = (expected.index(detecting[0]) + 1) * batch
    first = LabelMonitor(cfg, None)
    got = batches(first, 0, cut)
    resumed = LabelMonitor(cfg, None)
    resumed.load_state_dict(first.state_dict())
    got += batches(resumed, cut, end)
    assert got == expected
