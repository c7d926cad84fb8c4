"""The pipeline's whole state as a plain tree, for checkpoints (docs/reliability.md).

What a restart needs to carry on as if it had never stopped: the segment table, the
decoder's feature lists, the reference (a warm-up profile is data, not config), each
segment's own warm-up reference, the windows, the decision state machines, the
label side and the alert routing state. Arrays stay numpy arrays; the checkpoint
codec stores them without pickle.

While the warm-up is still collecting events there is no state worth saving: the
held events are simply read again after a restart, so :func:`pipeline_state`
returns None and the daemon does not commit their offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.engine import Reference
from detectors.profile import ReferenceProfile
from monitor.engine.pipeline import Pipeline
from monitor.errors import CheckpointError

STATE_VERSION = 2
"""Bumped whenever the tree below changes shape; older checkpoints are refused."""


def pipeline_state(pipeline: Pipeline) -> dict[str, Any] | None:
    """The state tree of ``pipeline``, or None while its warm-up is still collecting."""
    if not pipeline.ready or pipeline.decoder is None:
        return None
    assert pipeline.reference is not None and pipeline.windows is not None
    assert pipeline.evaluator is not None
    state: dict[str, Any] = {
        "model": pipeline.model,
        "segments": pipeline.segments.state_dict(),
        "numeric": list(pipeline.decoder.numeric_features),
        "categorical": list(pipeline.decoder.categorical_features),
        "reference": pipeline.reference.to_dict(),
        "own_references": {str(s): r.state_dict() for s, r in pipeline.evaluator.own.items()},
        "windows": pipeline.windows.state_dict(),
        "decisions": pipeline.decisions.state_dict(),
        "events_accepted": pipeline.events_accepted,
        "rejections_by_reason": dict(pipeline.rejections_by_reason),
        "labels": pipeline.labels.state_dict() if pipeline.labels is not None else None,
        "performance_estimate": (
            pipeline.performance_estimate.state_dict()
            if pipeline.performance_estimate is not None
            else None
        ),
        "segment_home": [[s, t, p] for s, (t, p) in sorted(pipeline.segment_home.items())],
        "segment_mix": (
            pipeline.segment_mix.state_dict() if pipeline.segment_mix is not None else None
        ),
        "multivariate": (
            pipeline.multivariate.state_dict() if pipeline.multivariate is not None else None
        ),
        "embeddings": {name: e.state_dict() for name, e in pipeline.embeddings.items()},
    }
    return state


def restore_pipeline(pipeline: Pipeline, state: Mapping[str, Any], location: str) -> None:
    """Load ``state`` (from :func:`pipeline_state`) into a freshly built ``pipeline``."""
    if state.get("model") != pipeline.model:
        raise CheckpointError(
            location, f"checkpoint of model {state.get('model')!r}, not {pipeline.model!r}"
        )
    try:
        reference = ReferenceProfile.from_dict(state["reference"])
        if pipeline.reference is not None and pipeline.reference.version != reference.version:
            raise CheckpointError(
                location,
                f"checkpoint made against reference {reference.version}, "
                f"the config now names {pipeline.reference.version}",
            )
        pipeline.adopt_reference(reference, state["numeric"], state["categorical"])
        pipeline.segments.load_state_dict(state["segments"])
        assert pipeline.windows is not None and pipeline.evaluator is not None
        pipeline.windows.load_state_dict(state["windows"])
        for segment, own in state["own_references"].items():
            pipeline.evaluator.set_segment_reference(int(segment), Reference.from_state(own))
        pipeline.decisions.load_state_dict(state["decisions"])
        pipeline.events_accepted = int(state["events_accepted"])
        pipeline.rejections_by_reason = {
            str(k): int(v) for k, v in state["rejections_by_reason"].items()
        }
        pipeline.segment_home = {
            int(s): (str(t), int(p)) for s, t, p in state.get("segment_home", [])
        }
        labels = state.get("labels")
        if pipeline.labels is not None and labels is not None:
            pipeline.labels.load_state_dict(labels)
        estimate = state.get("performance_estimate")  # absent from older checkpoints
        if pipeline.performance_estimate is not None and estimate is not None:
            pipeline.performance_estimate.load_state_dict(estimate)
        # Older checkpoints have none: the open segment-mix window starts empty.
        mix = state.get("segment_mix")
        if pipeline.segment_mix is not None and mix is not None:
            pipeline.segment_mix.load_state_dict(mix)
        joint = state.get("multivariate")  # absent from older checkpoints: starts empty
        if pipeline.multivariate is not None and joint is not None:
            pipeline.multivariate.load_state_dict(joint)
        vectors = state.get("embeddings") or {}  # absent from older checkpoints
        for name, embedding in pipeline.embeddings.items():
            if name in vectors:
                embedding.load_state_dict(vectors[name])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(location, f"checkpoint state does not fit: {exc!r}") from None


def reference_state(pipeline: Pipeline) -> dict[str, Any] | None:
    """The warm-up reference alone (pooled profile, each segment's own reference by
    segment name, the decoder's feature lists), or None before it exists."""
    if not pipeline.ready or pipeline.decoder is None:
        return None
    assert pipeline.reference is not None and pipeline.evaluator is not None
    names = pipeline.segments.names
    return {
        "model": pipeline.model,
        "reference": pipeline.reference.to_dict(),
        "numeric": list(pipeline.decoder.numeric_features),
        "categorical": list(pipeline.decoder.categorical_features),
        "own_references": {names[s]: r.state_dict() for s, r in pipeline.evaluator.own.items()},
    }


def restore_reference(pipeline: Pipeline, state: Mapping[str, Any], location: str) -> None:
    """Load ``state`` (from :func:`reference_state`) into a pipeline that has none yet."""
    if state.get("model") != pipeline.model:
        raise CheckpointError(
            location, f"reference of model {state.get('model')!r}, not {pipeline.model!r}"
        )
    try:
        reference = ReferenceProfile.from_dict(state["reference"])
        pipeline.adopt_reference(reference, state["numeric"], state["categorical"])
        assert pipeline.evaluator is not None
        own = dict(state["own_references"])
        if own:
            ids = pipeline.segments.ids(np.array(list(own), dtype=object))
            for segment, tree in zip(ids.tolist(), own.values(), strict=True):
                pipeline.evaluator.set_segment_reference(int(segment), Reference.from_state(tree))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(location, f"saved reference does not fit: {exc!r}") from None
