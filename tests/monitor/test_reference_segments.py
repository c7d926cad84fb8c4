"""The reference records its events per segment, named as the daemon names live segments."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest

from detectors.profile import ReferenceProfile, build_profile
from detectors.segment_mix import SegmentMix
from monitor.config import SchemaConfig
from monitor.engine.reference.build import build_reference
from monitor.engine.reference.describe import describe, render
from monitor.engine.reference.merge import merge_reference_files
from monitor.engine.reference.profile_file import load_reference, write_reference
from monitor.engine.reference.segment_counts import reference_segment_mix
from monitor.ingest.decode import Decoder
from monitor.ingest.segments import segment_name
from tests.monitor.test_reference_build import (
    NOW,
    SCHEMA,
    WRITERS,
    as_event,
    build,
    training_rows,
    write_csv,
)


def decoded_names(rows: list[dict[str, object]]) -> Counter[str]:
    """Segment names the daemon gives the rows as events: decoder keys, then segment_name."""
    messages = [orjson.dumps(as_event(r) | {"ts": NOW}) for r in rows]
    decoded = Decoder(SCHEMA, ["income"], [], now=NOW).decode(messages)
    assert decoded.rejections == []
    return Counter(segment_name(k) for k in decoded.segment_keys)


def mix_counts(mix: SegmentMix | None) -> Counter[str]:
    """A recorded mix as a Counter of name to events."""
    assert mix is not None
    return Counter(dict(zip(mix.names, mix.counts.tolist(), strict=True)))


def test_every_format_records_the_daemons_segment_names(tmp_path: Path) -> None:
    """CSV, Parquet, flat and event JSONL record the decoder's segment names and counts."""
    rows = training_rows()
    rows[5]["region"] = None  # a null part: the decoder's __missing__ marker
    expected = decoded_names(rows)
    assert expected["v3,__missing__"] == 1
    for name, write in WRITERS.items():
        profile = build(write(rows, tmp_path / name), tmp_path, categorical=["zip"])
        assert mix_counts(profile.segments) == expected, name
        assert profile.segments is not None and profile.segments.complete
        assert profile.segments.n_events == len(rows)


def test_no_mix_without_every_segment_path(tmp_path: Path) -> None:
    """Data lacking one segment_by path, or with no segment_by at all, records no mix."""
    rows = [{k: v for k, v in r.items() if k != "model_version"} for r in training_rows(60)]
    path = write_csv(rows, tmp_path / "t.csv")
    assert build(path, tmp_path).segments is None
    assert build(path, tmp_path, schema=SchemaConfig(segment_by=[])).segments is None
    region_only = SchemaConfig(segment_by=["features.region"])
    assert mix_counts(build(path, tmp_path, schema=region_only).segments) == Counter(
        str(r["region"]) for r in rows
    )


def test_many_keys_keep_the_top_and_sum_the_rest() -> None:
    """Past max_keys the most frequent keys are listed (ties by name), the rest summed."""
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d", "e"]
    mix = reference_segment_mix([("tenant", list(values))], len(values), max_keys=2)
    assert mix is not None
    assert (mix.names, mix.counts.tolist()) == (("a", "b"), [5, 3])
    assert (mix.other, mix.other_keys, mix.complete) == (5, 3, False)


def test_reserved_looking_values_are_escaped_like_live_segments() -> None:
    """A user's value ``__other__`` gets the escaped name the segment table gives it."""
    mix = reference_segment_mix([("tenant", ["__other__", None, "a"])], 3)
    assert mix is not None
    assert sorted(mix.names) == sorted(segment_name(k) for k in ["__other__", "__missing__", "a"])
    assert "\\__other__" in mix.names and "__missing__" in mix.names


def test_saved_mix_round_trips_and_changes_the_version(tmp_path: Path) -> None:
    """A profile with a mix is written and loaded back equal; the mix is part of its version."""
    rng = np.random.default_rng(0)
    plain = build_profile({"x": rng.normal(size=300)})
    mix = SegmentMix.from_keys(["eu"] * 7 + ["us"] * 3)
    with_mix = ReferenceProfile(plain.features, segments=mix)
    assert with_mix.version != plain.version
    out = tmp_path / "ref.json"
    write_reference(with_mix, out)
    loaded = load_reference(out)
    assert loaded == with_mix and loaded.version == with_mix.version
    assert loaded.segments == mix
    assert json.loads(out.read_text())["segments"]["names"] == ["eu", "us"]


def test_profile_without_a_mix_keeps_the_old_format_and_version(tmp_path: Path) -> None:
    """A profile without a mix saves no segments key: older files load with their hash."""
    rng = np.random.default_rng(1)
    profile = build_profile({"x": rng.normal(size=300)})
    data = profile.to_dict()
    assert "segments" not in data
    content = {k: v for k, v in data.items() if k != "version"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert data["version"] == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    out = tmp_path / "old.json"
    out.write_bytes(orjson.dumps(data))
    loaded = load_reference(out)
    assert loaded.segments is None and loaded.version == profile.version


def test_tampered_mix_is_refused(tmp_path: Path) -> None:
    """Editing a segment count fails the version check like any other content."""
    rng = np.random.default_rng(2)
    profile = ReferenceProfile(
        build_profile({"x": rng.normal(size=300)}).features,
        segments=SegmentMix.from_keys(["eu", "eu", "us"]),
    )
    data = profile.to_dict()
    data["segments"]["counts"][0] += 1
    with pytest.raises(ValueError, match="version mismatch"):
        ReferenceProfile.from_dict(data)


def test_merged_shards_carry_the_wholes_mix(tmp_path: Path) -> None:
    """reference merge of shards on one grid sums their mixes into the whole's mix."""
    rows = training_rows(120)
    grid = build(write_csv(rows, tmp_path / "grid.csv"), tmp_path)
    paths = []
    for k, part in enumerate((rows[:50], rows[50:], rows)):
        out = tmp_path / f"part{k}.json"
        build_reference(write_csv(part, tmp_path / f"part{k}.csv"), out, schema=SCHEMA, grid=grid)
        paths.append(out)
    merged = merge_reference_files(paths[:2], tmp_path / "merged.json")
    assert merged.segments == load_reference(paths[2]).segments
    assert mix_counts(merged.segments) == Counter(f"v3,{r['region']}" for r in rows)
    write_reference(replace(load_reference(paths[1]), segments=None, version=""), paths[1])
    assert merge_reference_files(paths[:2], tmp_path / "merged.json").segments is None


def test_show_lists_the_largest_segments_and_the_summed_tail() -> None:
    """reference show prints the top segments and the tail; without a mix, nothing."""
    rng = np.random.default_rng(3)
    plain = build_profile({"x": rng.normal(size=300)})
    counts = {f"s{i}": 100 - i for i in range(8)}
    with_mix = ReferenceProfile(plain.features, segments=SegmentMix.from_counts(counts, 6))
    text = render(describe(with_mix))
    assert "segments  772 events in 8 segments" in text
    assert "(1 more)" in text and "(2 more, summed)" in text
    assert describe(with_mix)["segments"]["listed"][0] == {
        "name": "s0",
        "count": 100,
        "share": 100 / 772,
    }
    assert "segments" not in render(describe(plain)) and describe(plain)["segments"] is None
