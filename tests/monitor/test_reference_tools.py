"""``driftd reference show | diff | merge``: readable profiles, profile diffs against scipy,
and merges of shards equal to the profile of the whole."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from detectors.feature_profiles import CategoricalProfile, FeatureProfile, NumericProfile
from detectors.merge import ProfileMismatchError, merge_profiles, profile_on_grid
from detectors.profile import ReferenceProfile, build_profile
from monitor.cli_reference import EXIT_DRIFT
from monitor.engine.reference.compare import compare_profiles
from monitor.engine.reference.profile_file import load_reference
from tests.monitor.cli_helpers import run_reference as run

Rows = list[dict[str, Any]]
N = 20_000


def training_rows(n: int = N, seed: int = 5, shift: float = 0.0) -> Rows:
    """Rows of a training set in time order: a drifting lognormal, an integer age, a plan
    with gaps and one-off values, a score; ``shift`` moves the income and the plans."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    income = rng.lognormal(10.5 + 0.2 * t + shift, 0.5)
    age = rng.integers(18, 80, n)
    plans = rng.choice(["basic", "plus", "pro", "team"], n, p=[0.5, 0.3, 0.15, 0.05]).astype(object)
    if shift:
        plans[rng.random(n) < shift] = "enterprise"
    score = rng.random(n)
    rows = []
    for i in range(n):
        plan = "" if i % 47 == 0 else str(plans[i])
        if i % 997 == 5:
            plan = f"one-off-{i}"  # seen once in the whole set, so once in its shard
        rows.append(
            {
                "income": round(float(income[i]), 2),
                "age": int(age[i]),
                "plan": plan,
                "prediction": round(float(score[i]), 5),
            }
        )
    return rows


