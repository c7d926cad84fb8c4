"""The cost per event of each method beyond univariate drift, on the real daemon.

Part of ``benchmarks.beyond_univariate``. The stream: 20 numeric features tied by latent
factors (``multivariate_drift.mixed_rows``), 2 categorical ones, a 256-float embedding
(``multivariate_drift.VectorSource``), a calibrated probability as the prediction, over
10 segments; the training data is 20,000 such events with their labels, turned into a
reference by ``build_reference`` (as ``driftd reference build`` does), so it carries the
PCA, the embedding model, the score calibration, the label-noise thresholds and the
segment mix. Each run builds the daemon with ``build_daemon`` from a fresh settings
object and hands it the same in-memory records, 5,000 per batch, through
``Daemon.handle`` (windows of 1,000 events per segment, so every segment closes windows
and the evaluation cost is in). Only ``handle`` is timed, in CPU time of the process.

Configurations: the base pipeline with every new method off, then each method on alone,
each against the base of its stream. Events carry their 256 floats only where embedding
drift is measured (the ``vectors`` stream; elsewhere the JSON of 256 floats would
dominate the base); the label-noise signal needs the label stream, so its base has a
label per event flowing (joined, performance, ADWIN) with the signal off. Runs are
interleaved (each base and each method, again, from a different one each round) and
each configuration keeps its best run: the machine is shared and noisy. A run whose
daemon did not score the method switched on (or scored another new one) is refused,
not reported.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import structlog

from benchmarks.multivariate_drift import VectorSource, mixed_rows
from monitor.config import SchemaConfig, Settings
from monitor.engine.reference.build import build_reference
from monitor.ingest.source import Record
from monitor.wiring import build_daemon

NUMERIC = tuple(f"x{i:02d}" for i in range(20))
CATEGORICAL = ("c0", "c1")
SEGMENTS = 10
BATCH = 5_000
WINDOW_EVENTS = 1_000
REFERENCE_EVENTS = 20_000
EVENTS_TOPIC, LABELS_TOPIC = "events", "labels"
SCHEMA = SchemaConfig(
    segment_by=["segment"], categorical=list(CATEGORICAL), vector_features=["embedding"]
)
ALL_OFF: dict[str, Any] = {
    "detectors": {
        "multivariate_drift": {"enabled": False},
        "embedding_drift": {"enabled": False},
        "performance_estimation": {"enabled": False},
    },
    "segment_mix": {"enabled": False},
    "labels": {"noise": {"enabled": False}},
}
"""The settings that switch every new method off."""
METHODS: dict[str, tuple[str, ...]] = {
    "multivariate": ("detectors", "multivariate_drift"),
    "embedding": ("detectors", "embedding_drift"),
    "cbpe": ("detectors", "performance_estimation"),
    "segment_mix": ("segment_mix",),
    "label_noise": ("labels", "noise"),
}
"""Each method and where its ``enabled`` switch sits in the settings."""
SCORED_AS = {
    "multivariate": "multivariate",
    "embedding": "embedding",
    "cbpe": "perf_drop",
    "segment_mix": "segment_mix",
    "label_noise": "label_noise",
}
"""The decision method each one's window results are scored under."""


Stream = Literal["plain", "vectors", "labels"]
STREAM_OF: dict[str, Stream] = {"embedding": "vectors", "label_noise": "labels"}
"""The stream each method is measured on (the others: ``plain``)."""


def stream_of(method: str) -> Stream:
    """``vectors`` (events carry the embedding) for embedding drift, ``labels`` (a label
    per event follows it) for the label-noise signal, else ``plain`` (features only)."""
    return STREAM_OF.get(method, "plain")


@dataclass(frozen=True)
class PipelineCost:
    """Best µs per inference event of each configuration."""

    base_us: dict[Stream, float]
    """Every new method off, per stream."""
    method_us: dict[str, float]
    """Each method on alone, on its stream."""

    def extra_us(self, method: str) -> float:
        """µs per event the method adds to the base of its stream."""
        return self.method_us[method] - self.base_of(method)

    def base_of(self, method: str) -> float:
        """The base the method is compared with: every new method off, on its stream."""
        return self.base_us[stream_of(method)]


def _events(rng: np.random.Generator, first: int, n: int, t0: float) -> list[dict[str, Any]]:
    """``n`` events (with a calibrated label each) as dicts."""
    numeric = mixed_rows(rng, n, len(NUMERIC)).round(4).tolist()
    categories = rng.integers(0, 4, (n, len(CATEGORICAL))).tolist()
    vectors = VectorSource(False).draw(rng, n).round(4).tolist()
    score = rng.beta(2.0, 2.0, n)
    label = (rng.random(n) < score).astype(int).tolist()
    segment = rng.integers(0, SEGMENTS, n).tolist()
    out = []
    for i in range(n):
        features: dict[str, Any] = dict(zip(NUMERIC, numeric[i], strict=True))
        features.update({c: "abcd"[k] for c, k in zip(CATEGORICAL, categories[i], strict=True)})
        features["embedding"] = vectors[i]
        out.append(
            {
                "id": f"e{first + i}",
                "ts": t0 + (first + i) * 1e-3,
                "model": "bench",
                "segment": f"s{segment[i]}",
                "features": features,
                "prediction": round(float(score[i]), 4),
                "label": label[i],
            }
        )
    return out


