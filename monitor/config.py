"""driftd's configuration: parsed here and nowhere else.

A YAML file gives the base values; environment variables prefixed ``DRIFTD_``
override them, with ``__`` between nesting levels (``DRIFTD_WINDOWS__SIZE_EVENTS``).
Every section is a frozen model, handed to the part of the daemon that uses it.
Unknown keys are errors, and so are ``DRIFTD_`` variables that name no setting, so a
typo fails fast instead of being ignored.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import ssl
import string
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from monitor.errors import ConfigError, InvalidConfigError


class Section(BaseModel):
    """Base of every config section: frozen, and strict about unknown keys."""

    # An infinite timeout or interval would quietly disable the thing it bounds.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _topic_name(value: str) -> str:
    """A name Kafka accepts for a topic (else the key is refused at load, not at start)."""
    if not _TOPIC_CHARS.fullmatch(value) or value in {".", ".."}:
        raise ValueError(f"{value!r} is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)")
    return value


TopicName = Annotated[str, AfterValidator(_topic_name)]


class KafkaConfig(Section):
    """Where events come from, and how the consumer behaves."""

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    """Brokers to connect to first, as `host:port`."""
    client: Literal["kafka-python", "confluent"] = "kafka-python"
    """The Kafka client library. `kafka-python`: pure Python, always installed, the reference.
    `confluent`: confluent-kafka (librdkafka, in C), about twice the consume rate; install it
    with `pip install 'driftd[fast]'`. Both commit exactly the checkpointed offsets, save
    before a rebalance takes partitions away, dead-letter with the same headers, and read
    every key below (TLS and SASL included)."""
    topics: list[TopicName] = Field(default_factory=lambda: ["inference"], min_length=1)
    """Topics of inference events. One consumer in group `group_id` reads them all."""
    labels_topic: TopicName | None = None
    """Topic of label events (`{"id", "ts", "label"}`). The same consumer reads it, so its offsets
    are committed together with the state holding its labels. Needs `labels.enabled: true`;
    otherwise its messages are read as inference events and refused. null: no labels.
    """
    group_id: str = "driftd"
    """Consumer group. Replicas in one group share the partitions (see `checkpoint.store: kafka`);
    the group also prefixes the Kafka checkpoint keys.
    """
    client_id: str = "driftd"
    """Client id the consumer and the dead-letter producer report."""
    dead_letter_topic: TopicName | None = "driftd-dead-letter"
    """Where refused messages are written, unchanged, with their reason and origin in headers. null:
    refused messages are only counted and logged.
    """
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a partition starts when neither a checkpoint nor the group has an offset for it."""
    max_poll_records: int = Field(default=5_000, gt=0)
    """Most records one poll returns: the largest batch."""
    poll_timeout_ms: int = Field(default=500, gt=0)
    """How long one poll waits for records. `/healthz` fails once the loop has not come back from a
    poll for max(300 s, 20 times this).
    """
    commit_interval_ms: int = Field(default=1_000, ge=0)
    """Least time between two offset commits. Only offsets whose events are already in a checkpoint
    are committed, so `checkpoint.interval_s` paces commits too.
    """
    fetch_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """Most bytes in one fetch response (`fetch.max.bytes`)."""
    max_partition_fetch_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Most bytes per partition in one fetch (`max.partition.fetch.bytes`)."""
    receive_message_max_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    """Largest response the client accepts; raised on its own to at least `fetch_max_bytes +
    max_partition_fetch_bytes`.
    """
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How to reach the brokers; a SASL protocol needs `sasl_mechanism`."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism; required with `SASL_PLAINTEXT` and `SASL_SSL`. (OAUTHBEARER is not
    offered: it needs a token provider, which driftd has no way to configure.)"""
    sasl_plain_username: str | None = Field(default=None, validate_default=True)
    """SASL user name; required when a SASL protocol uses `PLAIN` or `SCRAM-*`."""
    sasl_plain_password: SecretStr | None = Field(default=None, validate_default=True)
    """SASL password; required when a SASL protocol uses `PLAIN` or `SCRAM-*`. Masked in
    `check-config`, never logged. Give it inline or as `DRIFTD_KAFKA__SASL_PLAIN_PASSWORD`."""
    ssl_cafile: Path | None = None
    """CA bundle (PEM) that verifies the brokers. `check-config` (and `run` with the Kafka
    source) refuses a file that is missing, unreadable or holds no PEM certificate."""
    ssl_certfile: Path | None = None
    """Client certificate (PEM) for mutual TLS, with its key unless `ssl_keyfile` gives it.
    `check-config` (and `run` with the Kafka source) refuses a file that is missing,
    unreadable or does not load with its key."""
    ssl_keyfile: Path | None = None
    """Client key (PEM, not encrypted) for mutual TLS; needs `ssl_certfile`. `check-config`
    (and `run` with the Kafka source) refuses a file that is missing, unreadable or does not
    match the certificate."""
    ssl_check_hostname: bool = True
    """Check that a broker's certificate names its host."""
    session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    """How long the group waits for a silent member before handing its partitions to the
    others (`session.timeout.ms`). It bounds how long a replica restarted after a crash
    waits for its partitions (a clean stop leaves the group at once). The broker must
    allow it (`group.min.session.timeout.ms`, 6 s by default)."""
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    """How often the consumer tells the group it is alive (`heartbeat.interval.ms`); at
    most a third of `session_timeout_ms`."""
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    """Longest time between two polls before the group takes this member's partitions
    away (`max.poll.interval.ms`). It also bounds how long a rebalance waits for members to
    rejoin. Keep it above the slowest batch plus checkpoint."""
    retry_backoff_max_ms: int = Field(default=2_000, ge=100, le=60_000)
    """Longest wait between two attempts to reach the brokers while they are away (poll
    retries and reconnects back off exponentially up to this). With the default, consumption
    resumes within 10 s of the broker coming back."""

    @field_validator("client")
    @classmethod
    def _client_installed(cls, value: str) -> str:
        # Checked by name only: importing librdkafka here would slow every command down.
        if value == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
            raise ValueError(
                "'confluent' needs the confluent-kafka package: pip install 'driftd[fast]'"
            )
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError("sasl_mechanism is required when security_protocol uses SASL")
        return self

    @field_validator("sasl_plain_username", "sasl_plain_password")
    @classmethod
    def _credential_given(cls, value: Any, info: ValidationInfo) -> Any:
        # kafka-python takes a missing one without a word and fails every login later.
        protocol = str(info.data.get("security_protocol", ""))
        mechanism = info.data.get("sasl_mechanism")
        if protocol.startswith("SASL") and mechanism is not None:
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not raw:
                raise ValueError(f"must be set (not empty) with sasl_mechanism {mechanism}")
        return value

    @field_validator("ssl_keyfile")
    @classmethod
    def _key_needs_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        # kafka-python ignores a key without a certificate: no client authentication at all.
        if value is not None and info.data.get("ssl_certfile") is None:
            raise ValueError("needs ssl_certfile (the certificate this key belongs to)")
        return value

    @model_validator(mode="after")
    def _group_timeouts_fit(self) -> KafkaConfig:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "heartbeat_interval_ms must be at most a third of session_timeout_ms "
                f"({self.heartbeat_interval_ms} > {self.session_timeout_ms} / 3)"
            )
        if self.session_timeout_ms > self.max_poll_interval_ms:
            raise ValueError(
                "session_timeout_ms must not exceed max_poll_interval_ms "
                f"({self.session_timeout_ms} > {self.max_poll_interval_ms})"
            )
        return self


class SourceConfig(Section):
    """Which source feeds the pipeline."""

    type: Literal["kafka", "file", "stdin", "demo"] = "kafka"
    """`kafka`: the consumer described under `kafka`. `file`: JSON Lines read from `path`. `stdin`:
    JSON Lines from standard input. `demo`: the built-in simulated stream. Only `kafka` checkpoints
    and commits; the others start from their first line each time.
    """
    path: Path | None = None
    """The JSON Lines file of `type: file` (required there)."""
    batch_size: int = Field(default=5_000, gt=0)
    """Records per batch of the file, stdin and demo sources (Kafka batches are
    `kafka.max_poll_records`).
    """

    @model_validator(mode="after")
    def _file_needs_path(self) -> SourceConfig:
        if self.type == "file" and self.path is None:
            raise ValueError("path is required when type is 'file'")
        return self


