"""The benchmark lines' convention: ``better`` names the direction of the number the
target applies to (the ratio where there is one, else the value), and the summary
reads the lines back to the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks._report import LINES_FILE_VARIABLE, Measurement, report
from benchmarks.summary import main as summary_main
from benchmarks.summary import missed, summarise


def _line(m: Measurement) -> dict[str, object]:
    """The JSON line of ``m``, parsed."""
    parsed: dict[str, object] = json.loads(m.as_json())
    return parsed


def test_a_time_against_a_baseline_is_judged_on_its_speedup() -> None:
    """A lower-is-better time with a baseline: ratio baseline/value, ``better`` higher."""
    fast = Measurement("ks_speed", "ks_s", 0.001, "s", 100.0, "lower", baseline=0.23)
    line = _line(fast)
    assert line["ratio"] == pytest.approx(230.0)
    assert line["better"] == "higher"
    assert fast.met
    slow = Measurement("ks_speed", "ks_s", 0.01, "s", 100.0, "lower", baseline=0.23)
    assert _line(slow)["better"] == "higher"
    assert not slow.met  # 23x against a target of 100x


def test_a_rate_against_a_baseline_is_judged_on_its_ratio() -> None:
    """A higher-is-better rate with a baseline: ratio value/baseline, ``better`` higher."""
    m = Measurement("adwin_speed", "updates_per_s", 3e6, "1/s", 1.5, "higher", baseline=2.5e6)
    assert _line(m)["ratio"] == pytest.approx(1.2)
    assert _line(m)["better"] == "higher"
    assert not m.met


def test_without_a_baseline_the_value_carries_its_own_direction() -> None:
    """No baseline: no ratio, ``better`` is the value's direction, the target is on the value."""
    size = Measurement("checkpoint_size", "encoded_mib", 1.3, "MiB", 16.0, "lower")
    assert _line(size)["ratio"] is None
    assert _line(size)["better"] == "lower"
    assert size.met
    assert not Measurement("checkpoint_size", "encoded_mib", 17.0, "MiB", 16.0, "lower").met
    rate = Measurement("sketch", "values_per_s", 4.7e7, "1/s", 5e7, "higher")
    assert _line(rate)["better"] == "higher"
    assert not rate.met


def test_a_value_target_with_a_baseline_reports_no_ratio() -> None:
    """``target_on_value``: the baseline is shown, no ratio, the target is on the value."""
    m = Measurement(
        "startup", "help_s", 0.3, "s", 0.5, "lower", baseline=0.02, target_on_value=True
    )
    line = _line(m)
    assert line["baseline"] == 0.02
    assert line["ratio"] is None
    assert line["better"] == "lower"
    assert m.met
    late = Measurement(
        "startup", "help_s", 0.7, "s", 0.5, "lower", baseline=0.02, target_on_value=True
    )
    assert not late.met


def test_a_ratio_with_a_zero_denominator_is_refused() -> None:
    """A ratio target over a zero baseline (or a zero lower-is-better value) cannot be judged."""
    with pytest.raises(ValueError, match="non-zero baseline"):
        Measurement("b", "rate", 5.0, "1/s", 1.0, "higher", baseline=0.0)
    with pytest.raises(ValueError, match="non-zero baseline"):
        Measurement("b", "time", 0.0, "s", 1.0, "lower", baseline=1.0)


CASES = [
    Measurement("b", "t1", 0.001, "s", 100.0, "lower", baseline=0.23),
    Measurement("b", "t2", 0.01, "s", 100.0, "lower", baseline=0.23),
    Measurement("b", "r1", 3e6, "1/s", 1.5, "higher", baseline=2.5e6),
    Measurement("b", "r2", 5e6, "1/s", 1.5, "higher", baseline=2.5e6),
    Measurement("b", "v1", 1.3, "MiB", 16.0, "lower"),
    Measurement("b", "v2", 17.0, "MiB", 16.0, "lower"),
    Measurement("b", "v3", 4.7e7, "1/s", 5e7, "higher"),
    Measurement("b", "v4", 0.3, "s", 0.5, "lower", baseline=0.02, target_on_value=True),
    Measurement("b", "v5", 0.7, "s", 0.5, "lower", baseline=0.02, target_on_value=True),
]


@pytest.mark.parametrize("m", CASES, ids=[m.metric for m in CASES])
def test_the_line_alone_gives_the_measurements_verdict(m: Measurement) -> None:
    """Read by the convention only, each JSON line is missed exactly when the target is."""
    assert (missed(_line(m)) is None) == m.met


def test_report_appends_its_lines_to_the_named_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With BENCHMARK_LINES set, every JSON line printed is appended to that file too."""
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"earlier": "run"}\n', encoding="utf-8")
    monkeypatch.setenv(LINES_FILE_VARIABLE, str(lines))
    report(CASES[:3])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines.read_text(encoding="utf-8").splitlines() == ['{"earlier": "run"}', *printed]
    assert len(printed) == 3


def test_the_summary_lists_each_miss_and_each_failed_benchmark() -> None:
    """One line per missed target and per failed benchmark, a count, exit 1 on a failure."""
    text = ["some table row", *(m.as_json() for m in CASES), "{not json"]
    out, code = summarise(text)
    misses = [line for line in out if line.startswith("MISSED")]
    assert len(misses) == sum(not m.met for m in CASES) == 5
    assert any(line.startswith("MISSED b t2: ratio 23x, target >= 100x") for line in misses)
    assert any(line.startswith("MISSED b v5: value 0.7 s, target <= 0.5") for line in misses)
    assert out[-1] == "benchmarks: 9 measurements, 5 targets missed"
    assert code == 0
    out, code = summarise(text, failed=["e2e_throughput"])
    assert "FAILED e2e_throughput: the benchmark exited non-zero (its lines are missing)" in out
    assert code == 1


def test_the_summary_of_nothing_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing or empty file is no success: exit 1 and a line saying nothing was measured."""
    assert summary_main([str(tmp_path / "absent.jsonl")]) == 1
    captured = capsys.readouterr()
    assert "FAILED: no benchmark line was written" in captured.out
    assert "absent.jsonl" in captured.err
