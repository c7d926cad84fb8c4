"""Segment-mix drift and new segments in the daemon: windows, decisions, metrics, restarts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detectors.profile import ReferenceProfile, build_profile
from detectors.segment_mix import SegmentMix
from monitor.app import Daemon, make_results
from monitor.cli import main
from monitor.config import Settings
from monitor.engine.outcome import BatchOutcome
from monitor.engine.pipeline import Pipeline
from monitor.engine.segment_mix import MIX_COLUMN, MIX_SEGMENT, SegmentMixWindows
from monitor.errors import CheckpointError
from monitor.ingest.file_source import FileSource
from monitor.ingest.source import Record
from monitor.state import FileCheckpointStore
from monitor.state.checkpointer import StateCheckpointer
from tests.monitor.pipeline_runs import run_pipeline

REGIONS = ("north", "south", "west")
REFERENCE_SHARES = (0.5, 0.3, 0.2)
WINDOW = 1_000
T0 = 1_700_000_000.0


def reference(with_mix: bool = True) -> ReferenceProfile:
    """A one-feature profile; with ``with_mix``, 10,000 events split 50/30/20 by region."""
    rng = np.random.default_rng(7)
    profile = build_profile({"x": rng.normal(size=4_000)})
    if not with_mix:
        return profile
    counts = {r: int(10_000 * s) for r, s in zip(REGIONS, REFERENCE_SHARES, strict=True)}
    return replace(profile, segments=SegmentMix.from_counts(counts), version="")


def settings(tmp_path: Path, **extra: Any) -> Settings:
    """Windows of 1,000 events per segment and per segment-mix window."""
    return Settings(
        model="m",
        schema={"segment_by": ["features.region"]},  # type: ignore[arg-type]
        reference={"path": tmp_path / "unused.json"},  # type: ignore[arg-type]
        windows={"size_events": WINDOW, "min_samples": 100},  # type: ignore[arg-type]
        segment_mix={"window_events": WINDOW, "min_samples": 300, **extra.pop("mix", {})},  # type: ignore[arg-type]
        checkpoint=extra.pop("checkpoint", {"directory": tmp_path / "state", "interval_s": 0}),
        **extra,
    )


def batches(
    shares: Sequence[tuple[float, ...]], regions: tuple[str, ...] = REGIONS, size: int = 700
) -> list[list[Record]]:
    """Batches of ``size`` events (cut across window boundaries), one share row per batch."""
    rng = np.random.default_rng(11)
    out, offset = [], 0
    for shares_now in shares:
        keys = rng.choice(regions, size=size, p=shares_now)
        x = rng.normal(size=size)
        records = []
        for i in range(size):
            event = {
                "id": f"e{offset + i}",
                "ts": T0 + offset + i,
                "model": "m",
                "features": {"x": float(x[i]), "region": str(keys[i])},
                "prediction": 0.5,
            }
            records.append(Record(orjson.dumps(event), "events", 0, offset + i))
        out.append(records)
        offset += size
    return out


def run(
    cfg: Settings, stream: list[list[Record]], profile: ReferenceProfile | None = None
) -> tuple[Pipeline, list[BatchOutcome]]:
    """A pipeline on ``profile`` (the default reference) fed every batch."""
    return run_pipeline(cfg, stream, profile or reference(), T0 + 1e6)


def mix_transitions(outcomes: list[BatchOutcome], method: str = "segment_mix") -> list[str]:
    """The segment-mix transitions, as ``current`` states in order."""
    return [
        t.current
        for o in outcomes
        for t in o.transitions
        if t.segment == MIX_SEGMENT and t.column == MIX_COLUMN and t.method == method
    ]


def scrape(pipeline: Pipeline, tmp_path: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The daemon's /metrics text of the segment-mix families, parsed: name -> samples."""
    events = tmp_path / "none.jsonl"
    events.touch()
    source = FileSource(events, 10)
    daemon = Daemon(pipeline.settings, source, pipeline, registry=CollectorRegistry())
    text = generate_latest(daemon.registry).decode()
    source.close()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "segment" in sample.name:
                out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


