"""The alerting front door: config -> sinks, router and outbox.

The daemon builds one :class:`AlertService` from ``settings.alerts``, calls
:meth:`AlertService.start`, hands every batch of decision transitions to
:meth:`AlertService.submit` (O(1) per delivery, never blocks on a sink) and calls
:meth:`AlertService.close` at shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from monitor.config import (
    AlertmanagerSinkConfig,
    AlertsConfig,
    LogSinkConfig,
    PagerDutySinkConfig,
    SinkConfig,
    SlackSinkConfig,
    WebhookSinkConfig,
)
from monitor.emit.alerts._http import redact, register_secret_url
from monitor.emit.alerts.log_sink import LogSink
from monitor.emit.alerts.model import AlertAction, Sink
from monitor.emit.alerts.outbox import AlertOutbox, Backoff
from monitor.emit.alerts.pagerduty import PagerDutySink
from monitor.emit.alerts.persist import action_from_dict, action_to_dict
from monitor.emit.alerts.routing import Router
from monitor.emit.alerts.webhook import SlackSink, WebhookSink
from monitor.engine.decision import Transition
from monitor.errors import AlertDeliveryError, ConfigError, InvalidConfigError

__all__ = ["AlertService", "TransitionSinkAdapter", "build_sink"]


class TransitionDeliverer(Protocol):
    """A sink that takes decision transitions (the Alertmanager sink)."""

    resend_interval_s: float

    def deliver(
        self, transitions: Iterable[Transition], severities: Mapping[str, str] | None = None
    ) -> bool:
        """True if accepted, False if rejected for good; raises when retriable."""
        ...

    def resend_due(self) -> bool:
        """Whether some firing alert is due to be re-posted."""
        ...

    def resend(self) -> bool:
        """Re-post every firing alert; same outcomes as ``deliver``."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What it keeps firing, for the checkpoint."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        ...


class TransitionSinkAdapter:
    """Makes a transition-based sink (``deliver(transitions) -> bool``) an outbox sink.

    A False return is a permanent rejection; an exception with a true ``retriable``
    attribute is retried by the outbox; any other exception too, as a sink failure.
    """

    def __init__(self, name: str, target: TransitionDeliverer) -> None:
        self._name = name
        self.target = target

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    @property
    def tick_interval_s(self) -> float:
        """Check for due re-sends this often (a tenth of the resend interval, 1-30 s)."""
        return min(30.0, max(1.0, self.target.resend_interval_s / 10))

    def tick(self) -> str | None:
        """Re-post firing alerts when due: Alertmanager forgets alerts whose endsAt passed."""
        if not self.target.resend_due():
            return None
        self._call(self.target.resend)
        return "resent"

    def state_dict(self) -> dict[str, Any]:
        """The target's firing set (saved with the alert state)."""
        return self.target.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the target's firing set."""
        self.target.load_state_dict(state)

    def send(self, action: AlertAction) -> None:
        """Deliver the transitions behind ``action``."""
        members = action.members or (action,)
        severities = {t.dedup_key: m.severity for m in members for t in m.transitions}
        self._call(lambda: self.target.deliver(action.transitions, severities))

    def _call(self, post: Callable[[], bool]) -> None:
        try:
            ok = post()
        except Exception as e:
            if getattr(e, "retriable", False):
                raise AlertDeliveryError(
                    self._name,
                    redact(str(e)),
                    retriable=True,
                    status=getattr(e, "status", None),
                ) from None
            raise
        if not ok:
            raise AlertDeliveryError(self._name, "rejected", retriable=False, reason="rejected")


