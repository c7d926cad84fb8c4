"""Reading the generated Grafana dashboards: their panels, queries and variables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard panel."""

    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def id(self) -> str:
        """A readable test id."""
        return f"{self.dashboard}/{self.panel}/{self.ref}"


@dataclass(frozen=True)
class VariableQuery:
    """A ``label_values([selector,] label)`` variable query."""

    dashboard: str
    name: str
    selector: str | None
    label: str


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON file under grafana/dashboards, by file name."""
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    """Every panel target's expression."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield Query(dashboard["uid"], panel["title"], target["refId"], target["expr"])


def variable_queries(dashboard: dict[str, Any]) -> Iterator[VariableQuery]:
    """Every query variable, parsed (a query that is not label_values raises)."""
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        text = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
        match = LABEL_VALUES.match(text.strip())
        if match is None:
            raise ValueError(f"{dashboard['uid']}: variable {var['name']}: {text!r}")
        yield VariableQuery(dashboard["uid"], var["name"], match["selector"], match["label"])


def all_queries() -> list[Query]:
    """The expressions of every dashboard."""
    return [q for d in load_dashboards().values() for q in queries(d)]


def all_variable_queries() -> list[VariableQuery]:
    """The variable queries of every dashboard."""
    return [v for d in load_dashboards().values() for v in variable_queries(d)]
