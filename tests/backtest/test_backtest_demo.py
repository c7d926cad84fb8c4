"""`driftd backtest` against `driftd demo`, and its table inputs against JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.backtest.run import run_backtest
from monitor.cli import main
from monitor.config import Settings
from monitor.engine.outcome import BatchOutcome
from monitor.wiring import build_daemon
from tests.backtest.streams import (
    flatten_events,
    write_config,
    write_demo_source,
    write_table,
)

DEMO_EVENTS = 100_000


@pytest.mark.slow
def test_backtest_finds_the_demos_transitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo stream, written to files and backtested, makes `driftd demo`'s transitions."""
    captured: dict[str, Any] = {"transitions": []}
    real_build = build_daemon  # what monitor.cli_demo calls

    def spy(settings: Settings, **kwargs: Any) -> Any:
        shown: Callable[[BatchOutcome], None] = kwargs["on_batch"]

        def both(outcome: BatchOutcome) -> None:
            captured["transitions"].extend(
                (t.dedup_key, t.current, t.window_end_ts) for t in outcome.transitions
            )
            shown(outcome)

        kwargs["on_batch"] = both
        captured["settings"] = settings
        captured["daemon"] = daemon = real_build(settings, **kwargs)
        return daemon

    monkeypatch.setattr("monitor.cli_demo.build_daemon", spy)
    assert main(["demo", "--events", str(DEMO_EVENTS), "--rate", "0", "--port", "0"]) == 0
    demo = captured["transitions"]
    start_ts = captured["daemon"].source.stream.start_ts
    events, labels = write_demo_source(tmp_path, DEMO_EVENTS, start_ts=start_ts)
    settings: Settings = captured["settings"]
    config = write_config(
        tmp_path / "driftd.yaml",
        settings.model_dump(mode="json", exclude_unset=True, by_alias=True),
    )
    out = tmp_path / "windows.json"
    capsys.readouterr()
    code = main(
        [
            *("backtest", "-c", str(config), "--events", str(events)),
            *("--labels", str(labels), "--json", str(out)),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    backtested = [(t["dedup_key"], t["to"], t["window_end_ts"]) for t in data["transitions"]]
    assert backtested == demo
    keys = {key for key, _, _ in demo}
    # The demo's injected drifts: features and predictions in west, concept in south.
    assert "driftd/credit-risk/west/income/psi" in keys
    assert "driftd/credit-risk/south/__error__/adwin" in keys
    stdout = capsys.readouterr().out
    assert "Would have paged:" in stdout and "west/utilization/psi" in stdout


def _without_inputs(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "inputs"}


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_give_the_same_result_as_json_lines(tmp_path: Path, suffix: str) -> None:
    """A flat CSV or Parquet table of the demo events gives the JSON Lines result."""
    events, _ = write_demo_source(tmp_path, 80_000, labels=False)
    settings = Settings(
        model="credit-risk",
        source={"batch_size": 2_000},  # type: ignore[arg-type]
        schema={"segment_by": ["features.region"], "categorical": []},  # type: ignore[arg-type]
        reference={"warmup_events": 30_000},  # type: ignore[arg-type]
        windows={"size_events": 5_000, "min_samples": 500},  # type: ignore[arg-type]
    )
    table = write_table(flatten_events(events), tmp_path / f"events{suffix}")
    from_jsonl = run_backtest(settings, events).result.to_json()
    from_table = run_backtest(settings, table).result.to_json()
    assert from_jsonl["transitions"], "the demo's west drift must page within 80,000 events"
    assert _without_inputs(from_table) == _without_inputs(from_jsonl)
