"""Router: matching by model/segment/method/severity, stop, severities and grouping."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.config import AlertsConfig, RouteConfig, SeverityRule
from monitor.emit.alerts.pagerduty import PagerDutySink, TokenBucket
from monitor.emit.alerts.routing import Router, matches
from monitor.emit.alerts.service import AlertService
from tests.monitor.alerts.helpers import ROUTING_KEY, RecordingSink, transition
from tests.monitor.alerts.receivers import Receiver, receiver


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def pd() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def sinks_of(router: Router, **kw: Any) -> tuple[str, ...]:
    (d,) = router.route([transition(**kw)])
    return d.sinks


def test_patterns_match_globs_and_exact_names() -> None:
    """Patterns are case-sensitive globs; a plain name matches only itself."""
    assert matches(["fraud"], "fraud")
    assert not matches(["fraud"], "fraud-v2")
    assert matches(["fraud*"], "fraud-v2")
    assert matches(["eu-?"], "eu-1")
    assert not matches(["EU"], "eu")


def test_routes_match_model_segment_method_and_severity() -> None:
    """Each route sends only the alerts matching all its patterns; matching routes merge."""
    router = Router(
        [
            RouteConfig(models=["fraud*"], sinks=["pd"]),
            RouteConfig(segments=["eu"], methods=["ks"], sinks=["slack"]),
            RouteConfig(severities=["critical"], sinks=["pd", "hook"]),
            RouteConfig(sinks=["log"]),
        ],
        severity_rules=[SeverityRule(features=["amount"], severity="critical")],
    )
    assert sinks_of(router, model="fraud-v2", method="psi") == ("pd", "log")
    assert sinks_of(router, model="churn", method="ks") == ("slack", "log")
    assert sinks_of(router, model="churn", segment="us", method="ks") == ("log",)
    assert sinks_of(router, model="fraud", column="amount") == ("pd", "hook", "log")


def test_stop_ends_matching() -> None:
    """A matching route with stop keeps later routes from applying."""
    router = Router(
        [
            RouteConfig(segments=["test-*"], sinks=["log"], stop=True),
            RouteConfig(sinks=["pd"]),
        ]
    )
    assert sinks_of(router, segment="test-a") == ("log",)
    assert sinks_of(router, segment="prod") == ("pd",)
    assert Router([RouteConfig(models=["x"], sinks=["pd"])]).route([transition()]) == []


def test_severity_rules_first_match_wins_else_default() -> None:
    """Severity comes from the first matching rule, else alerts.severity."""
    router = Router(
        [RouteConfig(sinks=["log"])],
        severity="info",
        severity_rules=[
            SeverityRule(methods=["ks"], severity="error"),
            SeverityRule(segments=["eu"], severity="critical"),
        ],
    )
    assert router.severity_of(transition(method="ks")) == "error"
    assert router.severity_of(transition(method="psi")) == "critical"
    assert router.severity_of(transition(segment="us")) == "info"


def test_grouping_pages_once_per_segment_and_window() -> None:
    """Features of one segment firing in one window become one page listing them all."""
    router = Router([RouteConfig(sinks=["pd"], group_by_segment=True)])
    out = router.route(
        [
            transition("age", score=0.3),
            transition("amount", score=0.9),
            transition("country", score=0.4),
            transition("age", segment="us"),
        ]
    )
    assert [(d.action.dedup_key, d.sinks) for d in out] == [
        ("driftd/fraud/eu/*/*", ("pd",)),
        ("driftd/fraud/us/*/*", ("pd",)),
    ]
    page = out[0].action
    assert page.action == "trigger"
    assert page.score == 0.9  # the most drifted feature leads
    details = page.details()
    assert [f["feature"] for f in details["features"]] == ["age", "amount", "country"]
    assert "3 feature(s)" in page.summary()


def test_grouped_page_resolves_when_the_last_feature_resolves() -> None:
    """Partial recovery sends nothing; the last resolve sends one resolve for the segment."""
    router = Router([RouteConfig(sinks=["pd"], group_by_segment=True)])
    router.route([transition("age"), transition("amount")])
    assert router.route([transition("age", current="resolved", ts=1.77e9)]) == []
    (d,) = router.route([transition("amount", current="resolved", ts=1.78e9)])
    assert (d.action.action, d.action.dedup_key) == ("resolve", "driftd/fraud/eu/*/*")
    assert router.firing_groups() == {}


def test_grouped_page_is_updated_when_more_features_fire_later() -> None:
    """A later window adding features re-sends the trigger under the same dedup key."""
    router = Router([RouteConfig(sinks=["pd"], group_by_segment=True)])
    router.route([transition("age")])
    (d,) = router.route([transition("amount", ts=1.77e9)])
    assert d.action.dedup_key == "driftd/fraud/eu/*/*"
    assert sorted(m.feature for m in d.action.members) == ["age", "amount"]


def test_grouped_and_plain_routes_coexist_in_batch_order() -> None:
    """A grouping route pages per segment while another route gets every feature alert."""
    router = Router(
        [
            RouteConfig(sinks=["pd"], group_by_segment=True),
            RouteConfig(sinks=["log"]),
        ]
    )
    out = router.route([transition("age"), transition("amount")])
    assert [(d.action.dedup_key, d.sinks) for d in out] == [
        ("driftd/fraud/eu/*/*", ("pd",)),
        ("driftd/fraud/eu/age/psi", ("log",)),
        ("driftd/fraud/eu/amount/psi", ("log",)),
    ]


def test_service_routes_grouped_pages_to_pagerduty_within_contract(
    pd: Receiver, registry: CollectorRegistry
) -> None:
    """End to end: a 5-feature storm is one valid PagerDuty page, then one resolve."""
    cfg = AlertsConfig.model_validate(
        {
            "sinks": [
                {"type": "log", "name": "log"},
                {"type": "pagerduty", "name": "pd", "routing_key": ROUTING_KEY, "url": pd.url},
            ],
            "routes": [
                {"sinks": ["pd"], "group_by_segment": True, "models": ["fraud"]},
                {"sinks": ["log"]},
            ],
            "reference_version": "ref-3",
        }
    )
    log = RecordingSink("log")
    pd_sink = PagerDutySink("pd", ROUTING_KEY, url=pd.url, bucket=TokenBucket(1000.0, 100))
    service = AlertService(cfg, registry, sinks=[log, pd_sink])
    with capture_logs():
        service.start()
        features = ["a", "b", "c", "d", "e"]
        service.submit([transition(f) for f in features])
        service.submit([transition(f, current="resolved", ts=1.77e9) for f in features])
        assert service.close(5.0)
    assert pd.violations == []
    assert pd.actions() == [
        ("trigger", "driftd/fraud/eu/*/*"),
        ("resolve", "driftd/fraud/eu/*/*"),
    ]
    details = pd.accepted[0]["payload"]["custom_details"]
    assert len(details["features"]) == 5
    assert details["reference_version"] == "ref-3"
    assert len(log.delivered) == 10
