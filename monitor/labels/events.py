"""Label events to columns: ``{"id": "req-81f3", "ts": "...", "label": 1}``.

The same columnar decoder as inference events, pointed at the label paths, so a
label message gets exactly the same hardening (size limit, JSON, id, timestamp
window) and the same rejection reasons, plus ``missing_label`` for an event whose
label is null or absent, or not a number (a numeric string such as ``"1"`` is one):
a label without a value cannot score anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detectors.base import FloatArray, IntArray
from monitor.config import LabelsConfig, SchemaConfig
from monitor.decode import Decoder, Rejection

LABEL_REASONS = ("missing_label",)


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
    """Decodes label messages at the configured paths."""

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

    def decode(self, messages: Sequence[bytes | None], now: float | None = None) -> LabelBatch:
        """Decode a batch of label messages; every refused one is in ``rejections``."""
        batch = self._decoder.decode(messages, now=now)
        rejections = list(batch.rejections)
        keep = ~np.isnan(batch.label)
        if not keep.all():
            for row in np.flatnonzero(~keep).tolist():
                detail = f"{self._label_path} is missing, null or not a number"
                rejections.append(Rejection(int(batch.source_index[row]), "missing_label", detail))
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


def _unique(rejections: list[Rejection]) -> list[Rejection]:
    """One rejection per message (an array message may hold several missing labels)."""
    seen: set[int] = set()
    out = []
    for r in rejections:
        if r.index not in seen:
            seen.add(r.index)
            out.append(r)
    return out
