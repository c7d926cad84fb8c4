"""The join store pairs predictions and labels exactly like a plain sequential join."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.engine.labels.join import COUNTERS, JoinedPairs, JoinStore

Pair = tuple[int, float, float, float, float, int]


@dataclass
class OracleJoin:
    """The join rules written plainly: lists of dicts, one item at a time."""

    capacity: int
    ttl_s: float
    label_capacity: int
    predictions: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    arrivals: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, side: str, item: dict[str, Any]) -> list[Pair]:
        item = {**item, "arrival": self.arrivals}
        self.arrivals += 1
        own, other = (
            (self.predictions, self.labels)
            if side == "predictions"
            else (self.labels, self.predictions)
        )
        for i, waiting in enumerate(other):
            if waiting["id"] == item["id"]:
                del other[i]
                self.counts["matched"] += 1
                pred, label = (item, waiting) if side == "predictions" else (waiting, item)
                return [
                    (
                        pred["segment"],
                        pred["prediction"],
                        label["label"],
                        pred["ts"],
                        label["ts"],
                        pred["group"],
                    )
                ]
        if any(waiting["id"] == item["id"] for waiting in own):
            self.counts[f"duplicate_{side}"] += 1
            return []
        limit = self.capacity if side == "predictions" else self.label_capacity
        if len(own) >= limit:
            oldest = min(own, key=lambda w: (w["ts"], w["arrival"]))
            own.remove(oldest)
            self.counts[f"evicted_{side}"] += 1
        own.append(item)
        return []

    def expire(self, watermark: float) -> tuple[int, int]:
        cutoff = watermark - self.ttl_s
        out = []
        for side, own in (("predictions", self.predictions), ("labels", self.labels)):
            old = [w for w in own if w["ts"] < cutoff]
            for w in old:
                own.remove(w)
            self.counts[f"expired_{side}"] += len(old)
            out.append(len(old))
        return out[0], out[1]


def _rows(pairs: JoinedPairs) -> list[Pair]:
    return list(
        zip(
            pairs.segment.tolist(),
            pairs.prediction.tolist(),
            pairs.label.tolist(),
            pairs.prediction_ts.tolist(),
            pairs.label_ts.tolist(),
            pairs.group.tolist(),
            strict=True,
        )
    )


def _call(store: JoinStore, side: str, items: list[dict[str, Any]]) -> JoinedPairs:
    ids = [item["id"] for item in items]
    ts = np.array([item["ts"] for item in items], dtype=np.float64)
    if side == "predictions":
        return store.add_predictions(
            ids,
            np.array([item["segment"] for item in items], dtype=np.int64),
            np.array([item["prediction"] for item in items], dtype=np.float64),
            ts,
            np.array([item["group"] for item in items], dtype=np.int64),
        )
    return store.add_labels(ids, np.array([item["label"] for item in items], dtype=np.float64), ts)


def _pending(state: dict[str, Any], side: str) -> list[tuple[str, float]]:
    return sorted(zip(state[side]["ids"], state[side]["ts"].tolist(), strict=True))


# An op: (kind, id, ts, starts a new batch). Few ids and times: repeats and ties are common.
OPS = st.lists(
    st.tuples(
        st.sampled_from(["predictions", "labels", "expire"]),
        st.integers(0, 11),
        st.integers(0, 24),
        st.booleans(),
    ),
    max_size=100,
)


def _batches(
    ops: list[tuple[str, int, int, bool]],
) -> list[tuple[str, list[dict[str, Any]] | float]]:
    """Consecutive adds of one side form one batch unless an op starts a new one."""
    out: list[tuple[str, Any]] = []
    for n, (kind, key, ts, cut) in enumerate(ops):
        if kind == "expire":
            out.append(("expire", ts / 2 + 4))
            continue
        item = {
            "id": f"req-{key:06d}",
            "ts": ts / 2,
            "segment": n % 4,
            "prediction": n + 0.5,
            "group": n % 3 - 1,
            "label": float(n % 2),
        }
        if out and out[-1][0] == kind and not cut:
            out[-1][1].append(item)
        else:
            out.append((kind, [item]))
    return out


def _check_against_oracle(
    store: JoinStore, oracle: OracleJoin, batches: list[tuple[str, Any]], one_by_one: bool = False
) -> None:
    for kind, payload in batches:
        if kind == "expire":
            assert store.expire(payload) == oracle.expire(payload)
        else:
            expected = [pair for item in payload for pair in oracle.add(kind, item)]
            if one_by_one:
                got = [pair for item in payload for pair in _rows(_call(store, kind, [item]))]
            else:
                got = _rows(_call(store, kind, payload))
            assert got == expected
        assert store.counts() == oracle.counts
        assert store.pending_predictions == len(oracle.predictions)
        assert store.pending_labels == len(oracle.labels)
    state = store.state_dict()
    as_pending = lambda own: sorted((w["id"], w["ts"]) for w in own)  # noqa: E731
    assert _pending(state, "predictions") == as_pending(oracle.predictions)
    assert _pending(state, "labels") == as_pending(oracle.labels)


@settings(max_examples=200, deadline=None)
@given(
    ops=OPS,
    capacity=st.integers(1, 6),
    label_capacity=st.integers(1, 6),
    ttl=st.integers(1, 25),
    one_by_one=st.booleans(),
)
def test_matches_sequential_oracle(
    ops: list[tuple[str, int, int, bool]],
    capacity: int,
    label_capacity: int,
    ttl: int,
    one_by_one: bool,
) -> None:
    """Pairs, their order, every counter and the pending entries equal the plain join's."""
    store = JoinStore(capacity, float(ttl), label_capacity)
    oracle = OracleJoin(capacity, float(ttl), label_capacity)
    _check_against_oracle(store, oracle, _batches(ops), one_by_one)


