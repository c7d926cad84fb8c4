"""driftd's configuration: parsed here and nowhere else.

A YAML file gives the base values; environment variables prefixed ``DRIFTD_``
override them, with ``__`` between nesting levels (``DRIFTD_WINDOWS__SIZE_EVENTS``).
Every section is a frozen model, handed to the part of the daemon that uses it.
Unknown keys are errors, so a typo fails fast instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.errors import ConfigError, InvalidConfigError


class Section(BaseModel):
    """Base of every config section: frozen, and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaConfig(Section):
    """Where events come from, and how the consumer behaves."""

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    topics: list[str] = Field(default_factory=lambda: ["inference"], min_length=1)
    labels_topic: str | None = None
    group_id: str = "driftd"
    client_id: str = "driftd"
    dead_letter_topic: str | None = "driftd-dead-letter"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(default=5_000, gt=0)
    poll_timeout_ms: int = Field(default=500, gt=0)
    commit_interval_ms: int = Field(default=1_000, ge=0)
    fetch_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_partition_fetch_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    receive_message_max_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError("sasl_mechanism is required when security_protocol uses SASL")
        return self


class SourceConfig(Section):
    """Which source feeds the pipeline."""

    type: Literal["kafka", "file", "stdin", "demo"] = "kafka"
    path: Path | None = None
    batch_size: int = Field(default=5_000, gt=0)

    @model_validator(mode="after")
    def _file_needs_path(self) -> SourceConfig:
        if self.type == "file" and self.path is None:
            raise ValueError("path is required when type is 'file'")
        return self


class SchemaConfig(Section):
    """Dotted paths into each event (every one configurable)."""

    id: str = "id"
    timestamp: str = "ts"
    model: str = "model"
    features: str = "features"
    prediction: str = "prediction"
    label: str = "label"
    segment_by: list[str] = Field(default_factory=lambda: ["model_version"])
    categorical: list[str] = Field(default_factory=list)
    max_future_seconds: float = Field(default=3_600.0, ge=0)
    max_past_seconds: float = Field(default=30 * 86_400.0, ge=0)


class ReferenceConfig(Section):
    """The reference the windows are compared against: a built profile or a warm-up."""

    path: Path | None = None
    warmup_events: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> ReferenceConfig:
        if (self.path is None) == (self.warmup_events is None):
            raise ValueError("set exactly one of path or warmup_events")
        return self


class WindowsConfig(Section):
    """When a segment's window closes, and whether windows slide."""

    size_events: int | None = Field(default=5_000, gt=0)
    duration_seconds: float | None = Field(default=None, gt=0)
    mode: Literal["tumbling", "sliding"] = "tumbling"
    panes: int = Field(default=4, ge=2)
    min_samples: int = Field(default=500, gt=0)

    @model_validator(mode="after")
    def _some_trigger(self) -> WindowsConfig:
        if self.size_events is None and self.duration_seconds is None:
            raise ValueError("set size_events, duration_seconds or both")
        return self


class MethodConfig(Section):
    """Thresholds of one method: alert above ``threshold``, clear below ``clear``."""

    enabled: bool = True
    threshold: float = Field(gt=0)
    clear: float = Field(gt=0)

    @model_validator(mode="after")
    def _hysteresis(self) -> MethodConfig:
        if self.clear > self.threshold:
            raise ValueError("clear must not exceed threshold")
        return self


def _method(threshold: float, clear: float) -> Any:
    return Field(default_factory=lambda: MethodConfig(threshold=threshold, clear=clear))


class DetectorsConfig(Section):
    """Which drift methods run, their thresholds, and the decision rules."""

    psi: MethodConfig = _method(0.25, 0.1)
    ks: MethodConfig = _method(0.15, 0.08)
    chi2: MethodConfig = _method(0.2, 0.1)
    js: MethodConfig = _method(0.2, 0.1)
    ks_alpha: float = Field(default=0.01, gt=0, lt=1)
    psi_smoothing: float = Field(default=0.5, gt=0)
    consecutive: int = Field(default=2, ge=1)
    fdr: bool = False
    fdr_q: float = Field(default=0.05, gt=0, lt=1)
    overrides: dict[str, dict[str, MethodConfig]] = Field(default_factory=dict)


class MetricsConfig(Section):
    """Where /metrics, /healthz and /readyz are served."""

    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class SegmentsConfig(Section):
    """The segment table's cap: values beyond it go to ``__other__``."""

    max_segments: int = Field(default=200, ge=1)


class LoggingConfig(Section):
    """Log level, and JSON or console output (``auto`` picks by terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    model: str = "default"
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    schema_: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    reference: ReferenceConfig = Field(default_factory=lambda: ReferenceConfig(warmup_events=5_000))
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

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
        return env_settings, init_settings


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts = ["schema" if part == "schema_" else str(part) for part in loc]
    return ".".join(parts) or "<root>"


def load_settings(path: Path | None = None) -> Settings:
    """Read ``path`` (YAML) plus ``DRIFTD_`` environment overrides.

    Raises ``InvalidConfigError`` listing every bad key, by dotted name.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidConfigError([ConfigError("<file>", f"cannot read {path}: {exc}")]) from exc
        except yaml.YAMLError as exc:
            raise InvalidConfigError(
                [ConfigError("<file>", f"{path} is not valid YAML: {exc}")]
            ) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise InvalidConfigError(
                [ConfigError("<root>", f"{path} must hold a mapping of sections")]
            )
        data = loaded
    try:
        return Settings(**data)
    except ValidationError as exc:
        errors = [ConfigError(_dotted(err["loc"]), err["msg"]) for err in exc.errors()]
        raise InvalidConfigError(errors) from exc


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with secrets masked (for check-config and logs)."""
    dumped: dict[str, Any] = settings.model_dump(mode="json", by_alias=True)
    return dumped
