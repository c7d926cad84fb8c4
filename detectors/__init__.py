"""driftd's drift engine as a library: profiles, sketches, calibrated tests, batched ADWIN.

The daemon runs exactly this engine. In a notebook::

    import detectors
    ref = detectors.build_profile(train_df, categorical=["plan"], prediction="score")
    report = detectors.compare(ref, current_df)
    report.to_frame()

Nothing in this package does I/O, logging configuration, Kafka or Prometheus work.

>>> import numpy as np, detectors
>>> rng = np.random.default_rng(0)
>>> ref = detectors.build_profile({"x": rng.normal(size=20_000), "score": rng.random(20_000)},
...                               prediction="score")
>>> report = detectors.compare(ref, {"x": rng.normal(0.2, 1, 5_000), "score": rng.random(5_000)})
>>> report.drifted
(('x', 'psi'), ('x', 'ks'))
"""

from detectors.adwin import BatchADWIN
from detectors.base import DriftResult
from detectors.detector import DriftDetector
from detectors.embedding import EmbeddingDrift, EmbeddingReference, EmbeddingScores
from detectors.engine import DriftEngine, Reference
from detectors.feature_profiles import (
    OTHER,
    UNSEEN,
    CategoricalProfile,
    NumericProfile,
    category_key,
)
from detectors.label_noise import (
    ConfidentThresholds,
    LabelNoiseDetector,
    LabelNoiseResult,
    LabelNoiseTest,
)
from detectors.merge import ProfileMismatchError, merge_profiles, profile_on_grid
from detectors.multivariate import PCAReference, ReconstructionDrift, ReconstructionScores
from detectors.mv_common import JointScores, UnavailableError
from detectors.perf_calibration import ScoreCalibration
from detectors.perf_metrics import PerformanceMetrics
from detectors.perf_relabel import label_studio_task
from detectors.performance import (
    PerformanceDetector,
    PerformanceEstimate,
    PerformanceEstimator,
    RealizedPerformance,
)
from detectors.profile import ReferenceProfile, build_profile
from detectors.report import DriftReport, ReportRow, compare, psi_severity
from detectors.rules import (
    BAND,
    BREACH,
    CLEAR,
    METHODS,
    SEVERE,
    SKIP,
    MethodRule,
    Rules,
    benjamini_hochberg,
)
from detectors.segment_mix import SegmentMix, SegmentMixDetector, new_segments
from detectors.sketch import Sketch
from detectors.verdicts import WindowScores

__all__ = [
    "BAND",
    "BREACH",
    "CLEAR",
    "METHODS",
    "OTHER",
    "SEVERE",
    "SKIP",
    "UNSEEN",
    "BatchADWIN",
    "CategoricalProfile",
    "ConfidentThresholds",
    "DriftDetector",
    "DriftEngine",
    "DriftReport",
    "DriftResult",
    "EmbeddingDrift",
    "EmbeddingReference",
    "EmbeddingScores",
    "JointScores",
    "LabelNoiseDetector",
    "LabelNoiseResult",
    "LabelNoiseTest",
    "MethodRule",
    "NumericProfile",
    "PCAReference",
    "PerformanceDetector",
    "PerformanceEstimate",
    "PerformanceEstimator",
    "PerformanceMetrics",
    "ProfileMismatchError",
    "RealizedPerformance",
    "ReconstructionDrift",
    "ReconstructionScores",
    "Reference",
    "ReferenceProfile",
    "ReportRow",
    "Rules",
    "ScoreCalibration",
    "SegmentMix",
    "SegmentMixDetector",
    "Sketch",
    "UnavailableError",
    "WindowScores",
    "benjamini_hochberg",
    "build_profile",
    "category_key",
    "compare",
    "label_studio_task",
    "merge_profiles",
    "new_segments",
    "profile_on_grid",
    "psi_severity",
]
