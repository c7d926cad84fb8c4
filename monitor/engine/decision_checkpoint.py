"""The decision book's checkpoint format: one JSON-safe dict per state machine.

``state_dict`` output is ``{"version", "model", "entries", "transitions", "skipped"}``;
an entry holds the fields of :class:`~monitor.engine.decision_types.DecisionState`, NaN
stored as None. Books written before the array store load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from monitor.engine.decision_store import Fields, Row
from monitor.engine.decision_types import Key, StateName, TransitionName, Verdict
from monitor.errors import CheckpointError

STATE_VERSION: Final = 1

Transitions = dict[tuple[str, str, str, TransitionName], int]
"""Transitions so far, by (segment, column, method, to)."""


def nan_to_none(x: float) -> float | None:
    """NaN as None (JSON has no NaN)."""
    return None if math.isnan(x) else x


def checkpoint_entries(rows: Iterable[Fields]) -> list[dict[str, Any]]:
    """State machines as checkpoint entries."""
    nan = math.isnan
    return [
        {
            "segment": s,
            "column": c,
            "method": m,
            "state": state,
            "streak": streak,
            "score": None if nan(score) else score,
            "p_value": None if nan(p) else p,
            "threshold": threshold,
            "clear": clear,
            "n": n,
            "since_ts": since,
            "last_ts": last,
            "verdict": verdict,
        }
        for s, c, m, state, streak, score, p, threshold, clear, n, since, last, verdict in rows
    ]


def parse(
    state: Mapping[str, Any], model: str
) -> tuple[dict[Key, Row], Transitions, dict[str, int]]:
    """Entries (by key: a repeated one keeps its first place and its last values),
    transition counts and skipped counts of ``state_dict`` output.

    Raises ``CheckpointError`` if the data is malformed or for another model.
    """
    where = "decision_state"
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(where, f"unsupported version {state.get('version')!r}")
    if state.get("model") != model:
        raise CheckpointError(where, f"state of model {state.get('model')!r}")
    try:
        entries = {
            (str(d["segment"]), str(d["column"]), str(d["method"])): Row(
                str(d["segment"]),
                str(d["column"]),
                str(d["method"]),
                state=_state_name(d["state"]),
                streak=int(d["streak"]),
                score=_none_to_nan(d["score"]),
                p_value=_none_to_nan(d["p_value"]),
                threshold=float(d["threshold"]),
                clear=float(d["clear"]),
                n=int(d["n"]),
                since_ts=float(d["since_ts"]),
                last_ts=float(d["last_ts"]),
                verdict=_verdict_name(d.get("verdict")),
            )
            for d in _seq(state["entries"])
        }
        transitions: Transitions = {
            (str(s), str(c), str(m), _transition_name(to)): int(v)
            for s, c, m, to, v in _seq(state["transitions"])
        }
        skipped = {str(k): int(v) for k, v in dict(state["skipped"]).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(where, f"malformed: {exc!r}") from exc
    return entries, transitions, skipped


def _none_to_nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _seq(x: Any) -> Sequence[Any]:
    if not isinstance(x, list | tuple):
        raise TypeError(f"expected a list, got {type(x).__name__}")
    return x


def _state_name(x: Any) -> StateName:
    if x == "ok":
        return "ok"
    if x == "pending":
        return "pending"
    if x == "firing":
        return "firing"
    raise ValueError(f"unknown state {x!r}")


def _verdict_name(x: Any) -> str | None:
    """A saved verdict; absent (older checkpoints) is None."""
    if x is None:
        return None
    return Verdict(x).value  # ValueError on anything else


def _transition_name(x: Any) -> TransitionName:
    if x == "firing":
        return "firing"
    if x == "resolved":
        return "resolved"
    raise ValueError(f"unknown transition {x!r}")
