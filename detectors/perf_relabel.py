"""One Label Studio import task for a pair whose label looks wrong.

The task follows Label Studio's basic JSON import format ("Basic Label Studio JSON
format" and "Import pre-annotated data" in its documentation): a ``data`` object whose
keys the project's labeling configuration refers to as ``$key``, and a ``predictions``
list whose items hold a ``result`` list, an optional ``score`` and ``model_version``.
The current label is the pre-annotation: one ``choices`` result, so the reviewer sees
it selected and confirms or corrects it. A labeling configuration that fits::

    <View>
      <Text name="event" value="$event_id"/>
      <Choices name="label" toName="event">
        <Choice value="0"/>
        <Choice value="1"/>
      </Choices>
    </View>

The top-level task ``id`` is left to Label Studio (its documentation marks it optional;
it numbers imported tasks itself): the event's id goes in ``data["event_id"]``, where it
stays searchable and lets the caller deduplicate.

Which events can ever need a task is known before their label arrives:
:func:`could_be_suspicious` tells, from the prediction alone, whether some label would
make the pair suspicious under the confident-learning thresholds, so a caller keeps the
features of those events only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import BoolArray
from detectors.label_noise import ConfidentThresholds, class_probabilities
from detectors.perf_calibration import as_floats

RESERVED_KEYS = frozenset({"event_id", "prediction"})
"""``data`` keys the task sets itself; a feature may not use them."""


def _plain(value: object) -> object:
    """A JSON-safe value: numpy scalars and arrays unwrapped, non-finite floats as None."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def label_studio_task(
    event_id: str | int,
    features: Mapping[str, object],
    prediction: float | Sequence[float],
    label: int,
    *,
    choices: Sequence[str] | None = None,
    from_name: str = "label",
    to_name: str = "event",
    model_version: str = "driftd",
) -> dict[str, Any]:
    """The import task of one pair: features and prediction as data, label as
    pre-annotation.

    ``prediction`` is the positive-class probability of a binary model or the list of
    class probabilities; ``label`` a class index; ``choices`` the Choice values of the
    classes (``"0"``, ``"1"``, ... by default). The prediction's ``score`` is the model's
    probability of the current label, so Label Studio's "lowest score first" ordering
    shows the most doubtful labels first.

    >>> task = label_studio_task("e-17", {"amount": 12.5, "country": "FR"}, 0.93, 0)
    >>> task["data"]
    {'amount': 12.5, 'country': 'FR', 'event_id': 'e-17', 'prediction': 0.93}
    >>> task["predictions"][0]["result"][0]["value"], round(task["predictions"][0]["score"], 2)
    ({'choices': ['0']}, 0.07)
    """
    if isinstance(prediction, int | float | np.floating | np.integer):
        probs = [1.0 - float(prediction), float(prediction)]
        shown: object = float(prediction)
    else:
        probs = [float(p) for p in prediction]
        shown = probs
    if len(probs) < 2 or not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        raise ValueError(f"prediction must be probabilities in [0, 1], got {prediction!r}")
    names = [str(i) for i in range(len(probs))] if choices is None else [str(c) for c in choices]
    if len(names) != len(probs):
        raise ValueError(f"{len(names)} choices for {len(probs)} classes")
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise ValueError(f"label must be a class index, got {label!r}")
    if not 0 <= label < len(probs):
        raise ValueError(f"label {label} is not a class index below {len(probs)}")
    clash = RESERVED_KEYS & set(features)
    if clash:
        raise ValueError(f"features may not be named {sorted(clash)}: the task sets them")
    data = {str(k): _plain(v) for k, v in features.items()}
    data["event_id"] = _plain(event_id)
    data["prediction"] = shown
    result = {
        "from_name": from_name,
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": [names[int(label)]]},
    }
    return {
        "data": data,
        "predictions": [
            {"model_version": model_version, "score": probs[int(label)], "result": [result]}
        ],
    }


def could_be_suspicious(thresholds: ConfidentThresholds, probabilities: npt.ArrayLike) -> BoolArray:
    """Per prediction, whether some label would make its pair suspicious.

    A pair ``(p, y)`` is suspicious when some class ``c != y`` has ``p_c >= t_c`` and
    ``p_c > p_y`` (:class:`~detectors.label_noise.ConfidentThresholds`), so a prediction
    can become one exactly when some class ``c`` has ``p_c >= t_c`` and ``p_c`` above the
    smallest probability of the other classes. For a binary model (positive-class scores
    ``p``): ``p >= t_1`` and ``p > 0.5``, or ``1 - p >= t_0`` and ``p < 0.5``. Invalid
    probabilities (non-finite, outside ``[0, 1]``) never can.

    >>> ct = ConfidentThresholds(np.array([0.7, 0.8]), 100, 5)
    >>> could_be_suspicious(ct, [0.1, 0.35, 0.5, 0.79, 0.8, 0.95, float("nan")]).tolist()
    [True, False, False, False, True, True, False]
    """
    scores = as_floats(probabilities)
    t = thresholds.thresholds
    if scores.ndim == 1 and thresholds.n_classes == 2:
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0)
            positive = (scores >= t[1]) & (scores > 0.5)
            negative = (1.0 - scores >= t[0]) & (scores < 0.5)
        return np.asarray(valid & (positive | negative), dtype=np.bool_)
    probs = class_probabilities(scores, thresholds.n_classes)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(probs) & (probs >= 0.0) & (probs <= 1.0)
    rows_valid = np.asarray(inside.all(axis=1), dtype=np.bool_)
    safe = np.where(rows_valid[:, None], probs, 0.0)
    # The smallest probability of the classes other than c: the row's minimum, or its
    # second smallest where c itself holds the minimum.
    order = np.sort(safe, axis=1)
    lowest, second = order[:, :1], order[:, 1:2]
    others_min = np.where(safe == lowest, second, lowest)
    confident = (safe >= t[None, :]) & (safe > others_min)
    return np.asarray(rows_valid & confident.any(axis=1), dtype=np.bool_)
