"""AlertmanagerSink: payloads and error handling against a local fake, then a real Alertmanager."""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.emit.alerts.alertmanager import (
    AlertmanagerSink,
    AlertmanagerUnavailableError,
    alertname_for,
)
from monitor.engine.decision import Transition, dedup_key
from tests import alertmanager_server as am_server
from tests.alertmanager_server import (
    Alertmanager,
    Receiver,
    alertmanager_server,
    http_receiver,
    wait_for,
)
from tests.monitor.alerts import helpers

RUNBOOK = "https://runbooks.example/driftd/drift"


def transition(
    model: str, column: str = "age", *, ts: float | None = None, **kw: Any
) -> Transition:
    """The shared test transition, ending a few seconds ago (Alertmanager takes it live)."""
    return helpers.transition(column, model=model, ts=time.time() - 5 if ts is None else ts, **kw)


def unique_model() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- against a local fake Alertmanager ---------------------------------------------


@pytest.fixture
def fake() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


def test_posts_v2_alert_list_with_labels_annotations_and_times(fake: Receiver) -> None:
    """A firing transition is POSTed to /api/v2/alerts as a JSON list with the v2 fields."""
    clock = FakeClock(1_800_000_000.0)
    sink = AlertmanagerSink(
        fake.url + "/",
        resend_interval_s=30,
        runbook_url=RUNBOOK,
        generator_url="http://grafana.local/d/driftd",
        severity="critical",
        clock=clock,
    )
    t = transition("churn", ts=clock.now - 60)
    assert sink.deliver([t]) is True
    (req,) = fake.received()
    assert (req.method, req.path) == ("POST", "/api/v2/alerts")
    assert req.headers["Content-Type"] == "application/json"
    (alert,) = req.json()
    assert alert["labels"] == {
        "alertname": "DriftDetected",
        "model": "churn",
        "segment": "eu",
        "feature": "age",
        "method": "psi",
        "severity": "critical",
    }
    assert set(alert["annotations"]) == {"summary", "description", "runbook_url", "dedup_key"}
    assert alert["annotations"]["runbook_url"] == RUNBOOK
    assert alert["annotations"]["dedup_key"] == "driftd/churn/eu/age/psi"
    assert "churn/eu/age" in alert["annotations"]["summary"]
    assert alert["startsAt"] == "2027-01-15T07:59:00.000Z"
    assert alert["endsAt"] == "2027-01-15T08:02:00.000Z"  # now + 4 resend intervals
    assert alert["generatorURL"] == "http://grafana.local/d/driftd"
    assert sink.firing() == ["driftd/churn/eu/age/psi"]


def test_adwin_alerts_are_named_concept_drift() -> None:
    """The alertname is ConceptDrift for adwin and DriftDetected for the other methods."""
    assert alertname_for("adwin") == "ConceptDrift"
    assert alertname_for("ks") == "DriftDetected"
    sink = AlertmanagerSink("http://127.0.0.1:1")
    assert sink.labels(transition("m", method="adwin"))["alertname"] == "ConceptDrift"


def test_resolve_sends_same_labels_with_ends_at_now(fake: Receiver) -> None:
    """A resolve re-sends the firing labels with endsAt = now and leaves the firing set."""
    clock = FakeClock(1_800_000_000.0)
    sink = AlertmanagerSink(fake.url, clock=clock)
    sink.deliver([transition("churn", ts=clock.now - 60)])
    clock.now += 120
    assert sink.deliver([transition("churn", current="resolved", ts=clock.now - 1)]) is True
    firing, resolved = (r.json()[0] for r in fake.received())
    assert resolved["labels"] == firing["labels"]
    assert resolved["startsAt"] == firing["startsAt"]
    assert resolved["endsAt"] == "2027-01-15T08:02:00.000Z"
    assert sink.firing() == []


def test_transitions_of_one_alert_in_a_batch_collapse_to_the_last(fake: Receiver) -> None:
    """Firing then resolved for the same key in one batch posts only the resolve."""
    clock = FakeClock(1_800_000_000.0)
    sink = AlertmanagerSink(fake.url, clock=clock)
    batch = [transition("m"), transition("m", current="resolved"), transition("m", "b")]
    assert sink.deliver(batch) is True
    alerts = fake.received()[0].json()
    assert [a["labels"]["feature"] for a in alerts] == ["age", "b"]
    assert alerts[0]["endsAt"] == "2027-01-15T08:00:00.000Z"
    assert sink.firing() == ["driftd/m/eu/b/psi"]