@settings(max_examples=100, deadline=None)
@given(ops=OPS, capacity=st.integers(1, 8), ttl=st.integers(1, 25), cut=st.integers(0, 80))
def test_state_round_trip_mid_stream(
    ops: list[tuple[str, int, int, bool]], capacity: int, ttl: int, cut: int
) -> None:
    """A store restored from state_dict (or pickle) mid-stream continues like the original."""
    batches = _batches(ops)
    store = JoinStore(capacity, float(ttl), capacity + 1)
    oracle = OracleJoin(capacity, float(ttl), capacity + 1)
    _check_against_oracle(store, oracle, batches[:cut])
    restored = JoinStore(capacity, float(ttl), capacity + 1)
    restored.load_state_dict(store.state_dict())
    assert restored.counts() == store.counts()
    _check_against_oracle(pickle.loads(pickle.dumps(store)), oracle_copy(oracle), batches[cut:])
    _check_against_oracle(restored, oracle, batches[cut:])


def oracle_copy(oracle: OracleJoin) -> OracleJoin:
    """A deep copy of the oracle's state."""
    copy: OracleJoin = pickle.loads(pickle.dumps(oracle))
    return copy


def _stream(n: int, seed: int) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = [f"req-{i:06d}" for i in rng.integers(0, n, n)]
    ts = np.sort(rng.uniform(0, 1_000, n))
    # Mostly the label of a prediction a little way back (or ahead), some strays.
    source = np.clip(np.arange(n) - rng.integers(-20, 300, n), 0, n - 1)
    stray = rng.random(n) < 0.2
    label_ids = [
        f"req-{rng.integers(0, n)}" if s else ids[i] for i, s in zip(source, stray, strict=True)
    ]
    label_ts = ts[source] + rng.exponential(50, n)
    return ids, ts, label_ids, label_ts


def _scale_run(batch: int, one_by_one: bool) -> tuple[list[Pair], dict[str, int]]:
    ids, ts, label_ids, label_ts = _stream(3000, 7)
    store = JoinStore(150, 200.0, 100)
    got: list[Pair] = []
    for lo in range(0, 3000, batch):
        hi = min(lo + batch, 3000)
        steps = [(i, i + 1) for i in range(lo, hi)] if one_by_one else [(lo, hi)]
        for a, b in steps:
            seg = np.arange(a, b) % 5
            got += _rows(store.add_predictions(ids[a:b], seg, ts[a:b], ts[a:b]))
        for a, b in steps:
            got += _rows(store.add_labels(label_ids[a:b], np.ones(b - a), label_ts[a:b]))
        store.expire(float(label_ts[lo:hi].max()))
    return got, store.counts()


@pytest.mark.parametrize("batch", [7, 500, 3000])
def test_batches_equal_one_item_at_a_time_at_scale(batch: int) -> None:
    """Thousands of items through small capacities: batched and per-item runs agree."""
    batched = _scale_run(batch, one_by_one=False)
    assert batched == _scale_run(batch, one_by_one=True)
    assert batched[1]["matched"] > 50 and batched[1]["evicted_predictions"] > 0


def test_slot_arrays_grow_without_losing_entries() -> None:
    """Past the first slot block the store grows, then evicts the oldest, keeping values."""
    store = JoinStore(2500, 1e9)
    ids = [f"req-{i:06d}" for i in range(3000)]
    ts = np.arange(3000, dtype=np.float64)
    for lo in range(0, 3000, 700):
        hi = min(lo + 700, 3000)
        store.add_predictions(ids[lo:hi], np.arange(lo, hi) % 7, ts[lo:hi] / 3000, ts[lo:hi])
    assert store.pending_predictions == 2500 and store.evicted_predictions == 500
    pairs = store.add_labels(ids[::-1], np.ones(3000), ts[::-1] + 10)
    np.testing.assert_array_equal(pairs.prediction_ts, ts[:499:-1])
    np.testing.assert_array_equal(pairs.prediction, ts[:499:-1] / 3000)
    np.testing.assert_array_equal(pairs.segment, np.arange(2999, 499, -1) % 7)
    assert store.pending_labels == 500 and store.pending_predictions == 0


