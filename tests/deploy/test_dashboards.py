"""Lint of the generated Grafana dashboards and their provisioning files."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.deploy.contract import known, metric_names, recorded_names
from tests.deploy.dashboards import (
    DASHBOARD_DIR,
    ROOT,
    all_queries,
    load_dashboards,
    panels,
    queries,
    variable_queries,
)
from tests.deploy.tools import require_module

PROVISIONING = ROOT / "grafana" / "provisioning"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "driftd.rules.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase)\s*\(")
RANGE_SELECTOR = re.compile(r"\[([^\]]+)\]")

OVERVIEW_PANELS = {
    "Drift heatmap (segment x feature)",
    "Top drifting segments",
    "Active alerts",
    "Events/s",
    "Rejected/s and dead letters/s",
    "Consumer lag",
    "Window sizes",
    "Label join rate",
    "Label delay",
    "Performance by segment",
    "Fairness gaps by segment",
}
SEGMENT_PANELS = {
    "PSI by feature",
    "KS distance by feature",
    "p-values",
    "ADWIN window width",
    "ADWIN mean error",
}

# Every metric family of issue 17 (estimated performance before labels, realized against
# estimated, label noise and the relabel queue, multivariate and embedding drift, segment
# mix and new segments, and what cannot be monitored) is read by some panel.
BEYOND_UNIVARIATE_METRICS = {
    "driftd_estimated_performance",
    "driftd_estimated_performance_on_pairs",
    "driftd_realized_performance_on_pairs",
    "driftd_performance_drop",
    "driftd_performance_drop_threshold",
    "driftd_performance_unmonitored",
    "driftd_label_noise_share",
    "driftd_label_noise_threshold",
    "driftd_relabel_tasks_total",
    "driftd_relabel_tasks_dropped_total",
    "driftd_relabel_queue_tasks",
    "driftd_relabel_tasks_without_features_total",
    "driftd_relabel_feature_events",
    "driftd_relabel_feature_events_evicted_total",
    "driftd_multivariate_reconstruction_error",
    "driftd_multivariate_reconstruction_error_threshold",
    "driftd_multivariate_reconstruction_error_lower",
    "driftd_multivariate_unmonitored",
    "driftd_embedding_drift_distance",
    "driftd_embedding_drift_threshold",
    "driftd_embedding_unmonitored",
    "driftd_segment_mix_score",
    "driftd_segment_mix_threshold",
    "driftd_segment_mix_new_share",
    "driftd_segment_new",
}

DASHBOARDS = load_dashboards()


def _all_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(d["uid"], p) for d in DASHBOARDS.values() for p in panels(d)]


def test_generated_json_is_up_to_date() -> None:
    """grafana/dashboards/*.json is exactly what grafana/build.py generates."""
    require_module("grafana_foundation_sdk")
    result = subprocess.run(
        [sys.executable, str(ROOT / "grafana" / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_both_dashboards_exist_with_stable_uids() -> None:
    """The overview and the segment drill-down are there, under the linked uids."""
    assert {d["uid"] for d in DASHBOARDS.values()} == {"driftd-overview", "driftd-segment"}
    assert sorted(DASHBOARDS) == ["driftd-overview.json", "driftd-segment.json"]


def test_no_import_placeholders() -> None:
    """No ${DS_...} placeholders or __inputs, which break file provisioning."""
    for path in DASHBOARD_DIR.glob("*.json"):
        text = path.read_text()
        assert "${DS_" not in text and "__inputs" not in text, path.name


@pytest.mark.parametrize(
    "uid,panel", _all_panels(), ids=lambda x: x if isinstance(x, str) else x["title"]
)
def test_panel_has_unit_datasource_and_description(uid: str, panel: dict[str, Any]) -> None:
    """Every panel has a unit, reads the datasource variable and explains itself."""
    assert panel["fieldConfig"]["defaults"].get("unit"), f"{uid}/{panel['title']}: no unit"
    assert panel["datasource"] == DATASOURCE
    assert panel.get("description")
    assert panel.get("targets")
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE


@pytest.mark.parametrize("q", all_queries(), ids=lambda q: q.id)
def test_rates_use_rate_interval(q: Any) -> None:
    """rate, irate and increase take their range from $__rate_interval."""
    for match in RANGE_FUNCTIONS.finditer(q.expr):
        tail = q.expr[match.end() :]
        selector = RANGE_SELECTOR.search(tail)
        assert selector is not None, f"{q.id}: {match.group(1)} without a range"
        assert selector.group(1) == "$__rate_interval", f"{q.id}: [{selector.group(1)}]"


@pytest.mark.parametrize("q", all_queries(), ids=lambda q: q.id)
def test_queries_use_contract_metrics_and_defined_recordings(q: Any) -> None:
    """Each query reads contract metrics, or series recorded by driftd's rules."""
    assert {n for n in metric_names(q.expr) if not known(n)} == set(), q.expr
    records = {
        r["record"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "record" in r
    }
    assert recorded_names(q.expr) <= records, q.expr


def test_required_panels() -> None:
    """The overview and drill-down panels the issue lists are present."""
    titles = {d["uid"]: {p["title"] for p in panels(d)} for d in DASHBOARDS.values()}
    assert titles["driftd-overview"] >= OVERVIEW_PANELS
    assert titles["driftd-segment"] >= SEGMENT_PANELS


def test_every_beyond_univariate_metric_has_a_panel() -> None:
    """Each issue-17 metric family is read by at least one panel query."""
    read = {name for q in all_queries() for name in metric_names(q.expr)}
    assert BEYOND_UNIVARIATE_METRICS - read == set()


def test_drift_score_panels_show_thresholds() -> None:
    """PSI and KS panels draw their thresholds next to the scores."""
    seg = DASHBOARDS["driftd-segment.json"]
    for panel in panels(seg):
        if panel["title"] in {"PSI by feature", "KS distance by feature"}:
            exprs = " ".join(t["expr"] for t in panel["targets"])
            assert "driftd_drift_threshold" in exprs
            assert "driftd_drift_clear_threshold" in exprs


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables_are_chained_from_label_values(name: str) -> None:
    """datasource, then model and segment (and feature) chained through label_values."""
    dashboard = DASHBOARDS[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    chain = {v.name: v for v in variable_queries(dashboard)}
    assert chain["model"].label == "model"
    assert chain["segment"].label == "segment"
    assert chain["segment"].selector is not None and "$model" in chain["segment"].selector
    if "feature" in chain:
        selector = chain["feature"].selector or ""
        assert "$model" in selector and "$segment" in selector
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE
    declared = set(variables)
    for q in queries(dashboard):
        used = set(re.findall(r"\$\{?(\w+)", q.expr)) - {"__rate_interval", "__interval", "__range"}
        assert used <= declared, f"{q.id}: undeclared {used - declared}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_layout_fits_the_grid(name: str) -> None:
    """Panel ids are unique and every panel fits the 24-column grid."""
    dashboard = DASHBOARDS[name]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]


def test_datasource_provisioning() -> None:
    """One default Prometheus data source is provisioned with a fixed uid."""
    doc = yaml.safe_load((PROVISIONING / "datasources" / "driftd.yml").read_text())
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] and source["isDefault"] is True
    assert source["url"].startswith("http")


def test_dashboard_provisioning_points_at_the_mounted_dashboards() -> None:
    """The file provider reads the directory compose mounts grafana/dashboards at."""
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "driftd.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in mounts