def test_resend_due_follows_resend_interval(fake: Receiver) -> None:
    """resend_due turns true once a firing alert was last posted resend_interval_s ago."""
    clock = FakeClock(1_800_000_000.0)
    sink = AlertmanagerSink(fake.url, resend_interval_s=60, clock=clock)
    assert not sink.resend_due()
    assert sink.resend() is True and fake.received() == []  # nothing firing, nothing sent
    sink.deliver([transition("m")])
    assert not sink.resend_due(clock.now + 59.9)
    assert sink.resend_due(clock.now + 60)
    clock.now += 60
    assert sink.resend() is True
    resent = fake.received()[-1].json()
    assert [a["labels"]["feature"] for a in resent] == ["age"]
    assert resent[0]["endsAt"] == "2027-01-15T08:05:00.000Z"
    assert not sink.resend_due()


def test_http_400_is_not_retriable_and_reverts_the_trigger(fake: Receiver) -> None:
    """A 400 returns False (no exception) and the rejected trigger is not kept for resend."""
    fake.status, fake.reply = 400, b'{"message": "bad alert"}'
    sink = AlertmanagerSink(fake.url)
    assert sink.deliver([transition("m")]) is False
    assert sink.firing() == []
    assert not sink.resend_due()


@pytest.mark.parametrize("status", [500, 503, 429])
def test_http_5xx_and_429_raise_retriable_error(fake: Receiver, status: int) -> None:
    """5xx and 429 raise AlertmanagerUnavailableError (retriable) carrying the status."""
    fake.status = status
    sink = AlertmanagerSink(fake.url)
    with pytest.raises(AlertmanagerUnavailableError) as info:
        sink.deliver([transition("m")])
    assert info.value.status == status
    assert info.value.retriable is True
    assert sink.firing() == ["driftd/m/eu/age/psi"]  # kept: a resend or retry will post it
    assert sink.resend_due()


def test_connection_refused_raises_retriable_error() -> None:
    """A refused connection raises AlertmanagerUnavailableError with no status."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = AlertmanagerSink(f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(AlertmanagerUnavailableError) as info:
        sink.deliver([transition("m")])
    assert info.value.status is None


def test_timeout_raises_retriable_error() -> None:
    """A server that never answers raises AlertmanagerUnavailableError after timeout_s."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        sink = AlertmanagerSink(f"http://127.0.0.1:{s.getsockname()[1]}", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(AlertmanagerUnavailableError, match="timed out"):
            sink.deliver([transition("m")])
        assert time.monotonic() - started < 3


def test_url_credentials_become_basic_auth_and_never_leak(fake: Receiver) -> None:
    """user:pass in the URL is sent as basic auth and kept out of endpoint and errors."""
    sink = AlertmanagerSink(fake.url.replace("http://", "http://am:s3cr%40t@"))
    assert "s3cr" not in sink.endpoint
    sink.deliver([transition("m")])
    expected = base64.b64encode(b"am:s3cr@t").decode()
    assert fake.received()[0].headers["Authorization"] == f"Basic {expected}"
    fake.status = 503
    with pytest.raises(AlertmanagerUnavailableError) as info:
        sink.deliver([transition("m")])
    assert "s3cr" not in str(info.value)


# -- against a real Alertmanager ---------------------------------------------------


