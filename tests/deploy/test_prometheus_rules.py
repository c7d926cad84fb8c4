"""driftd's Prometheus rules: promtool's checks and unit tests, and their annotations."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.contract import known, metric_names
from tests.prometheus_server import find_promtool

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules" / "driftd.rules.yml"
RULE_TESTS = PROM_DIR / "tests" / "driftd.rules.test.yml"
RUNBOOK = PROM_DIR / "RUNBOOK.md"
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ALERTS = {
    "DriftdDriftActive",  # drift active
    "DriftdConceptDrift",  # concept drift
    "DriftdConsumerLagGrowing",  # consumer lag growing
    "DriftdDown",  # the daemon down ...
    "DriftdNotPolling",  # ... or not reading
    "DriftdNotConsuming",
    "DriftdDeadLetterRate",  # the dead-letter rate
    "DriftdCheckpointStale",  # a stale checkpoint
}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_promtool(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_promtool_check_rules() -> None:
    """promtool check rules accepts the rule file."""
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    """promtool's unit tests of every alert and recording rule pass."""
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_compose_prometheus_config() -> None:
    """The compose stack's prometheus.yml is valid and finds the rule files."""
    result = _promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_the_issue_s_alerts_exist() -> None:
    """Drift, concept drift, lag, down / not reading, dead letters and checkpoints alert."""
    assert {a["alert"] for a in _alerts()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_alert_has_severity_and_annotations(alert: dict[str, Any]) -> None:
    """Each alert has a severity label and summary, description and runbook_url."""
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    annotations = alert.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{alert['alert']}: no {key}"
    assert annotations["runbook_url"].startswith("https://")


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_runbook_url_points_at_a_runbook_section(alert: dict[str, Any]) -> None:
    """The runbook_url anchor is the alert's own section of RUNBOOK.md."""
    anchor = alert["annotations"]["runbook_url"].rsplit("#", 1)[1]
    assert anchor == alert["alert"].lower()
    headings = {
        line.lstrip("#").strip().lower()
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    assert anchor in headings


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """The promtool unit tests cover each alert firing and each alert staying quiet."""
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - fires == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def test_every_recording_rule_is_unit_tested() -> None:
    """Each recording rule's output is checked by a promql_expr_test."""
    doc = yaml.safe_load(RULE_TESTS.read_text())
    tested = {
        check["expr"].strip() for case in doc["tests"] for check in case.get("promql_expr_test", [])
    }
    records = {r["record"] for r in _rules() if "record" in r}
    assert records <= tested


def test_rules_use_only_contract_metrics() -> None:
    """Every driftd_ metric a rule reads is in driftd's metric contract."""
    unknown = {
        name for rule in _rules() for name in metric_names(str(rule["expr"])) if not known(name)
    }
    assert unknown == set()


def test_recording_rule_names_follow_the_convention() -> None:
    """Recorded series are named level:metric:operations."""
    for rule in _rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:driftd_[a-z0-9_]+:[a-z0-9_]+", rule["record"])