def build_sink(cfg: SinkConfig) -> Sink:
    """The sink of one ``alerts.sinks`` entry (secrets are read here)."""
    if isinstance(cfg, LogSinkConfig):
        return LogSink(cfg.name)
    if isinstance(cfg, PagerDutySinkConfig):
        return PagerDutySink.from_config(cfg)
    if isinstance(cfg, SlackSinkConfig):
        return SlackSink.from_config(cfg)
    if isinstance(cfg, WebhookSinkConfig):
        return WebhookSink.from_config(cfg)
    assert isinstance(cfg, AlertmanagerSinkConfig)
    from monitor.emit.alerts.alertmanager import AlertmanagerSink  # noqa: PLC0415

    url = cfg.url.get().get_secret_value()
    register_secret_url(url)
    am = AlertmanagerSink(
        url,
        resend_interval_s=cfg.resend_interval_s,
        expire_after_s=cfg.expire_after_s,
        timeout_s=cfg.timeout_s,
        runbook_url=cfg.runbook_url,
        generator_url=cfg.generator_url,
    )
    return TransitionSinkAdapter(cfg.name, am)


def _build_sinks(cfg: AlertsConfig) -> list[Sink]:
    built: list[Sink] = []
    errors: list[ConfigError] = []
    for i, sink in enumerate(cfg.sinks):
        try:
            built.append(build_sink(sink))
        except ValueError as e:
            # A secret file or variable that vanished since the config was checked.
            errors.append(ConfigError(f"alerts.sinks.{i}", redact(str(e))))
    if errors:
        raise InvalidConfigError(errors)
    return built


class AlertService:
    """Router plus outbox, built from ``alerts`` config (or explicit sinks for tests)."""

    def __init__(
        self,
        cfg: AlertsConfig,
        registry: CollectorRegistry,
        *,
        sinks: Sequence[Sink] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.router = Router.from_config(cfg)
        self._configured_reference_version = cfg.reference_version
        built = list(sinks) if sinks is not None else _build_sinks(cfg)
        self._sinks = built
        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.outbox = AlertOutbox(
            built,
            registry,
            capacity=cfg.outbox_capacity,
            backoff=Backoff.from_config(cfg.retry),
            **extra,
        )

    def reference_in_use(self, version: str) -> None:
        """The pipeline now monitors against reference ``version``: alerts name it, unless
        ``alerts.reference_version`` names one on purpose."""
        if self._configured_reference_version is None:
            self.router.use_reference_version(version)

    def start(self) -> None:
        """Start the sink workers."""
        self.outbox.start()

    def submit(
        self,
        transitions: Sequence[Transition],
        extra: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """Route and enqueue ``transitions``; returns the number of deliveries queued."""
        queued = 0
        for d in self.router.route(transitions, extra):
            queued += self.outbox.enqueue(d.action, d.sinks)
        return queued

    def close(self, timeout: float = 10.0, give_up: Callable[[], bool] | None = None) -> bool:
        """Flush for up to ``timeout`` seconds, or until ``give_up()`` turns true; True if
        nothing was left undelivered."""
        return self.outbox.close(timeout, give_up)

    def state_dict(self) -> dict[str, Any]:
        """Undelivered actions per sink, open groups and Alertmanager's firing set."""
        pending = {
            sink: [action_to_dict(a) for a in actions]
            for sink, actions in self.outbox.snapshot().items()
        }
        groups = [
            {
                "route": i,
                "model": m,
                "segment": s,
                "members": [action_to_dict(a) for a in v.values()],
            }
            for (i, m, s), v in self.router.group_state().items()
        ]
        firing = {
            sink.name: sink.state_dict()
            for sink in self._sinks
            if isinstance(sink, TransitionSinkAdapter)
        }
        return {"pending": pending, "groups": groups, "alertmanager": firing}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output: re-enqueue what was owed (before ``start``)."""
        for sink, actions in state.get("pending", {}).items():
            if sink in self.outbox.sinks:
                for raw in actions:
                    self.outbox.enqueue(action_from_dict(raw), [sink])
        self.router.load_group_state(
            {
                (int(g["route"]), str(g["model"]), str(g["segment"])): {
                    a.dedup_key: a for a in map(action_from_dict, g["members"])
                }
                for g in state.get("groups", [])
            }
        )
        for sink in self._sinks:
            saved = state.get("alertmanager", {}).get(sink.name)
            if saved and isinstance(sink, TransitionSinkAdapter):
                sink.load_state_dict(saved)
