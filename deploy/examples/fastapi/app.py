"""A toy credit-risk model server that publishes every prediction to driftd.

Run it (``pip install -r requirements.txt`` first, from this folder)::

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 uvicorn app:app --port 8000

``POST /predict`` scores one applicant and publishes the inference event;
``POST /outcome`` publishes the ground truth of an earlier prediction, by its id;
``GET /metrics`` shows the publisher's counters (published, delivered, dropped by
reason) for Prometheus. The publisher never blocks a request: if Kafka is down, the
request is answered as usual and the event is counted as dropped.

Settings come from the environment: ``KAFKA_BOOTSTRAP_SERVERS`` (default
``127.0.0.1:9092``), ``INFERENCE_TOPIC`` (``inference``), ``LABELS_TOPIC``
(``labels``), ``MODEL_NAME`` (``credit-risk``) and ``MODEL_VERSION`` (``v1``).
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, make_asgi_app
from pydantic import BaseModel, Field

from monitor.publish import EventPublisher


class Applicant(BaseModel):
    """What the model scores: the request body of ``/predict``."""

    income: float = Field(gt=0)
    debt_ratio: float = Field(ge=0)
    age: int = Field(ge=18)
    region: Literal["north", "south", "east", "west"]
    channel: Literal["app", "web", "branch"]


class Outcome(BaseModel):
    """The ground truth of an earlier prediction: the request body of ``/outcome``."""

    id: str
    defaulted: bool


def score(applicant: Applicant) -> float:
    """The toy model: a logistic score of the debt ratio, income and age."""
    z = 2.5 * applicant.debt_ratio - applicant.income / 40_000 - (applicant.age - 40) / 30
    return 1 / (1 + math.exp(-z))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One publisher for the process: created at startup, flushed and closed at shutdown."""
    app.state.publisher = EventPublisher(
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        os.environ.get("INFERENCE_TOPIC", "inference"),
        labels_topic=os.environ.get("LABELS_TOPIC", "labels"),
        model=os.environ.get("MODEL_NAME", "credit-risk"),
        model_version=os.environ.get("MODEL_VERSION", "v1"),
        registry=registry,
    )
    yield
    app.state.publisher.close(timeout=5.0)


registry = CollectorRegistry()
app = FastAPI(title="toy credit-risk model", lifespan=lifespan)
app.mount("/metrics", make_asgi_app(registry))


@app.post("/predict")
def predict(applicant: Applicant, request: Request) -> dict[str, str | float]:
    """Score one applicant and publish the event (never waits for Kafka)."""
    probability = score(applicant)
    event_id = request.app.state.publisher.publish(
        applicant.model_dump(), probability, key=applicant.region
    )
    return {"id": event_id, "probability": probability}


@app.post("/outcome")
def outcome(body: Outcome, request: Request) -> dict[str, str]:
    """Publish the ground truth of the prediction ``body.id``."""
    request.app.state.publisher.publish_label(body.id, int(body.defaulted))
    return {"id": body.id}