def write_csv(rows: Rows, path: Path) -> Path:
    """Rows as CSV."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def build(tmp_path: Path, rows: Rows, name: str, *extra: str) -> Path:
    """``reference build`` of ``rows`` as CSV into ``name``.json; asserts it succeeded."""
    out = tmp_path / f"{name}.json"
    assert (
        run("build", "-i", str(write_csv(rows, tmp_path / f"{name}.csv")), "-o", str(out), *extra)
        == 0
    )
    return out


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed command (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- merge ----------------------------------------------------------------------------


def test_merge_of_ten_time_shards_is_the_profile_of_the_whole(tmp_path: Path) -> None:
    """Ten equal time-ordered CSV shards on one grid merge into the whole's profile, bytes too."""
    rows = training_rows()
    grid = build(tmp_path, rows[::7], "grid")
    whole = build(tmp_path, rows, "whole", "--grid-from", str(grid))
    shards = [
        build(
            tmp_path, rows[k * N // 10 : (k + 1) * N // 10], f"shard{k}", "--grid-from", str(grid)
        )
        for k in range(10)
    ]
    merged = tmp_path / "merged.json"
    assert run("merge", *map(str, shards), "-o", str(merged)) == 0
    assert load_reference(merged) == load_reference(whole)
    assert merged.read_bytes() == whole.read_bytes()
    profile = load_reference(merged)
    assert profile.feature("income").spread, "the drifting income must carry a spread"
    plan = profile.feature("plan")
    assert isinstance(plan, CategoricalProfile) and plan.singletons > 0
    assert plan.n_missing > 0


def test_merge_of_unequal_shards_adds_every_count(tmp_path: Path) -> None:
    """Unequal shards: counts, bins, categories and rare add up; singletons bound the whole's."""
    rows = training_rows(6_000, seed=9)
    grid = build(tmp_path, rows[:1_500], "grid")
    cuts = [0, 700, 4_100, 6_000]
    shards = [
        load_reference(build(tmp_path, rows[a:b], f"s{i}", "--grid-from", str(grid)))
        for i, (a, b) in enumerate(itertools.pairwise(cuts))
    ]
    whole = load_reference(build(tmp_path, rows, "whole", "--grid-from", str(grid)))
    merged = merge_profiles(shards)
    assert merged.names == whole.names
    for mine, theirs in zip(merged.monitored, whole.monitored, strict=True):
        np.testing.assert_array_equal(mine.counts, theirs.counts)
        assert mine.n_missing == theirs.n_missing
        if isinstance(mine, NumericProfile) and isinstance(theirs, NumericProfile):
            np.testing.assert_array_equal(mine.edges, theirs.edges)
            np.testing.assert_array_equal(mine.coarse_starts, theirs.coarse_starts)
        else:
            assert isinstance(mine, CategoricalProfile) and isinstance(theirs, CategoricalProfile)
            assert mine.categories == theirs.categories
            assert mine.rare == theirs.rare
            assert mine.singletons >= theirs.singletons
    assert merge_profiles(shards).version == merged.version


def test_singletons_sum_is_an_upper_bound() -> None:
    """A value seen once in each of two shards: merged singletons are the documented upper bound."""
    grid = build_profile({"c": np.array(["a"] * 80 + ["b"] * 20, dtype=object)}, chunks=1)
    first = {"c": np.array(["a", "a", "b", "b", "x"], dtype=object)}
    second = {"c": np.array(["a", "a", "b", "b", "x", "y"], dtype=object)}
    parts = [profile_on_grid(d, grid, chunks=1) for d in (first, second)]
    both = {"c": np.concatenate([first["c"], second["c"]])}
    whole = profile_on_grid(both, grid, chunks=1)
    merged = merge_profiles(parts)
    assert isinstance(merged.features[0], CategoricalProfile)
    assert isinstance(whole.features[0], CategoricalProfile)
    assert whole.features[0].singletons == 1  # only y
    assert merged.features[0].singletons == 3  # x twice, y
    np.testing.assert_array_equal(merged.features[0].counts, whole.features[0].counts)
    assert merged.features[0].rare == whole.features[0].rare == ("x", "y")


def test_merge_function_names_the_profile_and_feature() -> None:
    """Profiles on other grids raise ProfileMismatchError with the index and the column."""
    rng = np.random.default_rng(0)
    a = build_profile({"x": rng.normal(size=500), "k": rng.choice(["u", "v"], 500)}, chunks=1)
    b = build_profile({"x": rng.normal(size=500), "k": rng.choice(["u", "v"], 500)}, chunks=1)
    with pytest.raises(ProfileMismatchError) as caught:
        merge_profiles([a, a, b])
    assert (caught.value.index, caught.value.feature) == (2, "x")
    assert "bin edges" in caught.value.reason
    c = build_profile({"x": rng.normal(size=500)}, chunks=1)
    with pytest.raises(ProfileMismatchError) as caught:
        merge_profiles([a, c])
    assert caught.value.index == 1 and caught.value.feature is None
    assert "lacks ['k']" in caught.value.reason
    assert merge_profiles([a]) == a


def test_cli_merge_refuses_profiles_on_other_grids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shards on their own grids: one line naming the file and feature, exit 2, nothing written."""
    rows = training_rows(2_000)
    first = build(tmp_path, rows[:1_000], "first")
    second = build(tmp_path, rows[1_000:], "second")
    out = tmp_path / "merged.json"
    capsys.readouterr()
    assert run("merge", str(first), str(second), "-o", str(out)) == 2
    line = one_error_line(capsys)
    assert str(second) in line and "feature 'age'" in line and "grid" in line
    assert not out.exists()


def test_cli_merge_refuses_another_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A column categorical in one shard and numeric in the other is named, exit 2."""
    rows = training_rows(2_000)
    grid = build(tmp_path, rows, "grid")
    as_categories = build(tmp_path, rows, "cat", "--categorical", "age")
    on_grid = build(tmp_path, rows[:500], "shard", "--grid-from", str(grid))
    capsys.readouterr()
    assert run("merge", str(on_grid), str(as_categories), "-o", str(tmp_path / "m.json")) == 2
    line = one_error_line(capsys)
    assert str(as_categories) in line and "'age'" in line and "categorical" in line


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"[1, 2]", "not a reference profile"), (b"{", "not valid JSON")],
)
def test_cli_merge_bad_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    """A missing file or a file that is no profile: one line naming it, exit 2."""
    good = build(tmp_path, training_rows(600), "good")
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_bytes(content)
    capsys.readouterr()
    assert run("merge", str(good), str(bad), "-o", str(tmp_path / "m.json")) == 2
    line = one_error_line(capsys)
    assert str(bad) in line and message in line


