"""The decision layer's values: transitions, states, verdicts and dedup keys."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

StateName = Literal["ok", "pending", "firing"]
TransitionName = Literal["firing", "resolved"]


Key = tuple[str, str, str]
"""(segment, column, method)"""


def dedup_key(model: str, segment: str, column: str, method: str) -> str:
    """The alert deduplication key shared by every sink."""
    return f"driftd/{model}/{segment}/{column}/{method}"


class Verdict(Enum):
    """How one window's score counts towards the state machine."""

    SEVERE = "severe"
    BREACH = "breach"
    BAND = "band"
    CLEAR = "clear"


@dataclass(frozen=True)
class Transition:
    """An alert transition: a state machine started firing, or resolved.

    ``consecutive`` is the breach streak behind it: for ``firing`` the breaching
    windows that fired it (``detectors.consecutive``); for ``resolved`` the breaching
    windows the episode counted before the clearing window.
    """

    model: str
    segment: str
    column: str
    method: str
    previous: StateName
    current: TransitionName
    score: float
    threshold: float
    clear: float
    p_value: float
    n: int
    window_end_ts: float
    dedup_key: str
    consecutive: int


@dataclass(frozen=True)
class DecisionState:
    """The current state of one state machine, for metrics and introspection.

    ``score``, ``p_value``, ``n``, ``threshold`` and ``clear`` are those of the last
    evaluated window; ``since_ts`` is the window end (event time) at which ``state``
    was entered, ``last_ts`` that of the last evaluated window.
    """

    segment: str
    column: str
    method: str
    state: StateName
    streak: int
    score: float
    p_value: float
    threshold: float
    clear: float
    n: int
    since_ts: float
    last_ts: float
    verdict: str | None = None
    """How the last judged window counted (``severe``, ``breach``, ``band``, ``clear``);
    None when unknown (restored from a checkpoint written before it was kept)."""
