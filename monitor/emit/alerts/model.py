"""What the outbox carries: alert actions built from decision transitions, and sinks."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from monitor.config import Severity
from monitor.engine.decision import Transition

Action = Literal["trigger", "resolve"]
ACTIONS: tuple[Action, ...] = ("trigger", "resolve")


@dataclass(frozen=True, eq=False)
class AlertAction:
    """A trigger or resolve of one alert, as every sink sees it.

    Built from a :class:`Transition` (``firing`` -> trigger, ``resolved`` -> resolve).
    A grouped page (one per segment) has ``feature`` and ``method`` ``*`` and lists its
    member alerts in ``members``; ``transitions`` are the decision transitions behind
    it, for sinks that speak transitions (Alertmanager).
    """

    action: Action
    dedup_key: str
    model: str
    segment: str
    feature: str
    method: str
    severity: Severity
    score: float
    threshold: float
    clear: float
    p_value: float
    n: int
    window_end_ts: float
    consecutive: int
    reference_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """More details (e.g. the top drifting bins), JSON-safe."""
    members: tuple[AlertAction, ...] = ()
    transitions: tuple[Transition, ...] = ()

    @classmethod
    def from_transition(
        cls,
        t: Transition,
        severity: Severity = "warning",
        reference_version: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AlertAction:
        """The action of one transition."""
        return cls(
            action="trigger" if t.current == "firing" else "resolve",
            dedup_key=t.dedup_key,
            model=t.model,
            segment=t.segment,
            feature=t.column,
            method=t.method,
            severity=severity,
            score=t.score,
            threshold=t.threshold,
            clear=t.clear,
            p_value=t.p_value,
            n=t.n,
            window_end_ts=t.window_end_ts,
            consecutive=t.consecutive,
            reference_version=reference_version,
            extra=dict(extra or {}),
            transitions=(t,),
        )

    @property
    def grouped(self) -> bool:
        """True for a per-segment page standing for several features."""
        return bool(self.members)

    def summary(self) -> str:
        """One human line (PagerDuty truncates it to 1024 characters)."""
        where = f"{self.model}/{self.segment}"
        if self.grouped:
            names = ", ".join(sorted({f"{m.feature}:{m.method}" for m in self.members}))
            if self.action == "trigger":
                return f"Drift in {where}: {len(self.members)} feature(s) firing ({names})"
            return f"Drift resolved in {where}"
        if self.action == "trigger":
            return (
                f"Drift in {where}/{self.feature}: {self.method} score {self.score:.4g} "
                f">= threshold {self.threshold:.4g}"
            )
        return (
            f"Drift resolved in {where}/{self.feature}: {self.method} score "
            f"{self.score:.4g} < clear {self.clear:.4g}"
        )

    def details(self) -> dict[str, Any]:
        """JSON-safe details: scores, thresholds, window, reference, grouped members."""
        out: dict[str, Any] = {
            "model": self.model,
            "segment": self.segment,
            "feature": self.feature,
            "method": self.method,
            "score": _finite(self.score),
            "threshold": _finite(self.threshold),
            "clear": _finite(self.clear),
            "p_value": _finite(self.p_value),
            "window_size": self.n,
            "window_end": iso8601(self.window_end_ts),
            "consecutive_windows": self.consecutive,
            "reference_version": self.reference_version,
        }
        out.update(self.extra)
        if self.members:
            out["features"] = [
                {k: v for k, v in m.details().items() if k not in ("model", "segment")}
                for m in self.members
            ]
        return out

    def link_fields(self, window_s: float = 3_600.0) -> dict[str, str]:
        """URL-quoted values for link templates (``{model}``, ``{from_ms}`` ...)."""
        end_ms = int(self.window_end_ts * 1000)
        raw = {
            "model": self.model,
            "segment": self.segment,
            "feature": self.feature,
            "method": self.method,
            "from_ms": str(end_ms - int(window_s * 1000)),
            "to_ms": str(end_ms),
        }
        return {k: urllib.parse.quote(v, safe="") for k, v in raw.items()}


def grouped_key(model: str, segment: str) -> str:
    """The dedup key of a per-segment grouped page."""
    return f"driftd/{model}/{segment}/*/*"


def iso8601(ts: float) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def render_link(template: str, action: AlertAction) -> str:
    """``template`` with the action's link fields filled in."""
    return template.format_map(action.link_fields())


class Sink(Protocol):
    """Delivers one action; raises :class:`~monitor.errors.AlertDeliveryError` if it cannot.

    ``send`` runs on the sink's own outbox worker thread, so it may block (bounded by
    its HTTP timeout). A retriable error makes the outbox retry the same action.
    """

    @property
    def name(self) -> str:
        """The configured sink name (safe to log and to use as a metric label)."""
        ...

    def send(self, action: AlertAction) -> None:
        """Deliver ``action`` or raise ``AlertDeliveryError``."""
        ...


@runtime_checkable
class PeriodicSink(Sink, Protocol):
    """A sink with background work between deliveries (Alertmanager's re-sends).

    Its outbox worker calls ``tick`` when its queue has been idle for
    ``tick_interval_s``, on the same thread as ``send``, so the two never overlap.
    """

    @property
    def tick_interval_s(self) -> float:
        """Seconds of idle queue between ticks."""
        ...

    def tick(self) -> str | None:
        """Do the periodic work; the outcome to count (``resent``), or None if none was due.

        Raises ``AlertDeliveryError`` on failure (the next tick tries again).
        """
        ...
