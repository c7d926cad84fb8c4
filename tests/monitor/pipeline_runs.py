"""Running a pipeline over prepared batches, and reading what it did: shared by the
tests of the methods decided beside the feature windows."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detectors.profile import ReferenceProfile
from monitor.app import Daemon, make_results
from monitor.config import Settings
from monitor.engine.outcome import BatchOutcome
from monitor.engine.pipeline import Pipeline
from monitor.ingest.file_source import FileSource
from monitor.ingest.source import Record

Samples = dict[str, list[tuple[dict[str, str], float]]]


def run_pipeline(
    cfg: Settings, stream: list[list[Record]], profile: ReferenceProfile, now: float
) -> tuple[Pipeline, list[BatchOutcome]]:
    """A pipeline on ``profile`` fed every batch at wall-clock time ``now``."""
    pipeline = Pipeline(cfg, profile, make_results(cfg))
    return pipeline, [pipeline.process(b, now=now) for b in stream]


def fired(outcomes: list[BatchOutcome]) -> list[tuple[int, str, str]]:
    """(batch, column, method) of every transition to firing, in order."""
    return [
        (i, t.column, t.method)
        for i, o in enumerate(outcomes)
        for t in o.transitions
        if t.current == "firing"
    ]


def scrape(pipeline: Pipeline, tmp_path: Path, prefix: str) -> Samples:
    """The samples of the daemon's /metrics families named ``prefix...``: name -> samples."""
    events = tmp_path / "none.jsonl"
    events.touch()
    source = FileSource(events, 10)
    daemon = Daemon(pipeline.settings, source, pipeline, registry=CollectorRegistry())
    text = generate_latest(daemon.registry).decode()
    source.close()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out
