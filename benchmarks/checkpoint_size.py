"""Checkpoint size and speed for a realistic daemon state: 1,000 segments x 50 features.

The state tree holds what the daemon checkpoints: sketch counts int64
(segments, 50 features, 201 slots) filled by sampling 5,000 events per segment
(numeric features spread over 200 quantile bins, categorical ones over a few
top categories, about 1 % missing), small per-segment arrays (ADWIN on the error
stream, label priors, missing counts, window clocks) and the decision book: one
dict per (segment, feature) with its state, streak, score and times (~50,000).

Measured: encoded size, encode time, decode time, and ``FileCheckpointStore.save``
time (temporary file, fsync, rename, directory fsync) of the encoded blob. There
is no baseline: each value is held against a target.

    python -m benchmarks.checkpoint_size [--quick]      # quick: 200 segments
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from benchmarks._report import Measurement, best_of, parse_args, report
from monitor.state import FileCheckpointStore, decode, encode

BENCH = "checkpoint_size"
N_FEATURES = 50
N_CATEGORICAL = 10
N_BINS = 200
N_SLOTS = N_BINS + 1  # the last slot counts missing values
EVENTS_PER_SEGMENT = 5_000
ADWIN_LEVELS = 16
METHODS = ("psi",)

SAVE_TARGET_S = 1.0
CODEC_TARGET_S = 1.0
SIZE_TARGET_MIB = 16.0


def sketch_counts(rng: np.random.Generator, n_segments: int) -> np.ndarray:
    """Counts[segment, feature, slot] from EVENTS_PER_SEGMENT sampled events per segment."""
    numeric = rng.dirichlet(np.full(N_BINS, 20.0), size=(n_segments, N_FEATURES - N_CATEGORICAL))
    categorical = np.zeros((n_segments, N_CATEGORICAL, N_BINS))
    top = rng.dirichlet(np.full(12, 0.7), size=(n_segments, N_CATEGORICAL))
    categorical[:, :, :12] = top  # a few top categories plus "__other__"; the rest stays empty
    probs = np.concatenate([numeric, categorical], axis=1) * 0.99
    missing = np.full((n_segments, N_FEATURES, 1), 0.01)
    probs = np.concatenate([probs, missing], axis=2)
    probs /= probs.sum(axis=2, keepdims=True)
    counts: np.ndarray = rng.multinomial(EVENTS_PER_SEGMENT, probs).astype(np.int64)
    return counts


def decision_book(rng: np.random.Generator, n_segments: int) -> dict[str, Any]:
    """One entry per (segment, feature, method), as the decision book saves it."""
    entries: dict[str, Any] = {}
    scores = rng.gamma(1.0, 0.02, size=n_segments * N_FEATURES * len(METHODS))
    states = rng.choice(["ok", "ok", "ok", "firing", "resolved"], size=scores.size)
    i = 0
    for segment in range(n_segments):
        for feature in range(N_FEATURES):
            for method in METHODS:
                score = float(scores[i])
                entries[f"v3|seg-{segment}/f{feature}/{method}"] = {
                    "state": str(states[i]),
                    "streak": int(score > 0.05),
                    "score": score,
                    "p_value": None,
                    "threshold": 0.2,
                    "clear": 0.1,
                    "n": EVENTS_PER_SEGMENT,
                    "since_ts": 1_790_000_000.0 + i,
                    "last_ts": 1_790_000_060.5 + i,
                }
                i += 1
    return entries


def realistic_state(n_segments: int, seed: int = 0) -> dict[str, Any]:
    """The whole tree one partition's checkpoint holds."""
    rng = np.random.default_rng(seed)
    counts = sketch_counts(rng, n_segments)
    errors = rng.random((n_segments, ADWIN_LEVELS))
    return {
        "sketch": {"fingerprint": "sha256:0f3a9c", "counts": counts},
        "missing": counts[:, :, -1].copy(),
        "segments": [f"v3|seg-{s}" for s in range(n_segments)],
        "windows": {
            "opened_at": np.full(n_segments, 1_790_000_000.0),
            "events": np.full(n_segments, EVENTS_PER_SEGMENT, np.int64),
            "closed": rng.integers(0, 500, n_segments),
        },
        "labels": {"class_counts": rng.integers(0, 2_500, (n_segments, 2))},
        "adwin": {
            "params": {"delta": 0.002, "clock": 32, "max_buckets": 5},
            "run_length": rng.integers(0, 5_000, n_segments),
            "total": errors[:, 0] * 100.0,
            "variance": errors[:, 1],
            "row_totals": errors * 10.0,
            "row_variances": errors / 10.0,
            "reset_pending": np.zeros(n_segments, np.bool_),
            "n_detections": np.zeros(n_segments, np.int64),
            "closest_call": np.float64(0.0013),
        },
        "decisions": decision_book(rng, n_segments),
    }


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    n_segments = 200 if args.quick else 1_000
    repeats = 3
    state = realistic_state(n_segments)
    offsets = {("inference", p): 1_000_000 + p for p in range(12)}
    counts: np.ndarray = state["sketch"]["counts"]
    in_memory = counts.nbytes + sum(
        a.nbytes for a in state["adwin"].values() if isinstance(a, np.ndarray)
    )

    def run_encode() -> bytes:
        return encode(state, offsets, state_version=1, fingerprint="config:abc")

    blob = run_encode()
    encode_s = best_of(run_encode, repeats)
    decode_s = best_of(lambda: decode(blob, location="bench"), repeats)
    restored = decode(blob, location="bench").state
    assert np.array_equal(restored["sketch"]["counts"], counts), "round trip changed the counts"

    with tempfile.TemporaryDirectory(prefix="driftd-bench-") as directory:
        store = FileCheckpointStore(Path(directory))
        save_s = best_of(lambda: store.save(blob), repeats)
        start = time.perf_counter()
        store.save(run_encode())
        total_s = time.perf_counter() - start

    mib = 1024 * 1024
    label = f"{n_segments}seg"
    zeros = float(np.mean(counts == 0))
    print(
        f"{n_segments} segments x {N_FEATURES} features: counts {counts.nbytes / mib:.1f} MiB "
        f"in memory ({zeros:.0%} zeros, arrays {in_memory / mib:.1f} MiB), "
        f"{len(state['decisions'])} decision entries; checkpoint {len(blob) / mib:.2f} MiB"
    )
    report(
        [
            Measurement(
                BENCH, f"encoded_size_{label}", len(blob) / mib, "MiB", SIZE_TARGET_MIB, "lower"
            ),
            Measurement(BENCH, f"encode_{label}", encode_s, "s", CODEC_TARGET_S, "lower"),
            Measurement(BENCH, f"decode_{label}", decode_s, "s", CODEC_TARGET_S, "lower"),
            Measurement(BENCH, f"file_save_{label}", save_s, "s", SAVE_TARGET_S, "lower"),
            Measurement(BENCH, f"encode_and_save_{label}", total_s, "s", SAVE_TARGET_S, "lower"),
        ]
    )


if __name__ == "__main__":
    main()
