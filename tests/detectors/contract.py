"""Shared contract every detector must honour; imported by test modules, not collected.

A ``ContractCase`` names a detector factory and a seeded batch generator. Detectors
differ in what one ``update`` returns, so a case may bring its own ``fold_rows`` (how
the results of feeding a batch one row at a time combine into the batch's result; it
gets them in row order, so item ``i`` came from the batch's row ``i``) and
``assert_same`` (how two results are compared). The defaults fit detectors whose
result depends only on the rows seen so far: the last row's result, compared field by
field with NaN equal to NaN. A detector reporting per-batch events (ADWIN's drift
positions, say) folds by offsetting each row's positions by its index and OR-ing flags.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.base import Detector

Batch = tuple[np.ndarray, np.ndarray]  # (segments, values)


def assert_same_result(a: Any, b: Any) -> None:
    """Same result type and every field equal, NaN matching NaN."""
    assert type(a) is type(b), f"{type(a).__name__} != {type(b).__name__}"
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f"field {f.name!r} differs")
        else:
            assert x == y, f"field {f.name!r} differs: {x!r} != {y!r}"


def assert_same_state(a: Any, b: Any, path: str = "state") -> None:
    """Nested dicts, lists and arrays equal, NaN matching NaN."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys differ"
        for key in a:
            assert_same_state(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        assert a == b or both_nan, f"{path}: {a!r} != {b!r}"


def last_row(results: Sequence[Any]) -> Any:
    """Default fold: after the last row the detector has seen exactly the batch."""
    return results[-1]


@dataclass(frozen=True)
class ContractCase:
    """One detector configuration under the contract."""

    id: str
    factory: Callable[[], Detector]
    batches: Callable[[np.random.Generator], list[Batch]]
    fold_rows: Callable[[Sequence[Any]], Any] = last_row
    assert_same: Callable[[Any, Any], None] = assert_same_result
    seed: int = 0

    def data(self) -> list[Batch]:
        """The case's batches, the same on every call."""
        return self.batches(np.random.default_rng(self.seed))


def feed(detector: Detector, batches: Sequence[Batch]) -> list[Any]:
    """Update with each batch; the result of each update."""
    return [detector.update(seg, values) for seg, values in batches]


def check_reset(case: ContractCase) -> None:
    """After reset a used detector has a fresh state and reproduces a fresh one's results."""
    batches = case.data()
    fresh = case.factory()
    expected_state = fresh.state_dict()
    expected = feed(fresh, batches)
    used = case.factory()
    feed(used, batches)
    used.reset()
    assert_same_state(used.state_dict(), expected_state)
    for got, want in zip(feed(used, batches), expected, strict=True):
        case.assert_same(got, want)


def check_pickle(case: ContractCase) -> None:
    """A pickled and restored detector continues exactly like the original."""
    batches = case.data()
    half = len(batches) // 2
    original = case.factory()
    feed(original, batches[:half])
    restored = pickle.loads(pickle.dumps(original))
    for got, want in zip(
        feed(restored, batches[half:]), feed(original, batches[half:]), strict=True
    ):
        case.assert_same(got, want)


def check_state_dict(case: ContractCase) -> None:
    """State exported (and pickled, as a checkpoint would) then loaded into a new detector
    continues exactly like the original."""
    batches = case.data()
    half = len(batches) // 2
    original = case.factory()
    feed(original, batches[:half])
    state = pickle.loads(pickle.dumps(original.state_dict()))
    restored = case.factory()
    restored.load_state_dict(state)
    assert_same_state(restored.state_dict(), original.state_dict())
    for got, want in zip(
        feed(restored, batches[half:]), feed(original, batches[half:]), strict=True
    ):
        case.assert_same(got, want)


def check_rows_vs_batch(case: ContractCase) -> None:
    """Feeding each batch one row at a time gives the batch's result (via ``fold_rows``)."""
    batches = case.data()
    whole = case.factory()
    by_row = case.factory()
    for seg, values in batches:
        expected = whole.update(seg, values)
        rows = [by_row.update(seg[i : i + 1], values[i : i + 1]) for i in range(len(seg))]
        case.assert_same(case.fold_rows(rows), expected)
    assert_same_state(by_row.state_dict(), whole.state_dict())


CHECKS: dict[str, Callable[[ContractCase], None]] = {
    "reset": check_reset,
    "pickle": check_pickle,
    "state_dict": check_state_dict,
    "rows_vs_batch": check_rows_vs_batch,
}
