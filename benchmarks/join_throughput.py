"""Join store throughput: labels matched per second with 1M predictions pending.

The store is filled with 1,000,000 pending predictions (``--quick``: 200,000) with
ids like ``req-0000123``, in batches of 5,000; then a random fifth of their labels
arrive, in batches of 5,000, and each one matches. The baseline is the plain way
to write the join in Python: a dict from id to a tuple (segment, prediction, time,
group), ``pop`` per label, the pairs gathered in lists and made into arrays per
batch; it has no capacity, TTL or duplicate rule. Both run on the same data in the
same process, in turn, and the best of a few runs counts.

Also reported: prediction inserts per second while the store is full (every
insert evicts the oldest entry), against the same dict taking the same inserts
(it just grows), and the memory held per pending prediction at full size
(tracemalloc: everything the store allocates, id strings included, since the
store is what keeps them alive), against the dict of tuples.

    python -m benchmarks.join_throughput [--quick]
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._report import Measurement, parse_args, report
from monitor.engine.labels.join import JoinStore

BENCH = "join_throughput"
BATCH = 5_000
TTL = 7 * 86_400.0

Columns = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _predictions(n: int, prefix: str, start: float, seed: int) -> Columns:
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{i:07d}" for i in range(n)]
    segment = rng.integers(0, 50, n)
    score = rng.random(n)
    ts = start + np.arange(n) * 0.01
    group = rng.integers(-1, 5, n)
    return ids, segment, score, ts, group


def _fill_store(n: int, data: Columns) -> JoinStore:
    ids, segment, score, ts, group = data
    store = JoinStore(n, TTL)
    for lo in range(0, n, BATCH):
        hi = lo + BATCH
        store.add_predictions(ids[lo:hi], segment[lo:hi], score[lo:hi], ts[lo:hi], group[lo:hi])
    return store


def _fill_dict(data: Columns) -> dict[str, tuple[int, float, float, int]]:
    ids, segment, score, ts, group = data
    return dict(
        zip(
            ids,
            zip(segment.tolist(), score.tolist(), ts.tolist(), group.tolist(), strict=True),
            strict=True,
        )
    )


def _dict_join(
    pending: dict[str, tuple[int, float, float, int]],
    early: dict[str, tuple[float, float]],
    ids: list[str],
    label: np.ndarray,
    ts: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The plain join of one label batch: pop each id, gather the pairs into arrays."""
    seg: list[int] = []
    pred: list[float] = []
    pred_ts: list[float] = []
    grp: list[int] = []
    lab: list[float] = []
    lab_ts: list[float] = []
    for key, y, t in zip(ids, label.tolist(), ts.tolist(), strict=True):
        hit = pending.pop(key, None)
        if hit is None:
            early[key] = (y, t)
            continue
        seg.append(hit[0])
        pred.append(hit[1])
        pred_ts.append(hit[2])
        grp.append(hit[3])
        lab.append(y)
        lab_ts.append(t)
    return (
        np.array(seg, np.int64),
        np.array(pred),
        np.array(lab),
        np.array(pred_ts),
        np.array(lab_ts),
        np.array(grp, np.int64),
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _held_bytes(build: Callable[[], Any]) -> tuple[float, Any]:
    """Bytes still allocated (tracemalloc) by what ``build`` returns, and that object."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return float(held), built


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    n, repeats = (200_000, 3) if args.quick else (1_000_000, 3)
    n_labels = n // 5
    rng = np.random.default_rng(1)
    data = _predictions(n, "req", 1_795_000_000.0, 0)
    pick = rng.permutation(n)[:n_labels]
    label_ids = [data[0][i] for i in pick.tolist()]
    labels = rng.integers(0, 2, n_labels).astype(np.float64)
    label_ts = data[3][pick] + rng.exponential(3_600.0, n_labels)
    batches = [
        (label_ids[lo : lo + BATCH], labels[lo : lo + BATCH], label_ts[lo : lo + BATCH])
        for lo in range(0, n_labels, BATCH)
    ]
    newer = _predictions(n_labels, "new", 1_795_100_000.0, 2)

    store_label = dict_label = store_insert = dict_insert = float("inf")
    # Interleaved, so that a busy spell on a shared machine hits both sides alike.
    for _ in range(repeats):
        store = _fill_store(n, data)
        assert store.pending_predictions == n

        def match(s: JoinStore = store) -> None:
            for ids, label, ts in batches:
                s.add_labels(ids, label, ts)

        store_label = min(store_label, _timed(match))
        assert store.matched == n_labels and store.pending_labels == 0
        store = _fill_store(n, data)

        def insert_full(s: JoinStore = store) -> None:
            ids, segment, score, ts, group = newer
            for lo in range(0, n_labels, BATCH):
                hi = lo + BATCH
                s.add_predictions(ids[lo:hi], segment[lo:hi], score[lo:hi], ts[lo:hi], group[lo:hi])

        store_insert = min(store_insert, _timed(insert_full))
        assert store.evicted_predictions == n_labels
        del store
        pending = _fill_dict(data)
        early: dict[str, tuple[float, float]] = {}

        def dict_match(p: dict[str, Any] = pending, e: dict[str, Any] = early) -> None:
            for ids, label, ts in batches:
                _dict_join(p, e, ids, label, ts)

        dict_label = min(dict_label, _timed(dict_match))
        assert not early and len(pending) == n - n_labels

        def dict_grow(p: dict[str, Any] = pending) -> None:
            ids, segment, score, ts, group = newer
            for lo in range(0, n_labels, BATCH):
                hi = lo + BATCH
                p.update(
                    zip(
                        ids[lo:hi],
                        zip(
                            segment[lo:hi].tolist(),
                            score[lo:hi].tolist(),
                            ts[lo:hi].tolist(),
                            group[lo:hi].tolist(),
                            strict=True,
                        ),
                        strict=True,
                    )
                )

        dict_insert = min(dict_insert, _timed(dict_grow))
        del pending

    def build_store() -> JoinStore:
        return _fill_store(n, _predictions(n, "req", 1_795_000_000.0, 0))

    def build_dict() -> dict[str, Any]:
        return _fill_dict(_predictions(n, "req", 1_795_000_000.0, 0))

    store_bytes, store = _held_bytes(build_store)
    assert store.pending_predictions == n
    del store
    dict_bytes, _ = _held_bytes(build_dict)
    per_store, per_dict = store_bytes / n, dict_bytes / n

    label_rate, dict_rate = n_labels / store_label, n_labels / dict_label
    insert_rate, dict_insert_rate = n_labels / store_insert, n_labels / dict_insert
    print(
        f"{n:,} pending predictions, {n_labels:,} labels in batches of {BATCH:,}: "
        f"JoinStore {label_rate:,.0f} labels/s, plain dict join {dict_rate:,.0f} labels/s; "
        f"inserts into a full store {insert_rate:,.0f}/s "
        f"(dict growing: {dict_insert_rate:,.0f}/s); "
        f"{per_store:.0f} bytes per pending prediction (dict of tuples: {per_dict:.0f})"
    )
    report(
        [
            Measurement(BENCH, "labels_matched_per_s", label_rate, "1/s", 1.0, "higher", dict_rate),
            Measurement(BENCH, "labels_matched_per_s_abs", label_rate, "1/s", 300_000, "higher"),
            Measurement(
                BENCH,
                "inserts_per_s_full_store",
                insert_rate,
                "1/s",
                0.3,
                "higher",
                dict_insert_rate,
            ),
            Measurement(
                BENCH, "bytes_per_pending_prediction", per_store, "B", 1.0, "lower", per_dict
            ),
        ]
    )


if __name__ == "__main__":
    main()
