"""The drift engine: closed windows against a reference, every method, calibrated verdicts.

This is the one implementation of window-against-reference scoring. The daemon runs
it on the windows it closes, :class:`detectors.DriftDetector` runs it on a sketch,
and :func:`detectors.compare` on a DataFrame.

Per column it runs:

============  ======================  ==============================================
method        columns                 score
============  ======================  ==============================================
``psi``       all                     PSI on the coarse bins (categories)
``ks``        numeric                 KS D (lower bound from the fine grid)
``chi2``      categorical             Cohen's w of the chi-square contingency test
``js``        categorical             Jensen-Shannon distance
``missing``   all                     missing share now minus in the reference
``range``     numeric                 share of values outside the reference's range
``unseen``    categorical             share of values the reference never had
``samples``   all                     non-missing values in the window
``schema``    all                     1 when a full window has no value at all
============  ======================  ==============================================

Each score gets a threshold and a verdict. Calibrated (the default), the threshold is
the score a stationary window of the same actual size exceeds with probability
``Rules.alpha`` (``detectors.calibration``), plus the reference's own spread when its
time-ordered chunks disagree beyond sampling, and never below the method's
``min_effect`` (so that huge windows do not page on trivial differences). Fixed, it is
the configured value (PSI 0.25, ...), and KS and chi-square also need
``p < Rules.p_alpha``. With ``Rules.fdr_q`` Benjamini-Hochberg runs over all of a
window's tests that carry a p-value (columns x methods), and a breach also needs its
rejection. A breach whose score reaches ``severe_ratio`` x threshold is severe: it
fires without waiting for consecutive windows. Windows with fewer than
``min_samples`` values in a column skip that column's tests, and ``samples`` breaches
instead (the column went quiet while its window did not). A column the reference had
and a full window lacks entirely breaches ``schema`` at once (severe), in place of its
``missing`` and ``samples`` breaches: the one page says it is not monitored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

# scipy is imported inside the functions that use it: loading it takes about 0.9 s,
# which every start of the command line (check-config, --help) would otherwise pay.
from detectors.base import BoolArray, FloatArray, IntArray, State
from detectors.binning import Binner
from detectors.calibration import (
    CHI_FAMILY,
    ChiNull,
    beta_binomial_critical,
    beta_binomial_sf,
    chunk_spread,
    from_chi,
    ks_critical,
    n_effective,
    on_support,
    proportion_sd,
    simulate_chi_null,
    to_chi,
)
from detectors.feature_profiles import CategoricalProfile, NumericProfile
from detectors.rules import (
    BAND,
    BREACH,
    CLEAR,
    METHODS,
    SEVERE,
    SKIP,
    Rules,
)
from detectors.stats import (
    chi_square,
    jensen_shannon,
    ks_from_counts,
    ks_p_value,
    normal_isf,
    normal_sf,
    psi,
)
from detectors.verdicts import VerdictBuilder, WindowScores


@dataclass(frozen=True, eq=False)
class Reference:
    """Reference counts in the binner's slot layout ``(F, stride)``, with their calibration:
    the fitted i.i.d. nulls of the chi-square-family methods and the chunk spread per
    method (``(F,)`` arrays, NaN where a method does not apply)."""

    counts: IntArray
    spread: Mapping[str, FloatArray]
    nulls: Mapping[str, ChiNull]

    def state_dict(self) -> State:
        """Plain arrays, for checkpoints: the calibration travels with the reference."""
        return {
            "counts": self.counts.copy(),
            "spread": {m: v.copy() for m, v in self.spread.items()},
            "nulls": {
                m: {"scale": n.scale.copy(), "dof": n.dof.copy()} for m, n in self.nulls.items()
            },
        }

    @classmethod
    def from_state(cls, state: State) -> Reference:
        """Inverse of :meth:`state_dict`."""
        return cls(
            counts=np.asarray(state["counts"], dtype=np.int64).copy(),
            spread={str(m): np.asarray(v, np.float64).copy() for m, v in state["spread"].items()},
            nulls={
                str(m): ChiNull(
                    np.asarray(n["scale"], np.float64), np.asarray(n["dof"], np.float64)
                )
                for m, n in state["nulls"].items()
            },
        )


class DriftEngine:
    """Scores windows of slot counts against calibrated references (see the module doc).

    >>> import numpy as np
    >>> from detectors.profile import build_profile
    >>> from detectors.sketch import Sketch
    >>> rng = np.random.default_rng(0)
    >>> profile = build_profile({"x": rng.normal(size=20_000)})
    >>> engine = DriftEngine(Sketch(profile.features).binner)
    >>> ref = engine.calibrate_profiles()
    >>> window = Sketch(engine.binner)
    >>> window.update(np.zeros(5_000, np.int64), rng.normal(0.2, 1.0, (5_000, 1)))
    >>> scores = engine.score(window.state_dict()["counts"], [ref])
    >>> bool(scores.verdict["ks"][0, 0] >= BREACH), bool(scores.verdict["missing"][0, 0] >= BREACH)
    (True, False)
    """

    def __init__(self, binner: Binner, rules: Rules | None = None) -> None:
        self.binner = binner
        self.rules = rules if rules is not None else Rules()
        self.columns = tuple(p.name for p in binner.profiles)
        profiles = binner.profiles
        self.numeric = np.array([isinstance(p, NumericProfile) for p in profiles], np.bool_)
        self.categorical = ~self.numeric
        self.tracks_unseen = np.array(
            [isinstance(p, CategoricalProfile) and p.tracks_unseen for p in profiles], np.bool_
        )
        self.n_bins = binner.n_bins
        self.methods = tuple(m for m in METHODS if self.rules.methods[m].enabled)
        # Per method and column: on/off, calibrated, fixed threshold, fixed clear, floor.
        self._on: dict[str, BoolArray] = {}
        self._calibrated: dict[str, BoolArray] = {}
        self._fixed: dict[str, FloatArray] = {}
        self._fixed_clear: dict[str, FloatArray] = {}
        self._floor: dict[str, FloatArray] = {}
        applies = {
            "psi": np.ones(len(profiles), np.bool_),
            "ks": self.numeric,
            "chi2": self.categorical,
            "js": self.categorical,
            "missing": np.ones(len(profiles), np.bool_),
            "range": self.numeric,
            "unseen": self.tracks_unseen,
            "samples": np.ones(len(profiles), np.bool_),
            "schema": np.ones(len(profiles), np.bool_),
        }
        for method in self.methods:
            per_column = [self.rules.rule(c, method) for c in self.columns]
            self._on[method] = applies[method] & np.array([r.enabled for r in per_column], bool)
            self._calibrated[method] = np.array([r.calibrated for r in per_column], np.bool_)
            self._fixed[method] = np.array([r.threshold for r in per_column], np.float64)
            self._fixed_clear[method] = np.array([r.clear for r in per_column], np.float64)
            self._floor[method] = np.array([r.min_effect for r in per_column], np.float64)

    def _distribution(self, counts: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """Fine and coarse counts for the distribution methods, and the coarse bin counts.

        A categorical's ``__unseen__`` bin is folded into ``__other__`` here: the unseen
        share has a test of its own, and an almost always empty bin on both sides would
        only add noise to PSI and chi-square.
        """
        width = self.binner.width
        fine = np.array(counts[..., :width], dtype=np.int64)
        cat = np.flatnonzero(self.categorical)
        if cat.size:
            last = self.n_bins[cat] - 1
            fine[..., cat, last - 1] += fine[..., cat, last]
            fine[..., cat, last] = 0
        padded = np.zeros((*fine.shape[:-1], self.binner.stride), np.int64)
        padded[..., :width] = fine
        coarse = self.binner.coarsen(padded)
        return fine, coarse, self.binner.n_coarse - self.categorical

    # -- references ------------------------------------------------------------------

    def calibrate(
        self, counts: npt.ArrayLike, spread: Mapping[str, npt.ArrayLike] | None = None
    ) -> Reference:
        """A reference from slot counts ``(F, stride)``, its nulls fitted now (seeded)."""
        ref = np.asarray(counts, dtype=np.int64)
        expected = (self.binner.n_features, self.binner.stride)
        if ref.shape != expected:
            raise ValueError(f"reference counts must have shape {expected}, got {ref.shape}")
        rules = self.rules
        nulls: dict[str, ChiNull] = {}
        f = self.binner.n_features
        for method in CHI_FAMILY:
            if method not in self.methods:
                continue
            cols = self._on[method] & (ref[:, : self.binner.width].sum(axis=1) > 0)
            scale, dof = np.full(f, np.nan), np.full(f, np.nan)
            if cols.any():
                fine, coarse, n_coarse = self._distribution(ref)
                if method == "psi":
                    bins, nb = coarse[cols], n_coarse[cols]
                else:
                    bins, nb = fine[cols], self.n_bins[cols] - 1
                bins, _, nb = on_support(bins, bins, nb)
                null = simulate_chi_null(
                    method,
                    bins,
                    nb,
                    rules.sim_window,
                    rules.n_sim,
                    rules.seed,
                    rules.smoothing,
                    streams=np.flatnonzero(cols),
                )
                scale[cols], dof[cols] = null.scale, null.dof
            nulls[method] = ChiNull(scale, dof)
        given = {m: np.asarray(v, np.float64) for m, v in (spread or {}).items()}
        full = {m: np.nan_to_num(given.get(m, np.zeros(f))) for m in self.methods}
        return Reference(ref.copy(), full, nulls)

    def calibrate_profiles(self) -> Reference:
        """The binner's own profiles as the reference, with the spread they carry."""
        spread = {
            m: np.array([p.spread.get(m, 0.0) for p in self.binner.profiles], np.float64)
            for m in self.methods
        }
        return self.calibrate(self.binner.reference_slots(), spread)

    def calibrate_chunks(self, chunk_counts: npt.ArrayLike) -> Reference:
        """A reference from the slot counts of its time-ordered chunks ``(K, F, stride)``:
        the counts add up, and the chunks' disagreement beyond sampling is its spread."""
        chunks = np.asarray(chunk_counts, dtype=np.int64)
        base = self.calibrate(chunks.sum(axis=0))
        return replace(base, spread=self.spread_of(chunks, base))

    def spread_of(self, chunks: IntArray, base: Reference) -> dict[str, FloatArray]:
        """The chunk spread of every method, for a reference already calibrated."""
        width = self.binner.width
        f = self.binner.n_features
        out = {m: np.zeros(f) for m in self.methods}
        if chunks.shape[0] < 2:
            return out
        if "missing" in self.methods:
            present = chunks[..., :width].sum(axis=-1)
            pairs = np.stack([chunks[..., width], present], axis=-1)
            out["missing"] = chunk_spread("missing", pairs)
        fine_raw, coarse_raw, n_coarse_raw = self._distribution(chunks)
        _, coarse, n_coarse = on_support(coarse_raw.sum(axis=0), coarse_raw, n_coarse_raw)
        _, fine, n_fine = on_support(fine_raw.sum(axis=0), fine_raw, self.n_bins - 1)
        if "psi" in self.methods:
            out["psi"] = chunk_spread(
                "psi", coarse, n_coarse[0], base.nulls["psi"], self.rules.smoothing
            )
        if "ks" in self.methods and self.numeric.any():
            out["ks"][self.numeric] = chunk_spread("ks", chunks[:, self.numeric, :width])
        for method in ("chi2", "js"):
            cat = self.categorical
            if method in self.methods and cat.any():
                null = base.nulls[method]
                out[method][cat] = chunk_spread(
                    method,
                    fine[:, cat],
                    n_fine[0, cat],
                    ChiNull(null.scale[cat], null.dof[cat]),
                )
        return {m: np.where(self._on[m], np.nan_to_num(v), 0.0) for m, v in out.items()}

    # -- scoring ---------------------------------------------------------------------

    def score(
        self, counts: npt.ArrayLike, references: Sequence[Reference], which: npt.ArrayLike = 0
    ) -> WindowScores:
        """Score windows ``(k, F, stride)``; window ``i`` against ``references[which[i]]``."""
        cur = np.asarray(counts, dtype=np.int64)
        if cur.ndim != 3 or cur.shape[1:] != (self.binner.n_features, self.binner.stride):
            raise ValueError(
                f"window counts must have shape (k, {self.binner.n_features}, "
                f"{self.binner.stride}), got {cur.shape}"
            )
        k = cur.shape[0]
        idx = np.broadcast_to(np.asarray(which, dtype=np.int64), (k,))
        ref = np.stack([r.counts for r in references])[idx] if k else cur.copy()
        width = self.binner.width
        f = self.binner.n_features
        cur_fine, ref_fine = cur[..., :width], ref[..., :width]
        n = cur_fine.sum(axis=-1)
        m = ref_fine.sum(axis=-1)
        rows = cur[:, 0, :].sum(axis=-1) if f else np.zeros(k, np.int64)
        ref_rows = ref[:, 0, :].sum(axis=-1) if f else np.zeros(k, np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            missing_rate = cur[..., width] / np.maximum(rows, 1)[:, None]
        ref_dist, ref_coarse, n_coarse = self._distribution(ref)
        cur_dist, cur_coarse, _ = self._distribution(cur)
        enough = n >= self.rules.min_samples
        rows_enough = np.broadcast_to((rows >= self.rules.min_samples)[:, None], (k, f))
        n_eff = n_effective(m, n)
        spread = {
            meth: np.stack([r.spread[meth] for r in references])[idx] if k else np.zeros((0, f))
            for meth in self.methods
        }
        out = VerdictBuilder(k, f)
        nan = np.full((k, f), np.nan)

        def null_of(method: str) -> ChiNull:
            nulls = [r.nulls[method] for r in references]
            return ChiNull(
                np.stack([x.scale for x in nulls])[idx], np.stack([x.dof for x in nulls])[idx]
            )

        for method in self.methods:
            on = self._on[method]
            if not on.any():
                continue
            score, p, thr, tested = nan.copy(), nan.copy(), nan.copy(), enough.copy()
            if method in CHI_FAMILY:
                cols = on
                if method == "psi":
                    r, c, nb = on_support(ref_coarse[:, cols], cur_coarse[:, cols], n_coarse[cols])
                    s = psi(r, c, self.rules.smoothing, nb)
                else:
                    r, c, _ = on_support(
                        ref_dist[:, cols], cur_dist[:, cols], self.n_bins[cols] - 1
                    )
                    if method == "chi2":
                        chi = chi_square(r, c)
                        s = chi.effect
                    else:
                        s = jensen_shannon(r, c)
                score[:, cols] = s
                null = null_of(method)
                thr = from_chi(method, null.critical(self.rules.alpha), n_eff) + spread[method]
                adj = np.maximum(score - spread[method], 0.0)
                p = null.sf(to_chi(method, adj, n_eff))
                if method == "chi2":
                    # Fixed mode keeps the contingency test's own p-value.
                    chi_p = nan.copy()
                    chi_p[:, cols] = chi.p_value
                    p = np.where(self._calibrated[method], p, chi_p)
            elif method == "ks":
                cols = on
                ks = ks_from_counts(ref_fine[:, cols], cur_fine[:, cols])
                score[:, cols] = ks.statistic
                thr = ks_critical(self.rules.alpha, n_eff) + spread[method]
                p[:, cols] = ks.p_value
                shifted = spread[method] > 0
                if shifted.any():
                    adj = ks_p_value(np.maximum(score - spread[method], 0.0), np.round(n_eff))
                    p = np.where(shifted, adj, p)
            elif method == "missing":
                score = np.abs(missing_rate - _share(ref[..., width], ref_rows))
                p0 = (ref[..., width] + 0.5) / (ref_rows[:, None] + 1.0)
                sd = proportion_sd(p0, ref_rows[:, None], np.maximum(rows, 1)[:, None])
                z = normal_isf(self.rules.alpha / 2)
                thr = z * sd + spread[method]
                with np.errstate(invalid="ignore", divide="ignore"):
                    p = 2 * normal_sf(np.maximum(score - spread[method], 0.0) / sd)
                tested = rows_enough.copy()
            elif method in ("range", "unseen"):
                last = np.broadcast_to(self.n_bins - 1, (k, f))
                at_last = np.take_along_axis(cur_fine, last[..., None], axis=-1)[..., 0]
                ref_last = np.take_along_axis(ref_fine, last[..., None], axis=-1)[..., 0]
                if method == "range":
                    hits, ref_hits, base = (
                        cur_fine[..., 0] + at_last,
                        ref_fine[..., 0] + ref_last,
                        2.0,
                    )
                else:
                    singletons = np.array(
                        [getattr(pr, "singletons", 0) for pr in self.binner.profiles], np.float64
                    )
                    hits, ref_hits, base = at_last, ref_last + singletons.astype(np.int64), 1.0
                with np.errstate(invalid="ignore", divide="ignore"):
                    score = np.where(on, hits / n, np.nan)
                a = ref_hits + base
                b = np.maximum(m - ref_hits - base + 1, 1.0)
                cols = on & (n > 0)
                crit = np.full((k, f), np.nan)
                if cols.any():
                    crit[cols] = beta_binomial_critical(self.rules.alpha, n[cols], a[cols], b[cols])
                    p[cols] = beta_binomial_sf(hits[cols], n[cols], a[cols], b[cols])
                with np.errstate(invalid="ignore", divide="ignore"):
                    thr = crit / n
            elif method == "schema":
                # The reference had the column; not one row of a full window carries it
                # (absent from the events, or under another name): it is not monitored.
                absent = rows_enough & (n == 0) & (m > 0)
                score = absent.astype(np.float64)
                verdict = np.where(absent, SEVERE, CLEAR).astype(np.int8)
                verdict = np.where(rows_enough, verdict, SKIP).astype(np.int8)
                one = np.ones((k, f))
                out.put(method, on, score, nan, one, 0.5 * one, verdict)
                continue
            else:  # samples: the column went quiet while its window did not
                score = n.astype(np.float64)
                verdict = np.where(
                    n >= self.rules.min_samples, CLEAR, np.where(rows_enough, BREACH, SKIP)
                ).astype(np.int8)
                limit = np.full((k, f), float(self.rules.min_samples))
                out.put(method, on, score, nan, limit, limit, verdict)
                continue
            score = np.where(on, score, np.nan)
            self._decide(out, method, on, score, p, thr, tested)
        if self.rules.fdr_q is not None:
            out.apply_fdr(self.rules.fdr_q, self.rules.severe_ratio)
        out.defer_to_schema()
        return out.build(self.columns, rows, n, missing_rate)

    def _decide(
        self,
        out: VerdictBuilder,
        method: str,
        on: BoolArray,
        score: FloatArray,
        p: FloatArray,
        calibrated_thr: FloatArray,
        tested: BoolArray,
    ) -> None:
        calibrated = self._calibrated[method]
        thr = np.where(
            calibrated,
            # No null (nothing to compare yet): nothing can breach.
            np.maximum(
                np.where(np.isnan(calibrated_thr), np.inf, calibrated_thr), self._floor[method]
            ),
            self._fixed[method],
        )
        clear = np.where(calibrated, self.rules.clear_ratio * thr, self._fixed_clear[method])
        breach = score >= thr
        if method in ("ks", "chi2"):
            # Fixed mode: an effect size is not enough on its own (large windows).
            breach &= calibrated | (p < self.rules.p_alpha)
        verdict = np.where(score < clear, CLEAR, BAND)
        verdict = np.where(breach, BREACH, verdict)
        verdict = np.where(breach & (score >= self.rules.severe_ratio * thr), SEVERE, verdict)
        verdict = np.where(tested & ~np.isnan(score), verdict, SKIP).astype(np.int8)
        out.put(method, on, score, p, thr, clear, verdict)
        out.rule[method] = (np.broadcast_to(calibrated, score.shape), self._floor[method])


def _share(part: npt.ArrayLike, whole: npt.ArrayLike) -> FloatArray:
    w = np.asarray(whole, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.asarray(part, np.float64) / np.maximum(w, 1)[:, None], np.float64)
