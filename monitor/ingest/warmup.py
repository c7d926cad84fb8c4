"""The warm-up's held events: raw messages under a byte budget, decoded once at its end.

While a warm-up reference is being learned, each batch is decoded by a decoder that
reads no learned feature (only the ids, times, segments, prediction, label and the
features the config names), so the stream flows (rejections, segments, labels) while
:class:`~monitor.ingest.discovery.FeatureDiscovery` counts the feature names of the accepted
events. The raw bytes of the accepted messages are held, up to
``schema.warmup_max_bytes``; when the warm-up is complete (or the budget is reached),
they are decoded again, batch by batch and each batch released as it goes, by the
decoder of the discovered features. Memory is the byte budget plus the decoded columns
(events x at most ``schema.max_features``), whatever the messages carry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import structlog

from detectors.base import IntArray
from monitor.config import SchemaConfig
from monitor.ingest.decode import DecodedBatch, Decoder
from monitor.ingest.discovery import DiscoveredFeatures, FeatureDiscovery
from monitor.ingest.source import Record

log = structlog.get_logger()
MESSAGE_OVERHEAD = 64
"""Bytes a held message costs beyond its payload (its object and list slot), for the budget."""


@dataclass
class _HeldBatch:
    """One poll batch's accepted messages, with what decoding them again needs."""

    messages: list[bytes]
    kafka_ts: list[float | None] | None
    now: float
    segments: IntArray
    """Segment id of each accepted row, as the batch assigned it."""
    row_message: IntArray
    """Position in ``messages`` of each accepted row."""


class HeldWarmup:
    """The discovery, and the warm-up's accepted messages, until the reference is built."""

    def __init__(self, schema: SchemaConfig, needed: int, discovery: FeatureDiscovery) -> None:
        self.needed = needed
        self.budget = schema.warmup_max_bytes
        self.discovery = discovery
        self.rows = 0
        self.bytes = 0
        self.names_refused: dict[str, int] = {}
        """Names refused since last taken (``name_too_long`` occurrences), by reason."""
        self._batches: list[_HeldBatch] = []

    @property
    def complete(self) -> bool:
        """Enough events held, or the byte budget reached."""
        return self.rows >= self.needed or self.bytes >= self.budget

    def add(
        self,
        decoded: DecodedBatch,
        segments: IntArray,
        events: Sequence[Record],
        kafka_ts: Sequence[float | None] | None,
        now: float | None,
    ) -> None:
        """Count the accepted events' feature names and hold their messages."""
        if decoded.feature_objects is not None:
            too_long = self.discovery.observe(decoded.feature_objects)
            if too_long:
                self.names_refused["name_too_long"] = (
                    self.names_refused.get("name_too_long", 0) + too_long
                )
        if not len(decoded):
            return
        owners = np.unique(decoded.source_index)
        messages = [events[i].value or b"" for i in owners.tolist()]
        self._batches.append(
            _HeldBatch(
                messages,
                None if kafka_ts is None else [kafka_ts[i] for i in owners.tolist()],
                time.time() if now is None else now,
                segments,
                np.searchsorted(owners, decoded.source_index),
            )
        )
        self.rows += len(decoded)
        self.bytes += sum(map(len, messages)) + MESSAGE_OVERHEAD * len(messages)

    def decode(self, decoder: Decoder) -> Iterator[tuple[DecodedBatch, IntArray]]:
        """Each held batch decoded by ``decoder``, with its rows' segment ids; each batch's
        messages are let go as soon as it is decoded."""
        batches, self._batches = self._batches, []
        batches.reverse()
        while batches:
            held = batches.pop()
            decoded = decoder.decode(held.messages, now=held.now, kafka_ts=held.kafka_ts)
            # A message refused now (a strict decoder's bad feature value) drops all its rows.
            kept = np.isin(held.row_message, decoded.source_index)
            segments = held.segments[kept]
            if len(segments) != len(decoded):  # cannot happen: same bytes, same rows
                log.error("warmup_batch_misaligned", rows=len(decoded), held=len(segments))
                continue
            yield decoded, segments

    def report(self, model: str, found: DiscoveredFeatures) -> None:
        """Log what the warm-up learned, what it left out, and a warm-up cut short."""
        log.info(
            "features_discovered",
            model=model,
            events=found.events,
            numeric=found.numeric,
            categorical=found.categorical,
        )
        if found.left_out or found.refused:
            log.warning(
                "features_not_discovered",
                model=model,
                refused=found.refused,
                rare=found.rare,
                examples=found.left_out,
                hint="list a feature in schema.numeric or schema.categorical to monitor it "
                "whatever its share of the warm-up (schema.min_feature_share)",
            )
        if self.rows < self.needed:
            log.warning(
                "warmup_cut_short",
                model=model,
                events=self.rows,
                wanted=self.needed,
                held_bytes=self.bytes,
                hint="the held messages reached schema.warmup_max_bytes",
            )
