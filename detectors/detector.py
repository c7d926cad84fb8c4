"""A streaming drift detector for library use: rows in, every method's verdict out.

It counts every row since construction (or ``reset()``) per segment, and scores all
segments with the same :class:`~detectors.engine.DriftEngine` the daemon runs on its
windows. Windowing is the caller's: reset it, or ``evaluate`` another sketch (the
sketches of several partitions merged, say).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy.typing as npt

from detectors.base import State
from detectors.engine import DriftEngine, Reference
from detectors.feature_profiles import FeatureProfile
from detectors.profile import ReferenceProfile
from detectors.rules import Rules
from detectors.sketch import Sketch
from detectors.verdicts import WindowScores


class DriftDetector:
    """PSI, KS, chi-square, JS and the data-quality methods against a reference profile.

    ``values`` rows hold the profile's ``monitored`` columns as ``ReferenceProfile.encode``
    makes them (numbers, category codes, NaN for missing).

    >>> import numpy as np
    >>> from detectors.profile import build_profile
    >>> rng = np.random.default_rng(0)
    >>> detector = DriftDetector(build_profile({"x": rng.normal(size=10_000)}), n_segments=2)
    >>> segments = np.repeat([0, 1], 4_000)
    >>> x = np.concatenate([rng.normal(0, 1, 4_000), rng.normal(0, 1.5, 4_000)])
    >>> result = detector.update(segments, x[:, None])
    >>> result.verdict["ks"][:, 0].tolist()  # segment 1's variance grew by 1.5x
    [-1, 1]
    """

    def __init__(
        self,
        profile: ReferenceProfile | Sequence[FeatureProfile],
        n_segments: int = 1,
        rules: Rules | None = None,
    ) -> None:
        profiles = profile.monitored if isinstance(profile, ReferenceProfile) else profile
        self.sketch = Sketch(profiles, n_segments)
        self.engine = DriftEngine(self.sketch.binner, rules)
        self.reference: Reference = self.engine.calibrate_profiles()

    @property
    def n_segments(self) -> int:
        """Number of segments evaluated."""
        return self.sketch.n_segments

    def update(self, segments: npt.ArrayLike, values: npt.ArrayLike) -> WindowScores:
        """Count a batch of rows (``values[row, column]``) and score every segment."""
        self.sketch.update(segments, values)
        return self.evaluate()

    def evaluate(self, sketch: Sketch | None = None) -> WindowScores:
        """Scores of the rows seen so far, or of another sketch on the same profiles."""
        if sketch is None:
            sketch = self.sketch
        elif sketch.binner.fingerprint != self.sketch.binner.fingerprint:
            raise ValueError("the sketch was built on other profiles than this detector")
        return self.engine.score(sketch.state_dict()["counts"], [self.reference])

    def ensure_segments(self, n_segments: int) -> None:
        """Grow to at least ``n_segments`` segments."""
        self.sketch.ensure_segments(n_segments)

    def reset(self) -> None:
        """Forget every row, keeping the segments."""
        self.sketch.reset()

    def state_dict(self) -> State:
        """The counts, and the calibrated reference they are scored against."""
        return {"sketch": self.sketch.state_dict(), "reference": self.reference.state_dict()}

    def load_state_dict(self, state: State) -> None:
        """Restore ``state_dict`` output."""
        self.sketch.load_state_dict(state["sketch"])
        self.reference = Reference.from_state(state["reference"])
