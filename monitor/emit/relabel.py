"""The relabel queue: suspicious labels as Label Studio import tasks, one JSON object each.

Each performance window that closes hands over its segment's most suspicious joined
pairs (``labels.relabel.top_n`` at most, largest margin first: see
:mod:`monitor.engine.labels.pair_quality`). Each becomes one Label Studio task
(:func:`detectors.perf_relabel.label_studio_task`): the event's scalar features, its
id, segment and prediction as data, the current label as the pre-annotation, the model's
probability of that label as the prediction's score, so "lowest score first" in Label
Studio shows the most doubtful labels first. The features come from a bounded store of
the pending events that could become suspicious
(:mod:`monitor.engine.labels.relabel_features`); a task whose features were not kept is
written without them and counted by reason
(``driftd_relabel_tasks_without_features_total``).

The tasks go to a file (here, :class:`TaskFile`) or a Kafka topic (any
:class:`TaskSink`: ``build_daemon`` hands in :class:`monitor.kafka.keyed_topic.KeyedTopic`,
keyed by event id, with ``labels.relabel.topic``); :class:`RelabelQueue` deduplicates,
bounds and counts for both. On a topic, ``max_tasks`` bounds the tasks one process
produces (the topic's retention bounds what it holds), and the ids read back at start are
those of its last ``dedup_ids`` records.

**Private.** The file is created with mode 0600 in the ``open`` call itself (as the
journal); an existing file keeps its mode. Lines are appended whole after each batch
(the file is opened for the append and closed again).

**Once per event.** The ids of the tasks written are remembered (the most recent
``labels.relabel.dedup_ids``, read back from the file's lines at start), so a pair
that a restart replays, or an id seen again, is not queued twice.

**Bounded.** The file holds at most ``labels.relabel.max_tasks`` tasks; past that, new
tasks are dropped and counted (``queue_full``) until the file is moved away (the
daemon then starts a new one at its next restart). Tasks that cannot be built are
dropped and counted (``invalid``), never a crash; tasks the sink could not take (a
topic that did not acknowledge them in time) are counted too (``delivery_failed``), and
their ids forgotten, so a replay may queue them again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
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

__all__ = [
    "DROP_REASONS",
    "FILE_MODE",
    "MISSING_REASONS",
    "FeatureStore",
    "RelabelQueue",
    "TaskFile",
    "TaskSink",
]

FILE_MODE: Final = 0o600
"""Mode of a queue file driftd creates: the owner's alone."""
DROP_REASONS: Final = ("duplicate", "queue_full", "invalid", "delivery_failed")
"""Why a candidate did not become a task."""
MISSING_REASONS: Final = ("store_full", "restart", "not_captured")
"""Why a task has no features: the reasons the engine gives a candidate
(``monitor.engine.labels.relabel_features.MISSING_REASONS``, which the tests hold equal)."""

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
    @property
    def features(self) -> Mapping[str, object] | None: ...
    @property
    def missing(self) -> str: ...


class FeatureStore(Protocol):
    """What the queue reads of the feature store (``relabel_features.RelabelFeatures``)."""

    def __len__(self) -> int: ...
    @property
    def evicted(self) -> int: ...


class TaskSink(Protocol):
    """Where the tasks go: a file (:class:`TaskFile`) or a topic (``KeyedTopic``)."""

    @property
    def where(self) -> str:
        """The file or topic, for logs."""
        ...

    def read_back(self) -> tuple[int, list[str]]:
        """At start: how many tasks it holds, and the ids of the most recent ones."""
        ...

    def write(self, tasks: Sequence[tuple[str, bytes]]) -> list[str]:
        """Write (event id, task JSON) pairs; the ids of those that were not taken."""
        ...

    def close(self) -> None:
        """Release what it holds (a producer: flushed within its timeout)."""
        ...


