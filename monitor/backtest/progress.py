"""Progress of a backtest on stderr: a bar on a terminal, a plain line now and then elsewhere.

On a terminal the bar is redrawn in place (``\\r``) at most ten times a second:
``[########............]  42%  42,000/100,000 events  38,211 events/s``. Elsewhere (a
log file, CI) a line is written every ``every_s`` seconds:
``driftd backtest: 42,000 of 100,000 events (42%), 38,211 events/s``. The clock is
injected, so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 28
REDRAW_S = 0.1
"""Least time between two redraws of the bar."""


class ProgressReporter:
    """Callable as ``(events_done, events_total_or_None)`` after each batch."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = tty
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self._last_shown = -float("inf")
        self._drawn = False
        self._done = 0
        self._total: int | None = None

    def rate(self, done: int) -> float:
        """Events per second since the start."""
        elapsed = self.clock() - self.started
        return done / elapsed if elapsed > 0 else 0.0

    def __call__(self, done: int, total: int | None) -> None:
        """Show ``done`` of ``total`` events if it is time to."""
        self._done, self._total = done, total
        now = self.clock()
        if now - self._last_shown < (REDRAW_S if self.tty else self.every_s):
            return
        self._last_shown = now
        self._show(done, total)

    def _show(self, done: int, total: int | None) -> None:
        rate = self.rate(done)
        if self.tty:
            self.stream.write("\r" + bar(done, total, rate))
            self._drawn = True
        else:
            self.stream.write(line(done, total, rate) + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """The final state: the full bar and a newline, or one last line."""
        if self.tty:
            self.stream.write("\r" + bar(self._done, self._total, self.rate(self._done)) + "\n")
        else:
            self.stream.write(line(self._done, self._total, self.rate(self._done)) + "\n")
        self.stream.flush()


def _fraction(done: int, total: int | None) -> float | None:
    if not total:
        return None
    return min(1.0, done / total)


def bar(done: int, total: int | None, rate: float) -> str:
    """The terminal bar (no ``\\r``)."""
    fraction = _fraction(done, total)
    if fraction is None:
        return f"{done:,} events  {rate:,.0f} events/s"
    filled = round(fraction * BAR_WIDTH)
    shown = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"[{shown}] {fraction:4.0%}  {done:,}/{total:,} events  {rate:,.0f} events/s"


def line(done: int, total: int | None, rate: float) -> str:
    """The plain progress line."""
    fraction = _fraction(done, total)
    of = f" of {total:,}" if total else ""
    share = f" ({fraction:.0%})" if fraction is not None else ""
    return f"driftd backtest: {done:,}{of} events{share}, {rate:,.0f} events/s"
