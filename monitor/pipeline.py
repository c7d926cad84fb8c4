"""One poll batch through the data flow: decode, segment, window, evaluate, decide.

The pipeline owns the daemon's state (segment table, windows, reference, decisions)
and is driven by the application loop, which polls the source, hands each batch
here, then checkpoints and commits in the fixed order. Nothing here talks to Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import structlog

from detectors.base import FloatArray, IntArray
from detectors.binning import Binner
from detectors.feature_profiles import CategoricalProfile, FeatureProfile, NumericProfile
from detectors.profile import ReferenceProfile, build_profile
from monitor.config import Settings
from monitor.decision import DecisionBook, Transition
from monitor.decode import DecodedBatch, Decoder
from monitor.evaluate import Evaluator, segment_references
from monitor.explain import DriftExplainer
from monitor.labels.events import LabelDecoder
from monitor.labels.monitor import LabelMonitor, LabelOutcome
from monitor.results import LatestResults, WindowResults
from monitor.segments import SegmentTable
from monitor.sources.base import Record, TopicPartition
from monitor.windows import Windows

log = structlog.get_logger()
PREDICTION = "prediction"
MAX_UNEXPECTED_TRACKED = 100
"""Distinct unexpected feature names remembered (and exported) at most."""
ABSENT_MIN_ROWS = 100
"""A batch this large that lacks a reference column entirely is logged at once."""


@dataclass
class BatchOutcome:
    """What one batch did; ``next_offsets`` may be committed once the state is safe."""

    records: int
    accepted: int
    rejected: list[tuple[Record, str, str]]
    results: WindowResults | None
    transitions: list[Transition]
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    details: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Alert details (the top drifting bins) of firing transitions, by dedup key."""
    labels: LabelOutcome | None = None
    """The label side of the batch, when labels are enabled."""


@dataclass
class _Warmup:
    """Decoded events held until the warm-up reference can be built."""

    batches: list[tuple[DecodedBatch, IntArray]] = field(default_factory=list)
    rows: int = 0