class SchemaConfig(Section):
    """Dotted paths into each event (every one configurable)."""

    id: str = "id"
    """Path of the event id: a string (an integer is taken as text), at most 256 characters. Labels
    join their prediction by it.
    """
    timestamp: str = "ts"
    """Path of the event time. Accepted forms: [events.md](events.md#timestamps)."""
    model: str = "model"
    """Path of the model name in the event (see [events.md](events.md#an-inference-event))."""
    features: str = "features"
    """Path of the object holding the features; an event without it is refused (`missing_features`).
    `""`: the features sit at the top level of the event.
    """
    prediction: str = "prediction"
    """Path of the model's output, a number; null or absent counts as missing."""
    label: str = "label"
    """Path of a label inside inference events: decoded but not monitored; ground truth comes from
    `kafka.labels_topic`.
    """
    segment_by: list[str] = Field(default_factory=lambda: ["model_version"])
    """Paths whose values, joined with `,`, name the event's segment (for example
    `features.country`; see [events.md](events.md#segments)). `[]`: one segment.
    """
    numeric: list[str] = Field(default_factory=list)
    """Event feature names monitored as numbers when the reference is learned from warm-up
    traffic, however few warm-up events carry them (a built reference names its own)."""
    categorical: list[str] = Field(default_factory=list)
    """Features that are categorical whatever their values (warm-up references and
    ``driftd reference build``); a warm-up monitors them however few of its events carry
    them. Other types are learned by majority (see events.md)."""
    vector_features: list[str] = Field(default_factory=list)
    """Features whose value is an array of numbers (an embedding, say): ``driftd reference
    build`` fits an embedding model for each, and the daemon reads them where the reference
    has one (see events.md); never numeric or categorical features."""
    min_feature_share: float = Field(default=0.05, gt=0, le=1)
    """A feature name seen in warm-up traffic is monitored only if at least this share of the
    warm-up events carries it with a value (names listed in ``numeric`` or ``categorical``
    always are)."""
    max_features: int = Field(default=1_000, gt=0)
    """Features a warm-up reference monitors at most: past it, the most frequent names win and
    the rest are refused (``over_max_features``)."""
    max_features_per_event: int = Field(default=1_000, gt=0)
    """An event whose features object has more keys than this is refused
    (``too_many_features``) and its names are never counted."""
    max_name_length: int = Field(default=128, gt=0)
    """A feature name longer than this (in characters) is never learned from warm-up traffic
    (``name_too_long``); a longer unexpected name is reported cut to this length."""
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """A message larger than this is refused (``too_large``) before it is parsed."""
    warmup_max_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    """Bytes of raw messages a warm-up holds at most until its reference is built; when they
    are reached first, the reference is built from the events held so far (logged)."""
    rename: dict[str, str] = Field(default_factory=dict)
    """Event feature name -> reference column name, for names that differ between the
    training data and the events (``{car_value: carValue}``)."""
    max_future_seconds: float | None = Field(default=3_600.0, ge=0)
    """An event time further than this ahead of the wall clock is refused
    (``timestamp_out_of_range``). null: no limit."""
    max_past_seconds: float | None = Field(default=30 * 86_400.0, ge=0)
    """An event time further than this behind the wall clock is refused
    (``timestamp_out_of_range``). null: no limit (to replay old data)."""
    strict: bool = False
    """Refuse a whole event (``wrong_type``) for one value of the wrong type in a feature,
    the prediction or the label; by default that value alone becomes missing and is counted."""
    ts_unit: Literal["auto", "s", "ms", "us", "ns"] = "auto"
    """Unit of epoch timestamps (numbers and numeric strings). ``auto`` decides by magnitude:
    below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds."""
    timestamp_source: Literal["event", "kafka"] = "event"
    """Where an event's time comes from: its ``timestamp`` field, or the Kafka record's
    timestamp (the field is then read only for a record without one)."""

    @model_validator(mode="after")
    def _feature_lists_fit(self) -> SchemaConfig:
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"features listed as both numeric and categorical: {both}")
        clash = sorted(set(self.vector_features) & (set(self.numeric) | set(self.categorical)))
        if clash:
            raise ValueError(f"vector_features also listed as numeric or categorical: {clash}")
        listed = len(set(self.numeric) | set(self.categorical))
        if listed > self.max_features:
            raise ValueError(
                f"{listed} features listed in numeric and categorical, "
                f"over max_features {self.max_features}"
            )
        return self


class ReferenceConfig(Section):
    """The reference the windows are compared against: a built profile or a warm-up."""

    path: Path | None = None
    """A reference profile written by `driftd reference build` (JSON). Set exactly one of `path` and
    `warmup_events`.
    """
    warmup_events: int | None = Field(default=None, gt=0)
    """Build the reference from the first this many accepted events instead; each segment with at
    least `windows.min_samples` of them also gets its own. Nothing is evaluated, checkpointed or
    committed before the warm-up completes.
    """

    @model_validator(mode="after")
    def _exactly_one(self) -> ReferenceConfig:
        if (self.path is None) == (self.warmup_events is None):
            raise ValueError("set exactly one of path or warmup_events")
        return self


class WindowsConfig(Section):
    """When a segment's window closes, and whether windows slide."""

    size_events: int | None = Field(default=5_000, gt=0)
    """A segment's window closes at this many events (sliding: its panes at `size_events / panes`,
    rounded up). null: by time only.
    """
    duration_seconds: float | None = Field(default=None, gt=0)
    """A segment's window closes at epoch-aligned event-time boundaries this far apart (sliding:
    panes of `duration_seconds / panes`). null: by count only. With both set, whichever comes
    first closes the window.
    """
    mode: Literal["tumbling", "sliding"] = "tumbling"
    """`tumbling`: windows follow each other without overlap. `sliding`: a window is the last
    `panes` panes, evaluated at every pane close once the ring is full.
    """
    panes: int = Field(default=4, ge=2)
    """Panes per sliding window (unused when tumbling)."""
    min_samples: int = Field(default=500, gt=0)
    """Fewest events a window needs to be tested: a smaller window reports `__window__`/`samples`,
    and a column with fewer values than this skips its distribution tests and reports `samples`.
    """
    allowed_lateness_seconds: float = Field(default=60.0, ge=0)
    """How far behind the stream's event time an event may be and still count in its
    time window. The watermark is the stream's event time minus this; an event whose
    time pane the watermark has passed is late: counted (``driftd_events_late_total``,
    an ``events_late`` log line) and left out of the windows. A quiet segment's time
    window closes once the watermark passes its end."""
    watermark_outliers: int = Field(default=5, ge=0, le=1_000)
    """Events dated ahead of the stream that cannot move its event time: the stream's
    time is the (this + 1)-th highest event time seen, so up to this many outliers at
    once change nothing. 0: the highest time seen."""

    @model_validator(mode="after")
    def _some_trigger(self) -> WindowsConfig:
        if self.size_events is None and self.duration_seconds is None:
            raise ValueError("set size_events, duration_seconds or both")
        return self