def test_early_label_waits_for_its_prediction() -> None:
    """A label that comes first is held and pairs when its prediction arrives."""
    store = JoinStore(10, 100.0)
    assert len(store.add_labels(["a"], [1.0], [5.0])) == 0
    assert store.pending_labels == 1 and len(store) == 1
    pairs = store.add_predictions(["a"], [2], [0.9], [3.0], [1])
    assert _rows(pairs) == [(2, 0.9, 1.0, 3.0, 5.0, 1)]
    np.testing.assert_array_equal(pairs.delay, [2.0])
    assert len(store) == 0 and store.matched == 1


def test_missing_group_is_minus_one() -> None:
    """Predictions added without groups carry group -1 into their pairs."""
    store = JoinStore(10, 100.0)
    store.add_predictions(["a"], [0], [0.1], [1.0])
    assert store.add_labels(["a"], [0.0], [2.0]).group.tolist() == [-1]


def test_duplicates_first_wins_within_a_batch() -> None:
    """The first of repeated ids waits; the rest are counted as duplicates."""
    store = JoinStore(10, 100.0)
    store.add_predictions(["a", "a", "b"], [0, 1, 2], [0.1, 0.2, 0.3], [1.0, 2.0, 3.0])
    assert store.duplicate_predictions == 1 and store.pending_predictions == 2
    pairs = store.add_labels(["a", "a", "a"], [1.0, 0.0, 1.0], [4.0, 5.0, 6.0])
    assert _rows(pairs) == [(0, 0.1, 1.0, 1.0, 4.0, -1)]
    assert store.pending_labels == 1 and store.duplicate_labels == 1


def test_eviction_takes_the_oldest_by_time_then_arrival() -> None:
    """A full side evicts its smallest event time, the earliest arrival on a tie."""
    store = JoinStore(3, 100.0)
    store.add_predictions(["a", "b", "c"], [0, 0, 0], [0.0, 0.0, 0.0], [5.0, 1.0, 1.0])
    store.add_predictions(["d", "e"], [0, 0], [0.0, 0.0], [9.0, 9.0])
    assert store.evicted_predictions == 2
    assert sorted(store.state_dict()["predictions"]["ids"]) == ["a", "d", "e"]


def test_a_newcomer_older_than_the_pending_is_evicted_by_a_later_one() -> None:
    """Within one batch, an old newcomer is the oldest entry for the items after it."""
    store = JoinStore(3, 100.0)
    store.add_predictions(["a", "b", "x"], [0, 0, 0], [0.0, 0.0, 0.0], [5.0, 6.0, 9.0])
    store.add_predictions(["c", "d"], [0, 0], [0.0, 0.0], [5.5, 7.0])
    assert sorted(store.state_dict()["predictions"]["ids"]) == ["b", "d", "x"]
    assert store.evicted_predictions == 2


def test_eviction_ties_follow_arrival_not_slot() -> None:
    """On equal times the earlier arrival is evicted even when it sits in a later slot."""
    store = JoinStore(3, 100.0)
    store.add_predictions(["x", "a", "c"], [0, 0, 0], [0.0, 0.0, 0.0], [0.0, 1.0, 3.0])
    store.add_labels(["x"], [1.0], [0.5])
    store.add_predictions(["d"], [0], [0.0], [1.0])
    store.add_predictions(["e"], [0], [0.0], [5.0])
    assert sorted(store.state_dict()["predictions"]["ids"]) == ["c", "d", "e"]


def test_expire_uses_the_supplied_watermark() -> None:
    """Entries older than watermark - ttl go, counted per side; nothing else does."""
    store = JoinStore(10, 10.0)
    store.add_predictions(["a", "b"], [0, 0], [0.5, 0.5], [0.0, 20.0])
    store.add_labels(["x", "y"], [1.0, 0.0], [5.0, 15.0])
    assert store.expire(10.0) == (0, 0)
    assert store.expire(15.5) == (1, 1)
    assert store.expire(15.5) == (0, 0)
    assert (store.expired_predictions, store.expired_labels) == (1, 1)
    assert store.state_dict()["predictions"]["ids"] == ["b"]


def test_concat_and_empty() -> None:
    """concat joins rows in order; empty() and concat([]) have no rows."""
    store = JoinStore(10, 100.0)
    store.add_predictions(["a", "b"], [0, 1], [0.1, 0.2], [1.0, 2.0])
    first = store.add_labels(["b"], [1.0], [3.0])
    second = store.add_labels(["a"], [0.0], [4.0])
    both = JoinedPairs.concat([first, JoinedPairs.empty(), second])
    assert both.segment.tolist() == [1, 0]
    assert len(JoinedPairs.concat([])) == 0 and len(JoinedPairs.empty()) == 0
    assert both.segment.dtype == np.int64 and both.group.dtype == np.int64


