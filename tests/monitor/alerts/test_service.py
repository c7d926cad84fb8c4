"""AlertService end to end: decision book -> router -> outbox -> PagerDuty receiver."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.config import AlertsConfig, DetectorsConfig, RouteConfig
from monitor.emit.alerts.model import AlertAction
from monitor.emit.alerts.service import AlertService, TransitionSinkAdapter
from monitor.engine.decision import DecisionBook, Transition
from monitor.engine.results import WindowResults
from monitor.errors import AlertDeliveryError, InvalidConfigError
from tests.monitor.alerts.helpers import ROUTING_KEY, sample, transition
from tests.monitor.alerts.receivers import Receiver, receiver


@pytest.fixture
def pd() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def window(score: float, ts: float) -> WindowResults:
    return WindowResults(
        model="fraud",
        segments=("eu",),
        columns=("age",),
        window_end_ts=np.array([ts]),
        rows=np.array([1_000], dtype=np.int64),
        n=np.array([[1_000]], dtype=np.int64),
        missing_rate=np.zeros((1, 1)),
        scores={"psi": np.array([[score]])},
        p_values={},
    )


def test_flapping_inside_the_hysteresis_band_pages_once(pd: Receiver) -> None:
    """Scores flapping between clear and threshold add no page: one trigger, one resolve."""
    cfg = AlertsConfig.model_validate(
        {
            "sinks": [
                {"type": "pagerduty", "name": "pd", "routing_key": ROUTING_KEY, "url": pd.url}
            ],
            "routes": [{"sinks": ["pd"]}],
        }
    )
    registry = CollectorRegistry()
    book = DecisionBook("fraud", DetectorsConfig(consecutive=2), min_samples=100)
    service = AlertService(cfg, registry)
    scores = [0.3, 0.3, 0.2, 0.3, 0.12, 0.24, 0.11, 0.26, 0.15, 0.05, 0.2, 0.12, 0.24]
    with capture_logs():
        service.start()
        for i, score in enumerate(scores):
            service.submit(book.observe(window(score, 1.76e9 + 60 * i)))
        assert service.close(5.0)
    assert pd.violations == []
    assert pd.actions() == [
        ("trigger", "driftd/fraud/eu/age/psi"),
        ("resolve", "driftd/fraud/eu/age/psi"),
    ]
    labels = {"sink": "pd", "outcome": "delivered"}
    assert sample(registry, "driftd_alerts_total", action="trigger", **labels) == 1
    assert sample(registry, "driftd_alerts_total", action="resolve", **labels) == 1


class UnavailableError(Exception):
    retriable = True
    status = 503


class FakeTransitionSink:
    resend_interval_s = 10.0

    def __init__(self, answers: list[bool | Exception], due: bool = False) -> None:
        self.answers = answers
        self.calls: list[list[Transition]] = []
        self.severities: list[dict[str, str]] = []
        self.due = due
        self.resends = 0

    def deliver(
        self, transitions: Iterable[Transition], severities: Mapping[str, str] | None = None
    ) -> bool:
        self.calls.append(list(transitions))
        self.severities.append(dict(severities or {}))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def resend_due(self) -> bool:
        return self.due

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def resend(self) -> bool:
        self.resends += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_transition_sink_adapter_passes_routed_severity() -> None:
    """The severity a route decided reaches the transition sink, keyed by dedup key."""
    fake = FakeTransitionSink([True])
    a = AlertAction.from_transition(transition("age"), severity="critical")
    TransitionSinkAdapter("am", fake).send(a)
    assert fake.severities == [{a.dedup_key: "critical"}]


def test_transition_sink_adapter_ticks_resend_only_when_due() -> None:
    """A tick re-sends only when due, and a failed re-send raises a retriable error."""
    fake = FakeTransitionSink([True, UnavailableError("down")])
    sink = TransitionSinkAdapter("am", fake)
    assert sink.tick() is None and fake.resends == 0
    fake.due = True
    assert sink.tick() == "resent" and fake.resends == 1
    with pytest.raises(AlertDeliveryError) as info:
        sink.tick()
    assert info.value.retriable
    assert sink.tick_interval_s == 1.0


class QuickTicks(TransitionSinkAdapter):
    """The adapter ticking every 50 ms instead of at its 1 s floor (the outbox is under test)."""

    @property
    def tick_interval_s(self) -> float:
        """Much shorter than any real sink's."""
        return 0.05


def test_the_tick_interval_is_a_tenth_of_the_resend_interval_within_1_to_30_s() -> None:
    """A sink is checked for due re-sends at a tenth of its interval, floored at 1 s."""
    fake = FakeTransitionSink([], due=False)
    for resend_s, tick_s in ((0.2, 1.0), (100.0, 10.0), (3_600.0, 30.0)):
        fake.resend_interval_s = resend_s
        assert TransitionSinkAdapter("am", fake).tick_interval_s == tick_s


def test_outbox_ticks_an_idle_periodic_sink() -> None:
    """An idle periodic sink is ticked by its worker; resends and failures are counted."""
    fake = FakeTransitionSink([True, UnavailableError("down"), True], due=True)
    registry = CollectorRegistry()
    service = AlertService(
        AlertsConfig(routes=[RouteConfig(sinks=["log"])]),
        registry,
        sinks=[QuickTicks("log", fake)],
    )
    service.start()
    try:
        deadline = time.monotonic() + 10
        while fake.resends < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        fake.due = False
        service.close(1.0)
    assert fake.resends >= 3

    def count(outcome: str) -> float | None:
        labels = {"sink": "log", "action": "trigger", "outcome": outcome}
        return registry.get_sample_value("driftd_alerts_total", labels)

    assert count("resent") == 2 and count("retry") == 1


def test_transition_sink_adapter_maps_outcomes() -> None:
    """The adapter passes transitions and maps retriable errors and False to delivery errors."""
    fake = FakeTransitionSink([True, UnavailableError("down"), False, ValueError("bug")])
    sink = TransitionSinkAdapter("am", fake)
    a = AlertAction.from_transition(transition("age"))
    sink.send(a)
    assert fake.calls == [[a.transitions[0]]]
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(a)
    assert (info.value.retriable, info.value.status) == (True, 503)
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(a)
    assert not info.value.retriable
    with pytest.raises(ValueError, match="bug"):
        sink.send(a)


def test_secret_gone_at_startup_is_a_config_error_naming_the_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secret that vanished after validation fails the start with the sink's key, redacted."""
    monkeypatch.setenv("DRIFTD_TEST_PD_KEY", ROUTING_KEY)
    cfg = AlertsConfig(
        sinks=[{"type": "pagerduty", "name": "pd", "routing_key": {"env": "DRIFTD_TEST_PD_KEY"}}],  # type: ignore[list-item]
        routes=[RouteConfig(sinks=["pd"])],
    )
    monkeypatch.delenv("DRIFTD_TEST_PD_KEY")
    with pytest.raises(InvalidConfigError) as info:
        AlertService(cfg, CollectorRegistry())
    (error,) = info.value.errors
    assert error.key == "alerts.sinks.0"
    assert "DRIFTD_TEST_PD_KEY" in error.message and ROUTING_KEY not in str(info.value)
