"""deploy/examples/fastapi: one request through the example model server, to the real broker."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monitor.config import LabelsConfig, SchemaConfig
from monitor.engine.labels.events import LabelDecoder
from monitor.ingest.decode import Decoder
from tests.kafka_broker import (
    consume_all,
    create_topic,
    unique_topic,
)

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "fastapi" / "app.py"


def _load_example() -> ModuleType:
    """Import the example's app.py as a fresh module (it is no package)."""
    spec = importlib.util.spec_from_file_location("driftd_fastapi_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_example_server_publishes_predictions_and_outcomes(
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A /predict and an /outcome request reach Kafka as events driftd's decoders accept."""
    from fastapi.testclient import TestClient

    inference, labels = unique_topic("example-inference"), unique_topic("example-labels")
    create_topic(kafka_bootstrap, inference)
    create_topic(kafka_bootstrap, labels)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("INFERENCE_TOPIC", inference)
    monkeypatch.setenv("LABELS_TOPIC", labels)
    monkeypatch.setenv("MODEL_VERSION", "v3")
    example = _load_example()
    applicant = {"income": 52_000, "debt_ratio": 0.4, "age": 37, "region": "west", "channel": "app"}
    with TestClient(example.app) as client:  # startup creates the publisher, exit closes it
        answer = client.post("/predict", json=applicant)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (
            client.post("/outcome", json={"id": body["id"], "defaulted": True}).status_code == 200
        )
        metrics = client.get("/metrics/").text
        # An event and a label: the counts hold both.
        assert f'driftd_publisher_events_published_total{{topic="{inference}"}} 2.0' in metrics
    stats = example.app.state.publisher.stats()
    assert stats.delivered == 2 and stats.dropped_total == 0, stats

    schema = SchemaConfig(segment_by=["model_version", "features.region"])
    decoder = Decoder(
        schema, ["income", "debt_ratio", "age"], ["region", "channel"], model="credit-risk"
    )
    events = decoder.decode([r.value for r in consume_all(kafka_bootstrap, inference)])
    assert events.rejections == [] and not events.invalid
    assert events.ids == [body["id"]]
    assert events.prediction.tolist() == [pytest.approx(body["probability"])]
    assert events.numeric.tolist() == [[52_000.0, 0.4, 37.0]]
    assert events.segment_keys == ["v3,west"]
    label_decoder = LabelDecoder(LabelsConfig(enabled=True), SchemaConfig())
    outcomes = label_decoder.decode([r.value for r in consume_all(kafka_bootstrap, labels)])
    assert outcomes.rejections == []
    assert outcomes.ids == [body["id"]] and outcomes.label.tolist() == [1.0]