STATIONARY = [REFERENCE_SHARES] * 10
SHIFTED = [REFERENCE_SHARES] * 3 + [(0.2, 0.3, 0.5)] * 7


@pytest.mark.parametrize("after", [(0.2, 0.3, 0.5), (0.38, 0.32, 0.3)])
def test_mix_change_pages_within_two_windows_and_stationary_stays_quiet(
    tmp_path: Path, after: tuple[float, ...]
) -> None:
    """50/30/20 -> a new mix fires by the second window after it; a stationary mix never does."""
    cfg = settings(tmp_path)
    _, quiet = run(cfg, batches(STATIONARY))
    assert mix_transitions(quiet) == []
    pipeline, shifted = run(cfg, batches([REFERENCE_SHARES] * 3 + [after] * 7))
    assert mix_transitions(shifted) == ["firing"]
    fired_at = next(i for i, o in enumerate(shifted) if mix_transitions([o]))
    # The shift starts at event 2,100: its first full window ends at 3,000, the second at 4,000.
    assert (fired_at + 1) * 700 <= 4_000 + 700
    status = pipeline.segment_mix_status()
    assert status.unavailable is None and status.latest is not None
    assert status.latest.score >= status.latest.threshold


def test_new_segment_shows_in_the_metrics_and_pages_only_when_asked(tmp_path: Path) -> None:
    """A region the reference never saw is named in driftd_segment_new; segment_new pages if on."""
    regions = (*REGIONS, "mars")
    stream = batches([(0.45, 0.3, 0.2, 0.05)] * 4, regions)
    pipeline, outcomes = run(settings(tmp_path), stream)
    metrics = scrape(pipeline, tmp_path)
    assert metrics["driftd_segment_new"] == [({"model": "m", "segment": "mars"}, 1.0)]
    assert metrics["driftd_segments_new"] == [({"model": "m"}, 1.0)]
    share = metrics["driftd_segment_mix_new_share"][0][1]
    assert 0.02 < share < 0.09
    assert mix_transitions(outcomes, "segment_new") == []
    paging = settings(tmp_path, detectors={"segment_new": {"enabled": True}})
    _, outcomes = run(paging, stream)
    assert mix_transitions(outcomes, "segment_new") == ["firing"]


def test_restart_mid_window_gives_the_same_decisions(tmp_path: Path) -> None:
    """Checkpoint after a batch that ends mid-window, restore: transitions and metrics match."""
    cfg = settings(tmp_path)
    stream = batches(SHIFTED)
    straight, expected = run(cfg, stream)
    first, before = run(cfg, stream[:4])  # 2,800 events: the open window holds 800
    assert first.segment_mix is not None and first.segment_mix.events == 800
    checkpointer = StateCheckpointer(
        FileCheckpointStore(tmp_path / "state"), cfg, CollectorRegistry(), location="t"
    )
    assert checkpointer.save(first, {("events", 0): 2_800})
    resumed = Pipeline(cfg, reference(), make_results(cfg))
    assert checkpointer.restore(resumed) == {("events", 0): 2_800}
    after = [resumed.process(b, now=T0 + 1e6) for b in stream[4:]]
    assert mix_transitions(before + after) == mix_transitions(expected) == ["firing"]
    assert resumed.segment_mix_status() == straight.segment_mix_status()