class MethodConfig(Section):
    """How one method decides.

    Calibrated (``detectors.thresholds: calibrated``, the default), a window breaches
    when its score exceeds what a stationary window of the same size reaches with
    probability ``detectors.alpha``, and never below ``min_effect``. Fixed, it breaches at
    ``threshold`` and resolves below ``clear`` (KS and chi-square also need
    ``p < detectors.ks_alpha``).
    """

    enabled: bool = True
    """Whether this method's verdicts drive alerts; a disabled method is ignored by the decisions.
    """
    threshold: float = Field(gt=0)
    """Fixed mode, and methods the engine does not calibrate: a window breaches at or above this
    score.
    """
    clear: float = Field(gt=0)
    """Fixed mode, and methods the engine does not calibrate: a firing alert resolves below this
    score. Never above `threshold`.
    """
    min_effect: float = Field(default=0.0, ge=0)
    """Calibrated mode: the smallest score that may breach, however large the window."""
    thresholds: Literal["calibrated", "fixed"] | None = None
    """None: ``detectors.thresholds``."""
    consecutive: int | None = Field(default=None, ge=1)
    """Breaching windows needed to fire; None: ``detectors.consecutive``."""

    @model_validator(mode="after")
    def _hysteresis(self) -> MethodConfig:
        if self.clear > self.threshold:
            raise ValueError("clear must not exceed threshold")
        return self


def _method(
    threshold: float,
    clear: float,
    consecutive: int | None = None,
    min_effect: float = 0.0,
    enabled: bool = True,
) -> Any:
    return Field(
        default_factory=lambda: MethodConfig(
            threshold=threshold,
            clear=clear,
            consecutive=consecutive,
            min_effect=min_effect,
            enabled=enabled,
        )
    )


CALIBRATED_METHODS = (
    "psi",
    "ks",
    "chi2",
    "js",
    "missing",
    "range",
    "unseen",
    "samples",
    "schema",
)
"""The methods the drift engine scores (``detectors.engine``); the others are fixed.

The same tuple as ``detectors.rules.METHODS`` (tests/test_cli_startup.py holds them
equal), written out because importing ``detectors`` loads numpy: validating a config
(``driftd check-config``) needs neither."""


class MultivariateDriftConfig(Section):
    """Multivariate drift: the reconstruction error of a PCA of the reference's numeric
    features, per segment and window.

    A change in how features move together (a correlation that flips while every
    feature's own distribution stays put) shows in no single feature; events off the
    reference's principal subspace raise the window's mean reconstruction error. It runs
    where its inputs exist: two or more numeric features with spread, and a reference
    that carries the fitted PCA (``driftd reference build`` fits it; a warm-up, which
    pools every segment and whatever came first, fits none and the daemon says so). The
    decision is ``detectors.multivariate`` (column ``__multivariate__``).
    """

    enabled: bool = True
    """Score the reconstruction error wherever the reference has a fitted PCA; without one
    the daemon says so at start (log ``multivariate_unmonitored``, gauge
    ``driftd_multivariate_unmonitored``). Off: never."""
    variance_share: float = Field(default=0.9, gt=0, lt=1)
    """Share of the standardised features' variance the principal components keep, when
    the PCA is fitted (``driftd reference build``, a warm-up)."""
    alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    """The chance that a stationary window breaches (two-sided: an error that falls, as
    features lock together, is a change too)."""
    min_samples: int = Field(default=500, ge=2)
    """Events with at least one of the PCA's features a segment window needs before it is
    judged."""


class EmbeddingDriftConfig(Section):
    """Embedding drift: the mean of each vector feature's events, projected to a few
    whitened coordinates, against the reference's (``schema.vector_features``).

    A seeded random projection reduces each vector (64 to 1,024 numbers) to ``dimensions``
    coordinates, whitened on the reference so that they are uncorrelated with unit
    variance there; a window's distance from the reference mean in those coordinates is
    tested with Hotelling's T-squared. Memory per segment depends on ``dimensions``, never
    on the vectors' length. The decision is ``detectors.embedding`` (column: the vector
    feature's name).
    """

    enabled: bool = True
    """Score each vector feature the reference has an embedding model for; a vector feature
    listed in ``schema.vector_features`` without one makes the daemon say so at start (log
    ``embedding_unmonitored``, gauge ``driftd_embedding_unmonitored``). Off: never."""
    dimensions: int = Field(default=32, ge=2, le=256)
    """Coordinates each vector is projected to, when the model is fitted (``driftd
    reference build``)."""
    alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    """The chance that a stationary window breaches."""
    min_samples: int = Field(default=500, ge=2)
    """Valid vectors a segment window needs before it is judged."""


class PerformanceEstimationConfig(Section):
    """Estimated performance before labels (CBPE) of a binary classifier's scores.

    It runs where its inputs exist: the reference carries a score calibration (built from
    training data whose prediction is a probability and whose labels are 0/1). Each event
    window's scores give its expected accuracy, precision, recall, F1 and ROC AUC; the
    ``perf_drop`` decision (column ``prediction``) pages when the chosen ``metric`` falls.
    """

    enabled: bool = True
    """Estimate performance wherever the reference has a calibration; off: never."""
    metric: Literal["accuracy", "precision", "recall", "f1", "roc_auc"] = "accuracy"
    """The metric whose drop pages (every metric is exported)."""
    lower_bound: float | None = Field(default=None, ge=0, le=1)
    """A window breaches when the estimate falls below this, even within sampling error;
    None: only the calibrated drop."""
    alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    """The chance that a window whose true performance did not drop breaches (one-sided)."""
    min_samples: int = Field(default=500, ge=1)
    """Valid scores a segment window needs before its estimate is judged."""