def test_cli_build_grid_from_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--grid-from`` a missing file, or a grid whose columns the data lacks: exit 2."""
    rows = training_rows(600)
    data = write_csv(rows, tmp_path / "train.csv")
    out = tmp_path / "out.json"
    assert (
        run("build", "-i", str(data), "-o", str(out), "--grid-from", str(tmp_path / "no.json")) == 2
    )
    assert "--grid-from" in one_error_line(capsys)
    narrow = write_csv([{"income": r["income"]} for r in rows], tmp_path / "narrow.csv")
    grid = build(tmp_path, rows, "grid")
    capsys.readouterr()
    assert run("build", "-i", str(narrow), "-o", str(out), "--grid-from", str(grid)) == 2
    assert "lacks ['age', 'plan', 'prediction']" in one_error_line(capsys)
    assert not out.exists()


# -- diff -----------------------------------------------------------------------------


def raw_columns(rows: Rows) -> dict[str, np.ndarray[Any, Any]]:
    """The numeric columns of rows as arrays."""
    return {
        k: np.array([r[k] for r in rows], dtype=np.float64) for k in ("income", "age", "prediction")
    }


def column(profile: ReferenceProfile, name: str) -> FeatureProfile:
    """A monitored column (feature or prediction) by name."""
    return next(p for p in profile.monitored if p.name == name)


def test_diff_ks_on_one_grid_brackets_scipy(tmp_path: Path) -> None:
    """On one grid, KS brackets scipy's ks_2samp and PSI equals numpy on the same coarse counts."""
    a_rows, b_rows = training_rows(8_000, seed=1), training_rows(8_000, seed=2, shift=0.1)
    grid = build(tmp_path, a_rows, "a")
    b = build(tmp_path, b_rows, "b", "--grid-from", str(grid))
    ref_a, ref_b = load_reference(grid), load_reference(b)
    diff = {c.name: c for c in compare_profiles(ref_a, ref_b).columns}
    raw_a, raw_b = raw_columns(a_rows), raw_columns(b_rows)
    for name in ("income", "age", "prediction"):
        scores = {s.method: s for s in diff[name].scores}
        truth = stats.ks_2samp(raw_a[name], raw_b[name]).statistic
        assert scores["ks"].upper is not None
        assert scores["ks"].score - 1e-12 <= truth <= scores["ks"].upper + 1e-12
        pa, pb = column(ref_a, name), column(ref_b, name)
        assert isinstance(pa, NumericProfile) and isinstance(pb, NumericProfile)
        ca, cb = (
            pa.coarse_counts.astype(float),
            np.add.reduceat(pb.counts, pa.coarse_starts).astype(float),
        )
        p = (ca + 0.5) / (ca.sum() + 0.5 * ca.size)
        q = (cb + 0.5) / (cb.sum() + 0.5 * cb.size)
        assert scores["psi"].score == pytest.approx(
            float(np.sum((p - q) * np.log(p / q))), rel=1e-12
        )
    drifted = [c.name for c in compare_profiles(ref_a, ref_b).drifted]
    assert "plan" in drifted and "age" not in drifted


def test_diff_ks_across_grids_within_the_documented_error(tmp_path: Path) -> None:
    """Independent builds: KS is within the documented binning error of scipy's ks_2samp."""
    a_rows, b_rows = training_rows(8_000, seed=3), training_rows(5_000, seed=4, shift=0.05)
    ref_a = load_reference(build(tmp_path, a_rows, "a"))
    ref_b = load_reference(build(tmp_path, b_rows, "b"))
    raw_a, raw_b = raw_columns(a_rows), raw_columns(b_rows)
    for column in compare_profiles(ref_a, ref_b).columns:
        if column.kind != "numeric":
            continue
        ks = next(s for s in column.scores if s.method == "ks")
        truth = stats.ks_2samp(raw_a[column.name], raw_b[column.name]).statistic
        if ks.error is None:  # a discrete column compared on its shared edges
            assert ks.upper is not None and ks.score - 1e-12 <= truth <= ks.upper + 1e-12
        else:
            assert abs(ks.score - truth) <= ks.error
            assert ks.error < 0.05


