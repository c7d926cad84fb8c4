"""Alert state in checkpoints: what the outbox still owes, grouping, Alertmanager's firing set.

Transitions are enqueued before the checkpoint that includes their windows, and
delivered afterwards on the sinks' threads. Without this, a crash between the two
would lose the alert for good: replay starts after the checkpoint and never emits
the transition again. So every checkpoint carries the actions still queued or in
flight per sink, and a restart enqueues them again. Delivery is therefore at least
once; the dedup key makes a repeat harmless to PagerDuty and Alertmanager.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from monitor.emit.alerts.model import AlertAction
from monitor.engine.decision import Transition

_TRANSITION_FIELDS = {f.name for f in fields(Transition)}
_ACTION_FIELDS = {f.name for f in fields(AlertAction)}


def _floats_out(d: dict[str, Any]) -> dict[str, Any]:
    # NaN is fine in the codec, but keep the tree JSON-friendly for the journal too.
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _floats_in(d: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: (math.nan if k in names and v is None else v) for k, v in d.items()}


def transition_to_dict(t: Transition) -> dict[str, Any]:
    """A transition as a plain dict."""
    return _floats_out(asdict(t))


def transition_from_dict(d: Mapping[str, Any]) -> Transition:
    """The transition of :func:`transition_to_dict`."""
    values = _floats_in({k: d[k] for k in _TRANSITION_FIELDS}, ("score", "p_value"))
    return Transition(**values)


def action_to_dict(a: AlertAction) -> dict[str, Any]:
    """An alert action (members and transitions included) as a plain dict."""
    out: dict[str, Any] = {
        name: getattr(a, name)
        for name in _ACTION_FIELDS
        if name not in ("members", "transitions", "extra")
    }
    out["extra"] = dict(a.extra)
    out["members"] = [action_to_dict(m) for m in a.members]
    out["transitions"] = [transition_to_dict(t) for t in a.transitions]
    return _floats_out(out)


def action_from_dict(d: Mapping[str, Any]) -> AlertAction:
    """The action of :func:`action_to_dict`."""
    values = _floats_in(
        {k: d[k] for k in _ACTION_FIELDS if k in d}, ("score", "p_value", "threshold", "clear")
    )
    values["extra"] = dict(d.get("extra") or {})
    values["members"] = tuple(action_from_dict(m) for m in d.get("members", ()))
    values["transitions"] = tuple(transition_from_dict(t) for t in d.get("transitions", ()))
    return AlertAction(**values)
