"""Reference profiles: edges, counts, categories, JSON round trip and versioning."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest

from detectors.profile import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    feature_from_dict,
)
from tests.detectors.window_data import reference_columns, reference_profile


def _json_round_trip(profile: ReferenceProfile) -> ReferenceProfile:
    return ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict())))


def test_round_trip_through_json_is_identical() -> None:
    """to_dict -> JSON -> from_dict gives an equal profile with the same version."""
    profile = reference_profile()
    again = _json_round_trip(profile)
    assert again == profile
    assert again.version == profile.version
    assert again.to_dict() == profile.to_dict()


def test_round_trip_keeps_prediction_and_label() -> None:
    """Prediction and label profiles survive the round trip and are not features."""
    rng = np.random.default_rng(3)
    columns = {"x": rng.normal(size=500), "score": rng.random(500), "y": rng.integers(0, 2, 500)}
    profile = build_profile(columns, categorical={"y"}, prediction="score", label="y")
    assert profile.names == ("x",)
    assert isinstance(profile.prediction, NumericProfile)
    assert isinstance(profile.label, CategoricalProfile)
    assert profile.label.categories in ((0, 1), (1, 0))
    assert _json_round_trip(profile) == profile


def test_version_is_stable_for_the_same_data() -> None:
    """Building twice from the same data gives the same 16-hex-digit version."""
    a, b = reference_profile(seed=5), reference_profile(seed=5)
    assert a.version == b.version
    assert re.fullmatch(r"[0-9a-f]{16}", a.version)


def test_version_changes_with_content() -> None:
    """Any change of counts, edges or settings changes the version."""
    base = reference_profile(seed=5)
    assert reference_profile(seed=6).version != base.version
    assert reference_profile(seed=5, top_k=4).version != base.version
    first = base.features[0]
    assert isinstance(first, NumericProfile)
    bumped = NumericProfile(
        first.name, first.edges, first.counts + 1, first.coarse_starts, first.n_missing
    )
    changed = ReferenceProfile((bumped, *base.features[1:]))
    assert changed.version != base.version


def test_tampered_dict_is_refused() -> None:
    """Editing a count in the stored dict without re-hashing raises a version mismatch."""
    data = reference_profile().to_dict()
    data["features"][0]["counts"][3] += 1
    with pytest.raises(ValueError, match=r"profile version mismatch: stored '[0-9a-f]{16}'"):
        ReferenceProfile.from_dict(data)


def test_unknown_schema_is_refused() -> None:
    """A dict with another schema number is refused with a message naming it."""
    data = reference_profile().to_dict()
    data["schema"] = 3
    with pytest.raises(
        ValueError,
        match=re.escape("unsupported reference profile schema 3; this driftd reads schema 2"),
    ):
        ReferenceProfile.from_dict(data)


def test_a_schema_1_profile_still_loads_without_unseen_tracking() -> None:
    """An older profile (no rare list, no __unseen__ count) loads; unknown values are other."""
    old = {
        "schema": 1,
        "version": "0123456789abcdef",
        "features": [
            {
                "name": "c",
                "kind": "categorical",
                "categories": ["a"],
                "counts": [3, 1],
                "n_missing": 0,
            }
        ],
        "prediction": None,
        "label": None,
    }
    profile = ReferenceProfile.from_dict(old)
    feature = profile.feature("c")
    assert isinstance(feature, CategoricalProfile)
    assert not feature.tracks_unseen
    np.testing.assert_array_equal(feature.counts, [3, 1, 0])
    np.testing.assert_array_equal(feature.encode(["a", "new"]), [0, feature.other_code])


def test_unknown_feature_kind_is_refused() -> None:
    """A feature dict with an unknown kind is refused with a message naming it."""
    with pytest.raises(ValueError, match="unknown kind 'ordinal'"):
        feature_from_dict({"name": "x", "kind": "ordinal"})


def test_numeric_edges_are_reference_quantiles_with_range_bins() -> None:
    """Fine edges: percentiles, empty bins beyond min and max, point masses alone in a bin."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000)
    fine = build_profile({"x": x}).feature("x")
    assert isinstance(fine, NumericProfile)
    levels = np.arange(1, 100) / 100
    np.testing.assert_array_equal(fine.edges[1:-1], np.quantile(x, levels, method="inverted_cdf"))
    assert fine.edges[0] == np.nextafter(x.min(), -np.inf) and fine.edges[-1] == x.max()
    assert fine.counts[0] == fine.counts[-1] == 0
    assert np.isin(fine.edges[1:], x).all()
    assert fine.n_bins == 102
    t = rng.poisson(2.0, 5000)
    column = build_profile({"t": t}).feature("t")
    assert isinstance(column, NumericProfile)
    heavy, freq = np.unique(t, return_counts=True)
    for value, count in zip(heavy, freq, strict=True):
        if count >= 0.02 * t.size:
            k = int(np.searchsorted(column.edges, value))
            assert column.edges[k] == value and column.edges[k - 1] == np.nextafter(value, -np.inf)
            assert column.counts[k] == count