def test_diff_categorical_matches_scipy(tmp_path: Path) -> None:
    """Categorical chi-square (Cohen's w) and JS equal scipy's; a new category is listed."""
    ref_a = load_reference(build(tmp_path, training_rows(6_000, seed=1), "a"))
    ref_b = load_reference(build(tmp_path, training_rows(6_000, seed=2, shift=0.1), "b"))
    plan = next(c for c in compare_profiles(ref_a, ref_b).columns if c.name == "plan")
    pa, pb = ref_a.feature("plan"), ref_b.feature("plan")
    assert isinstance(pa, CategoricalProfile) and isinstance(pb, CategoricalProfile)
    common = [c for c in pa.categories if c in pb.categories]
    ta = [int(pa.counts[pa.categories.index(c)]) for c in common]
    tb = [int(pb.counts[pb.categories.index(c)]) for c in common]
    ta.append(pa.n_ref - sum(ta))
    tb.append(pb.n_ref - sum(tb))
    table = np.array([ta, tb])
    chi2 = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)[0]
    scores = {s.method: s.score for s in plan.scores}
    assert scores["chi2"] == pytest.approx(np.sqrt(chi2 * (1 / pa.n_ref + 1 / pb.n_ref)))
    assert scores["js"] == pytest.approx(distance.jensenshannon(ta, tb, base=2))
    assert any(note.startswith("new in b: ") and "enterprise" in note for note in plan.notes)
    assert plan.drifted


def test_cli_diff_exit_codes_and_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0, 4 with --fail-on-drift, 0 under config thresholds; added and removed listed."""
    a = build(tmp_path, training_rows(4_000, seed=1), "a")
    b = build(
        tmp_path,
        [{**r, "tenure": i % 7} for i, r in enumerate(training_rows(4_000, seed=2, shift=0.2))],
        "b",
        "--exclude",
        "age",
    )
    assert run("diff", str(a), str(b)) == 0
    text = capsys.readouterr().out
    assert "DRIFT" in text and "only in b (added): tenure" in text
    assert "only in a (removed): age" in text
    assert run("diff", str(a), str(b), "--fail-on-drift") == EXIT_DRIFT == 4
    capsys.readouterr()
    config = tmp_path / "driftd.yaml"
    config.write_text(
        "detectors:\n"
        "  psi: {threshold: 50, clear: 1}\n  chi2: {threshold: 50, clear: 1}\n"
        "  js: {threshold: 50, clear: 1}\n  missing: {threshold: 50, clear: 1}\n"
        "  overrides:\n    income: {ks: {threshold: 50, clear: 1}}\n"
        "    prediction: {ks: {threshold: 50, clear: 1}}\n"
    )
    assert run("diff", str(a), str(b), "--fail-on-drift", "-c", str(config)) == 0
    assert "0 of 3 columns over threshold" in capsys.readouterr().out
    assert run("diff", str(a), str(b), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["added"] == ["tenure"] and data["removed"] == ["age"]
    assert "income" in data["drifted"]
    income = next(c for c in data["columns"] if c["name"] == "income")
    assert income["scores"]["psi"]["threshold"] == 0.25


def test_cli_diff_same_profile_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A profile against itself scores zero everywhere and passes --fail-on-drift."""
    a = build(tmp_path, training_rows(3_000), "a")
    capsys.readouterr()
    assert run("diff", str(a), str(a), "--fail-on-drift", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["drifted"] == []
    for column in data["columns"]:
        for method, score in column["scores"].items():
            assert score["score"] == pytest.approx(0.0, abs=1e-12), (column["name"], method)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b'{"schema": 2}', "not a valid reference profile")],
)
def test_cli_diff_bad_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    """A missing or broken profile: one line naming the file, exit 2."""
    good = build(tmp_path, training_rows(600), "good")
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_bytes(content)
    capsys.readouterr()
    assert run("diff", str(good), str(bad)) == 2
    line = one_error_line(capsys)
    assert str(bad) in line and message in line