class DetectorsConfig(Section):
    """Which drift methods run, their thresholds, and the decision rules."""

    thresholds: Literal["calibrated", "fixed"] = "calibrated"
    """``calibrated``: each threshold follows the reference and the window's actual size
    (false-breach rate ``alpha`` per decision); ``fixed``: the methods' ``threshold``."""
    alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    """Calibrated mode: the chance that a stationary window breaches one test."""
    clear_ratio: float = Field(default=0.5, gt=0, le=1)
    """Calibrated mode: a firing alert resolves below this share of its threshold."""
    severe_ratio: float = Field(default=3.0, ge=1)
    """A breach this many times its threshold fires at once, without ``consecutive``."""
    psi: MethodConfig = _method(0.25, 0.1, min_effect=0.01)
    """Population stability index on the coarse bins; every column."""
    ks: MethodConfig = _method(0.15, 0.08, min_effect=0.02)
    """Kolmogorov-Smirnov D (its lower bound from the fine grid); numeric columns."""
    chi2: MethodConfig = _method(0.2, 0.1, min_effect=0.03)
    """Cohen's w of the chi-square test on the category table; categorical columns."""
    js: MethodConfig = _method(0.2, 0.1, min_effect=0.02)
    """Jensen-Shannon distance (base 2); categorical columns."""
    missing: MethodConfig = _method(0.1, 0.05, min_effect=0.01)
    """Data quality: the missing share against the reference's (two-proportion test)."""
    range: MethodConfig = _method(0.01, 0.005, min_effect=0.005)
    """Data quality: the share of values outside the reference's observed range."""
    unseen: MethodConfig = _method(0.01, 0.005, min_effect=0.005)
    """Data quality: the share of category values the reference never had."""
    samples: MethodConfig = _method(1.0, 1.0)
    """A column (or, as ``__window__``, a whole segment window) with fewer than
    ``windows.min_samples`` values: it cannot be tested, and that is reported."""
    schema_: MethodConfig = Field(
        default_factory=lambda: MethodConfig(threshold=1.0, clear=0.5, consecutive=1),
        alias="schema",
    )
    """``schema``: a reference column that a whole window does not carry at all (absent from the
    events, or under another name: see ``schema.rename``): it is not monitored, and that
    pages at once (score 1), instead of its ``missing`` and ``samples`` alerts."""
    share: MethodConfig = _method(0.5, 0.25, enabled=False)
    """Dataset drift: the share of a segment's columns drifting in a window
    (``__dataset__``); off by default, a metric either way."""
    adwin: MethodConfig = _method(1.0, 0.5, consecutive=1)
    """Concept drift: fires on an ADWIN detection on the segment's error stream and
    resolves once ``labels.adwin_hold_windows`` performance windows passed without one."""
    fairness: MethodConfig = _method(0.2, 0.1)
    """Fairness gaps (demographic parity, TPR and FPR gaps) between groups."""
    perf_drop: MethodConfig = _method(1.0, 0.5)
    """Estimated performance (column ``prediction``): the drop of the estimate from the
    reference's; its threshold and clear level come from
    ``detectors.performance_estimation`` (``threshold``/``clear`` here are unused)."""
    label_noise: MethodConfig = _method(1.0, 0.5)
    """Label noise (column ``__label__``): the share of joined pairs whose label the model
    confidently disputes; its threshold comes from ``labels.noise`` (``threshold``/``clear``
    here are unused)."""
    segment_mix: MethodConfig = _method(1.0, 0.5)
    """Segment-mix drift (segment ``__all__``, column ``__segments__``): Cohen's w of the
    chi-square of the traffic's split across segments against the reference's; its
    threshold comes from ``segment_mix`` (``threshold``/``clear`` here are unused)."""
    segment_new: MethodConfig = _method(0.01, 0.005, consecutive=1, enabled=False)
    """New segments (segment ``__all__``, column ``__segments__``): the share of a segment-mix
    window's events in segments the reference never saw. Off by default: new segments
    are a metric either way (``driftd_segment_new``); on, a share at or above
    ``threshold`` pages, and the alert resolves below ``clear``."""
    performance_estimation: PerformanceEstimationConfig = Field(
        default_factory=PerformanceEstimationConfig
    )
    """Estimated performance before labels (CBPE)."""
    multivariate: MethodConfig = _method(1.0, 0.5)
    """Multivariate drift (column ``__multivariate__``): the window's mean reconstruction
    error of the reference PCA; its thresholds come from ``detectors.multivariate_drift``
    (``threshold``/``clear`` here are unused)."""
    multivariate_drift: MultivariateDriftConfig = Field(default_factory=MultivariateDriftConfig)
    """Multivariate drift (reference PCA reconstruction error)."""
    embedding: MethodConfig = _method(1.0, 0.5)
    """Embedding drift (column: the vector feature's name): the window mean's distance from
    the reference's in whitened coordinates; its thresholds come from
    ``detectors.embedding_drift`` (``threshold``/``clear`` here are unused)."""
    embedding_drift: EmbeddingDriftConfig = Field(default_factory=EmbeddingDriftConfig)
    """Embedding drift (vector features)."""
    ks_alpha: float = Field(default=0.01, gt=0, lt=1)
    """Fixed mode: KS and chi-square breaches also need ``p < ks_alpha``."""
    psi_smoothing: float = Field(default=0.5, gt=0)
    """Additive smoothing per bin in PSI (and in the top drifting bins of alert details)."""
    consecutive: int = Field(default=2, ge=1)
    """Breaching windows needed, with no clear window between them, before an alert fires; a
    method's own `consecutive` wins.
    """
    fdr: bool = False
    """Benjamini-Hochberg over all of a segment window's tests (columns x methods)."""
    fdr_q: float = Field(default=0.05, gt=0, lt=1)
    """The false-discovery rate Benjamini-Hochberg keeps with `fdr`."""
    overrides: dict[str, dict[str, MethodConfig]] = Field(default_factory=dict)
    """Per column and method, the keys that differ from the method's own settings."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True
    )

    def method(self, name: str) -> MethodConfig | None:
        """The settings of method ``name`` (``schema`` is stored as ``schema_``)."""
        value = getattr(self, "schema_" if name == "schema" else name, None)
        return value if isinstance(value, MethodConfig) else None

    @classmethod
    def _method_fields(cls) -> dict[str, Any]:
        """Method name (as written in YAML) -> its field."""
        return {
            (info.alias or name): info
            for name, info in cls.model_fields.items()
            if info.annotation is MethodConfig
        }

    @model_validator(mode="before")
    @classmethod
    def _partial_methods(cls, data: Any) -> Any:
        """A method given in part keeps its defaults for the rest (``psi: {min_effect: 0}``);
        a per-column override starts from the method's settings."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        fields = cls._method_fields()
        for name, info in fields.items():
            given = out.get(name)
            if isinstance(given, dict):
                base = info.get_default(call_default_factory=True).model_dump()
                out[name] = {**base, **given}
        overrides = out.get("overrides")
        if isinstance(overrides, dict):
            merged: dict[Any, Any] = {}
            for column, per in overrides.items():
                if not isinstance(per, dict):
                    merged[column] = per
                    continue
                merged[column] = {}
                for method, given in per.items():
                    field = fields.get(method) if isinstance(method, str) else None
                    if field is None:
                        known = sorted(fields)
                        raise ValueError(
                            f"overrides.{column}: unknown method {method!r}; known: {known}"
                        )
                    if not isinstance(given, dict):
                        merged[column][method] = given
                        continue
                    base = out.get(method)
                    if isinstance(base, MethodConfig):
                        base = base.model_dump()
                    if not isinstance(base, dict):
                        base = field.get_default(call_default_factory=True).model_dump()
                    merged[column][method] = {**base, **given}
            out["overrides"] = merged
        return out


class SegmentMixConfig(Section):
    """Segment-mix drift: how the model's traffic splits across segments, against the
    reference's split (its ``segments`` mix, recorded by ``driftd reference build`` when the
    training data holds every ``schema.segment_by`` path), and the segments it never saw.

    Every event counts, by its segment key, before the segment table admits it, so
    admission and ``__other__`` do not distort the mix. Each window of ``window_events``
    events (all segments together) is tested with Pearson's chi-square; the decision is
    ``detectors.segment_mix``, that of new segments ``detectors.segment_new``.
    """

    enabled: bool = True
    """Count the mix wherever the reference has one (a warm-up records its own); without one, or
    with ``checkpoint.store: kafka`` (each replica reads only its partitions), the daemon says
    so at start (log ``segment_mix_unavailable``, gauge ``driftd_segment_mix_unavailable``).
    Off: never."""
    alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    """The chance that a window of a stationary mix breaches (the chi-square's p-value)."""
    min_effect: float = Field(default=0.05, ge=0)
    """The smallest Cohen's w that may breach, however large the window (0.1 is a small
    effect in Cohen's terms): a huge window does not page on a tiny change of mix."""
    min_samples: int = Field(default=500, ge=1)
    """Events in the reference's segments a window needs before its mix is judged."""
    window_events: int = Field(default=5_000, ge=1)
    """Events per window: a count of all of the model's events, whatever their segment."""
    max_new_segments: int = Field(default=20, ge=0, le=1_000)
    """New segments named per window at most (``driftd_segment_new{segment}``, in order of
    arrival); ``driftd_segments_new`` counts them all (up to 1,000)."""


class LabelNoiseConfig(Section):
    """The label-noise signal: per segment and performance window, the share of joined pairs
    whose label the model disputes at a confidence above the reference's per-class threshold
    (confident learning). It runs where the reference carries those thresholds; the
    ``label_noise`` decision (column ``__label__``) pages on its rise."""

    enabled: bool = True
    """Compute the share wherever the reference has thresholds; off: never."""
    alpha: float = Field(default=1e-4, gt=0, lt=0.5)
    """The chance that a window as noisy as the reference breaches (one-sided)."""
    min_samples: int = Field(default=200, ge=1)
    """Valid joined pairs a segment window needs before its share is judged."""