def discover_features(records: Sequence[Record], settings: Settings) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature names from the first decodable events."""
    numeric: dict[str, None] = {}
    categorical: dict[str, None] = dict.fromkeys(settings.schema_.categorical)
    path = settings.schema_.features.split(".") if settings.schema_.features else []
    for record in records[:200]:
        try:
            doc = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        for event in doc if isinstance(doc, list) else [doc]:
            features = event
            for part in path:
                features = features.get(part) if isinstance(features, dict) else None
            if not isinstance(features, dict):
                continue
            for name, value in features.items():
                if name in categorical or name in numeric:
                    continue
                if isinstance(value, bool | str):
                    categorical[name] = None
                elif isinstance(value, int | float):
                    numeric[name] = None
    return sorted(numeric), sorted(categorical)


class Pipeline:
    """The daemon's state and the per-batch data flow."""

    def __init__(
        self,
        settings: Settings,
        reference: ReferenceProfile | None,
        results: LatestResults,
    ) -> None:
        self.settings = settings
        self.model = settings.model
        self.results = results
        self.segments = SegmentTable(settings.segments.max_segments)
        self.decisions = DecisionBook(
            settings.model, settings.detectors, settings.windows.min_samples
        )
        self.reference = reference
        self.decoder: Decoder | None = None
        self.binner: Binner | None = None
        self.windows: Windows | None = None
        self.evaluator: Evaluator | None = None
        self.explainer: DriftExplainer | None = None
        self.rejections_by_reason: dict[str, int] = {}
        self.invalid_values: dict[tuple[str, str], int] = {}
        """Values that became missing, by (feature, reason), over accepted events."""
        self.unexpected_features: dict[str, int] = {}
        """Feature names events carry that the reference lacks (sampled counts, bounded)."""
        self.events_accepted = 0
        self._warmup: _Warmup | None = None
        self._profiles: list[FeatureProfile] = []
        self._event_names = {ref: event for event, ref in settings.schema_.rename.items()}
        self._absent: set[str] = set()
        self.on_reference_built: Callable[[], None] | None = None
        """Called once a warm-up reference is complete (the daemon saves it at once)."""
        self.segment_home: dict[int, TopicPartition] = {}
        """The partition each segment's first event came from (see ``monitor.handover``)."""
        self.labels: LabelMonitor | None = None
        self.label_decoder: LabelDecoder | None = None
        self.label_topic = settings.kafka.labels_topic
        group = settings.labels.group_by
        self.group_feature = group.removeprefix(settings.schema_.features + ".") if group else None
        if settings.labels.enabled:
            label_profile = reference.label if reference is not None else None
            self.labels = LabelMonitor(settings, label_profile)
            self.label_decoder = LabelDecoder(settings.labels, settings.schema_)
        if reference is not None:
            self._start_detection(reference)

    @property
    def ready(self) -> bool:
        """True once a reference exists (a file, or a completed warm-up)."""
        return self.evaluator is not None

    @property
    def columns(self) -> tuple[str, ...]:
        """The monitored columns, in tensor order."""
        return tuple(p.name for p in self._profiles)

    def _start_detection(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        profiles = list(reference.features)
        if reference.prediction is not None:
            profiles.append(reference.prediction)
        self._profiles = profiles
        numeric = [p.name for p in reference.features if isinstance(p, NumericProfile)]
        categorical = [p.name for p in reference.features if isinstance(p, CategoricalProfile)]
        self.decoder = self._decoder(
            [self.event_name(n) for n in numeric], [self.event_name(n) for n in categorical]
        )
        self.binner = Binner(profiles)
        self.windows = Windows(self.binner, self.settings.windows, len(self.segments))
        self.evaluator = Evaluator(
            self.model, self.binner, self.settings.detectors, self.settings.windows.min_samples
        )
        self.explainer = DriftExplainer(self.binner, self.settings.detectors.psi_smoothing)
        self._absent = set()
        log.info("reference_columns", model=self.model, columns=list(self.columns))
        for name in self.unmonitorable():
            log.warning(
                "column_unmonitored",
                model=self.model,
                column=name,
                reason="the reference profile has no prediction (build it with --prediction)",
            )

    def adopt_reference(
        self, reference: ReferenceProfile, numeric: Sequence[str], categorical: Sequence[str]
    ) -> None:
        """Monitor against ``reference`` from now on (a restored or reloaded one), decoding
        the given feature lists; any warm-up in progress is dropped."""
        self._start_detection(reference)
        self.decoder = self._decoder(numeric, categorical)
        self._warmup = None

    def _decoder(self, numeric: Sequence[str], categorical: Sequence[str]) -> Decoder:
        """The decoder of the daemon's settings: ids only needed for the label join,
        other models refused, and the wall-clock window only where events are live."""
        schema = self.settings.schema_
        replay = self.settings.source.type in ("file", "stdin")
        window_set = {"max_past_seconds", "max_future_seconds"} & schema.model_fields_set
        return Decoder(
            schema,
            numeric,
            categorical,
            require_id=self.settings.labels.enabled,
            model=self.model,
            # A replay of recorded events is history: no wall-clock window unless asked.
            check_wall_clock=not replay or bool(window_set),
        )

    def event_name(self, column: str) -> str:
        """The name a reference column has in the events (``schema.rename`` undone)."""
        return self._event_names.get(column, column)

    def unmonitorable(self) -> tuple[str, ...]:
        """Columns that cannot be monitored at all: a prediction the reference lacks."""
        if self.reference is not None and self.reference.prediction is None:
            return (PREDICTION,)
        return ()

    def _note_absent(self, matrix: FloatArray) -> None:
        """Log each reference column that a whole batch does not carry, and its return.

        The windows' ``schema`` decision pages on it; this says so as soon as it shows.
        """
        if matrix.shape[0] < ABSENT_MIN_ROWS:
            return
        present = [bool(x) for x in np.asarray(np.isfinite(matrix).any(axis=0)).ravel()]
        for name, seen in zip(self.columns, present, strict=True):
            if not seen and name not in self._absent:
                self._absent.add(name)
                log.warning(
                    "column_absent",
                    model=self.model,
                    column=name,
                    event_name=self.event_name(name),
                    rows=int(matrix.shape[0]),
                    hint="no event of the batch carries it: check its name "
                    "(schema.rename) and the schema paths",
                )
            elif seen and name in self._absent:
                self._absent.discard(name)
                log.info("column_present_again", model=self.model, column=name)

    def _matrix(self, batch: DecodedBatch) -> FloatArray:
        """Columns in profile order: raw numbers, category codes, the prediction."""
        assert self.decoder is not None
        numeric_index = {name: i for i, name in enumerate(self.decoder.numeric_features)}
        columns: list[FloatArray] = []
        for profile in self._profiles:
            if self.reference is not None and profile is self.reference.prediction:
                if isinstance(profile, CategoricalProfile):
                    columns.append(profile.encode(batch.prediction))
                else:
                    columns.append(batch.prediction)
            elif isinstance(profile, CategoricalProfile):
                columns.append(profile.encode(batch.categorical[self.event_name(profile.name)]))
            else:
                columns.append(batch.numeric[:, numeric_index[self.event_name(profile.name)]])
        return np.column_stack(columns) if columns else np.zeros((len(batch), 0))

    def process(self, records: Sequence[Record], now: float | None = None) -> BatchOutcome:
        """Run one poll batch through the data flow."""
        # Offsets ascend within a partition, so the last record of each one wins.
        last = {(r.topic, r.partition): r.offset for r in records}
        next_offsets = {tp: offset + 1 for tp, offset in last.items()}
        label_records: list[Record] = []
        events = records
        if self.labels is not None:
            label_records = [r for r in records if r.topic == self.label_topic]
            if label_records:
                events = [r for r in records if r.topic != self.label_topic]
        if self.decoder is None and events:
            numeric, categorical = discover_features(events, self.settings)
            self.decoder = self._decoder(numeric, categorical)
            self._warmup = _Warmup()
        kafka_ts = (
            [None if r.timestamp_ms is None else r.timestamp_ms / 1000.0 for r in events]
            if self.settings.schema_.timestamp_source == "kafka"
            else None
        )
        decoded = (
            self.decoder.decode([r.value for r in events], now=now, kafka_ts=kafka_ts)
            if self.decoder is not None
            else self._decoder((), ()).decode([])
        )
        rejected = [(events[r.index], r.reason, r.detail) for r in decoded.rejections]
        self._note_decoding(decoded)
        seg = self.segments.ids(decoded.segment_keys)
        if len(seg):
            self._note_homes(seg, decoded.source_index, events)
        self.events_accepted += len(decoded)
        results: WindowResults | None = None
        transitions: list[Transition] = []
        details: dict[str, Mapping[str, Any]] = {}
        if not self.ready:
            if len(decoded):
                self._collect_warmup(decoded, seg)
        elif len(decoded):
            assert self.windows is not None and self.evaluator is not None
            matrix = self._matrix(decoded)
            self._note_absent(matrix)
            closed = self.windows.add(seg, matrix, decoded.ts)
            if len(closed):
                results = self.evaluator.evaluate(closed, tuple(self.segments.names))
                self.results.record(results)
                transitions = self.decisions.observe(results)
                if any(t.current == "firing" for t in transitions):
                    assert self.explainer is not None
                    details = self.explainer.details(
                        transitions,
                        closed,
                        self.evaluator.reference_for(closed.segments),
                        self.segments.names,
                    )
        label_outcome = None
        if self.labels is not None:
            label_outcome, label_rejected = self._process_labels(decoded, seg, label_records, now)
            rejected.extend(label_rejected)
            for extra in label_outcome.results:
                self.results.record(extra, windows=False)
                transitions.extend(self.decisions.observe(extra))
        for _, reason, _ in rejected:
            self.rejections_by_reason[reason] = self.rejections_by_reason.get(reason, 0) + 1
        return BatchOutcome(
            len(records),
            len(decoded),
            rejected,
            results,
            transitions,
            next_offsets,
            details,
            label_outcome,
        )

    def _note_decoding(self, decoded: DecodedBatch) -> None:
        """Count values that became missing and names the reference lacks; log refusals
        with their reason (one line per reason and batch, with an example)."""
        for key, count in decoded.invalid.items():
            self.invalid_values[key] = self.invalid_values.get(key, 0) + count
        for name, count in decoded.unexpected.items():
            if name not in self.unexpected_features and len(self.unexpected_features) < (
                MAX_UNEXPECTED_TRACKED
            ):
                log.warning(
                    "feature_not_in_reference",
                    model=self.model,
                    feature=name,
                    hint="the events carry it, the reference does not: it is not monitored "
                    "(schema.rename maps an event name onto a reference column)",
                )
            if name in self.unexpected_features or len(self.unexpected_features) < (
                MAX_UNEXPECTED_TRACKED
            ):
                self.unexpected_features[name] = self.unexpected_features.get(name, 0) + count
        by_reason: dict[str, list[str]] = {}
        for rejection in decoded.rejections:
            by_reason.setdefault(rejection.reason, []).append(rejection.detail)
        for reason, details in by_reason.items():
            log.warning(
                "events_rejected",
                model=self.model,
                reason=reason,
                count=len(details),
                example=details[0][:300],
            )

    def _note_homes(self, seg: IntArray, source_index: IntArray, events: Sequence[Record]) -> None:
        segments, first = np.unique(seg, return_index=True)
        for s, row in zip(segments.tolist(), first.tolist(), strict=True):
            if s not in self.segment_home:
                record = events[int(source_index[row])]
                self.segment_home[s] = (record.topic, record.partition)

    def _process_labels(
        self,
        decoded: DecodedBatch,
        seg: IntArray,
        label_records: list[Record],
        now: float | None,
    ) -> tuple[LabelOutcome, list[tuple[Record, str, str]]]:
        assert self.labels is not None and self.label_decoder is not None
        labels = None
        rejected: list[tuple[Record, str, str]] = []
        if label_records:
            labels = self.label_decoder.decode([r.value for r in label_records], now=now)
            rejected = [(label_records[r.index], r.reason, r.detail) for r in labels.rejections]
        group = self._group_values(decoded)
        predictions = (decoded.ids, seg, decoded.prediction, decoded.ts, group)
        outcome = self.labels.process(predictions, labels, tuple(self.segments.names))
        return outcome, rejected

    def _group_values(self, decoded: DecodedBatch) -> list[str | None] | None:
        """The fairness group of each accepted event (a feature's value as text)."""
        name = self.group_feature
        if name is None or self.decoder is None:
            return None
        if name in decoded.categorical:
            return decoded.categorical[name]
        if name in self.decoder.numeric_features:
            column = decoded.numeric[:, self.decoder.numeric_features.index(name)]
            return [None if np.isnan(v) else f"{v:g}" for v in column.tolist()]
        return None

    def _collect_warmup(self, decoded: DecodedBatch, seg: IntArray) -> None:
        assert self._warmup is not None and self.decoder is not None
        self._warmup.batches.append((decoded, seg))
        self._warmup.rows += len(decoded)
        needed = self.settings.reference.warmup_events or 0
        if self._warmup.rows < needed:
            return
        held = self._warmup.batches
        columns: dict[str, object] = {}
        rename = self.settings.schema_.rename
        for j, name in enumerate(self.decoder.numeric_features):
            columns[rename.get(name, name)] = np.concatenate([b.numeric[:, j] for b, _ in held])
        for name in self.decoder.categorical_features:
            columns[rename.get(name, name)] = np.concatenate(
                [np.asarray(b.categorical[name], object) for b, _ in held]
            )
        columns[PREDICTION] = np.concatenate([b.prediction for b, _ in held])
        started = time.perf_counter()
        profile = build_profile(
            columns,
            categorical=[rename.get(n, n) for n in self.decoder.categorical_features],
            prediction=PREDICTION,
        )
        self._start_detection(profile)
        self._segment_references(held)
        if self.on_reference_built is not None:
            self.on_reference_built()
        log.info(
            "warmup_reference_built",
            model=self.model,
            events=self._warmup.rows,
            version=profile.version,
            seconds=round(time.perf_counter() - started, 3),
        )
        self._warmup = None

    def _segment_references(self, held: list[tuple[DecodedBatch, IntArray]]) -> None:
        """Freeze each segment's warm-up counts as its own reference (when it has enough)."""
        assert self.evaluator is not None
        seg = np.concatenate([s for _, s in held])
        matrix = np.concatenate([self._matrix(b) for b, _ in held])
        own = segment_references(
            self.evaluator.engine,
            seg,
            matrix,
            len(self.segments),
            self.settings.windows.min_samples,
        )
        for segment, reference in own.items():
            self.evaluator.set_segment_reference(segment, reference)