class TaskFile:
    """A JSON-lines file of tasks, appended to whole lines at a time (see the module
    docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        """The path."""
        return str(self.path)

    def read_back(self) -> tuple[int, list[str]]:
        """The file's complete lines and their ids; a torn last line is cut off. Fails
        (``OSError``) now, not at the first task, if the file cannot be written."""
        ids: list[str] = []
        lines = 0
        if self.path.exists():
            complete = 0
            with self.path.open("rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break
                    lines += 1
                    complete += len(line)
                    try:
                        ids.append(str(orjson.loads(line)["data"]["event_id"]))
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        continue
            if complete < self.path.stat().st_size:
                # A line a kill cut short: removed, and its task is written again whole.
                os.truncate(self.path, complete)
        self._append(b"")
        return lines, ids

    def write(self, tasks: Sequence[tuple[str, bytes]]) -> list[str]:
        """Append the tasks as lines; none is refused (a failing disk raises)."""
        if tasks:
            self._append(b"".join(task + b"\n" for _, task in tasks))
        return []

    def close(self) -> None:
        """Nothing is held open: each batch's lines are appended and the file closed."""

    def _append(self, data: bytes) -> None:
        """Append whole lines; the file is opened per batch of tasks, so none stays open."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with os.fdopen(fd, "ab") as f:
            f.write(data)


class RelabelQueue(Collector):
    """Queues relabel tasks in a file or a topic; a batch callback and a collector.

    Call it with each :class:`BatchOutcome` (``on_batch``); register it to export
    ``driftd_relabel_tasks_total{model}``,
    ``driftd_relabel_tasks_dropped_total{model,reason}``,
    ``driftd_relabel_queue_tasks{model}``,
    ``driftd_relabel_tasks_without_features_total{model,reason}`` and, given the
    feature store, ``driftd_relabel_feature_events{model}`` and
    ``driftd_relabel_feature_events_evicted_total{model}``. ``path`` is the file, unless
    ``sink`` says where the tasks go.
    """

    def __init__(
        self,
        path: Path | None,
        model: str,
        config: RelabelConfig,
        registry: CollectorRegistry | None = None,
        *,
        sink: TaskSink | None = None,
        features: FeatureStore | None = None,
    ) -> None:
        if sink is None:
            if path is None:
                raise ValueError("a relabel queue needs a path or a sink")
            sink = TaskFile(path)
        self.sink = sink
        self.path = None if path is None else Path(path)
        self.model = model
        self.config = config
        self.features = features
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.tasks = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.without_features: dict[str, int] = dict.fromkeys(MISSING_REASONS, 0)
        held, ids = sink.read_back()
        for event_id in ids:
            self._remember(event_id)
        self.in_file = held
        """Tasks the file holds (on a topic: tasks this process produced)."""
        if registry is not None:
            registry.register(self)

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        self._seen.move_to_end(event_id)
        while len(self._seen) > self.config.dedup_ids:
            self._seen.popitem(last=False)

    def close(self) -> None:
        """Close the sink (at the daemon's shutdown)."""
        self.sink.close()

    def __call__(self, outcome: BatchOutcome) -> None:
        """Queue the relabel candidates of one batch."""
        labels = outcome.labels
        if labels is not None and labels.relabel:
            self.write(labels.relabel)

    def write(self, candidates: Iterable[RelabelCandidate]) -> int:
        """Queue the tasks of ``candidates`` not queued yet; the number written."""
        tasks: list[tuple[str, bytes]] = []
        drops = dict.fromkeys(DROP_REASONS, 0)
        bare: dict[str, str] = {}  # event id -> why its task has no features
        for c in candidates:
            if c.event_id in self._seen:
                drops["duplicate"] += 1
                continue
            if self.in_file + len(tasks) >= self.config.max_tasks:
                drops["queue_full"] += 1
                continue
            features = c.features
            data: dict[str, object] = {**features} if features is not None else {}
            data["segment"] = c.segment
            try:
                task = label_studio_task(
                    c.event_id,
                    data,
                    c.prediction,
                    c.label,
                    choices=self.config.choices,
                    from_name=self.config.from_name,
                    to_name=self.config.to_name,
                )
            except ValueError:
                drops["invalid"] += 1
                continue
            if features is None:
                bare[c.event_id] = c.missing if c.missing in MISSING_REASONS else "not_captured"
            self._remember(c.event_id)
            tasks.append((c.event_id, orjson.dumps(task)))
        refused = self.sink.write(tasks) if tasks else []
        for event_id in refused:  # not taken: a replay may queue it again
            self._seen.pop(event_id, None)
            bare.pop(event_id, None)
        drops["delivery_failed"] += len(refused)
        written = len(tasks) - len(refused)
        with self._lock:
            self.in_file += written
            self.tasks += written
            for reason, n in drops.items():
                self.dropped[reason] += n
            for reason in bare.values():
                self.without_features[reason] += 1
        if drops["queue_full"]:
            _log.warning(
                "relabel_queue_full",
                model=self.model,
                where=self.sink.where,
                dropped=drops["queue_full"],
                max_tasks=self.config.max_tasks,
                hint="a file: move it away (import it into Label Studio), a new one starts at "
                "the next restart; a topic: the count starts again at the next restart",
            )
        return written

    # -- metrics ---------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        """The families, without samples."""
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        """The counts so far."""
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> list[Metric]:
        tasks = CounterMetricFamily(
            "driftd_relabel_tasks",
            "Label Studio tasks written to the relabel queue.",
            labels=["model"],
        )
        dropped = CounterMetricFamily(
            "driftd_relabel_tasks_dropped",
            "Relabel candidates not queued (reason: duplicate, queue_full, invalid, "
            "delivery_failed).",
            labels=["model", "reason"],
        )
        queued = GaugeMetricFamily(
            "driftd_relabel_queue_tasks",
            "Tasks in the relabel queue file, or produced to its topic by this process "
            "(against labels.relabel.max_tasks).",
            labels=["model"],
        )
        without = CounterMetricFamily(
            "driftd_relabel_tasks_without_features",
            "Relabel tasks written without the event's features (reason: store_full, "
            "restart, not_captured).",
            labels=["model", "reason"],
        )
        families: list[Metric] = [tasks, dropped, queued, without]
        if with_samples:
            with self._lock:
                tasks.add_metric([self.model], self.tasks)
                for reason, n in self.dropped.items():
                    dropped.add_metric([self.model, reason], n)
                queued.add_metric([self.model], self.in_file)
                for reason, n in self.without_features.items():
                    without.add_metric([self.model, reason], n)
        if self.features is not None:
            kept = GaugeMetricFamily(
                "driftd_relabel_feature_events",
                "Pending events whose features are kept for a relabel task (against "
                "labels.relabel.feature_events).",
                labels=["model"],
            )
            evicted = CounterMetricFamily(
                "driftd_relabel_feature_events_evicted",
                "Kept features pushed out of the full store before their label came.",
                labels=["model"],
            )
            if with_samples:
                kept.add_metric([self.model], len(self.features))
                evicted.add_metric([self.model], self.features.evicted)
            families += [kept, evicted]
        return families
