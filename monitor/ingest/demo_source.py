"""The built-in demo stream as a source: simulated credit-risk inference events.

Each record is one event of ``monitor.ingest.demo_stream.DemoStream`` (with
``stream_options``, by default ``SHOWCASE``: the episodes ``driftd demo`` shows) serialised with
orjson, exactly as a model server would publish it to Kafka: topic ``demo``,
partition 0, offset = the event's running index from 0. Event time starts at
the moment the source is built (``start_ts``), so events pass the decoder's
clock-skew checks on any day.

With ``rate`` (events per second) the source paces itself against the wall
clock, so a live demo looks live: ``poll`` sleeps until about a tenth of a
second of events is due (never longer than its timeout) and returns what is
due, at most ``batch_size``; the events' timestamps are spaced at the same
rate. Without ``rate`` every poll returns a full batch at once.

With ``total_events`` the source is ``exhausted`` after that many events.
Nothing is committed, lag is ``{}``, and refused records are only counted
(they are generated, so there is nothing worth keeping).

With ``labels`` the ground truth of each event follows on topic ``demo-labels``,
late: between ``label_delay`` events after its prediction (uniformly drawn), and
for a ``label_loss`` share never. The label events are interleaved into the
batches as they fall due, so the daemon sees what a label topic would give it.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import structlog

from monitor.ingest.demo_stream import SHOWCASE, DemoBatch, DemoStream
from monitor.ingest.source import Record, TopicPartition, UngroupedSource

__all__ = ["DEMO_LABELS_TOPIC", "DEMO_TOPIC", "DemoSource"]

log = structlog.get_logger()

DEMO_TOPIC = "demo"
DEMO_LABELS_TOPIC = "demo-labels"
_CHUNK_SECONDS = 0.1


class DemoSource(UngroupedSource):
    """``DemoStream`` events as records, optionally paced and bounded (see module doc)."""

    name = "demo"

    def __init__(
        self,
        batch_size: int,
        total_events: int | None = None,
        rate: float | None = None,
        seed: int = 7,
        *,
        start_ts: float | None = None,
        labels: bool = False,
        label_delay: tuple[int, int] = (2_000, 12_000),
        label_loss: float = 0.03,
        stream_options: Mapping[str, Any] = SHOWCASE,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if total_events is not None and total_events < 0:
            raise ValueError(f"total_events must not be negative, got {total_events}")
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.batch_size = batch_size
        self.total_events = total_events
        self.rate = rate
        anchor = time.time() if start_ts is None else start_ts
        fixed = sorted({"seed", "start_ts", "rate", "produced"} & set(stream_options))
        if fixed:
            raise ValueError(f"stream_options cannot set {fixed}: the source sets them")
        # ``rate`` None leaves the stream's own event spacing.
        paced: dict[str, Any] = {} if rate is None else {"rate": float(rate)}
        self.stream = DemoStream(seed=seed, start_ts=anchor, **paced, **stream_options)
        if not 0 <= label_delay[0] <= label_delay[1]:
            raise ValueError(
                f"label_delay must be (low, high) with 0 <= low <= high, got {label_delay}"
            )
        if not 0.0 <= label_loss < 1.0:
            raise ValueError(f"label_loss must be in [0, 1), got {label_loss}")
        self.labels = labels
        self.label_delay = label_delay
        self.label_loss = label_loss
        self._label_rng = np.random.default_rng(seed + 1)
        self._due_labels: list[tuple[int, int, bytes, int]] = []
        self._label_offset = 0
        self._started: float | None = None
        self.dead_letter_counts: Counter[str] = Counter()
        """Records handed to ``dead_letter``, by reason."""

    @property
    def emitted(self) -> int:
        """Events handed out so far (the next record's offset)."""
        return self.stream.produced

    @property
    def exhausted(self) -> bool:
        """True once ``total_events`` events have been handed out."""
        return self.total_events is not None and self.emitted >= self.total_events

    def poll(self, timeout_s: float) -> list[Record]:
        """The next batch of events; with ``rate``, only those due by now."""
        records = self._next_batch(timeout_s)
        self.last_successful_poll = time.monotonic()
        return records

    def _next_batch(self, timeout_s: float) -> list[Record]:
        n = self.batch_size
        if self.total_events is not None:
            n = min(n, self.total_events - self.emitted)
        if n <= 0:
            return []
        if self.rate is not None:
            n = min(n, self._due(self.rate, n, timeout_s))
            if n <= 0:
                return []
        return self._records(n)

    def _due(self, rate: float, wanted: int, timeout_s: float) -> int:
        """Events due by the wall clock, after sleeping (within the timeout) for a chunk."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        chunk = min(wanted, max(1, math.ceil(rate * _CHUNK_SECONDS)))
        due_at = self._started + (self.emitted + chunk) / rate
        wait = min(max(0.0, due_at - now), max(0.0, timeout_s))
        if wait > 0:
            time.sleep(wait)
            now = time.monotonic()
        return math.floor((now - self._started) * rate) - self.emitted

    def _records(self, n: int) -> list[Record]:
        first = self.emitted
        batch = self.stream.next_batch(n)
        stamps = np.rint(batch.ts * 1000.0).astype(np.int64).tolist()
        dumps = orjson.dumps
        records = [
            Record(dumps(event), DEMO_TOPIC, 0, first + i, stamps[i])
            for i, event in enumerate(batch.events())
        ]
        if self.labels:
            records.extend(self._labels_due(batch, first))
        return records

    def _labels_due(self, batch: DemoBatch, first: int) -> list[Record]:
        """Schedule this batch's labels, and hand out those due by the end of it."""
        rng = self._label_rng
        n = len(batch)
        low, high = self.label_delay
        due = first + np.arange(n) + rng.integers(low, high + 1, n)
        kept = rng.random(n) >= self.label_loss
        step = 1.0 / self.stream.rate
        for i in np.flatnonzero(kept).tolist():
            # The label is stamped when it arrives, not when the prediction was made.
            arrives = float(batch.ts[i]) + (int(due[i]) - first - i) * step
            label = {"id": str(batch.ids[i]), "ts": arrives, "label": int(batch.label[i])}
            heapq.heappush(
                self._due_labels, (int(due[i]), first + i, orjson.dumps(label), int(arrives * 1000))
            )
        out: list[Record] = []
        end = first + n
        while self._due_labels and self._due_labels[0][0] < end:
            _, _, value, stamp = heapq.heappop(self._due_labels)
            out.append(Record(value, DEMO_LABELS_TOPIC, 0, self._label_offset, stamp))
            self._label_offset += 1
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Nothing to commit: the demo is regenerated from its seed."""

    def lag(self) -> dict[TopicPartition, int]:
        """No lag: events are made on demand."""
        return {}

    def dead_letter(self, records: Sequence[tuple[Record, str, str]]) -> None:
        """Count refused demo records by reason and log a summary; nothing is stored."""
        if not records:
            return
        reasons = Counter(reason for _, reason, _ in records)
        self.dead_letter_counts.update(reasons)
        log.warning(
            "dead_letter_discarded", source=self.name, count=len(records), reasons=dict(reasons)
        )

    def close(self) -> None:
        """Nothing to release."""
