"""One poll batch through the data flow: decode, segment, window, evaluate, decide.

The pipeline owns the daemon's state (segment table, windows, reference, decisions)
and is driven by the application loop, which polls the source, hands each batch
here, then checkpoints and commits in the fixed order. Nothing here talks to Kafka.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import structlog

from detectors.base import FloatArray, IntArray
from detectors.binning import Binner
from detectors.feature_profiles import CategoricalProfile, FeatureProfile, NumericProfile
from detectors.profile import ReferenceProfile, build_profile
from monitor.config import Settings
from monitor.engine.decision import DecisionBook, Transition
from monitor.engine.embedding_window import EmbeddingWindows, start_embeddings
from monitor.engine.evaluate import Evaluator, segment_references
from monitor.engine.explain import DriftExplainer, WindowBins
from monitor.engine.labels.events import LabelDecoder
from monitor.engine.labels.monitor import LabelMonitor, LabelOutcome
from monitor.engine.labels.relabel_features import EventFeatures
from monitor.engine.multivariate_window import (
    MultivariateWindows,
    start_multivariate,
)
from monitor.engine.outcome import BatchOutcome
from monitor.engine.performance_estimate import EstimatedPerformance, start_performance_estimate
from monitor.engine.results import LatestResults, WindowResults
from monitor.engine.segment_mix import (
    MixStatus,
    SegmentMixWindows,
    mix_status,
    start_segment_mix,
    with_warmup_mix,
)
from monitor.engine.windows import ClosedWindows, Windows
from monitor.ingest.decode import DecodedBatch, Decoder
from monitor.ingest.discovery import FeatureDiscovery
from monitor.ingest.segments import SegmentTable
from monitor.ingest.source import (
    Record,
    TopicPartition,
    record_values,
    split_topic,
)
from monitor.ingest.source import next_offsets as source_next_offsets
from monitor.ingest.warmup import HeldWarmup

log = structlog.get_logger()
PREDICTION = "prediction"
MAX_UNEXPECTED_TRACKED = 100
"""Distinct unexpected feature names remembered (and exported) at most."""
ABSENT_MIN_ROWS = 100
"""A batch this large that lacks a reference column entirely is logged at once."""


def discover_features(settings: Settings, group_feature: str | None) -> FeatureDiscovery:
    """The discovery of a warm-up: the configured names keep their types, and so does the
    fairness group's feature (categorical unless ``schema.numeric`` lists it), so its values
    read the same during the warm-up and after it."""
    schema = settings.schema_
    categorical = list(schema.categorical)
    if group_feature is not None and group_feature not in schema.numeric:
        categorical.append(group_feature)
    # With the features at the event's top level, the event's own fields are not features.
    paths = (schema.id, schema.timestamp, schema.model, schema.prediction, schema.label)
    ignored = [] if schema.features else [p.split(".")[0] for p in paths]
    ignored.extend(schema.vector_features)  # arrays, never numeric or categorical
    return FeatureDiscovery(schema, schema.numeric, categorical, ignored)


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
        self.segments = SegmentTable(
            settings.segments.max_segments,
            admit_after=settings.segments.admit_after_events,
            idle_seconds=settings.segments.idle_seconds,
            max_candidates=settings.segments.max_candidates,
        )
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
        self._warmup: HeldWarmup | None = None
        self.feature_names_refused: dict[str, int] = {}
        """Feature names a warm-up's discovery refused, by cap (``name_too_long``,
        ``over_max_features``)."""
        self._profiles: list[FeatureProfile] = []
        self._event_names = {ref: event for event, ref in settings.schema_.rename.items()}
        self._absent: set[str] = set()
        self.on_reference_built: Callable[[], None] | None = None
        """Called once a warm-up reference is complete (the daemon saves it at once)."""
        self.on_window_bins: Callable[[WindowBins], None] | None = None
        """Called with the reference and current coarse bin counts of the windows each batch
        closes, after they are scored (``driftd backtest`` keeps those of the worst
        windows); None, the default, computes nothing."""
        self.segment_home: dict[int, TopicPartition] = {}
        """The partition each segment's first event came from (see ``monitor.state.handover``)."""
        self.labels: LabelMonitor | None = None
        self.label_decoder: LabelDecoder | None = None
        self.label_topic = settings.kafka.labels_topic
        group = settings.labels.group_by
        self.group_feature = group.removeprefix(settings.schema_.features + ".") if group else None
        if settings.labels.enabled:
            label_profile = reference.label if reference is not None else None
            self.labels = LabelMonitor(
                settings, label_profile, reference.performance if reference is not None else None
            )
            self.label_decoder = LabelDecoder(settings.labels, settings.schema_)
        self.segment_mix: SegmentMixWindows | None = None
        self.segment_mix_unavailable: str | None = None
        """Why segment-mix drift is not monitored although enabled (None: it is, or off)."""
        self.performance_estimate: EstimatedPerformance | None = None
        self.performance_unavailable: str | None = None
        """Why estimated performance (CBPE) is not monitored although enabled (None: it is,
        or it is off)."""
        self.multivariate: MultivariateWindows | None = None
        self.multivariate_unavailable: str | None = None
        """Why multivariate drift is not monitored although enabled (None: it is, or off)."""
        self.embeddings: dict[str, EmbeddingWindows] = {}
        """Embedding windows by vector feature (the decoder reads those features)."""
        self.embedding_unavailable: dict[str, str] = {}
        """Why each listed vector feature is not monitored although enabled."""
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
        # Before the decoder: it reads the vector features the embedding windows score.
        self.embeddings, self.embedding_unavailable = start_embeddings(
            self.settings, reference, len(self.segments), self.embedding_unavailable
        )
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
        self.segment_mix, self.segment_mix_unavailable = start_segment_mix(
            self.settings, reference, self.segment_mix_unavailable
        )
        self.performance_estimate, self.performance_unavailable = start_performance_estimate(
            self.settings, reference, len(self.segments), self.performance_unavailable
        )
        self.multivariate, self.multivariate_unavailable = start_multivariate(
            self.settings,
            reference,
            self.columns,
            len(self.segments),
            self.multivariate_unavailable,
        )
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

    def _decoder(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str],
        *,
        discovering: bool = False,
        tolerant: bool = False,
    ) -> Decoder:
        """The decoder of the daemon's settings: ids only needed for the label join,
        other models refused, and the wall-clock window only where events are live.
        ``discovering``: a warm-up's, which hands back the features objects to learn from
        and does not report the names it does not read yet; ``tolerant``: never strict
        (for the held warm-up, whose events were accepted before their types were known)."""
        schema = self.settings.schema_
        replay = self.settings.source.type in ("file", "stdin")
        window_set = {"max_past_seconds", "max_future_seconds"} & schema.model_fields_set
        return Decoder(
            schema.model_copy(update={"strict": False}) if tolerant else schema,
            numeric,
            categorical,
            require_id=self.settings.labels.enabled,
            model=self.model,
            # A replay of recorded events is history: no wall-clock window unless asked.
            check_wall_clock=not replay or bool(window_set),
            report_unexpected=not discovering,
            keep_feature_objects=discovering,
            vector_features=(
                None
                if discovering
                else {self.event_name(n): e.dim for n, e in self.embeddings.items()}
            ),
        )

    def event_name(self, column: str) -> str:
        """The name a reference column has in the events (``schema.rename`` undone)."""
        return self._event_names.get(column, column)

    def unmonitorable(self) -> tuple[str, ...]:
        """Columns that cannot be monitored at all: a prediction the reference lacks."""
        if self.reference is not None and self.reference.prediction is None:
            return (PREDICTION,)
        return ()

    def segment_mix_status(self) -> MixStatus:
        """Segment-mix drift as the metrics show it (any thread)."""
        return mix_status(self.segment_mix, self.segment_mix_unavailable)

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
        next_offsets = source_next_offsets(records)
        label_records: Sequence[Record] = []
        events: Sequence[Record] = records
        if self.labels is not None:
            label_records, events = split_topic(records, self.label_topic)
        if self.decoder is None and events:
            # A warm-up: the features are learned from all of it (monitor.ingest.warmup).
            discovery = discover_features(self.settings, self.group_feature)
            needed = self.settings.reference.warmup_events or 0
            self._warmup = HeldWarmup(self.settings.schema_, needed, discovery)
            self.decoder = self._decoder(discovery.numeric, discovery.categorical, discovering=True)
        kafka_ts = (
            [None if r.timestamp_ms is None else r.timestamp_ms / 1000.0 for r in events]
            if self.settings.schema_.timestamp_source == "kafka"
            else None
        )
        decoded = (
            self.decoder.decode(record_values(events), now=now, kafka_ts=kafka_ts)
            if self.decoder is not None
            else self._decoder((), ()).decode([])
        )
        rejected = [(events[r.index], r.reason, r.detail) for r in decoded.rejections]
        self._note_decoding(decoded)
        seg = self.segments.assign(decoded.segment_keys, decoded.ts, evict=self.ready)
        evicted = self.segments.take_evicted()
        # Before the batch's events are counted: an evicted id may already be reused.
        transitions: list[Transition] = self._forget_segments(evicted) if evicted else []
        extra: list[WindowResults] = []
        if len(seg):
            self._note_homes(seg, decoded.source_index, events)
        self.events_accepted += len(decoded)
        results: WindowResults | None = None
        details: dict[str, Mapping[str, Any]] = {}
        late, refused = 0, np.zeros(0, np.int64)  # by the windows' event time
        if not self.ready:
            if len(decoded):
                self._collect_warmup(decoded, seg, events, kafka_ts, now)
        elif len(decoded):
            assert self.windows is not None and self.evaluator is not None
            matrix = self._matrix(decoded)
            self._note_absent(matrix)
            # Live, a quiet night must not make the morning's events look early.
            not_before = (
                (time.time() if now is None else now)
                if self.decoder is not None and self.decoder.check_wall_clock
                else -math.inf
            )
            max_ahead = self.settings.schema_.max_future_seconds
            closed = self.windows.add(
                seg, matrix, decoded.ts, max_ahead=max_ahead, not_before=not_before
            )
            late, refused = closed.late, closed.refused
            self.events_accepted -= refused.size
            rejected.extend(self._note_event_time(closed, events, decoded))
            if len(closed):
                results = self.evaluator.evaluate(closed, tuple(self.segments.names))
                self.results.record(results)
                transitions.extend(self.decisions.observe(results))
                if self.on_window_bins is not None:
                    assert self.explainer is not None
                    self.on_window_bins(
                        self.explainer.window_bins(
                            closed,
                            self.evaluator.reference_for(closed.segments),
                            self.segments.names,
                        )
                    )
                if any(t.current == "firing" for t in transitions):
                    assert self.explainer is not None
                    details = self.explainer.details(
                        transitions,
                        closed,
                        self.evaluator.reference_for(closed.segments),
                        self.segments.names,
                    )
            # The methods decided beside the feature tests, in this order.
            beside: list[WindowResults | None] = []
            if self.performance_estimate is not None:  # the same windows, on the scores
                beside.append(
                    self.performance_estimate.add(
                        seg,
                        decoded.prediction,
                        decoded.ts,
                        tuple(self.segments.names),
                        max_ahead=max_ahead,
                        not_before=not_before,
                    )
                )
            if self.multivariate is not None:  # the same windows, on the joint features
                beside.append(
                    self.multivariate.add(
                        seg,
                        matrix,
                        decoded.ts,
                        tuple(self.segments.names),
                        max_ahead=max_ahead,
                        not_before=not_before,
                    )
                )
            for name, embedding in self.embeddings.items():  # the same windows, on vectors
                vectors = decoded.vectors.get(self.event_name(name))
                beside.append(
                    embedding.add(
                        seg,
                        np.full((len(decoded), embedding.dim), np.nan)
                        if vectors is None
                        else vectors,
                        decoded.ts,
                        tuple(self.segments.names),
                        max_ahead=max_ahead,
                        not_before=not_before,
                    )
                )
            if self.segment_mix is not None:  # the whole traffic, by key (before admission)
                beside.extend(self.segment_mix.add(decoded.segment_keys, decoded.ts, refused))
            for decided in beside:
                if decided is not None:
                    extra.append(decided)
                    self.results.record(decided, windows=False)
                    transitions.extend(self.decisions.observe(decided))
        label_outcome = None
        if self.labels is not None:
            label_outcome, label_rejected = self._process_labels(
                decoded, seg, label_records, now, refused
            )
            rejected.extend(label_rejected)
            for label_results in label_outcome.results:
                self.results.record(label_results, windows=False)
                transitions.extend(self.decisions.observe(label_results))
        for _, reason, _ in rejected:
            self.rejections_by_reason[reason] = self.rejections_by_reason.get(reason, 0) + 1
        return BatchOutcome(
            len(records),
            len(decoded) - refused.size,
            rejected,
            results,
            transitions,
            next_offsets,
            details,
            label_outcome,
            evicted=[name for _, name in evicted],
            late=late,
            extra=extra,
        )

    def _forget_segments(self, evicted: list[tuple[int, str]]) -> list[Transition]:
        """Reset every per-segment state of the evicted (id, name) pairs, so a reused id
        starts empty; their firing alerts resolve (the transitions returned)."""
        ids = np.array([s for s, _ in evicted], dtype=np.int64)
        names = {name for _, name in evicted}
        if self.windows is not None:
            self.windows.forget_segments(ids)
        if self.performance_estimate is not None:
            self.performance_estimate.forget_segments(ids, names)
        if self.multivariate is not None:
            self.multivariate.forget_segments(ids, names)
        for embedding in self.embeddings.values():
            embedding.forget_segments(ids, names)
        if self.evaluator is not None:
            self.evaluator.forget_segments(ids)
        if self.labels is not None:
            self.labels.forget_segments(ids, names)
        for s in ids.tolist():
            self.segment_home.pop(s, None)
        self.results.forget_segments(names)
        resolved = self.decisions.forget_segments(names, self.segments.clock)
        log.info(
            "segments_evicted",
            model=self.model,
            count=len(evicted),
            segments=sorted(names)[:20],
            idle_seconds=self.settings.segments.idle_seconds,
            alerts_resolved=len(resolved),
        )
        return resolved

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

    def segments_homed_at(self, partition: TopicPartition) -> list[int]:
        """Ids of the segments whose home is ``partition`` (their state moves with it)."""
        return sorted(s for s, home in self.segment_home.items() if home == partition)

    def claim_segments(self, segments: Sequence[int], partition: TopicPartition) -> None:
        """Make ``partition`` the home of those of ``segments`` that have none yet."""
        for s in segments:
            self.segment_home.setdefault(int(s), partition)

    def release_segments(self, segments: Sequence[int]) -> None:
        """Forget the homes of ``segments`` (handed over to another replica)."""
        for s in segments:
            self.segment_home.pop(int(s), None)

    def _process_labels(
        self,
        decoded: DecodedBatch,
        seg: IntArray,
        label_records: Sequence[Record],
        now: float | None,
        refused: IntArray,
    ) -> tuple[LabelOutcome, list[tuple[Record, str, str]]]:
        assert self.labels is not None and self.label_decoder is not None
        labels = None
        rejected: list[tuple[Record, str, str]] = []
        if label_records:
            labels = self.label_decoder.decode(record_values(label_records), now=now)
            rejected = [(label_records[r.index], r.reason, r.detail) for r in labels.rejections]
        group = self._group_values(decoded)
        predictions = (decoded.ids, seg, decoded.prediction, decoded.ts, group)
        features = self._relabel_features(decoded)
        if refused.size:  # events the windows refused are not predictions either
            keep = np.ones(len(decoded), dtype=np.bool_)
            keep[refused] = False
            rows = np.flatnonzero(keep).tolist()
            predictions = (
                [decoded.ids[i] for i in rows],
                seg[rows],
                decoded.prediction[rows],
                decoded.ts[rows],
                None if group is None else [group[i] for i in rows],
            )
            features = None if features is None else features.take(rows)
        outcome = self.labels.process(predictions, labels, tuple(self.segments.names), features)
        return outcome, rejected

    def _relabel_features(self, decoded: DecodedBatch) -> EventFeatures | None:
        """The batch's scalar feature columns, where the relabel queue keeps features."""
        quality = self.labels.quality if self.labels is not None else None
        if quality is None or quality.features is None or self.decoder is None:
            return None
        names = tuple(self.decoder.numeric_features)
        return EventFeatures(names, decoded.numeric, decoded.categorical)

    def _note_event_time(
        self, closed: ClosedWindows, events: Sequence[Record], decoded: DecodedBatch
    ) -> list[tuple[Record, str, str]]:
        """Log the batch's late events; the events refused as too far ahead, as rejections."""
        if closed.late:
            log.warning(
                "events_late",
                model=self.model,
                count=closed.late,
                watermark=self.windows.watermark if self.windows is not None else None,
                hint="their time window had closed: raise windows.allowed_lateness_seconds "
                "if they belong in it",
            )
        if not closed.refused.size:
            return []
        limit = self.settings.schema_.max_future_seconds
        out = [
            (
                events[int(decoded.source_index[row])],
                "ahead_of_watermark",
                f"event time {decoded.ts[row]:.3f} is {ahead:.0f} s ahead of the stream's "
                f"event time, more than schema.max_future_seconds ({limit:g} s)",
            )
            for row, ahead in zip(
                closed.refused.tolist(), closed.refused_ahead.tolist(), strict=True
            )
        ]
        log.warning(
            "events_rejected",
            model=self.model,
            reason="ahead_of_watermark",
            count=len(out),
            example=out[0][2],
        )
        return out

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

    def _collect_warmup(
        self,
        decoded: DecodedBatch,
        seg: IntArray,
        events: Sequence[Record],
        kafka_ts: Sequence[float | None] | None,
        now: float | None,
    ) -> None:
        """Learn from and hold a warm-up batch; build the reference once the warm-up is done."""
        warmup = self._warmup
        assert warmup is not None and self.decoder is not None
        warmup.add(decoded, seg, events, kafka_ts, now)
        self._count_names_refused(warmup.names_refused)
        warmup.names_refused = {}
        if not warmup.complete:
            return
        held = self._decode_held(warmup)
        if not held:
            log.error(
                "warmup_restarted",
                model=self.model,
                events=warmup.rows,
                reason="no feature carried by schema.min_feature_share of the warm-up events",
                hint="check schema.features, or list the features in schema.numeric "
                "and schema.categorical",
            )
            self.decoder, self._warmup = None, None
            return
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
        profile = with_warmup_mix(self.settings, profile, [b.segment_keys for b, _ in held])
        # No joint model from a warm-up (start_multivariate says so; NO_MODEL says why).
        self._start_detection(profile)
        self._segment_references(held)
        if self.on_reference_built is not None:
            self.on_reference_built()
        log.info(
            "warmup_reference_built",
            model=self.model,
            events=sum(len(b) for b, _ in held),
            version=profile.version,
            seconds=round(time.perf_counter() - started, 3),
        )
        self._warmup = None

    def _decode_held(self, warmup: HeldWarmup) -> list[tuple[DecodedBatch, IntArray]]:
        """The held warm-up decoded with the discovered features; what was left out logged."""
        found = warmup.discovery.result()
        warmup.report(self.model, found)
        if not found.numeric and not found.categorical:
            return []  # nothing to build a reference of: the warm-up starts over
        self._count_names_refused({"over_max_features": found.refused.get("over_max_features", 0)})
        # The configured features were read (and their bad values counted) batch by batch.
        seen = {*warmup.discovery.numeric, *warmup.discovery.categorical}
        learned = {*found.numeric, *found.categorical} - seen
        self.decoder = self._decoder(found.numeric, found.categorical)
        # The held events were accepted before their features' types were known: a bad
        # value in one is counted invalid, even with schema.strict, never a late refusal.
        tolerant = self._decoder(found.numeric, found.categorical, tolerant=True)
        held: list[tuple[DecodedBatch, IntArray]] = []
        for batch, seg in warmup.decode(tolerant):
            invalid = {k: n for k, n in batch.invalid.items() if k[0] in learned}
            self._note_decoding(replace(batch, invalid=invalid, rejections=[]))
            if len(batch):
                held.append((batch, seg))
        return held

    def _count_names_refused(self, refused: Mapping[str, int]) -> None:
        for reason, count in refused.items():
            if count:
                self.feature_names_refused[reason] = (
                    self.feature_names_refused.get(reason, 0) + count
                )

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
