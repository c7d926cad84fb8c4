"""Routing: which sinks get which alert, with optional per-segment grouping.

Routes (``alerts.routes``) match an alert's model, segment, method and severity, each
against a list of patterns (glob, so an exact name matches itself). Every matching
route contributes its sinks, in order, until a matching route with ``stop``. The
severity comes from ``alerts.severity_rules`` (first rule matching model, segment,
feature and method) or ``alerts.severity``.

A route with ``group_by_segment`` turns the transitions of one (model, segment,
window) into one page per segment, dedup key ``driftd/<model>/<segment>/*/*``: a
trigger listing every feature of the segment currently firing (the most severe,
then the highest score/threshold, gives the headline numbers; all of them are in
``details()["features"]``), re-sent (same dedup key, so PagerDuty does not page
again) when more features fire in a later window, and one resolve when the last
firing feature of the segment resolves. The router keeps that membership; it is
rebuilt from scratch after a restart (a repeated trigger is harmless).
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from monitor.config import AlertsConfig, RouteConfig, Severity, SeverityRule
from monitor.emit.alerts.model import AlertAction, grouped_key
from monitor.engine.decision import Transition

__all__ = ["SEVERITY_RANK", "Delivery", "Router", "matches"]

SEVERITY_RANK: Mapping[str, int] = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def matches(patterns: Sequence[str], value: str) -> bool:
    """Whether ``value`` matches one of ``patterns`` (case-sensitive glob or exact)."""
    return any(p == value or fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True)
class Delivery:
    """One action and the sinks it goes to."""

    action: AlertAction
    sinks: tuple[str, ...]


def _route_matches(route: RouteConfig, a: AlertAction) -> bool:
    return (
        matches(route.models, a.model)
        and matches(route.segments, a.segment)
        and matches(route.methods, a.method)
        and matches(route.severities, a.severity)
    )


def _rule_matches(rule: SeverityRule, t: Transition) -> bool:
    return (
        matches(rule.models, t.model)
        and matches(rule.segments, t.segment)
        and matches(rule.features, t.column)
        and matches(rule.methods, t.method)
    )


_GroupKey = tuple[int, str, str]
"""(route index, model, segment)"""


class Router:
    """Turns decision transitions into deliveries; thread-safe."""

    def __init__(
        self,
        routes: Sequence[RouteConfig],
        *,
        severity: Severity = "warning",
        severity_rules: Sequence[SeverityRule] = (),
        reference_version: str | None = None,
    ) -> None:
        self.routes = list(routes)
        self.severity = severity
        self.severity_rules = list(severity_rules)
        self.reference_version = reference_version
        self._lock = threading.Lock()
        self._firing: dict[_GroupKey, dict[str, AlertAction]] = {}

    @classmethod
    def from_config(cls, cfg: AlertsConfig) -> Router:
        """The router of ``alerts``."""
        return cls(
            cfg.routes,
            severity=cfg.severity,
            severity_rules=cfg.severity_rules,
            reference_version=cfg.reference_version,
        )

    def severity_of(self, t: Transition) -> Severity:
        """The severity of ``t``: the first matching rule's, else the default."""
        for rule in self.severity_rules:
            if _rule_matches(rule, t):
                return rule.severity
        return self.severity

    def action(self, t: Transition, extra: Mapping[str, Any] | None = None) -> AlertAction:
        """The (ungrouped) action of ``t``."""
        return AlertAction.from_transition(t, self.severity_of(t), self.reference_version, extra)

    def route(
        self,
        transitions: Sequence[Transition],
        extra: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[Delivery]:
        """Deliveries for ``transitions`` (one batch, in order); ``extra`` by dedup key."""
        extra = extra or {}
        plan: list[Delivery | tuple[int, str, str, float]] = []
        buckets: dict[tuple[int, str, str, float], list[AlertAction]] = {}
        with self._lock:
            for t in transitions:
                a = self.action(t, extra.get(t.dedup_key))
                direct: list[str] = []
                for i, route in enumerate(self.routes):
                    if not _route_matches(route, a):
                        continue
                    if route.group_by_segment:
                        key = (i, a.model, a.segment, a.window_end_ts)
                        if key not in buckets:
                            buckets[key] = []
                            plan.append(key)  # the group keeps its place in the batch
                        buckets[key].append(a)
                    else:
                        direct.extend(route.sinks)
                    if route.stop:
                        break
                if direct:
                    plan.append(Delivery(a, tuple(dict.fromkeys(direct))))
            out: list[Delivery] = []
            for step in plan:
                if isinstance(step, Delivery):
                    out.append(step)
                else:
                    i, model, segment, _ = step
                    out.extend(self._group(i, model, segment, buckets[step]))
        return out

    def _group(
        self, i: int, model: str, segment: str, actions: list[AlertAction]
    ) -> list[Delivery]:
        key = (i, model, segment)
        sinks = tuple(dict.fromkeys(self.routes[i].sinks))
        firing = self._firing.setdefault(key, {})
        was_open = bool(firing)
        triggered = False
        resolved = False
        for a in actions:
            if a.action == "trigger":
                firing[a.dedup_key] = a
                triggered = True
            else:
                firing.pop(a.dedup_key, None)
                resolved = True
        if firing and triggered:
            return [Delivery(self._page("trigger", model, segment, list(firing.values())), sinks)]
        if not firing:
            del self._firing[key]
            if resolved or was_open:
                return [Delivery(self._page("resolve", model, segment, actions), sinks)]
        return []

    def group_state(self) -> dict[_GroupKey, dict[str, AlertAction]]:
        """A copy of the open groups, for checkpoints."""
        with self._lock:
            return {k: dict(v) for k, v in self._firing.items()}

    def use_reference_version(self, version: str) -> None:
        """Stamp actions routed from now on with ``version`` (the reference in use)."""
        self.reference_version = version

    def load_group_state(self, state: Mapping[_GroupKey, Mapping[str, AlertAction]]) -> None:
        """Reopen the groups of :meth:`group_state`."""
        with self._lock:
            self._firing = {k: dict(v) for k, v in state.items() if v}

    def firing_groups(self) -> dict[tuple[str, str], list[str]]:
        """Firing members of every open group, by (model, segment) (for introspection)."""
        with self._lock:
            out: dict[tuple[str, str], list[str]] = {}
            for (_, model, segment), members in self._firing.items():
                out.setdefault((model, segment), []).extend(sorted(members))
            return out

    @staticmethod
    def _page(action: str, model: str, segment: str, members: list[AlertAction]) -> AlertAction:
        lead = max(
            members,
            key=lambda m: (
                SEVERITY_RANK[m.severity],
                m.score / m.threshold if m.threshold > 0 else m.score,
            ),
        )
        return replace(
            lead,
            action="trigger" if action == "trigger" else "resolve",
            dedup_key=grouped_key(model, segment),
            feature="*",
            method="*",
            members=tuple(members),
            transitions=tuple(t for m in members for t in m.transitions),
            window_end_ts=max(m.window_end_ts for m in members),
        )