def test_reference_without_a_mix_says_so(tmp_path: Path) -> None:
    """No mix in the reference: a segment_mix_unavailable log line and gauge, no windows."""
    cfg = settings(tmp_path)
    with structlog.testing.capture_logs() as logs:
        pipeline, _ = run(cfg, batches(STATIONARY[:2]), reference(with_mix=False))
    said = [e for e in logs if e["event"] == "segment_mix_unavailable"]
    assert [e["reason"] for e in said] == ["reference_has_no_segments"]
    assert pipeline.segment_mix is None
    assert scrape(pipeline, tmp_path)["driftd_segment_mix_unavailable"] == [
        ({"model": "m", "reason": "reference_has_no_segments"}, 1.0)
    ]
    partitioned = settings(tmp_path, checkpoint={"store": "kafka"})
    pipeline, _ = run(partitioned, batches(STATIONARY[:1]))
    assert pipeline.segment_mix_status().unavailable == "partitioned_state"
    off = settings(tmp_path, mix={"enabled": False})
    with structlog.testing.capture_logs() as logs:
        pipeline, _ = run(off, batches(STATIONARY[:1]), reference(with_mix=False))
    assert not [e for e in logs if e["event"] == "segment_mix_unavailable"]
    assert "driftd_segment_mix_unavailable" not in scrape(pipeline, tmp_path)


def test_window_counts_do_not_depend_on_the_batch_cut(tmp_path: Path) -> None:
    """One batch or many, the same windows close with the same counts."""
    cfg = settings(tmp_path)
    keys = [REGIONS[i % 3] for i in range(2_500)] + ["mars"] * 10
    ts = T0 + np.arange(len(keys), dtype=np.float64)
    whole = SegmentMixWindows(cfg, reference().segments)  # type: ignore[arg-type]
    cut = SegmentMixWindows(cfg, reference().segments)  # type: ignore[arg-type]
    rows = whole.add(keys, ts)
    pieces = [cut.add(keys[i : i + 333], ts[i : i + 333]) for i in range(0, len(keys), 333)]
    assert [float(r.window_end_ts[0]) for r in rows] == [T0 + 999, T0 + 1_999]
    assert [float(r.window_end_ts[0]) for p in pieces for r in p] == [T0 + 999, T0 + 1_999]
    assert whole.counts.tolist() == cut.counts.tolist()
    assert whole.new_names == cut.new_names == ["mars"]
    with pytest.raises(CheckpointError):
        cut.load_state_dict({**whole.state_dict(), "events": 3})
    fresh = SegmentMixWindows(cfg, whole.mix)
    fresh.load_state_dict(whole.state_dict())
    np.testing.assert_equal(fresh.state_dict(), whole.state_dict())
    whole.add(["north", 5, ["x"]], ts[:3])  # not text: counted as invalid, no crash
    assert whole.snapshot()[1] == 2


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window_events", "0"),
        ("alpha", "0.7"),
        ("min_effect", "-1"),
        ("max_new_segments", "5000"),
        ("enabled", "maybe"),
    ],
)
def test_bad_segment_mix_settings_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    """check-config refuses an out-of-range segment_mix key with exit 2, naming it."""
    config = tmp_path / "driftd.yaml"
    config.write_text(f"reference:\n  warmup_events: 100\nsegment_mix:\n  {key}: {value}\n")
    assert main(["check-config", "-c", str(config)]) == 2
    assert f"segment_mix.{key}" in capsys.readouterr().err


def test_a_warmup_reference_records_its_events_mix(tmp_path: Path) -> None:
    """A warm-up reference gets the mix of its events and is monitored against it."""
    cfg = Settings(
        **{
            **settings(tmp_path).model_dump(by_alias=True, exclude={"reference"}),
            "reference": {"warmup_events": 1_400},
        }
    )
    stream = batches(STATIONARY[:6])
    pipeline = Pipeline(cfg, None, make_results(cfg))
    outcomes = [pipeline.process(b, now=T0 + 1e6) for b in stream]
    assert pipeline.reference is not None and pipeline.reference.segments is not None
    keys = [orjson.loads(r.value)["features"]["region"] for b in stream[:2] for r in b]
    mix = pipeline.reference.segments
    assert dict(zip(mix.names, mix.counts.tolist(), strict=True)) == {
        r: keys.count(r) for r in REGIONS
    }
    status = pipeline.segment_mix_status()
    assert status.unavailable is None and status.latest is not None
    assert mix_transitions(outcomes) == []