class RelabelConfig(Section):
    """The relabel queue: each performance window's most suspicious pairs per segment, written
    as Label Studio import tasks (one JSON object per line), deduplicated by event id."""

    enabled: bool = False
    """Write the queue; needs ``path`` or ``topic`` (and the label-noise signal)."""
    path: Path | None = None
    """File the tasks are appended to (created with mode 0600). Exactly one of ``path`` and
    ``topic``."""
    topic: TopicName | None = None
    """Kafka topic the tasks are produced to instead of a file (key: the event id, value: the
    task's JSON), on the brokers and with the client settings of ``kafka``."""
    top_n: int = Field(default=20, ge=1, le=10_000)
    """Tasks per segment and performance window at most: the pairs with the largest margin."""
    max_tasks: int = Field(default=100_000, ge=1)
    """Tasks the file may hold (on a topic: tasks one process produces; the topic's retention
    bounds what it holds); past it, new tasks are dropped and counted
    (``driftd_relabel_tasks_dropped_total{reason="queue_full"}``) until the file is moved
    (the daemon restarted)."""
    dedup_ids: int = Field(default=100_000, ge=1)
    """Event ids remembered (the most recent, also read back from the file, or from the last
    ``dedup_ids`` records of the topic, at start) so an event is queued once."""
    feature_events: int = Field(default=50_000, ge=0, le=10_000_000)
    """Pending events whose features are kept for their task at most: only those whose
    prediction could make a suspicious pair; the oldest go first when full. 0: tasks carry
    no features."""
    max_features: int = Field(default=64, ge=1, le=10_000)
    """Scalar features copied into a task at most (numeric first, in the decoder's order)."""
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    """With ``topic``: how long one batch's tasks may wait for the broker (connection and
    acknowledgement), and the read-back of ids at start; what is not acknowledged in time is
    dropped and counted (``reason="delivery_failed"``)."""
    from_name: str = Field(default="label", min_length=1)
    """The ``name`` of the Choices tag of the Label Studio labeling config."""
    to_name: str = Field(default="event", min_length=1)
    """The ``name`` of the object tag the Choices refer to (``toName``)."""
    choices: tuple[str, str] = ("0", "1")
    """The Choice values of label 0 and label 1."""

    @model_validator(mode="after")
    def _needs_path(self) -> RelabelConfig:
        if self.path is not None and self.topic is not None:
            raise ValueError("path and topic are both set: the tasks go to one of them")
        if self.enabled and self.path is None and self.topic is None:
            raise ValueError("enabled needs path or topic: where the tasks go")
        return self


class LabelsConfig(Section):
    """Ground truth: the label events, the join to predictions, and what is computed.

    Labels come from ``kafka.labels_topic`` (or the demo's label stream) and are
    joined to their prediction by id.
    """

    enabled: bool = False
    """Read label events, join them to predictions, and compute performance, fairness, label drift
    and concept drift.
    """
    id: str = "id"
    """Path of the id in a label event (the prediction's `schema.id`)."""
    timestamp: str = "ts"
    """Path of the label event's time (same forms as `schema.timestamp`)."""
    label: str = "label"
    """Path of the label: for `binary` 0 or 1 (`true`/`false`, and numeric spellings such as `1.0`
    or `"1"`, read as 0/1); for `regression` a finite number. Any other value is refused
    (`invalid_label`); null or absent is refused (`missing_label`).
    """
    task: Literal["binary", "regression"] = "binary"
    """`binary`: 0/1 labels, the prediction a score compared with `decision_threshold`.
    `regression`: numeric labels and predictions.
    """
    decision_threshold: float = Field(default=0.5, ge=0, le=1)
    """A binary prediction at or above this score is the positive class. `driftd reference
    build` fits the score calibration for it; a reference fitted for another threshold gets
    no estimated performance (`driftd_performance_unmonitored`)."""
    regression_error: Literal["absolute", "squared"] = "absolute"
    """The error of a regression pair: `absolute` or `squared`."""
    ttl_seconds: float = Field(default=7 * 86_400.0, gt=0)
    """How long (event time) a prediction waits for its label, and a label for its prediction."""
    max_pending: int = Field(default=1_000_000, gt=0)
    """Pending predictions kept at most (early labels too, each side apart)."""
    window_pairs: int = Field(default=2_000, gt=0)
    """Joined pairs per segment in one performance window."""
    group_by: str | None = None
    """Dotted path of the fairness group (e.g. ``features.age_band``); None: no fairness."""
    max_groups: int = Field(default=20, ge=2)
    """Fairness groups kept at most; further values share the last one."""
    min_group_size: int = Field(default=30, ge=1)
    """Joined pairs a group needs in a performance window to count in the fairness gaps."""
    adwin_delta: float = Field(default=0.01, gt=0, lt=1)
    """ADWIN's confidence: smaller detects later with fewer false pages. At 0.01 a 10% ->
    16% error change pages about 550 joined pairs after it, with about 0.5 false pages
    per million stationary pairs (river's default 0.002: about 750, and none seen in
    6 million; ``python -m benchmarks.concept_pairs``)."""
    adwin_clock: int = Field(default=32, ge=1)
    """ADWIN looks for a change every this many values."""
    adwin_grace_period: int = Field(default=10, ge=1)
    """Values ADWIN takes before it first looks for a change."""
    adwin_min_window_length: int = Field(default=5, ge=1)
    """Fewest values in either part ADWIN compares."""
    adwin_max_buckets: int = Field(default=5, ge=2)
    """Buckets per level of ADWIN's exponential histogram (memory against precision)."""
    adwin_hold_windows: int = Field(default=5, ge=1)
    """The quiet period of a concept-drift alert, in performance windows. The alert
    fires in the batch of an ADWIN detection; it stays open while a detection lies in
    the segment's last this many performance windows, and resolves at the first
    window close after this many windows without one."""
    noise: LabelNoiseConfig = Field(default_factory=LabelNoiseConfig)
    """The label-noise signal (needs a reference with labels)."""
    relabel: RelabelConfig = Field(default_factory=RelabelConfig)
    """The relabel queue of suspicious labels (Label Studio tasks)."""


