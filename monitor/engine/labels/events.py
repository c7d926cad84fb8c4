"""Label events to columns: ``{"id": "req-81f3", "ts": "...", "label": 1}``.

The same columnar decoder as inference events, pointed at the label paths, so a
label message gets exactly the same hardening (size limit, JSON, id, timestamp
window) and the same rejection reasons, plus two of its own:

- ``missing_label``: the label is null or absent, or not a number (a numeric string
  such as ``"1"`` is one): a label without a value cannot score anything;
- ``invalid_label``: a number the task cannot take. A ``binary`` label is 0 or 1, and
  a JSON ``true``/``false`` reads as 1/0; a ``7`` or a ``0.5`` is refused rather than
  counted as a positive. A ``regression`` label is any finite number (the decoder
  already refuses NaN and infinities as ``missing_label``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from detectors.base import FloatArray, IntArray
from monitor.config import LabelsConfig, SchemaConfig
from monitor.ingest.decode import MAX_MESSAGE_BYTES, DecodedBatch, Decoder, Rejection

LABEL_REASONS = ("missing_label", "invalid_label")


@dataclass(frozen=True)
class LabelBatch:
    """Accepted label events as columns, and the refused messages."""

    ids: list[str]
    ts: FloatArray
    label: FloatArray
    source_index: IntArray
    rejections: list[Rejection]

    def __len__(self) -> int:
        return len(self.ids)


class LabelDecoder:
    """Decodes label messages at the configured paths and checks them against the task."""

    def __init__(self, labels: LabelsConfig, schema: SchemaConfig) -> None:
        paths = SchemaConfig(
            id=labels.id,
            timestamp=labels.timestamp,
            label=labels.label,
            features="",
            segment_by=[],
            max_future_seconds=schema.max_future_seconds,
            max_past_seconds=schema.max_past_seconds,
            strict=schema.strict,
            ts_unit=schema.ts_unit,
        )
        self._decoder = Decoder(paths, (), ())
        self._label_path = labels.label
        self._label_keys = labels.label.split(".")
        self._task = labels.task

    def decode(self, messages: Sequence[bytes | None], now: float | None = None) -> LabelBatch:
        """Decode a batch of label messages; every refused one is in ``rejections``."""
        batch = self._decoder.decode(messages, now=now)
        if self._task == "binary" and self._saw_wrong_type(batch):
            # Only a batch where some label had the wrong type (a boolean, say) is decoded
            # again, with booleans as numbers: numeric labels are never parsed twice.
            batch = self._decoder.decode([self._booleans_as_numbers(m) for m in messages], now=now)
        rejections = list(batch.rejections)
        missing = np.isnan(batch.label)
        invalid = ~missing & (batch.label != 0.0) & (batch.label != 1.0)
        if self._task == "regression":
            invalid[:] = False  # NaN and infinities are already missing
        keep = ~(missing | invalid)
        if not keep.all():
            for row in np.flatnonzero(~keep).tolist():
                index = int(batch.source_index[row])
                if missing[row]:
                    detail = f"{self._label_path} is missing, null or not a number"
                    rejections.append(Rejection(index, "missing_label", detail))
                else:
                    detail = (
                        f"{self._label_path} is {float(batch.label[row]):g}; a binary label "
                        "is 0, 1, true or false (labels.task: binary)"
                    )
                    rejections.append(Rejection(index, "invalid_label", detail))
            # An array message is all-or-nothing, as for inference events.
            refused = {r.index for r in rejections}
            keep = np.array([int(i) not in refused for i in batch.source_index.tolist()], bool)
            rejections.sort(key=lambda r: r.index)
        rows = np.flatnonzero(keep)
        return LabelBatch(
            ids=[batch.ids[i] for i in rows.tolist()] if not keep.all() else batch.ids,
            ts=batch.ts[rows],
            label=batch.label[rows],
            source_index=batch.source_index[rows],
            rejections=_unique(rejections),
        )

    def _saw_wrong_type(self, batch: DecodedBatch) -> bool:
        """Whether a label of ``batch`` was of a type no number has (strict: refused)."""
        if batch.invalid.get((self._label_path, "wrong_type"), 0) > 0:
            return True
        return any(r.reason == "wrong_type" for r in batch.rejections)

    def _booleans_as_numbers(self, message: bytes | None) -> bytes | None:
        """``message`` with a JSON boolean label rewritten as 1 or 0, else unchanged.

        The shared decoder reads a boolean as no number. Only a message whose bytes hold
        ``true`` or ``false`` somewhere is parsed again; anything unreadable is left for
        the decoder to refuse.
        """
        if not message or len(message) > MAX_MESSAGE_BYTES:
            return message
        if b"true" not in message and b"false" not in message:
            return message
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError:
            return message
        events = doc if isinstance(doc, list) else [doc]
        changed = False
        for event in events:
            changed |= self._number_for_boolean(event)
        return orjson.dumps(doc) if changed else message

    def _number_for_boolean(self, event: Any) -> bool:
        """Replace a boolean at the label path of ``event`` by 1 or 0; whether it did."""
        parent = event
        for key in self._label_keys[:-1]:
            if not isinstance(parent, dict):
                return False
            parent = parent.get(key)
        last = self._label_keys[-1]
        if not isinstance(parent, dict) or not isinstance(parent.get(last), bool):
            return False
        parent[last] = int(parent[last])
        return True


def _unique(rejections: list[Rejection]) -> list[Rejection]:
    """One rejection per message (an array message may hold several bad labels)."""
    seen: set[int] = set()
    out = []
    for r in rejections:
        if r.index not in seen:
            seen.add(r.index)
            out.append(r)
    return out
