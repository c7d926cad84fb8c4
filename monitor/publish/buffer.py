"""The bounded hand-over between the threads that publish and the sender thread.

``offer`` is all a model server's request pays for besides serialising: one uncontended
lock, an append and three additions. The bound is on *pending* events, the buffered ones
plus those handed to the Kafka producer and not yet settled (acknowledged or failed), so
memory stays bounded whether the broker is down, slow or refusing.
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

from monitor.publish.stats import Counts


class Item(NamedTuple):
    """One serialised event waiting for the sender."""

    is_label: bool
    key: bytes | None
    payload: bytes


class EventBuffer:
    """A list swapped out whole by the sender, with the counts and the flush wait."""

    def __init__(self, max_buffer: int, wake_at: int) -> None:
        self.lock = threading.Lock()
        self.counts = Counts(self.lock, max_buffer)
        self.arrived = threading.Event()
        """Set by the first event after the sender took the buffer: the sender, idle until
        then, starts its linger."""
        self.ready = threading.Event()
        """Set when the sender should not wait out its linger (enough events, a flush)."""
        self._settled = threading.Condition(self.lock)
        self._items: list[Item] = []
        self._max_buffer = max_buffer
        self._wake_at = wake_at
        self._abandoned = False

    def offer(self, item: Item) -> bool:
        """Buffer ``item`` unless ``max_buffer`` events are pending (then count the drop)."""
        counts = self.counts
        with self.lock:
            if counts.pending >= self._max_buffer:
                counts.dropped["buffer_full"] += 1
                return False
            self._items.append(item)
            counts.published += 1
            counts.pending += 1
            size = len(self._items)
        if size == 1:
            self.arrived.set()
        elif size == self._wake_at:
            self.ready.set()
        return True

    def drop(self, reason: str, detail: str | None = None) -> None:
        """Count an event that never got into the buffer; keep the first detail per reason."""
        with self.lock:
            self.counts.dropped[reason] += 1
            if detail is not None and reason not in self.counts.first_error:
                self.counts.first_error[reason] = detail

    def wake(self) -> None:
        """End the sender's wait and its linger at once (a flush, a stop)."""
        self.arrived.set()
        self.ready.set()

    def take(self) -> list[Item]:
        """Everything buffered, in order; the events stay pending until settled."""
        with self.lock:
            self.arrived.clear()
            self.ready.clear()
            items, self._items = self._items, []
        return items

    def settle(self, events: int, delivered: bool, detail: str | None = None) -> None:
        """Account for ``events`` the broker acknowledged (or that failed to be delivered)."""
        with self.lock:
            if self._abandoned:
                return  # already counted as unsent when the publisher closed
            counts = self.counts
            counts.pending -= events
            if delivered:
                counts.delivered += events
            else:
                counts.dropped["delivery_failed"] += events
                if detail is not None and "delivery_failed" not in counts.first_error:
                    counts.first_error["delivery_failed"] = detail
            if counts.pending == 0:
                self._settled.notify_all()

    def wait_settled(self, timeout_s: float) -> bool:
        """Wait until nothing is pending, at most ``timeout_s``; whether that happened."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self.lock:
            while self.counts.pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(remaining)
            return True

    def abandon(self) -> int:
        """Count every pending event as ``unsent_at_close`` and ignore later settlements."""
        with self.lock:
            left = self.counts.pending
            self.counts.dropped["unsent_at_close"] += left
            self.counts.pending = 0
            self._items = []
            self._abandoned = True
            self._settled.notify_all()
            return left
