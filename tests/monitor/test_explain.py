"""Top drifting bins: the explanation attached to a firing alert."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.binning import Binner
from detectors.explain import bin_labels, top_bins
from detectors.profile import build_profile
from detectors.stats import psi
from monitor.engine.decision import Transition, dedup_key
from monitor.engine.explain import DriftExplainer
from monitor.engine.windows import ClosedWindows


def _transition(column: str, current: str = "firing", ts: float = 100.0) -> Transition:
    return Transition(
        model="m",
        segment="eu",
        column=column,
        method="psi",
        previous="ok",
        current=current,  # type: ignore[arg-type]
        score=0.5,
        threshold=0.2,
        clear=0.1,
        p_value=float("nan"),
        n=1_000,
        window_end_ts=ts,
        dedup_key=dedup_key("m", "eu", column, "psi"),
        consecutive=2,
    )


def test_contributions_add_up_to_psi_and_rank_the_moved_bin_first() -> None:
    """All bins' contributions sum to PSI; the bin that gained most mass ranks first."""
    ref = np.array([100, 200, 300, 400])
    cur = np.array([100, 200, 300, 1_400])
    labels = ["a", "b", "c", "d"]
    out = top_bins(labels, ref, cur, k=4)
    assert out[0]["bin"] == "d"
    total = sum(b["psi_contribution"] for b in out)
    assert total == pytest.approx(float(psi(ref, cur)), abs=1e-5)
    assert out[0]["reference_share"] == pytest.approx(0.4)
    assert out[0]["current_share"] == pytest.approx(1_400 / 2_000)
    assert len(top_bins(labels, ref, cur, k=2)) == 2


def test_empty_side_gives_no_bins_and_wrong_shape_is_refused() -> None:
    """An empty window explains nothing; mismatched counts raise a clear error."""
    assert top_bins(["a", "b"], np.array([1, 2]), np.array([0, 0])) == []
    with pytest.raises(ValueError, match="expected 2 counts per side"):
        top_bins(["a", "b"], np.array([1, 2, 3]), np.array([1, 2]))


def test_bin_labels_are_intervals_or_categories() -> None:
    """Numeric bins read as intervals; categoricals list categories, __other__, __unseen__."""
    rng = np.random.default_rng(0)
    profile = build_profile(
        {"x": rng.normal(size=5_000), "c": rng.choice(["a", "b"], 5_000)},
        categorical=["c"],
        n_coarse=4,
    )
    numeric, categorical = profile.features
    labels = bin_labels(numeric)
    assert len(labels) == numeric.n_coarse
    assert labels[0].startswith("(-inf, ") and labels[-1].endswith(", inf]")
    assert bin_labels(categorical) == ["a", "b", "__other__", "__unseen__"]


def test_explainer_details_only_firing_transitions_of_closed_windows() -> None:
    """Details are keyed by dedup key, for firing transitions whose window closed now."""
    rng = np.random.default_rng(1)
    profile = build_profile({"x": rng.normal(size=20_000)}, n_coarse=5)
    binner = Binner(list(profile.features))
    shifted = rng.normal(2.0, 1.0, size=(2_000, 1))
    counts = np.zeros((1, 1, binner.stride), dtype=np.int64)
    np.add.at(counts[0, 0], binner.flat_slots(shifted).ravel(), 1)
    closed = ClosedWindows(segments=np.array([1]), counts=counts, end_ts=np.array([100.0]))
    reference = binner.reference_slots()[None]
    explainer = DriftExplainer(binner)
    out = explainer.details(
        [_transition("x"), _transition("x", "resolved"), _transition("x", ts=5.0)],
        closed,
        reference,
        ["__other__", "eu"],
    )
    assert list(out) == [dedup_key("m", "eu", "x", "psi")]
    top = out[dedup_key("m", "eu", "x", "psi")]["top_bins"]
    assert out[dedup_key("m", "eu", "x", "psi")]["psi_severity"] == "significant"  # PSI 0.5
    assert top[0]["bin"].endswith(", inf]")  # mass moved to the top bin
    assert top[0]["current_share"] > top[0]["reference_share"]