def test_counts_are_the_reference_ecdf_at_each_edge() -> None:
    """Cumulative fine counts equal the number of reference values <= each edge."""
    x = reference_columns(np.random.default_rng(2))["poisson"]
    profile = build_profile({"x": x}).feature("x")
    assert isinstance(profile, NumericProfile)
    cumulative = np.cumsum(profile.counts)[:-1]
    np.testing.assert_array_equal(cumulative, [(x <= e).sum() for e in profile.edges])
    assert profile.n_ref == x.size


def test_coarse_edges_are_a_subset_of_fine_edges() -> None:
    """Coarse edges are fine edges, and coarse counts are sums of whole fine bins."""
    for seed in range(5):
        columns = reference_columns(np.random.default_rng(seed))
        for n_fine, n_coarse in [(100, 10), (150, 20), (200, 7), (137, 13)]:
            profile = build_profile(columns, n_fine=n_fine, n_coarse=n_coarse)
            for f in profile.features:
                if not isinstance(f, NumericProfile):
                    continue
                assert np.isin(f.coarse_edges, f.edges).all()
                # The quantile bins, two tail bins and two edges per point mass at most.
                assert f.n_coarse <= n_coarse + 2 + 2 * np.count_nonzero(f.counts >= 0.02 * f.n_ref)
                np.testing.assert_array_equal(
                    f.coarse_counts, np.add.reduceat(f.counts, f.coarse_starts)
                )
                assert f.coarse_counts.sum() == f.n_ref


def test_coarse_bins_are_deciles_and_tails_by_default() -> None:
    """With 100 fine and 10 coarse bins, continuous data gets 1% tails and deciles between."""
    x = np.random.default_rng(4).normal(size=10_000)
    f = build_profile({"x": x}).feature("x")
    assert isinstance(f, NumericProfile)
    shares = f.coarse_counts / f.n_ref
    np.testing.assert_allclose(shares, [0.01, 0.09, *[0.1] * 8, 0.09, 0.01], atol=0.001)


def test_missing_values_are_counted_not_binned() -> None:
    """NaN, +-inf and None count as missing and never enter the bins."""
    values = np.array([1.0, np.nan, np.inf, -np.inf, 2.0, 3.0], dtype=object)
    values[1] = None
    f = build_profile({"x": values}, categorical=set()).feature("x")
    g = build_profile({"x": values.astype(np.float64)}).feature("x")
    for profile in (f, g):
        assert profile.n_missing == 3
        assert profile.n_ref == 3
        assert profile.missing_rate == 0.5


def test_categorical_top_k_and_other() -> None:
    """The top-K categories are kept, the rest listed as rare in __other__; __unseen__ empty."""
    values = np.array(["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"] + [None] * 2)
    f = build_profile({"c": values.astype(object)}, top_k=2).feature("c")
    assert isinstance(f, CategoricalProfile)
    assert f.categories == ("a", "b")
    assert f.rare == ("c", "d", "e")
    assert f.singletons == 1
    np.testing.assert_array_equal(f.counts, [5, 4, 6, 0])
    assert f.n_missing == 2
    assert f.other_code == 2
    assert f.to_dict()["categories"] == ["a", "b"]
    assert OTHER == "__other__"


def test_categorical_ties_are_broken_by_value() -> None:
    """Equal frequencies are ordered by value, numbers before strings, independent of order."""
    values = np.array(["z", "y", 3, 1, "y", "z", 1, 3], dtype=object)
    for perm in ([0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0]):
        f = build_profile({"c": values[perm]}, top_k=3).feature("c")
        assert isinstance(f, CategoricalProfile)
        assert f.categories == (1, 3, "y")


def test_categorical_codes_map_unknown_to_other_and_missing_to_nan() -> None:
    """encode() gives the category, __other__ for rare ones, __unseen__ for new, NaN missing."""
    f = build_profile({"c": np.array(["a", "a", "b", "c"], dtype=object)}, top_k=2).feature("c")
    assert isinstance(f, CategoricalProfile)
    raw = np.array(["b", "a", "zzz", None, "c", float("nan"), 7], dtype=object)
    np.testing.assert_array_equal(f.encode(raw), [1, 0, 3, np.nan, 2, np.nan, 3])
    np.testing.assert_array_equal(f.encode(np.array(["a", "q"])), [0, 3])
    np.testing.assert_array_equal(f.encode(["c", None, "q"]), [2, np.nan, 3])


