"""Seeded streams and a river replay, shared by the ADWIN oracle tests and benchmark."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river.drift import ADWIN

KINDS = ("abrupt", "gradual", "bernoulli", "constant", "heavy_tail")


@dataclass(frozen=True)
class Case:
    """One seeded multi-stream scenario, split into batches."""

    seed: int
    kind: str
    n_streams: int
    streams: np.ndarray
    values: np.ndarray
    batches: list[tuple[int, int]]
    params: dict[str, Any] = field(default_factory=dict)


def make_values(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    """A stream of ``n`` values of the given kind, with a change where the kind has one."""
    t = np.arange(n)
    change = int(rng.integers(n // 4, 3 * n // 4 + 1)) if n >= 4 else 0
    if kind == "abrupt":
        shift = float(rng.choice([0.3, 1.0, 3.0]))
        return rng.normal(0.0, 1.0, n) + np.where(t >= change, shift, 0.0)
    if kind == "gradual":
        ramp = np.clip((t - change) / max(1, n // 5), 0.0, 1.0)
        return rng.normal(0.0, 1.0, n) + 1.5 * ramp
    if kind == "bernoulli":
        p = np.where(t >= change, float(rng.choice([0.2, 0.35, 0.6])), 0.1)
        return (rng.random(n) < p).astype(np.float64)
    if kind == "constant":
        return np.full(n, float(rng.choice([0.0, 1.0, 0.25])))
    if kind == "heavy_tail":
        return rng.standard_t(2.0, n) + np.where(t >= change, 2.0, 0.0)
    raise ValueError(f"unknown kind {kind!r}")


def make_case(seed: int, kind: str, batch_hint: int | None = None) -> Case:
    """Random parameters, stream count, length and batch cuts for one seed."""
    rng = np.random.default_rng(seed)
    n_streams = int(rng.integers(1, 9))
    n = int(rng.integers(200, 6000))
    streams = rng.integers(0, n_streams, n)
    values = np.empty(n)
    for s in range(n_streams):
        mask = streams == s
        values[mask] = make_values(rng, kind, int(mask.sum()))
    params = {
        "delta": float(rng.choice([0.002, 0.002, 0.01, 0.1, 0.5])),
        "clock": int(rng.choice([32, 32, 1, 4, 7])),
        "max_buckets": int(rng.choice([5, 5, 2, 3, 8])),
        "min_window_length": int(rng.choice([5, 5, 1, 2, 10])),
        "grace_period": int(rng.choice([10, 10, 0, 30, 100])),
    }
    size = batch_hint or int(rng.choice([1, 7, 64, 500, 2000, 10_000]))
    if size == 1:
        n = min(n, 400)
        streams, values = streams[:n], values[:n]
    bounds = [*range(0, n, size), n]
    batches = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    return Case(seed, kind, n_streams, streams, values, batches, params)


@dataclass(frozen=True)
class RiverTrace:
    """What river reports: drift positions, and width/estimation after every batch."""

    positions: list[int]
    widths: list[list[float]]
    estimations: list[list[float]]


def river_trace(case: Case) -> RiverTrace:
    """Feed every value to its stream's own ``river.drift.ADWIN``, element by element."""
    detectors = [ADWIN(**case.params) for _ in range(case.n_streams)]
    positions: list[int] = []
    widths: list[list[float]] = []
    estimations: list[list[float]] = []
    stream_list = case.streams.tolist()
    value_list = case.values.tolist()
    for lo, hi in case.batches:
        for i in range(lo, hi):
            det = detectors[stream_list[i]]
            det.update(value_list[i])
            if det.drift_detected:
                positions.append(i)
        widths.append([d.width for d in detectors])
        estimations.append([d.estimation for d in detectors])
    return RiverTrace(positions, widths, estimations)
