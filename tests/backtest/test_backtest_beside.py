"""A backtest reports the windows decided beside the feature windows, with their scores."""

from __future__ import annotations

from pathlib import Path

import orjson

from monitor.backtest.run import run_backtest
from monitor.backtest.table import render_text
from monitor.cli_demo import build_demo_reference, demo_settings
from monitor.ingest.demo_stream import DemoStream
from tests.backtest.streams import START_TS


def test_a_correlation_flip_shows_as_multivariate_windows_with_their_scores(
    tmp_path: Path,
) -> None:
    """North's flipped tie breaches its multivariate windows; the table names them by method."""
    settings = demo_settings(0, tmp_path / "reference.json")
    settings = settings.model_copy(
        update={"labels": settings.labels.model_copy(update={"enabled": False})}
    )
    assert build_demo_reference(settings, tmp_path, events=20_000) == []
    never = 10**9
    stream = DemoStream(
        feature_shift_at=never,
        prediction_shift_at=never,
        concept_shift_at=never,
        pair_correlation=0.8,
        correlation_flip_at=0,
        start_ts=START_TS,
    )
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"".join(orjson.dumps(e) + b"\n" for e in stream.next_batch(16_000).events())
    )
    result = run_backtest(settings, events).result
    beside = [w for w in result.windows if w.part == "beside"]
    joint = {w.segment: w for w in beside if "multivariate" in w.scores}
    assert set(joint) == {"north", "south", "west"}
    north = joint["north"].scores["multivariate"]["__multivariate__"]
    assert north >= joint["north"].thresholds["multivariate"]["__multivariate__"]
    for quiet in ("south", "west"):
        score = joint[quiet].scores["multivariate"]["__multivariate__"]
        assert score < joint[quiet].thresholds["multivariate"]["__multivariate__"]
    assert result.counts.windows == sum(w.part == "features" for w in result.windows)
    text = render_text(result)
    assert "Beside the feature windows" in text and "north    multivariate #0" in text