def _batches(events: list[dict[str, Any]], stream: Stream) -> list[list[Record]]:
    """The stream's records, ``BATCH`` events a batch: without the embedding but for the
    ``vectors`` stream, and with each event's label after it in the ``labels`` one."""
    out: list[list[Record]] = []
    for lo in range(0, len(events), BATCH):
        records = []
        for offset, event in enumerate(events[lo : lo + BATCH], start=lo):
            body = {k: v for k, v in event.items() if k != "label"}
            if stream != "vectors":
                body["features"] = {k: v for k, v in body["features"].items() if k != "embedding"}
            records.append(Record(orjson.dumps(body), EVENTS_TOPIC, 0, offset))
            if stream == "labels":
                label = {"id": event["id"], "ts": event["ts"] + 1.0, "label": event["label"]}
                records.append(Record(orjson.dumps(label), LABELS_TOPIC, 0, offset))
        out.append(records)
    return out


def _settings(folder: Path, reference: Path, on: str | None, stream: Stream) -> Settings:
    sections: dict[str, Any] = orjson.loads(orjson.dumps(ALL_OFF))
    if on is not None:
        *parents, leaf = METHODS[on]
        node = sections
        for key in parents:
            node = node[key]
        node[leaf] = {"enabled": True}
    sections["labels"] |= {"enabled": stream == "labels", "window_pairs": WINDOW_EVENTS}
    events_file = folder / "events.jsonl"
    events_file.touch()
    return Settings(
        model="bench",
        source={"type": "file", "path": events_file},  # type: ignore[arg-type]
        kafka={"labels_topic": LABELS_TOPIC},  # type: ignore[arg-type]
        checkpoint={"store": "none"},  # type: ignore[arg-type]
        schema=SCHEMA,
        segments={"admit_after_events": 0, "idle_seconds": None},  # type: ignore[arg-type]
        reference={"path": reference},  # type: ignore[arg-type]
        windows={"size_events": WINDOW_EVENTS, "min_samples": 500},  # type: ignore[arg-type]
        metrics={"port": 0},  # type: ignore[arg-type]
        **sections,
    )


def _seconds(settings: Settings, batches: list[list[Record]]) -> tuple[float, set[str]]:
    """CPU seconds of this process (every thread: numpy's too) in ``Daemon.handle`` over
    every batch, on a fresh daemon, and the methods with a finite latest score at the end.
    CPU time, not wall time: on a shared machine another process's burst stretches the
    wall clock of a run, not its CPU time."""
    daemon = build_daemon(settings, serve_metrics=False)
    seconds = 0.0
    try:
        for batch in batches:
            start = time.process_time()
            daemon.handle(batch)
            seconds += time.process_time() - start
    finally:
        daemon.source.close()
    scored = {s.method for s in daemon.pipeline.results.scores() if np.isfinite(s.score)}
    return seconds, scored


def _check_scored(on: str | None, scored: set[str]) -> None:
    """A cost measured with the method idle (or with another one running) is no cost of
    it: refuse to report it."""
    expected = set() if on is None else {SCORED_AS[on]}
    ran = scored & set(SCORED_AS.values())
    if ran != expected:
        raise RuntimeError(f"with {on or 'no new method'} on, the daemon scored {sorted(ran)}")


def pipeline_cost(events: int, repeats: int) -> PipelineCost:
    """Best µs per inference event of each configuration over ``repeats`` rounds."""
    # A stationary stream still pages now and then; the log lines are not measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    rng = np.random.default_rng(31)
    t0 = time.time() - 3_600.0
    streams: tuple[Stream, ...] = ("plain", "vectors", "labels")
    runs = [(None, s) for s in streams] + [(m, stream_of(m)) for m in METHODS]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        training = folder / "training.jsonl"
        training.write_bytes(
            b"\n".join(orjson.dumps(e) for e in _events(rng, 0, REFERENCE_EVENTS, t0 - 1e5))
        )
        reference = folder / "reference.json"
        build_reference(training, reference, schema=SCHEMA, categorical=CATEGORICAL)
        events_ = _events(rng, 0, events, t0)
        batches = {s: _batches(events_, s) for s in streams}
        # A first run pays for imports and caches that every later one finds ready.
        _seconds(_settings(folder, reference, None, "plain"), batches["plain"])
        best: dict[tuple[str | None, Stream], float] = {}
        for round_ in range(repeats):
            # Each round starts one configuration later: none always runs first.
            shift = round_ % len(runs)
            for on, stream in runs[shift:] + runs[:shift]:
                seconds, scored = _seconds(
                    _settings(folder, reference, on, stream), batches[stream]
                )
                _check_scored(on, scored)
                best[on, stream] = min(best.get((on, stream), float("inf")), seconds)
    per_event = 1e6 / events
    return PipelineCost(
        base_us={s: best[None, s] * per_event for s in streams},
        method_us={m: best[m, stream_of(m)] * per_event for m in METHODS},
    )
