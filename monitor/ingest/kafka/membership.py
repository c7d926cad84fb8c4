"""Consumer-group membership of a Kafka source: joined or not, partitions owned, rebalances.

A member that never joins its group, or that owns no partition, polls happily and
monitors nothing: no lag series exists for partitions it does not own, so the lag-based
alerts stay quiet. :class:`MembershipTracker` makes that visible. After every poll the
source hands it the consumer; it reads kafka-python's public ``group_metadata()`` and
``assignment()`` (no request) and keeps a frozen snapshot that any thread may read.
While the member is not stable for longer than ``warn_after_s`` it logs
``kafka_group_not_joined`` once per ``warn_after_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from monitor.kafka.api import MemberState

__all__ = ["GroupMembership", "MembershipState", "MembershipTracker"]

log = structlog.get_logger()

MembershipState = Literal["unjoined", "rebalancing", "stable"]

_STATES: dict[str, MembershipState] = {
    MemberState.UNJOINED: "unjoined",
    MemberState.REBALANCING: "rebalancing",
    MemberState.STABLE: "stable",
}


@dataclass(frozen=True)
class GroupMembership:
    """One snapshot of this member's place in its consumer group."""

    group_id: str
    state: MembershipState = "unjoined"
    generation: int = -1
    """The group generation this member last joined; -1 before the first join."""
    partitions: int = 0
    """Partitions this member owns now (of every subscribed topic)."""
    generations_joined: int = 0
    """Distinct group generations joined since start: each rebalance adds one."""
    unstable_since: float | None = None
    """Monotonic time since which the member has not been stable (None while stable)."""

    @property
    def stable(self) -> bool:
        """Joined, assigned, heartbeating."""
        return self.state == "stable"


class MembershipTracker:
    """Keeps the latest :class:`GroupMembership` of one consumer (see module doc)."""

    def __init__(
        self,
        group_id: str,
        *,
        warn_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if warn_after_s <= 0:
            raise ValueError(f"warn_after_s must be > 0, got {warn_after_s}")
        self._clock = clock
        self._warn_after_s = warn_after_s
        self._warned_at: float | None = None
        # The generation last counted as joined: the client reports a new generation
        # while still rebalancing (after JoinGroup, before SyncGroup), so the snapshot's
        # generation cannot tell whether this one was counted yet.
        self._counted_generation = -1
        self.snapshot = GroupMembership(group_id, unstable_since=clock())
        """The latest membership; replaced whole, never mutated."""

    def observe(self, consumer: Any | None) -> GroupMembership:
        """Read the consumer's membership now (``None``: no consumer, so not joined)."""
        before = self.snapshot
        now = self._clock()
        if consumer is None:
            state: MembershipState = "unjoined"
            generation, partitions = before.generation, 0
        else:
            metadata = consumer.group_metadata()
            state = _STATES.get(metadata.state, "rebalancing")
            generation = int(metadata.generation_id)
            partitions = len(consumer.assignment()) if state == "stable" else 0
        joined = before.generations_joined
        if state == "stable" and generation >= 0 and generation != self._counted_generation:
            joined += 1
            self._counted_generation = generation
        if state == "stable":
            unstable_since = None
            if before.unstable_since is not None and self._warned_at is not None:
                log.info(
                    "kafka_group_joined",
                    group_id=before.group_id,
                    generation=generation,
                    partitions=partitions,
                    after_s=round(now - before.unstable_since, 1),
                )
            self._warned_at = None
        else:
            unstable_since = now if before.unstable_since is None else before.unstable_since
            self._warn_if_stuck(before.group_id, state, now - unstable_since, now)
        self.snapshot = GroupMembership(
            before.group_id,
            state,
            generation if generation >= 0 else before.generation,
            partitions,
            joined,
            unstable_since,
        )
        return self.snapshot

    def _warn_if_stuck(
        self, group_id: str, state: MembershipState, for_s: float, now: float
    ) -> None:
        if for_s < self._warn_after_s:
            return
        if self._warned_at is not None and now - self._warned_at < self._warn_after_s:
            return
        self._warned_at = now
        log.warning(
            "kafka_group_not_joined",
            group_id=group_id,
            state=state,
            for_s=round(for_s, 1),
            hint="this member owns no partition and monitors nothing; see the broker's "
            "group coordinator log and driftd_kafka_group_stable",
        )
