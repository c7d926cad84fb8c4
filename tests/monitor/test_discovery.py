"""Warm-up feature discovery: majority types, a share threshold, hard caps, bounded memory."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import structlog
from pydantic import ValidationError

from detectors.feature_profiles import CategoricalProfile, NumericProfile
from monitor.config import SchemaConfig, Settings
from monitor.engine.pipeline import Pipeline
from monitor.engine.results import LatestResults
from monitor.ingest.discovery import CANDIDATES_PER_FEATURE, FeatureDiscovery
from monitor.ingest.source import Record

HISTORY = 1_600_000_000.0


def discovery(**fields: Any) -> FeatureDiscovery:
    """A discovery over a schema with some fields set."""
    return FeatureDiscovery(SchemaConfig(**fields))


def test_type_is_the_majority_of_the_whole_warm_up() -> None:
    """A word or a numeric string in the first event does not make a numeric feature a category."""
    found = discovery()
    found.observe([{"income": "lots", "age": "1.5", "plan": "a"}])
    found.observe([{"income": float(i), "age": i, "plan": "b"} for i in range(99)])
    result = found.result()
    assert result.numeric == ["age", "income"]
    assert result.categorical == ["plan"]


def test_numeric_strings_alone_make_a_category() -> None:
    """Values that are only numeric strings ("007") are codes: categorical."""
    found = discovery()
    found.observe([{"zip": f"{i:03d}", "flag": i % 2 == 0} for i in range(50)])
    assert found.result().categorical == ["flag", "zip"]


def test_objects_and_arrays_are_invalid_values_not_votes() -> None:
    """A malformed value votes for no type; a name with only such values is left out."""
    found = discovery()
    found.observe([{"income": {"oops": 1}, "junk": [1]}])
    found.observe([{"income": 2.0, "junk": {"a": 1}} for _ in range(9)])
    result = found.result()
    assert result.numeric == ["income"]
    assert result.left_out == {"junk": "no_values"}


def test_a_rare_name_is_not_monitored() -> None:
    """A name below schema.min_feature_share of the warm-up events is left out as rare."""
    found = discovery(min_feature_share=0.1)
    found.observe([{"income": 1.0, "sometimes": 1.0} for _ in range(12)])
    found.observe([{"income": 1.0} for _ in range(100)])
    found.observe([{"income": 1.0, "once": "x"}])
    result = found.result()
    assert result.numeric == ["income", "sometimes"]
    assert result.left_out == {"once": "rare"}
    assert result.rare == 1


def test_null_values_do_not_count_as_presence() -> None:
    """A name that is always null is never taken for a feature."""
    found = discovery()
    found.observe([{"income": 1.0, "empty": None} for _ in range(20)])
    assert found.result().numeric == ["income"]
    assert len(found) == 1


def test_configured_names_keep_their_type_whatever_the_traffic() -> None:
    """schema.numeric and schema.categorical are monitored with their types, even if rare."""
    found = FeatureDiscovery(
        SchemaConfig(numeric=["score"], categorical=["code"]), ["score"], ["code"]
    )
    found.observe([{"code": 1.5, "other": 2.0} for _ in range(50)])
    result = found.result()
    assert result.numeric == ["other", "score"]
    assert result.categorical == ["code"]


def test_names_past_max_features_are_refused_most_frequent_first() -> None:
    """Past schema.max_features the most frequent names win; the rest are counted refused."""
    found = discovery(max_features=2)
    found.observe([{"a": 1, "b": 1, "c": 1} for _ in range(10)])
    found.observe([{"a": 1, "b": 1} for _ in range(5)])
    result = found.result()
    assert result.numeric == ["a", "b"]
    assert result.refused == {"over_max_features": 1}
    assert result.left_out == {"c": "over_max_features"}


def test_long_names_are_refused_and_never_stored() -> None:
    """A name over schema.max_name_length is counted as name_too_long, not stored."""
    found = discovery(max_name_length=8)
    assert found.observe([{"income": 1.0, "x" * 9: 1.0} for _ in range(4)]) == 4
    assert len(found) == 1
    assert found.result().refused == {"name_too_long": 4}


def test_a_flood_of_distinct_names_keeps_the_table_bounded() -> None:
    """100,000 distinct junk names never grow the table past its bound; real names survive."""
    found = discovery(max_features=10)
    # Three names an event, 5% share: the table is sized for 2 / 0.05 * 3 = 120 names.
    capacity = max(CANDIDATES_PER_FEATURE * 10, 120)
    bound = 2 * capacity
    for start in range(0, 100_000, 500):
        found.observe([{"income": 1.0, "plan": "a", f"junk{start + i}": 1.0} for i in range(500)])
        assert len(found) <= bound
    result = found.result()
    assert result.numeric == ["income"]
    assert result.categorical == ["plan"]
    assert found.capacity == capacity
    assert found.slack <= found.events * 3 // (capacity + 1)


def test_feature_lists_are_validated() -> None:
    """A name listed as both types, or more listed names than max_features, is a config error."""
    with pytest.raises(ValidationError, match="both numeric and categorical"):
        SchemaConfig(numeric=["a"], categorical=["a"])
    with pytest.raises(ValidationError, match="over max_features"):
        SchemaConfig(numeric=["a", "b"], max_features=1)


# --- through the pipeline -------------------------------------------------------------


def _record(offset: int, event: dict[str, Any]) -> Record:
    return Record(orjson.dumps(event), "inference", 0, offset)


def _event(i: int, **features: Any) -> dict[str, Any]:
    base = {"income": float(i % 50), "plan": "ab"[i % 2]}
    return {
        "id": f"e{i}",
        "ts": HISTORY + i,
        "model": "default",
        "model_version": "v1",
        "features": {**base, **features},
        "prediction": 0.5,
    }


def _pipeline(**schema: Any) -> Pipeline:
    settings = Settings.model_validate(
        {
            "source": {"type": "file", "path": "unused.jsonl"},
            "reference": {"warmup_events": 300},
            "windows": {"size_events": 100, "min_samples": 50},
            "schema": schema,
        }
    )
    return Pipeline(settings, None, LatestResults("default"))


def _types(pipeline: Pipeline) -> dict[str, str]:
    assert pipeline.reference is not None
    kinds = {NumericProfile: "numeric", CategoricalProfile: "categorical"}
    return {p.name: kinds[type(p)] for p in pipeline.reference.features}


def test_warm_up_learns_from_all_of_it_not_the_first_batch() -> None:
    """Events without features first, a type flip first: the reference is still right."""
    pipeline = _pipeline()
    first = [_record(i, {**_event(i), "features": None}) for i in range(100)]
    first[0] = _record(0, _event(0, income="1.5"))
    pipeline.process(first)
    rest = [_record(i, _event(i)) for i in range(100, 500)]
    pipeline.process(rest[:300])
    assert pipeline.ready
    assert _types(pipeline) == {"income": "numeric", "plan": "categorical"}
    outcome = pipeline.process(rest[300:])
    assert outcome.accepted == 100 and not outcome.rejected


def test_a_malformed_early_value_is_counted_invalid() -> None:
    """An object where the warm-up learned a number is an invalid value, counted once."""
    pipeline = _pipeline()
    pipeline.process([_record(0, _event(0, income={"x": 1}))])
    pipeline.process([_record(i, _event(i)) for i in range(1, 400)])
    assert _types(pipeline)["income"] == "numeric"
    assert pipeline.invalid_values == {("income", "wrong_type"): 1}


def test_a_feature_first_seen_after_discovery_is_reported() -> None:
    """A name that appears after the warm-up is logged and counted as not in the reference."""
    pipeline = _pipeline()
    pipeline.process([_record(i, _event(i)) for i in range(300)])
    with structlog.testing.capture_logs() as logs:
        pipeline.process([_record(i, _event(i, late=1.0)) for i in range(300, 400)])
    assert pipeline.unexpected_features["late"] > 0
    assert any(e["event"] == "feature_not_in_reference" and e["feature"] == "late" for e in logs)


def test_names_left_out_by_the_warm_up_are_reported_at_its_end() -> None:
    """Names the warm-up saw but does not monitor are logged with their reason, and reported."""
    pipeline = _pipeline(max_features=2)
    events = [_record(i, _event(i, third=1.0, rare=1.0 if i == 5 else None)) for i in range(300)]
    with structlog.testing.capture_logs() as logs:
        pipeline.process(events)
    assert _types(pipeline) == {"income": "numeric", "plan": "categorical"}  # ties: by name
    (left_out,) = [e for e in logs if e["event"] == "features_not_discovered"]
    assert left_out["refused"] == {"over_max_features": 1}
    assert left_out["examples"]["rare"] == "rare"
    assert pipeline.feature_names_refused == {"over_max_features": 1}
    assert any(e["event"] == "feature_not_in_reference" for e in logs)


def test_a_flooded_event_is_refused_and_its_names_never_counted() -> None:
    """An event over max_features_per_event is refused; the warm-up never sees its names."""
    pipeline = _pipeline(max_features_per_event=50)
    flood = _event(0, **{f"junk{i}": 1.0 for i in range(20_000)})
    outcome = pipeline.process([_record(0, flood)] + [_record(i, _event(i)) for i in range(1, 400)])
    assert [reason for _, reason, _ in outcome.rejected] == ["too_many_features"]
    assert _types(pipeline) == {"income": "numeric", "plan": "categorical"}


def test_the_warm_up_ends_early_at_its_byte_budget() -> None:
    """Held messages reaching schema.warmup_max_bytes build the reference from what is held."""
    size = len(orjson.dumps(_event(0)))
    pipeline = _pipeline(warmup_max_bytes=100 * (size + 64))
    with structlog.testing.capture_logs() as logs:
        pipeline.process([_record(i, _event(i)) for i in range(50)])
        assert pipeline.reference is None
        pipeline.process([_record(i, _event(i)) for i in range(50, 150)])
    assert pipeline.ready
    (short,) = [e for e in logs if e["event"] == "warmup_cut_short"]
    assert short["events"] == 150 and short["wanted"] == 300


def test_strict_warm_up_counts_a_bad_early_value_instead_of_refusing_late() -> None:
    """With schema.strict, a held warm-up event's bad value is counted; its event was accepted."""
    pipeline = _pipeline(strict=True)
    outcome = pipeline.process([_record(0, _event(0, income="lots"))])
    assert outcome.accepted == 1
    pipeline.process([_record(i, _event(i)) for i in range(1, 400)])
    assert _types(pipeline)["income"] == "numeric"
    assert pipeline.invalid_values == {("income", "not_a_number"): 1}
    later = pipeline.process([_record(400, _event(400, income="lots"))])
    assert [reason for _, reason, _ in later.rejected] == ["wrong_type"]


def test_a_warm_up_with_no_feature_starts_over_instead_of_crashing() -> None:
    """A warm-up whose events carry no usable feature logs an error and learns again."""
    pipeline = _pipeline()
    with structlog.testing.capture_logs() as logs:
        pipeline.process([_record(i, {**_event(i), "features": {}}) for i in range(300)])
    assert not pipeline.ready
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["warmup_restarted"]
    pipeline.process([_record(i, _event(i)) for i in range(300, 600)])
    assert _types(pipeline) == {"income": "numeric", "plan": "categorical"}