def test_cli_diff_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config with a bad threshold: one line naming the key, exit 2."""
    good = build(tmp_path, training_rows(600), "good")
    config = tmp_path / "driftd.yaml"
    config.write_text("detectors:\n  psi: {threshold: -1, clear: 0.1}\n")
    capsys.readouterr()
    assert run("diff", str(good), str(good), "-c", str(config)) == 2
    assert "detectors.psi.threshold" in one_error_line(capsys)


# -- show -----------------------------------------------------------------------------


def test_cli_show_quantiles_match_numpy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The quantiles shown are numpy's (inverted_cdf) of the raw data; min and max exact."""
    rows = training_rows(5_000)
    path = build(tmp_path, rows, "ref")
    capsys.readouterr()
    assert run("show", str(path), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    raw = raw_columns(rows)
    columns = {c["name"]: c for c in data["columns"]}
    for name in ("income", "age", "prediction"):
        quantiles = columns[name]["quantiles"]
        assert quantiles["min"]["value"] == raw[name].min()
        assert quantiles["max"]["value"] == raw[name].max()
        for p in (1, 25, 50, 75, 99):
            expected = np.quantile(raw[name], p / 100, method="inverted_cdf")
            assert quantiles[f"p{p}"] == {"value": expected, "bound": "="}, (name, p)
    plan = columns["plan"]
    assert plan["missing"] == sum(1 for r in rows if r["plan"] == "")
    shares = {c["value"]: c["share"] for c in plan["categories"]}
    assert shares["basic"] == pytest.approx(sum(r["plan"] == "basic" for r in rows) / plan["count"])
    assert data["prediction"] == "prediction" and data["rows"] == 5_000


def test_cli_show_text_stays_readable_for_fifty_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fifty features: at most eight short lines per column; --feature prints one in full."""
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {f"num_{i:02d}": rng.gamma(2.0, 1.0 + i, 3_000) for i in range(40)}
    columns |= {f"cat_{i}": rng.choice([f"v{k}" for k in range(12)], 3_000) for i in range(10)}
    profile = build_profile(columns, categorical=[f"cat_{i}" for i in range(10)])
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(profile.to_dict()))
    assert run("show", str(path)) == 0
    text = capsys.readouterr().out
    blocks = text.strip().split("\n\n")
    assert blocks[0].startswith(f"reference {profile.version}: 3,000 rows, 50 features")
    assert len(blocks) == 51
    assert all(len(block.splitlines()) <= 8 for block in blocks[1:])
    assert max(len(line) for line in text.splitlines()) <= 110
    assert "(7 more)" in text  # 12 categories: five shown, seven summed
    assert run("show", str(path), "--feature", "num_03") == 0
    one = capsys.readouterr().out
    assert "num_04" not in one and "coarse (PSI) bins" in one and "(      -inf," in one


def test_cli_show_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file, a file that is no profile and an unknown --feature: one line, exit 2."""
    assert run("show", str(tmp_path / "none.json")) == 2
    assert "no such file" in one_error_line(capsys)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    assert run("show", str(bad)) == 2
    assert "not a valid reference profile" in one_error_line(capsys)
    good = build(tmp_path, training_rows(600), "good")
    capsys.readouterr()
    assert run("show", str(good), "--feature", "nope") == 2
    assert "--feature 'nope'" in one_error_line(capsys)


def test_profile_on_grid_of_the_grid_data_keeps_its_counts() -> None:
    """Profiling the grid's own data on the grid gives back its bins and counts."""
    rng = np.random.default_rng(2)
    data = {"x": rng.normal(size=3_000), "k": rng.choice(["a", "b", "c"], 3_000)}
    grid = build_profile(data, categorical=["k"])
    again = profile_on_grid(data, grid)
    for mine, theirs in zip(again.features, grid.features, strict=True):
        np.testing.assert_array_equal(mine.counts, theirs.counts)
    assert isinstance(again, ReferenceProfile)
    assert again.feature("x").spread == grid.feature("x").spread


def test_cli_diff_a_column_that_changed_kind_is_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A column numeric in a and categorical in b is reported and fails --fail-on-drift."""
    rows = training_rows(2_000)
    a = build(tmp_path, rows, "a")
    b = build(tmp_path, rows, "b", "--categorical", "age")
    capsys.readouterr()
    assert run("diff", str(a), str(b), "--fail-on-drift") == 4
    text = capsys.readouterr().out
    assert "kind changed: numeric in a, categorical in b" in text
    assert "1 of 4 columns over threshold (marked *): age" in text


def test_cli_merge_unwritable_output_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output in a missing directory: one line naming --output, exit 2."""
    good = build(tmp_path, training_rows(600), "good")
    capsys.readouterr()
    assert run("merge", str(good), str(good), "-o", str(tmp_path / "no" / "m.json")) == 2
    assert "--output" in one_error_line(capsys)


@pytest.mark.slow
def test_output_into_a_closed_pipe_stops_quietly_with_141(tmp_path: Path) -> None:
    """`driftd reference show ... | head` whose reader left: exit 141, no traceback."""
    profile = build(tmp_path, training_rows(2_000), "ref")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before driftd writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "reference", "show", str(profile)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