@pytest.mark.parametrize(("ci", "outcome"), [("", "skip"), ("true", "fail")])
def test_missing_binary_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: str
) -> None:
    """Without an Alertmanager binary the tests skip, unless CI is set: then they fail."""
    monkeypatch.delenv(am_server.BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(am_server, "DEBIAN_BIN", str(tmp_path / "absent"))
    monkeypatch.setenv(am_server.CI_ENV, ci)
    monkeypatch.delenv(am_server.REQUIRE_ENV, raising=False)  # make test sets it
    expected = pytest.skip.Exception if outcome == "skip" else pytest.fail.Exception
    with pytest.raises(expected, match="Alertmanager binary not found"):
        am_server.find_alertmanager()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def alertmanager(webhook: Receiver) -> Iterator[Alertmanager]:
    with alertmanager_server(webhook.url + "/hook") as am:
        yield am


def _statuses(webhook: Receiver, model: str) -> list[str]:
    return [str(p["status"]) for p in webhook.notifications(model=model)]


def _active(am: Alertmanager, model: str) -> list[dict[str, Any]]:
    return [a for a in am.alerts(model=model) if a["status"]["state"] == "active"]


@pytest.mark.integration
def test_real_alertmanager_shows_firing_alert_with_labels(alertmanager: Alertmanager) -> None:
    """A firing transition shows up in Alertmanager's GET /api/v2/alerts with its labels."""
    model = unique_model()
    sink = AlertmanagerSink(alertmanager.url, runbook_url=RUNBOOK)
    assert sink.deliver([transition(model), transition(model, "income", method="adwin")]) is True
    alerts = wait_for(
        lambda: len(_active(alertmanager, model)) == 2 and _active(alertmanager, model),
        timeout_s=10,
        what="two active alerts",
    )
    by_feature = {a["labels"]["feature"]: a for a in alerts}
    assert by_feature["age"]["labels"] == {
        "alertname": "DriftDetected",
        "model": model,
        "segment": "eu",
        "feature": "age",
        "method": "psi",
        "severity": "warning",
    }
    assert by_feature["income"]["labels"]["alertname"] == "ConceptDrift"
    assert by_feature["age"]["annotations"]["runbook_url"] == RUNBOOK
    assert by_feature["age"]["annotations"]["summary"].startswith("DriftDetected:")


@pytest.mark.integration
def test_real_alertmanager_notifies_webhook_of_firing(
    alertmanager: Alertmanager, webhook: Receiver
) -> None:
    """Alertmanager's own webhook notification for the alert reaches the local receiver."""
    model = unique_model()
    AlertmanagerSink(alertmanager.url).deliver([transition(model, "age")])
    (payload,) = wait_for(
        lambda: webhook.notifications(model=model), timeout_s=15, what="a webhook notification"
    )
    assert payload["status"] == "firing"
    assert payload["receiver"] == "driftd-webhook"
    (alert,) = payload["alerts"]
    assert alert["labels"]["feature"] == "age"
    assert alert["annotations"]["dedup_key"] == dedup_key(model, "eu", "age", "psi")


@pytest.mark.integration
def test_real_alertmanager_resolves_after_resolve_transition(
    alertmanager: Alertmanager, webhook: Receiver
) -> None:
    """After a resolve, the alert leaves the active list and the webhook gets status resolved."""
    model = unique_model()
    sink = AlertmanagerSink(alertmanager.url)
    sink.deliver([transition(model)])
    wait_for(lambda: "firing" in _statuses(webhook, model), timeout_s=15, what="firing")
    assert sink.deliver([transition(model, current="resolved")]) is True
    wait_for(lambda: not alertmanager.alerts(model=model), timeout_s=10, what="alert gone")
    wait_for(lambda: "resolved" in _statuses(webhook, model), timeout_s=15, what="resolved")
    assert _statuses(webhook, model)[0] == "firing"


@pytest.mark.integration
def test_real_alertmanager_keeps_resent_alert_and_expires_the_rest(
    alertmanager: Alertmanager,
) -> None:
    """A resent alert stays active past its endsAt; one that is not resent expires."""
    model = unique_model()
    kept = AlertmanagerSink(alertmanager.url, resend_interval_s=0.5)  # endsAt = now + 2 s
    dropped = AlertmanagerSink(alertmanager.url, resend_interval_s=0.5)
    kept.deliver([transition(model, "kept")])
    dropped.deliver([transition(model, "dropped")])
    wait_for(lambda: len(_active(alertmanager, model)) == 2, timeout_s=10, what="both active")
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        if kept.resend_due():
            assert kept.resend() is True
        time.sleep(0.1)
    features = {a["labels"]["feature"] for a in alertmanager.alerts(model=model)}
    assert features == {"kept"}