class CheckpointConfig(Section):
    """Where and how often the state is saved with its offsets (docs/reliability.md).

    Offsets are committed only after a checkpoint that includes their events, so
    ``interval_s`` is also the commit cadence, and what a crash re-reads at most.
    ``driftd run`` refuses to start (exit 3) when the directory or the topic cannot
    be used; ``driftd check-config`` checks the directory too.
    """

    store: Literal["file", "kafka", "none"] = "file"
    """``file``: the whole state in one local file (one replica). ``kafka``: one slice
    per partition on a compacted topic, so replicas of a group hand partitions over."""
    directory: Path = Path("driftd-state")
    """The ``file`` store's directory (created if missing); its files are private (0600)."""
    topic: str = Field(default="driftd-checkpoints", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    """The ``kafka`` store's compacted topic, created if missing."""
    name: str = Field(default="checkpoint", pattern=r"^[A-Za-z0-9_.-]+$")
    """The ``file`` store's file name: ``<directory>/<name>.ckpt``."""
    interval_s: float = Field(default=10.0, ge=0)
    """Save (and so commit) at most this many seconds apart."""
    interval_batches: int | None = Field(default=None, gt=0)
    """Also save after this many batches (whichever comes first)."""

    @model_validator(mode="after")
    def _topic_is_a_name(self) -> CheckpointConfig:
        if self.topic in {".", ".."}:
            raise ValueError("topic: '.' and '..' are not topic names")
        return self


class JournalConfig(Section):
    """An append-only JSON-lines record of every closed window and transition (audit).

    Created with mode 0600. Each line has a stable ``id``, and a re-run after a crash
    or a restore does not write a line the journal already holds.
    """

    path: Path | None = None
    """JSON Lines file every closed window and alert transition is appended to (created
    0600; an existing file keeps its mode). null: no journal."""


class MetricsConfig(Section):
    """Where /metrics, /healthz and /readyz are served, and how much `/metrics` exports."""

    host: str = "127.0.0.1"
    """Address the HTTP server binds (`0.0.0.0`: every interface)."""
    port: int = Field(default=9108, ge=0, le=65535)
    """Port of `/metrics`, `/healthz` and `/readyz`; 0: any free port."""
    detail: Literal["summary", "full"] = "summary"
    """`summary`: per segment, the worst score over its threshold and the features
    drifting; per feature and method, the same across segments (and the threshold when
    every segment shares it); every firing or pending (segment, feature, method) in full,
    and the `top_k` nearest to paging per segment. Series stay bounded by segments plus
    features x methods (docs/metrics.md). `full`: every (segment, feature, method) with
    its score, thresholds, state and breach streak, and the missing rate of every
    (segment, feature): for a few segments only (about 5 series per segment, feature and
    method)."""
    top_k: int = Field(default=1, ge=0, le=100)
    """`summary` detail: per segment, the (feature, method) pairs with the highest score over
    threshold that are not firing or pending, exported with their score and threshold.
    0: none. Each unit costs two series per segment (2,000 at 1,000 segments)."""
    cache_seconds: float = Field(default=1.0, ge=0, le=60)
    """A rendered `/metrics` answer is served again to scrapes for this long, unless a batch
    was processed since: a scrape is then a copy of bytes, and concurrent scrapes render
    once. 0: render every scrape."""


class SegmentsConfig(Section):
    """The segment table: which segment values get their own segment, and for how long.

    Events whose value has no segment of its own (not yet admitted, table full, value
    too long) count under ``__other__``. Junk values cannot fill the table: a value is
    admitted only after ``admit_after_events`` events, and a segment idle for
    ``idle_seconds`` of event time is evicted, which frees its slot.
    """

    max_segments: int = Field(default=200, ge=1)
    """Segments tracked at most, besides ``__other__``. Events of a value admitted while
    the table is full, and of values longer than 120 characters once escaped, go to
    ``__other__`` and count in ``driftd_segments_overflow_total``."""
    admit_after_events: int = Field(default=10, ge=0)
    """Events of a new segment value counted under ``__other__`` before the value gets a
    segment of its own (they count in ``driftd_segments_unadmitted_events_total``); the
    next event is the segment's first. 0 admits a value at its first event. The
    counts live in a bounded table (``max_candidates``), so a flood of distinct junk
    values neither takes segments nor grows memory."""
    max_candidates: int = Field(default=10_000, ge=1)
    """Values waiting for admission that are counted at most. Past it, every count
    is lowered by the smallest one kept (Misra-Gries), so a value seen once is dropped
    and a value that makes more than one event in ``max_candidates`` of the stream is
    still admitted."""
    idle_seconds: float | None = Field(default=86_400.0, gt=0)
    """A segment without an event for this long in event time is evicted: its windows,
    references, decision states, latest results and metric series are dropped, a
    firing alert of it is resolved, and its slot is free for another value (which
    must be admitted again). Event time is the median timestamp of each poll batch,
    never decreasing, so a replay evicts as the live run did and one odd timestamp
    cannot age every segment. Keep it well above ``schema.max_future_seconds``.
    null: segments are never evicted."""


class LoggingConfig(Section):
    """Log level, and JSON or console output (``auto`` picks by terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe level written."""
    format: Literal["auto", "json", "console"] = "auto"
    """`json`: one JSON object per line. `console`: for people. `auto`: console when standard error
    is a terminal, else JSON.
    """


Severity = Literal["critical", "error", "warning", "info"]
"""PagerDuty Events v2 severities, used by every sink and route."""

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
LINK_FIELDS = frozenset({"model", "segment", "feature", "method", "from_ms", "to_ms"})
"""Placeholders a link template (``grafana_url``) may use."""


class SecretRef(Section):
    """A secret given inline, or read from a file or an environment variable.

    Exactly one of ``value``, ``file`` and ``env`` is set; a plain string in YAML is
    taken as ``value``. The secret is read (and checked to exist) when the config is
    loaded, and again by :meth:`get` when a sink is built, so a rotated file is picked
    up on restart. Dumps show ``value`` masked; ``file`` and ``env`` are only names.
    """

    value: SecretStr | None = None
    """The secret itself (what a plain string in YAML means)."""
    file: Path | None = None
    """A file holding the secret (surrounding whitespace is stripped)."""
    env: str | None = None
    """An environment variable holding the secret."""

    @model_validator(mode="after")
    def _exactly_one_and_readable(self) -> SecretRef:
        given = [x for x in (self.value, self.file, self.env) if x is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of value, file or env")
        self.get()
        return self

    def get(self) -> SecretStr:
        """The secret; ``ValueError`` (naming the file or variable only) if unavailable."""
        if self.value is not None:
            raw = self.value.get_secret_value()
        elif self.file is not None:
            if self.file.exists() and not self.file.is_file():  # /dev/stdin would block
                raise ValueError(f"secret file {self.file} is not a regular file")
            try:
                raw = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from None
        else:
            assert self.env is not None
            raw = os.environ.get(self.env, "").strip()
            if not raw:
                raise ValueError(f"environment variable {self.env} is unset or empty")
        if not raw:
            raise ValueError("secret is empty")
        return SecretStr(raw)


def _secret_from_plain(value: Any) -> Any:
    if isinstance(value, str | SecretStr):
        return {"value": value}
    return value


Secret = Annotated[SecretRef, BeforeValidator(_secret_from_plain)]


def _check_link_template(template: str | None) -> None:
    if template is None:
        return
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in LINK_FIELDS:
            raise ValueError(
                f"unknown placeholder {{{name}}} in link template; use {sorted(LINK_FIELDS)}"
            )
    try:  # a conversion or format spec can still fail; find out now, not at delivery
        template.format_map(dict.fromkeys(LINK_FIELDS, "x"))
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ValueError(f"link template cannot be filled in: {exc!r}") from None


class SinkBase(Section):
    """What every sink has: a unique name that routes refer to."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    """The sink's unique name: routes refer to it, and it is the `sink` label of the alert metrics.
    """


class LogSinkConfig(SinkBase):
    """Alerts written as structlog events (always available, never fails)."""

    type: Literal["log"] = "log"
    """Each alert becomes one structured log line: `alert_trigger` (warning) or `alert_resolve`
    (info).
    """


class PagerDutySinkConfig(SinkBase):
    """PagerDuty Events API v2."""

    type: Literal["pagerduty"] = "pagerduty"
    """PagerDuty Events API v2."""
    routing_key: Secret
    """The integration's routing key."""
    url: str = PAGERDUTY_EVENTS_URL
    """The Events API endpoint (change it for a proxy or a test)."""
    timeout_s: float = Field(default=5.0, gt=0)
    """HTTP timeout of one request."""
    rate_per_minute: float = Field(default=100.0, gt=0, lt=120)
    """Events per minute for this routing key: a token bucket shared by every sink with the same
    key, kept under PagerDuty's limit of 120.
    """
    burst: int = Field(default=10, ge=1)
    """Events the token bucket lets through at once after a lull."""
    source: str = Field(default="driftd", min_length=1)
    """The `payload.source` of every event."""
    grafana_url: str | None = None
    """Templated link, e.g. ``https://grafana/d/x?var-model={model}&from={from_ms}``."""

    @model_validator(mode="after")
    def _template(self) -> PagerDutySinkConfig:
        _check_link_template(self.grafana_url)
        return self


class SlackSinkConfig(SinkBase):
    """A Slack incoming webhook; its URL is a secret."""

    type: Literal["slack"] = "slack"
    """A Slack incoming webhook."""
    url: Secret
    """The incoming-webhook URL (the URL is the credential)."""
    timeout_s: float = Field(default=5.0, gt=0)
    """HTTP timeout of one request."""
    grafana_url: str | None = None
    """Templated link added to each message."""

    @model_validator(mode="after")
    def _template(self) -> SlackSinkConfig:
        _check_link_template(self.grafana_url)
        return self


class WebhookSinkConfig(SinkBase):
    """A generic JSON webhook, optionally signed (``X-Driftd-Signature: t=<unix>,v1=<hex>``)."""

    type: Literal["webhook"] = "webhook"
    """A JSON document POSTed to any URL."""
    url: Secret
    """Where to POST (a secret: such URLs often carry a token)."""
    hmac_secret: Secret | None = None
    """Key that signs each request: ``X-Driftd-Signature: t=<unix>,v1=<hex>``, the
    HMAC-SHA256 of ``"<t>."`` plus the raw body, so receivers can refuse old (replayed)
    requests (see [alerts.md](alerts.md#webhook)). null: unsigned."""
    timeout_s: float = Field(default=5.0, gt=0)
    """HTTP timeout of one request."""


class AlertmanagerSinkConfig(SinkBase):
    """Alertmanager API v2; the URL may carry basic-auth credentials, so it is a secret."""

    type: Literal["alertmanager"] = "alertmanager"
    """Alertmanager API v2 (`POST <url>/api/v2/alerts`)."""
    url: Secret
    """Alertmanager's base URL; it may carry basic-auth credentials (`https://user:pass@host`)."""
    resend_interval_s: float = Field(default=60.0, gt=0)
    """Firing alerts are posted again this often, so Alertmanager keeps them open."""
    expire_after_s: float | None = Field(default=None, gt=0)
    """`endsAt` of a firing alert, from the moment it is posted; null: four resend intervals. Must
    exceed `resend_interval_s`.
    """
    timeout_s: float = Field(default=5.0, gt=0)
    """HTTP timeout of one request."""
    runbook_url: str | None = None
    """Sent as the `runbook_url` annotation."""
    generator_url: str | None = None
    """Sent as each alert's `generatorURL`."""


SinkConfig = Annotated[
    LogSinkConfig
    | PagerDutySinkConfig
    | SlackSinkConfig
    | WebhookSinkConfig
    | AlertmanagerSinkConfig,
    Field(discriminator="type"),
]


def _default_sinks() -> list[SinkConfig]:
    return [LogSinkConfig(name="log")]


class SeverityRule(Section):
    """Severity of the alerts matching every pattern (glob or exact); first match wins."""

    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's model must match."""
    segments: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's segment must match."""
    features: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's feature (column) must match."""
    methods: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's method must match."""
    severity: Severity
    """The severity of the alerts this rule matches."""


class RouteConfig(Section):
    """Alerts matching every pattern (glob or exact) go to ``sinks``.

    Every matching route applies (its sinks are merged) until one with ``stop``.
    ``group_by_segment`` sends one page per (model, segment) for the features that
    fire in one window, the others listed in its details.
    """

    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's model must match."""
    segments: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's segment must match."""
    methods: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's method must match."""
    severities: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Patterns the alert's severity must match."""
    sinks: list[str] = Field(min_length=1)
    """Names of the sinks the matching alerts go to."""
    group_by_segment: bool = False
    """One page per (model, segment) for the features firing in a window, instead of one per feature
    and method. Alertmanager sinks still get one alert per feature.
    """
    stop: bool = False
    """When this route matches, the routes after it are not considered."""


class RetryConfig(Section):
    """Exponential backoff with jitter between attempts on retriable failures."""

    initial_s: float = Field(default=1.0, gt=0)
    """Delay before the first retry."""
    max_s: float = Field(default=60.0, gt=0)
    """Longest delay between two attempts."""
    multiplier: float = Field(default=2.0, ge=1)
    """Each delay is this many times the one before."""
    jitter: float = Field(default=0.5, ge=0, le=1)
    """Each delay is scaled by a uniform factor in ``[1 - jitter, 1]``."""
    max_retry_after_s: float = Field(default=300.0, gt=0)
    """Cap on a server's ``Retry-After``."""


class AlertsConfig(Section):
    """Where decision transitions are delivered. The default only logs them."""

    sinks: list[SinkConfig] = Field(default_factory=_default_sinks)
    """Where alerts can be delivered."""
    routes: list[RouteConfig] = Field(default_factory=lambda: [RouteConfig(sinks=["log"])])
    """Which alerts go to which sinks; every matching route applies until one with `stop`."""
    severity: Severity = "warning"
    """Severity of the alerts no `severity_rules` entry matches."""
    severity_rules: list[SeverityRule] = Field(default_factory=list)
    """Severity by pattern; the first matching rule wins."""
    outbox_capacity: int = Field(default=1_000, ge=1)
    """Actions waiting per sink at most. Beyond it the oldest waiting resolve (else trigger) is
    dropped, logged and counted in `driftd_alerts_dropped_total`.
    """
    retry: RetryConfig = Field(default_factory=RetryConfig)
    """Backoff between delivery attempts."""
    reference_version: str | None = None
    """Reported in alert details; by default the version of the reference in use."""
    shutdown_flush_s: float = Field(default=10.0, ge=0)
    """At shutdown, how long the outbox may keep delivering (and retrying) before the
    actions still queued are counted as abandoned and logged."""

    @model_validator(mode="after")
    def _names(self) -> AlertsConfig:
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate sink names: {dupes}")
        unknown = sorted({n for r in self.routes for n in r.sinks} - set(names))
        if unknown:
            raise ValueError(f"routes name unknown sinks: {unknown}")
        return self


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTD_",
        env_prefix_target="all",  # the prefix applies to aliased fields too (schema)
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    model: str = "default"
    """Name of the monitored model: the `model` label of every metric, part of every alert's dedup
    key and of the checkpoint's identity. One daemon monitors one model.
    """
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    schema_: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    reference: ReferenceConfig = Field(default_factory=lambda: ReferenceConfig(warmup_events=5_000))
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    segment_mix: SegmentMixConfig = Field(default_factory=SegmentMixConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment overrides the YAML file, which is passed in as init values."""
        return _EnvOverrides(settings_cls), init_settings


class _EnvOverrides(EnvSettingsSource):
    """``DRIFTD_`` variables; one that is not valid JSON where JSON belongs names its key."""

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        """The field's value from the environment, or ``InvalidConfigError`` naming the variable."""
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except (ValueError, RecursionError) as exc:
            raise InvalidConfigError(self._unparsable(field_name, field, exc)) from None

    def _unparsable(
        self, field_name: str, field: FieldInfo, exc: BaseException
    ) -> list[ConfigError]:
        delimiter = self.env_nested_delimiter or "__"
        stem = f"{self.env_prefix}{field.alias or field_name}".lower()
        names = sorted(
            name
            for name in self.env_vars
            if name.lower() == stem or name.lower().startswith(stem + delimiter)
        )
        errors = []
        for name in names:
            try:
                json.loads(self.env_vars[name] or "null")
            except (ValueError, RecursionError) as bad:
                key = ".".join(name[len(self.env_prefix) :].lower().split(delimiter))
                why = "nested too deeply" if isinstance(bad, RecursionError) else str(bad)
                errors.append(
                    ConfigError(
                        key, f"environment variable {name.upper()} is not valid JSON: {why}"
                    )
                )
        return errors or [
            ConfigError(
                _dotted((field_name,)),
                f"cannot parse environment override(s) {', '.join(n.upper() for n in names)}: "
                f"{type(exc).__name__}",
            )
        ]


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts = ["schema" if part == "schema_" else str(part) for part in loc]
    return ".".join(parts) or "<root>"


def _read_yaml(path: Path) -> dict[Any, Any]:
    """The mapping a YAML file holds; ``InvalidConfigError`` if it is unreadable or not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfigError([ConfigError("<file>", f"cannot read {path}: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        detail = f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise InvalidConfigError([ConfigError("<file>", detail)]) from None
    try:
        loaded = yaml.safe_load(text)
    except RecursionError:
        detail = f"{path} is not valid YAML: nested too deeply"
        raise InvalidConfigError([ConfigError("<file>", detail)]) from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer too long to convert
        detail = f"{path} is not valid YAML: {exc}"
        raise InvalidConfigError([ConfigError("<file>", detail)]) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidConfigError([ConfigError("<root>", f"{path} must hold a mapping of sections")])
    return loaded


def unreadable_file(path: Path, *, pipes_allowed: bool = False) -> str | None:
    """Why ``path`` cannot be read as a file, or None when it can.

    ``pipes_allowed`` accepts a readable FIFO or device (a replay may read a named
    pipe); it is checked for permission only, since opening it would block until a
    writer comes.
    """
    try:
        if not path.exists():
            return f"{path}: no such file"
        if path.is_dir():
            return f"{path}: is a directory, not a file"
        if path.is_file():
            with path.open("rb"):
                pass
        elif not pipes_allowed:
            return f"{path}: not a regular file"
        elif not os.access(path, os.R_OK):
            return f"{path}: cannot read: permission denied"
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        return f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
    return None


def file_errors(settings: Settings, *, tls: bool, reference: bool = True) -> list[ConfigError]:
    """The files ``settings`` name that cannot be read, each by its key.

    ``reference`` checks ``reference.path`` for reading (``check-config`` loads it as a
    profile instead); ``tls`` checks the Kafka TLS files (:func:`kafka_tls_errors`).
    Secret files were read by :func:`load_settings` already.
    """
    named: list[tuple[str, Path | None, bool]] = [
        ("reference.path", settings.reference.path if reference else None, False),
        (
            "source.path",
            settings.source.path if settings.source.type == "file" else None,
            True,
        ),
    ]
    errors = [
        ConfigError(key, problem)
        for key, path, pipes in named
        if path is not None and (problem := unreadable_file(path, pipes_allowed=pipes))
    ]
    return errors + (kafka_tls_errors(settings.kafka) if tls else [])


def _ssl_reason(exc: ssl.SSLError) -> str:
    """`` (OpenSSL's reason in words)``, or nothing when it gave none."""
    reason = getattr(exc, "reason", None)
    return f" ({reason.replace('_', ' ').lower()})" if isinstance(reason, str) else ""


def kafka_tls_errors(kafka: KafkaConfig) -> list[ConfigError]:
    """The Kafka TLS files that kafka-python could not use, each by its key.

    Each configured file must be readable; ``ssl_cafile`` must hold PEM certificates,
    and ``ssl_certfile`` (with ``ssl_keyfile`` when given) must load as a certificate
    and its unencrypted key. kafka-python reads them only when it connects, where a bad
    file fails every attempt: ``check-config`` and ``run`` call this before anything starts.
    """
    errors: list[ConfigError] = []
    unreadable = {
        key: problem
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
        if (path := getattr(kafka, key)) is not None and (problem := unreadable_file(path))
    }
    errors += [ConfigError(f"kafka.{key}", problem) for key, problem in unreadable.items()]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cafile, certfile, keyfile = kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile
    if cafile is not None and "ssl_cafile" not in unreadable:
        try:
            context.load_verify_locations(cafile=str(cafile))
        except ssl.SSLError as exc:
            detail = f"{cafile}: no PEM certificate in it{_ssl_reason(exc)}"
            errors.append(ConfigError("kafka.ssl_cafile", detail))
    if certfile is None or unreadable.keys() & {"ssl_certfile", "ssl_keyfile"}:
        return errors
    try:
        # A certificate file holds the certificate; loading it as CAs checks just that.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(certfile))
    except ssl.SSLError as exc:
        detail = f"{certfile}: no PEM certificate in it{_ssl_reason(exc)}"
        return [*errors, ConfigError("kafka.ssl_certfile", detail)]
    try:
        # An empty password: an encrypted key fails here instead of prompting on a terminal.
        context.load_cert_chain(
            str(certfile), str(keyfile) if keyfile is not None else None, password=b""
        )
    except ssl.SSLError as exc:
        key = "kafka.ssl_keyfile" if keyfile is not None else "kafka.ssl_certfile"
        where = keyfile if keyfile is not None else certfile
        detail = f"{where}: no unencrypted PEM private key for {certfile}{_ssl_reason(exc)}"
        errors.append(ConfigError(key, detail))
    return errors


def load_settings(path: Path | None = None) -> Settings:
    """Read ``path`` (YAML) plus ``DRIFTD_`` environment overrides.

    Raises ``InvalidConfigError`` listing every bad key, by dotted name.
    """
    loaded = _read_yaml(path) if path is not None else {}
    # Keys go in as keyword arguments: a non-string one cannot, and one starting with "_"
    # would be taken as an option of pydantic-settings itself (``_env_prefix`` ...).
    errors: list[ConfigError] = []
    data: dict[str, Any] = {}
    for key, value in loaded.items():
        if not isinstance(key, str):
            kind = type(key).__name__
            errors.append(ConfigError(str(key), f"section names must be strings, not {kind}"))
        elif key.startswith("_"):
            errors.append(ConfigError(key, "Extra inputs are not permitted"))
        else:
            data[key] = value
    errors += unknown_env_settings(exempt=_secret_env_names(loaded))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        # Our own validators' messages are whole sentences: pydantic's prefix adds nothing.
        errors += [
            ConfigError(_dotted(err["loc"]), err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
    except InvalidConfigError as exc:  # an environment override that does not parse
        errors += exc.errors
    except SettingsError as exc:  # anything else pydantic-settings could not read
        errors.append(ConfigError("<environment>", str(exc)))
    if errors:
        raise InvalidConfigError(errors)
    return settings


def env_settings_given() -> bool:
    """Whether any ``DRIFTD_`` variable is set (the configuration may come from them alone)."""
    prefix = str(Settings.model_config.get("env_prefix", "")).lower()
    return any(name.lower().startswith(prefix) for name in os.environ)


def unknown_env_settings(exempt: frozenset[str] = frozenset()) -> list[ConfigError]:
    """One error per ``DRIFTD_`` variable that names no setting, by variable name.

    pydantic-settings silently ignores a variable whose first part (before ``__``) is not
    a top-level key (``DRIFTD_WINDOW__SIZE_EVENTS``), or that gives keys to a plain value
    (``DRIFTD_MODEL__X``); here both are errors. A typo further down
    (``DRIFTD_WINDOWS__SIZE_EVENT``) already fails validation like an unknown YAML key.
    ``exempt`` names variables the config itself refers to (a secret's ``env:``).
    """
    config = Settings.model_config
    prefix = str(config.get("env_prefix", "")).lower()
    delimiter = str(config.get("env_nested_delimiter") or "__")
    roots = {(info.alias or name).lower(): info for name, info in Settings.model_fields.items()}
    errors: list[ConfigError] = []
    for name in sorted(os.environ):
        lowered = name.lower()
        if not lowered.startswith(prefix) or name in exempt:
            continue
        parts = lowered[len(prefix) :].split(delimiter)
        info = roots.get(parts[0])
        if info is None:
            # DRIFTD_WINDOWS_SIZE_EVENTS: one underscore where the delimiter belongs.
            meant = _split_typo(parts, roots)
            close = difflib.get_close_matches(parts[0], roots, n=1)
            if meant is None and close:
                meant = [close[0], *parts[1:]]
            hint = (
                f" (did you mean {(prefix + delimiter.join(meant)).upper()}?)"
                if meant is not None
                else f" (top-level keys: {', '.join(sorted(roots))})"
            )
        elif len(parts) > 1 and not _is_section(info):
            hint = f" ({parts[0]} is a plain value: {(prefix + parts[0]).upper()})"
        else:
            continue
        # A variable that addresses no key at all (DRIFTD___) is named as it was written.
        key = ".".join(parts) if any(part.strip("_") for part in parts) else name
        errors.append(ConfigError(key, f"unknown setting {name}{hint}"))
    return errors


def _split_typo(parts: list[str], roots: dict[str, FieldInfo]) -> list[str] | None:
    """``windows_size_events`` -> ``[windows, size_events]``: one underscore where the
    delimiter belongs, when what follows is (close to) a key of that section."""
    for root, info in roots.items():
        rest = parts[0].removeprefix(root + "_")
        if rest == parts[0] or not _is_section(info):
            continue
        assert isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        keys = {(f.alias or n).lower() for n, f in info.annotation.model_fields.items()}
        close = difflib.get_close_matches(rest, keys, n=1)
        if close:
            return [root, close[0], *parts[1:]]
    return None


def _is_section(info: FieldInfo) -> bool:
    kind = info.annotation
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _secret_env_names(data: Any) -> frozenset[str]:
    """Variable names a config refers to as ``env:`` (secrets), wherever they sit."""
    found: set[str] = set()
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            env = item.get("env")
            if isinstance(env, str):
                found.add(env)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(found)


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with secrets masked (for check-config and logs)."""
    dumped: dict[str, Any] = settings.model_dump(mode="json", by_alias=True)
    return dumped