def test_categorical_numbers_match_across_int_float_and_text_inputs() -> None:
    """Integer categories are found from int, integral float and text inputs alike."""
    f = build_profile({"y": np.array([0, 1, 1, 2])}, categorical={"y"}).feature("y")
    assert isinstance(f, CategoricalProfile)
    assert f.categories == (1, 0, 2)
    np.testing.assert_array_equal(f.encode(np.array([2.0, np.nan, 0.0, 7.5])), [2, np.nan, 1, 4])
    np.testing.assert_array_equal(f.encode(["2", "0", None, "7"]), [2, 1, np.nan, 4])
    floats = build_profile({"y": np.array([21.0, 21.0, 3.0])}, categorical={"y"}).feature("y")
    assert isinstance(floats, CategoricalProfile)
    np.testing.assert_array_equal(floats.encode(["21", "3"]), [0, 1])


def test_kind_follows_values_unless_forced() -> None:
    """Strings, bools and mixed objects are categorical, numbers numeric, unless listed."""
    rng = np.random.default_rng(0)
    columns = {
        "s": np.array(["a", "b"] * 50),
        "b": np.array([True, False] * 50),
        "i": rng.integers(0, 5, 100),
        "f": rng.normal(size=100),
        "json": np.array([1.5, None, 2, 3.0] * 25, dtype=object),
        "mixed": np.array([1.5, None, "2", 3.0] * 25, dtype=object),
    }
    kinds = {f.name: f.kind for f in build_profile(columns).features}
    assert kinds == {
        "s": "categorical",
        "b": "categorical",
        "i": "numeric",
        "f": "numeric",
        "json": "numeric",
        "mixed": "categorical",
    }
    assert build_profile(columns).feature("json").n_missing == 25
    forced = build_profile(columns, categorical={"i"}).feature("i")
    assert forced.kind == "categorical"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_fine": 50}, "n_fine must be between 100 and 200, got 50"),
        ({"n_fine": 201}, "n_fine must be between 100 and 200, got 201"),
        ({"n_fine": 100.5}, "n_fine must be an integer, got 100.5"),
        ({"n_coarse": 1}, "n_coarse must be between 2 and 50, got 1"),
        ({"top_k": 0}, "top_k must be between 1 and 1000, got 0"),
        ({"categorical": {"nope"}}, "unknown column names: ['nope']"),
        ({"label": "nope"}, "unknown column names: ['nope']"),
    ],
)
def test_build_arguments_are_validated(kwargs: dict[str, object], message: str) -> None:
    """Bad build arguments raise ValueError with an exact message."""
    columns = {"x": np.arange(200.0)}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build_profile(columns, **kwargs)  # type: ignore[arg-type]


def test_bad_columns_are_refused() -> None:
    """Unequal lengths, 2-D, all-missing columns and a table without features are refused."""
    with pytest.raises(ValueError, match="column 'b' has 3 rows, expected 2"):
        build_profile({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="must be one-dimensional"):
        build_profile({"a": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="column 'a' has no finite reference values"):
        build_profile({"a": [np.nan, np.inf]})
    with pytest.raises(ValueError, match="columns must hold at least one feature"):
        build_profile({"a": [1.0], "b": [2.0]}, prediction="a", label="b")


def test_profiles_are_immutable_and_picklable() -> None:
    """Profile arrays are read-only and profiles survive pickling."""
    profile = reference_profile()
    first = profile.features[0]
    assert isinstance(first, NumericProfile)
    with pytest.raises(ValueError, match="read-only"):
        first.counts[0] = 99
    assert pickle.loads(pickle.dumps(profile)) == profile


def test_inconsistent_feature_profiles_are_refused() -> None:
    """Counts that do not fit the edges or categories are refused."""
    with pytest.raises(ValueError, match="expected 3 counts for 2 edges, got 2"):
        NumericProfile("x", np.array([0.0, 1.0]), np.array([1, 2]), np.array([0]), 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        NumericProfile("x", np.array([1.0, 0.0]), np.array([1, 2, 3]), np.array([0]), 0)
    with pytest.raises(ValueError, match="expected 4 counts"):
        CategoricalProfile("c", ("a", "b"), np.array([1, 2]), 0)
    with pytest.raises(ValueError, match="duplicate feature names: \\['x'\\]"):
        f = NumericProfile("x", np.array([0.0]), np.array([1, 2]), np.array([0]), 0)
        ReferenceProfile((f, f))
