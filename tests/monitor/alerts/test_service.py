"""AlertService end to end: decision book -> router -> outbox -> PagerDuty receiver."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.alerts.model import AlertAction
from monitor.alerts.service import AlertService, TransitionSinkAdapter
from monitor.config import AlertsConfig, DetectorsConfig
from monitor.decision import DecisionBook, Transition
from monitor.errors import AlertDeliveryError
from monitor.results import WindowResults
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
    def __init__(self, answers: list[bool | Exception]) -> None:
        self.answers = answers
        self.calls: list[list[Transition]] = []

    def deliver(self, transitions: Iterable[Transition]) -> bool:
        self.calls.append(list(transitions))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


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
