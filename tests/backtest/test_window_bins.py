"""The pipeline's ``on_window_bins`` hook: each closed window's coarse bins and reference."""

from __future__ import annotations

import numpy as np
import orjson

from detectors.feature_profiles import NumericProfile
from detectors.profile import build_profile
from monitor.config import Settings
from monitor.engine.explain import WindowBins
from monitor.engine.pipeline import Pipeline
from monitor.engine.results import LatestResults
from monitor.ingest.source import Record

T0 = 1_795_000_000.0
CATEGORIES = ["a", "b", "c"]


def test_window_bins_hold_each_windows_counts_beside_its_reference() -> None:
    """The hook's counts equal a histogram of the window's values and of the reference's."""
    rng = np.random.default_rng(3)
    ref_x = rng.normal(0, 1, 5_000)
    ref_c = rng.choice(CATEGORIES, 5_000, p=[0.5, 0.3, 0.2])
    profile = build_profile({"x": ref_x, "c": ref_c.astype(object)}, categorical=["c"])
    settings = Settings(
        model="m",
        schema={"segment_by": [], "categorical": ["c"]},  # type: ignore[arg-type]
        segments={"admit_after_events": 0},  # type: ignore[arg-type]
        windows={"size_events": 1_000, "min_samples": 100},  # type: ignore[arg-type]
    )
    pipeline = Pipeline(settings, profile, LatestResults("m"))
    seen: list[WindowBins] = []
    pipeline.on_window_bins = seen.append
    x = rng.normal(0.5, 1, 1_000)
    c = rng.choice(CATEGORIES, 1_000, p=[0.2, 0.3, 0.5])
    records = [
        Record(
            orjson.dumps(
                {"id": str(i), "ts": T0 + i, "features": {"x": float(x[i]), "c": str(c[i])}}
            ),
            "t",
            0,
            i,
        )
        for i in range(1_000)
    ]
    outcome = pipeline.process(records, now=T0 + 1_000)
    assert outcome.results is not None and len(seen) == 1
    bins = seen[0]
    assert bins.segments == outcome.results.segments
    assert list(bins.window_end_ts) == list(outcome.results.window_end_ts)
    numeric = next(p for p in profile.features if isinstance(p, NumericProfile))
    edges = numeric.coarse_edges
    f = bins.columns.index("x")
    nb = len(bins.labels["x"])
    assert nb == edges.size + 1
    # Bins are right-closed: (e[k-1], e[k]].
    expected_cur = np.bincount(np.searchsorted(edges, x, side="left"), minlength=nb)
    expected_ref = np.bincount(np.searchsorted(edges, ref_x, side="left"), minlength=nb)
    assert bins.current[0, f, :nb].tolist() == expected_cur.tolist()
    assert bins.reference[0, f, :nb].tolist() == expected_ref.tolist()
    g = bins.columns.index("c")
    labels = list(bins.labels["c"])
    current = dict(zip(labels, bins.current[0, g, : len(labels)].tolist(), strict=True))
    reference = dict(zip(labels, bins.reference[0, g, : len(labels)].tolist(), strict=True))
    for category in CATEGORIES:
        assert current[category] == int((c == category).sum())
        assert reference[category] == int((ref_c == category).sum())
