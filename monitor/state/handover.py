"""Per-partition state, so a consumer-group rebalance can hand a partition over.

State is kept per Kafka partition, and evaluation merges the sketches of
all owned partitions (counts add). A segment's state belongs to its *home*
partition: the one its first event came from. Producers that key by segment (the
recommended setup) put every event of a segment in one partition, so a segment's
whole state moves with its partition and a rebalance changes nothing in the results.
A segment whose events arrive on several partitions is counted by whichever replica
owns each partition; its state travels with its home partition, and a receiving
replica that already counts the segment adds the two (counts add).

A slice holds, for the segments of one partition: their names, open window panes
and closing state, decision state machines and own warm-up references, plus the
shared reference the counts were binned against. The label join store is not
sliced: labels are joined where they are read (co-partition the label topic with
the inference topic to join across replicas).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.engine import Reference
from detectors.profile import ReferenceProfile
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointError
from monitor.ingest.source import TopicPartition


def segments_of(pipeline: Pipeline, partition: TopicPartition) -> list[int]:
    """Ids of the segments whose home is ``partition``."""
    return pipeline.segments_homed_at(partition)


def partition_slice(pipeline: Pipeline, partition: TopicPartition) -> dict[str, Any] | None:
    """The state of ``partition``'s segments, or None before the reference exists."""
    if not pipeline.ready or pipeline.decoder is None:
        return None
    assert pipeline.reference is not None and pipeline.windows is not None
    assert pipeline.evaluator is not None
    ids = pipeline.segments_homed_at(partition)
    names = [pipeline.segments.names[s] for s in ids]
    return {
        "model": pipeline.model,
        "reference": pipeline.reference.to_dict(),
        "numeric": list(pipeline.decoder.numeric_features),
        "categorical": list(pipeline.decoder.categorical_features),
        "segments": names,
        "windows": pipeline.windows.slice(ids),
        "performance_estimate": (
            pipeline.performance_estimate.slice(ids)
            if pipeline.performance_estimate is not None
            else None
        ),
        "multivariate": (
            pipeline.multivariate.slice(ids) if pipeline.multivariate is not None else None
        ),
        "embeddings": {name: e.slice(ids) for name, e in pipeline.embeddings.items()},
        "own_references": {
            name: pipeline.evaluator.own[s].state_dict()
            for s, name in zip(ids, names, strict=True)
            if s in pipeline.evaluator.own
        },
        "decisions": pipeline.decisions.slice(names),
    }


def merge_slice(
    pipeline: Pipeline, partition: TopicPartition, state: Mapping[str, Any], location: str
) -> list[str]:
    """Add ``partition``'s slice to ``pipeline`` (counts add); the segment names merged."""
    if state.get("model") != pipeline.model:
        raise CheckpointError(location, f"slice of model {state.get('model')!r}")
    reference = ReferenceProfile.from_dict(state["reference"])
    if pipeline.reference is None or not pipeline.ready:
        pipeline.adopt_reference(reference, state["numeric"], state["categorical"])
    elif pipeline.reference.version != reference.version:
        raise CheckpointError(
            location,
            f"slice binned against reference {reference.version}, this replica uses "
            f"{pipeline.reference.version}: configure the same reference.path everywhere",
        )
    assert pipeline.windows is not None and pipeline.evaluator is not None
    names = [str(n) for n in state["segments"]]
    ids = pipeline.segments.ids(np.array(names, dtype=object)) if names else np.zeros(0, int)
    pipeline.windows.ensure_segments(len(pipeline.segments))
    try:
        pipeline.windows.merge(state["windows"], ids.tolist())
        estimate = state.get("performance_estimate")
        if pipeline.performance_estimate is not None and estimate is not None:
            pipeline.performance_estimate.windows.ensure_segments(len(pipeline.segments))
            pipeline.performance_estimate.merge(estimate, ids.tolist())
        joint = state.get("multivariate")
        if pipeline.multivariate is not None and joint is not None:
            pipeline.multivariate.windows.ensure_segments(len(pipeline.segments))
            pipeline.multivariate.merge(joint, ids.tolist())
        vectors = state.get("embeddings") or {}
        for name, embedding in pipeline.embeddings.items():
            if name in vectors:
                embedding.windows.ensure_segments(len(pipeline.segments))
                embedding.merge(vectors[name], ids.tolist())
    except ValueError as exc:
        raise CheckpointError(location, str(exc)) from None
    for name, own in state["own_references"].items():
        segment = int(pipeline.segments.ids([name])[0])
        pipeline.evaluator.set_segment_reference(segment, Reference.from_state(own))
    pipeline.decisions.merge(state["decisions"])
    pipeline.claim_segments(ids.tolist(), partition)
    return names


def drop_partition(pipeline: Pipeline, partition: TopicPartition) -> list[str]:
    """Forget ``partition``'s segments after handing them over (their next owner counts)."""
    if pipeline.windows is None:
        return []
    ids = pipeline.segments_homed_at(partition)
    if not ids:
        return []
    pipeline.windows.drop(ids)
    if pipeline.performance_estimate is not None:
        pipeline.performance_estimate.drop(ids)
    if pipeline.multivariate is not None:
        pipeline.multivariate.drop(ids)
    for embedding in pipeline.embeddings.values():
        embedding.drop(ids)
    names = {pipeline.segments.names[s] for s in ids}
    pipeline.decisions.drop(names)
    pipeline.release_segments(ids)
    return sorted(names)
