"""The relabel queue: suspicious labels as Label Studio import tasks, one JSON line each.

Each performance window that closes hands over its segment's most suspicious joined
pairs (``labels.relabel.top_n`` at most, largest margin first: see
:mod:`monitor.engine.labels.pair_quality`). Each becomes one Label Studio task
(:func:`detectors.perf_relabel.label_studio_task`): the event id, segment and
prediction as data, the current label as the pre-annotation, the model's probability of
that label as the prediction's score, so "lowest score first" in Label Studio shows the
most doubtful labels first. The event's features are not in the task: the join keeps
only the prediction of a pending event, and keeping every pending event's features for
the few that turn out suspicious would cost far more than the queue is worth; the event
id finds them in the event store.

**Private.** The file is created with mode 0600 in the ``open`` call itself (as the
journal); an existing file keeps its mode. Lines are appended whole after each batch
(the file is opened for the append and closed again).

**Once per event.** The ids of the tasks written are remembered (the most recent
``labels.relabel.dedup_ids``, read back from the file's lines at start), so a pair
that a restart replays, or an id seen again, is not queued twice.

**Bounded.** The file holds at most ``labels.relabel.max_tasks`` tasks; past that, new
tasks are dropped and counted (``queue_full``) until the file is moved away (the
daemon then starts a new one at its next restart). Tasks that cannot be built are
dropped and counted (``invalid``), never a crash.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Protocol

import orjson
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from detectors.perf_relabel import label_studio_task
from monitor.config import RelabelConfig
from monitor.engine.outcome import BatchOutcome

__all__ = ["DROP_REASONS", "FILE_MODE", "RelabelQueue"]

FILE_MODE: Final = 0o600
"""Mode of a queue file driftd creates: the owner's alone."""
DROP_REASONS: Final = ("duplicate", "queue_full", "invalid")
"""Why a candidate did not become a task."""

_log = structlog.get_logger()


class RelabelCandidate(Protocol):
    """What the queue reads of a candidate (``labels.pair_quality.RelabelCandidate``)."""

    @property
    def segment(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def prediction(self) -> float: ...
    @property
    def label(self) -> int: ...


class RelabelQueue(Collector):
    """Appends relabel tasks to a JSON-lines file; a batch callback and a collector.

    Call it with each :class:`BatchOutcome` (``on_batch``); register it to export
    ``driftd_relabel_tasks_total{model}``,
    ``driftd_relabel_tasks_dropped_total{model,reason}`` and
    ``driftd_relabel_queue_tasks{model}``.
    """

    def __init__(
        self,
        path: Path,
        model: str,
        config: RelabelConfig,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.config = config
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.tasks = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.in_file = self._read_back()
        self._append(b"")  # fails now, not at the first task, if the file cannot be written
        if registry is not None:
            registry.register(self)

    def _read_back(self) -> int:
        """Remember the ids of the tasks already in the file; the number of its tasks."""
        if not self.path.exists():
            return 0
        lines = complete = 0
        with self.path.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                lines += 1
                complete += len(line)
                try:
                    event_id = orjson.loads(line)["data"]["event_id"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                self._remember(str(event_id))
        if complete < self.path.stat().st_size:
            # A line a kill cut short: removed, and its task is written again whole.
            os.truncate(self.path, complete)
        return lines

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        self._seen.move_to_end(event_id)
        while len(self._seen) > self.config.dedup_ids:
            self._seen.popitem(last=False)

    def __call__(self, outcome: BatchOutcome) -> None:
        """Queue the relabel candidates of one batch."""
        labels = outcome.labels
        if labels is not None and labels.relabel:
            self.write(labels.relabel)

    def write(self, candidates: Iterable[RelabelCandidate]) -> int:
        """Append the tasks of ``candidates`` not queued yet; the number written."""
        lines: list[bytes] = []
        drops = dict.fromkeys(DROP_REASONS, 0)
        for c in candidates:
            if c.event_id in self._seen:
                drops["duplicate"] += 1
                continue
            if self.in_file + len(lines) >= self.config.max_tasks:
                drops["queue_full"] += 1
                continue
            try:
                task = label_studio_task(
                    c.event_id,
                    {"segment": c.segment},
                    c.prediction,
                    c.label,
                    choices=self.config.choices,
                    from_name=self.config.from_name,
                    to_name=self.config.to_name,
                )
            except ValueError:
                drops["invalid"] += 1
                continue
            self._remember(c.event_id)
            lines.append(orjson.dumps(task) + b"\n")
        if lines:
            self._append(b"".join(lines))
        with self._lock:
            self.in_file += len(lines)
            self.tasks += len(lines)
            for reason, n in drops.items():
                self.dropped[reason] += n
        if drops["queue_full"]:
            _log.warning(
                "relabel_queue_full",
                model=self.model,
                path=str(self.path),
                dropped=drops["queue_full"],
                max_tasks=self.config.max_tasks,
                hint="move the file away (import it into Label Studio); a new one starts at "
                "the next restart",
            )
        return len(lines)

    def _append(self, data: bytes) -> None:
        """Append whole lines; the file is opened per batch of tasks, so none stays open."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with os.fdopen(fd, "ab") as f:
            f.write(data)

    # -- metrics ---------------------------------------------------------------------

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                "driftd_relabel_tasks",
                "Label Studio tasks written to the relabel queue.",
                labels=["model"],
            ),
            CounterMetricFamily(
                "driftd_relabel_tasks_dropped",
                "Relabel candidates not queued (reason: duplicate, queue_full, invalid).",
                labels=["model", "reason"],
            ),
            GaugeMetricFamily(
                "driftd_relabel_queue_tasks",
                "Tasks in the relabel queue file (against labels.relabel.max_tasks).",
                labels=["model"],
            ),
        )

    def describe(self) -> Iterable[Metric]:
        """The families, without samples."""
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        """The counts so far."""
        tasks, dropped, queued = self._families()
        with self._lock:
            tasks.add_metric([self.model], self.tasks)
            for reason, n in self.dropped.items():
                dropped.add_metric([self.model, reason], n)
            queued.add_metric([self.model], self.in_file)
        return [tasks, dropped, queued]
