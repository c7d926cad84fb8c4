"""Progress on stderr: a redrawn bar on a terminal, plain lines on a cadence elsewhere."""

from __future__ import annotations

import io

from monitor.backtest.progress import ProgressReporter


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_every_interval_with_the_rate() -> None:
    """Off a terminal a line is written at most every every_s seconds, with events/s."""
    out, clock = io.StringIO(), Clock()
    progress = ProgressReporter(out, tty=False, every_s=10.0, clock=clock)
    clock.now += 1
    progress(1_000, 10_000)
    clock.now += 5
    progress(5_000, 10_000)  # too soon for another line
    clock.now += 5
    progress(8_000, 10_000)
    progress.finish()
    assert out.getvalue().splitlines() == [
        "driftd backtest: 1,000 of 10,000 events (10%), 1,000 events/s",
        "driftd backtest: 8,000 of 10,000 events (80%), 727 events/s",
        "driftd backtest: 8,000 of 10,000 events (80%), 727 events/s",
    ]


def test_the_terminal_bar_is_redrawn_in_place() -> None:
    """On a terminal the bar is redrawn with a carriage return and ends with a newline."""
    out, clock = io.StringIO(), Clock()
    progress = ProgressReporter(out, tty=True, clock=clock)
    clock.now += 2
    progress(5_000, 10_000)
    clock.now += 2
    progress(10_000, 10_000)
    progress.finish()
    text = out.getvalue()
    assert "\n" not in text[:-1] and text.endswith("\n")
    frames = text.rstrip("\n").split("\r")[1:]
    assert frames[0] == "[" + "#" * 14 + "." * 14 + "]  50%  5,000/10,000 events  2,500 events/s"
    assert frames[-1].startswith("[" + "#" * 28 + "] 100%  10,000/10,000 events")


def test_an_unknown_total_shows_a_count() -> None:
    """Without a known total the progress is a count and a rate."""
    out, clock = io.StringIO(), Clock()
    progress = ProgressReporter(out, tty=False, every_s=1.0, clock=clock)
    clock.now += 2
    progress(3_000, None)
    assert out.getvalue() == "driftd backtest: 3,000 events, 1,500 events/s\n"