def test_load_state_into_a_smaller_store_evicts_the_oldest() -> None:
    """Restoring more entries than the capacity keeps the newest, counting evictions."""
    big = JoinStore(10, 100.0)
    big.add_predictions(["a", "b", "c"], [0, 0, 0], [0.0, 0.0, 0.0], [3.0, 1.0, 2.0])
    small = JoinStore(2, 100.0)
    small.load_state_dict(big.state_dict())
    assert sorted(small.state_dict()["predictions"]["ids"]) == ["a", "c"]
    assert small.evicted_predictions == 1


def test_bad_state_is_refused_whole() -> None:
    """A state with an id pending on both sides raises and leaves the store as it was."""
    store = JoinStore(10, 100.0)
    store.add_predictions(["a"], [0], [0.5], [1.0])
    bad = JoinStore(10, 100.0).state_dict()
    bad["predictions"] = store.state_dict()["predictions"]
    bad["labels"] = {"ids": ["a"], "ts": np.array([2.0]), "seq": np.array([5]), "label": [1.0]}
    before = store.state_dict()
    with pytest.raises(ValueError, match="pending as both a prediction and a label"):
        store.load_state_dict(bad)
    after = store.state_dict()
    assert after["predictions"]["ids"] == before["predictions"]["ids"] == ["a"]
    assert after["counts"] == before["counts"]


def test_counter_attributes_match_counts() -> None:
    """Each counter attribute reads the same number as counts()."""
    store = JoinStore(1, 1.0)
    store.add_predictions(["a", "a", "b"], [0, 0, 0], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0])
    store.add_labels(["b", "c", "c", "d"], [1.0] * 4, [5.0] * 4)
    store.expire(10.0)
    counts = store.counts()
    assert counts == {name: getattr(store, name) for name in COUNTERS}
    assert counts == {
        "matched": 1,
        "expired_predictions": 0,
        "expired_labels": 1,
        "evicted_predictions": 1,
        "evicted_labels": 1,
        "duplicate_predictions": 1,
        "duplicate_labels": 1,
    }


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 1.0), ValueError, "capacity must be > 0"),
        ((5, 0.0), ValueError, "ttl_s must be > 0"),
        ((5, float("nan")), ValueError, "ttl_s must be > 0"),
        ((5, 1.0, 0), ValueError, "label_capacity must be > 0"),
        ((2.5, 1.0), TypeError, "capacity must be an int, got float"),
        ((True, 1.0), TypeError, "capacity must be an int, got bool"),
    ],
)
def test_constructor_validation(
    args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    """Bad arguments fail in __init__ with an exact message."""
    with pytest.raises(error, match=f"^{message}$"):
        JoinStore(*args)


def test_add_validation_names_the_mismatch() -> None:
    """Arrays of the wrong length, or non-finite times, are refused before any change."""
    store = JoinStore(5, 1.0)
    with pytest.raises(ValueError, match=r"^segment has shape \(1,\) but ids has 2 values$"):
        store.add_predictions(["a", "b"], [0], [0.1, 0.2], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^group has shape \(3,\) but ids has 2 values$"):
        store.add_predictions(["a", "b"], [0, 0], [0.1, 0.2], [1.0, 2.0], [0, 1, 2])
    with pytest.raises(ValueError, match=r"^label has shape \(0,\) but ids has 1 values$"):
        store.add_labels(["a"], [], [1.0])
    with pytest.raises(ValueError, match=r"^ts must be finite$"):
        store.add_labels(["a"], [1.0], [float("nan")])
    with pytest.raises(ValueError, match=r"^watermark must not be NaN$"):
        store.expire(float("nan"))
    assert len(store) == 0 and store.counts() == dict.fromkeys(COUNTERS, 0)


def test_nan_values_are_joined_as_they_are() -> None:
    """NaN predictions and labels pass through: filtering them is the caller's job."""
    store = JoinStore(5, 10.0)
    store.add_predictions(["a"], [0], [float("nan")], [1.0])
    pairs = store.add_labels(["a"], [float("nan")], [2.0])
    assert np.isnan(pairs.prediction).all() and np.isnan(pairs.label).all()


def test_empty_batches_change_nothing() -> None:
    """Empty batches return no pairs and leave counters alone."""
    store = JoinStore(5, 10.0)
    assert len(store.add_predictions([], [], [], [])) == 0
    assert len(store.add_labels([], [], [])) == 0
    assert store.counts() == dict.fromkeys(COUNTERS, 0)
