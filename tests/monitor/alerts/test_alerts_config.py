"""The alerts config section: defaults, validation and secret sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import (
    AlertsConfig,
    LogSinkConfig,
    PagerDutySinkConfig,
    Settings,
    load_settings,
)
from monitor.errors import InvalidConfigError
from tests.monitor.alerts.helpers import ROUTING_KEY


def pd_sink(**kw: object) -> dict[str, object]:
    return {"type": "pagerduty", "name": "pd", "routing_key": ROUTING_KEY, **kw}


def test_default_alerts_only_log() -> None:
    """Without an alerts section every transition goes to the log sink only."""
    alerts = Settings().alerts
    assert alerts.sinks == [LogSinkConfig(name="log")]
    assert [r.sinks for r in alerts.routes] == [["log"]]
    assert alerts.outbox_capacity == 1000


def test_alerts_yaml_loads_sinks_and_routes(tmp_path: Path) -> None:
    """A YAML alerts section builds typed sinks, routes and retry settings."""
    path = tmp_path / "driftd.yaml"
    path.write_text(
        "alerts:\n"
        "  sinks:\n"
        "    - {type: log, name: log}\n"
        f"    - {{type: pagerduty, name: pd, routing_key: {ROUTING_KEY}, rate_per_minute: 60}}\n"
        "  routes:\n"
        "    - {models: ['fraud*'], sinks: [pd], group_by_segment: true}\n"
        "    - {sinks: [log]}\n"
        "  retry: {initial_s: 0.5, max_s: 30}\n"
    )
    alerts = load_settings(path).alerts
    assert isinstance(alerts.sinks[1], PagerDutySinkConfig)
    assert alerts.sinks[1].rate_per_minute == 60
    assert alerts.routes[0].group_by_segment
    assert alerts.retry.max_s == 30


@pytest.mark.parametrize(
    ("alerts", "needle"),
    [
        ({"routes": [{"sinks": ["nope"]}]}, "unknown sinks"),
        ({"sinks": [{"type": "log", "name": "a"}, {"type": "log", "name": "a"}]}, "duplicate"),
        ({"sinks": [pd_sink(rate_per_minute=120)], "routes": [{"sinks": ["pd"]}]}, "120"),
        (
            {
                "sinks": [pd_sink(grafana_url="https://g/{dashboard}")],
                "routes": [{"sinks": ["pd"]}],
            },
            "placeholder",
        ),
        ({"sinks": [{"type": "sms", "name": "x"}]}, "tag"),
        ({"outbox_capacity": 0}, "greater than or equal"),
        ({"routes": [{"sinks": ["log"], "colour": "red"}]}, "Extra inputs"),
    ],
)
def test_invalid_alerts_config_is_rejected(alerts: dict[str, object], needle: str) -> None:
    """Bad sinks, routes, limits and templates fail with an alerts.* key."""
    with pytest.raises(InvalidConfigError) as info:
        load_settings_from(alerts)
    assert all(k.startswith("alerts") for k in info.value.keys)
    assert needle in str(info.value)


def load_settings_from(alerts: dict[str, object]) -> Settings:
    from monitor.config import _dotted  # the same error path load_settings uses
    from monitor.errors import ConfigError

    try:
        return Settings.model_validate({"alerts": alerts})
    except Exception as exc:
        errors = [ConfigError(_dotted(e["loc"]), e["msg"]) for e in exc.errors()]  # type: ignore[attr-defined]
        raise InvalidConfigError(errors) from exc


def test_secret_sources_are_exclusive_and_must_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret needs exactly one of value/file/env, and a missing one fails without its value."""
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    cfg = AlertsConfig(sinks=[pd_sink(routing_key={"env": "PD_KEY"})], routes=[{"sinks": ["pd"]}])  # type: ignore[list-item]
    sink = cfg.sinks[0]
    assert isinstance(sink, PagerDutySinkConfig)
    assert sink.routing_key.get().get_secret_value() == ROUTING_KEY
    for bad, needle in [
        ({"env": "PD_KEY_MISSING"}, "PD_KEY_MISSING is unset"),
        ({"file": str(tmp_path / "absent")}, "cannot read secret file"),
        ({"value": ROUTING_KEY, "env": "PD_KEY"}, "exactly one"),
    ]:
        with pytest.raises(InvalidConfigError) as info:
            load_settings_from({"sinks": [pd_sink(routing_key=bad)], "routes": [{"sinks": ["pd"]}]})
        assert needle in str(info.value)
        assert ROUTING_KEY not in str(info.value)
