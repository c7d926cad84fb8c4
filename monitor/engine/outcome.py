"""What one batch did: the record the pipeline hands to the emit side.

The metrics, the journal, the terminal view and the alert service read a batch's
outcome; none of them needs the pipeline itself, so the outcome lives apart from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.engine.decision import Transition
from monitor.engine.labels.monitor import LabelOutcome
from monitor.engine.results import WindowResults
from monitor.ingest.source import Record, TopicPartition


@dataclass
class BatchOutcome:
    """What one batch did; ``next_offsets`` may be committed once the state is safe."""

    records: int
    accepted: int
    rejected: list[tuple[Record, str, str]]
    results: WindowResults | None
    transitions: list[Transition]
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    details: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Alert details (the top drifting bins) of firing transitions, by dedup key."""
    labels: LabelOutcome | None = None
    """The label side of the batch, when labels are enabled."""
    evicted: list[str] = field(default_factory=list)
    """Segments evicted for being idle before this batch (their series are removed)."""
    late: int = 0
    """Accepted events that came after the watermark passed their time window (counted,
    in no window)."""
    extra: list[WindowResults] = field(default_factory=list)
    """Rows decided beside the feature windows in this batch (estimated performance,
    multivariate, embedding, segment mix):
    already recorded and observed; here so that readers of the outcome see them too."""
