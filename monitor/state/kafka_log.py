"""The record layout of the Kafka checkpoint topic, and reading it back (for ``kafka_store``).

Keys (UTF-8):

* ``<group_id>/<topic>/<partition>``: the manifest of one source partition's
  checkpoint, a small JSON object (``Manifest``);
* ``<group_id>/<topic>/<partition>#<generation>#<index>``: chunk ``index`` of
  that checkpoint's generation ``generation``.

A manifest key always ends in ``/<digits>`` and a chunk key in
``#<digits>#<digits>``, so the two never collide whatever the group id holds.
A record with a null value is a tombstone: the key is deleted.

``read_snapshot`` reads partitions of the topic from the beginning up to the end
offsets it captured first, and returns, per checkpoint key of one group, the
latest manifest, the chunks still alive, and (for the keys asked for) their
bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.kafka.api import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
    kafka_errors,
)

log = structlog.get_logger()

__all__ = [
    "MANIFEST_FORMAT",
    "ChunksMismatchError",
    "ChunksMissingError",
    "KeyState",
    "Manifest",
    "Snapshot",
    "belongs_to",
    "chunk_key",
    "client_settings",
    "ensure_topic",
    "parse_key",
    "read_snapshot",
]

MANIFEST_FORMAT = "driftd-checkpoint-manifest/1"

_CLIENT_ID = "driftd-checkpoint"
_HEADROOM = 64 * 1024
_MIB = 1024 * 1024


class ChunksMissingError(ValueError):
    """Some chunk a manifest names is not (or no longer) in the topic."""


class ChunksMismatchError(ValueError):
    """The chunks are there, but their concatenation is not what the manifest describes."""


@dataclass(frozen=True)
class Manifest:
    """Names the chunks of one checkpoint generation and how to check their concatenation."""

    generation: int
    chunks: int
    size: int
    sha256: str

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "generation": self.generation,
                "chunks": self.chunks,
                "size": self.size,
                "sha256": self.sha256,
                "written_at": time.time(),
            },
            separators=(",", ":"),
        ).encode("ascii")

    @classmethod
    def decode(cls, value: bytes) -> Manifest:
        """Parse a manifest record; raises ``ValueError`` when it is not one."""
        data = json.loads(value)
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ValueError("not a driftd checkpoint manifest")
        numbers: list[Any] = [data.get(name) for name in ("generation", "chunks", "size")]
        digest = data.get("sha256")
        if not all(type(n) is int and n >= 0 for n in numbers) or not isinstance(digest, str):
            raise ValueError("manifest fields missing or of the wrong type")
        generation, chunks, size = numbers
        return cls(generation=generation, chunks=chunks, size=size, sha256=digest)

    def assemble(self, chunks: dict[tuple[int, int], bytes]) -> bytes:
        """The blob from ``chunks[(generation, index)]``.

        Raises ``ChunksMissingError`` or ``ChunksMismatchError`` (size or SHA-256).
        """
        missing = [i for i in range(self.chunks) if (self.generation, i) not in chunks]
        if missing:
            raise ChunksMissingError(
                f"generation {self.generation}: {len(missing)} of {self.chunks} chunks missing"
            )
        blob = b"".join(chunks[(self.generation, i)] for i in range(self.chunks))
        if len(blob) != self.size:
            raise ChunksMismatchError(
                f"generation {self.generation}: {len(blob)} bytes, manifest says {self.size}"
            )
        if hashlib.sha256(blob).hexdigest() != self.sha256:
            raise ChunksMismatchError(f"generation {self.generation}: SHA-256 mismatch")
        return blob


def chunk_key(key: str, generation: int, index: int) -> str:
    return f"{key}#{generation}#{index}"


def parse_key(raw: bytes) -> tuple[str, int | None, int | None]:
    """(checkpoint key, generation, index) of a chunk key, (key, None, None) of a manifest key."""
    key = raw.decode("utf-8", "replace")
    head, sep, index = key.rpartition("#")
    if sep and index.isascii() and index.isdigit():
        base, sep, generation = head.rpartition("#")
        if sep and generation.isascii() and generation.isdigit():
            return base, int(generation), int(index)
    return key, None, None


@dataclass
class KeyState:
    """What the log says about one checkpoint key (plus what this process wrote to it)."""

    live: dict[int, set[int]] = field(default_factory=dict)
    """Chunk indices not tombstoned, by generation."""
    named: set[int] = field(default_factory=set)
    """Generations some manifest named: their chunks may go once a newer manifest is acked."""
    own: set[int] = field(default_factory=set)
    """Generations this process wrote (a failed save leaves them behind)."""
    manifest: bytes | None = None
    """The latest manifest record's value (None if none or tombstoned)."""

    @property
    def latest_generation(self) -> int:
        return max([*self.live, *self.named, *self.own], default=0)

    def prune(self, current: int | None) -> None:
        """Forget generations with nothing left in the log (all but ``current``)."""
        keep = {*self.live} if current is None else {current, *self.live}
        self.named &= keep
        self.own &= keep

    def manifest_generation(self) -> int | None:
        """The generation the latest manifest names (None if none, or unreadable)."""
        if self.manifest is None:
            return None
        try:
            return Manifest.decode(self.manifest).generation
        except ValueError:
            return None


@dataclass
class Snapshot:
    """The checkpoint keys of one group found in some partitions of the topic."""

    keys: dict[str, KeyState] = field(default_factory=dict)
    chunks: dict[str, dict[tuple[int, int], bytes]] = field(default_factory=dict)
    """Chunk bytes by (generation, index), only for the keys that were asked for."""

    def apply(self, raw_key: bytes, value: bytes | None, wanted: Collection[str]) -> None:
        """Fold one record, in log order, into the snapshot."""
        key, generation, index = parse_key(raw_key)
        state = self.keys.setdefault(key, KeyState())
        if generation is None or index is None:
            state.manifest = value
            if value is not None:
                with suppress(ValueError):
                    state.named.add(Manifest.decode(value).generation)
            return
        chunks = self.chunks.setdefault(key, {}) if key in wanted else None
        if value is None:
            alive = state.live.get(generation)
            if alive is not None:
                alive.discard(index)
                if not alive:
                    del state.live[generation]
            if chunks is not None:
                chunks.pop((generation, index), None)
        else:
            state.live.setdefault(generation, set()).add(index)
            if chunks is not None:
                chunks[(generation, index)] = value


def belongs_to(key: str, group_id: str) -> bool:
    """Whether ``key`` is a checkpoint key of ``group_id`` (``<group>/<topic>/<partition>``)."""
    group, sep, rest = key.rpartition("/")
    if not sep or not (rest.isascii() and rest.isdigit()):
        return False
    group, sep, topic = group.rpartition("/")
    return bool(sep) and bool(topic) and group == group_id


def read_snapshot(
    consumer: Any,
    topic: str,
    partitions: Sequence[int],
    group_id: str,
    wanted: Collection[str],
    deadline: float,
) -> Snapshot:
    """Read ``partitions`` of ``topic`` from the beginning to the end offsets captured first.

    Raises ``TimeoutError`` when the end is not reached by ``deadline`` (monotonic).
    """
    tps = [TopicPartition(topic, p) for p in partitions]
    snapshot = Snapshot()
    if not tps:
        return snapshot
    consumer.assign(tps)
    end = {tp: int(o) for tp, o in consumer.end_offsets(tps, timeout_ms=_ms_left(deadline)).items()}
    consumer.seek_to_beginning(*tps)

    def behind(tp: Any) -> bool:
        position = consumer.position(tp, timeout_ms=_ms_left(deadline))
        return position is None or int(position) < end[tp]

    pending = {tp for tp in tps if end.get(tp, 0) > 0 and behind(tp)}
    while pending:
        if time.monotonic() >= deadline:
            names = sorted(tp.partition for tp in pending)
            raise TimeoutError(f"partitions {names} of {topic!r} not read to their end in time")
        batches = consumer.poll(timeout_ms=min(500, _ms_left(deadline)))
        for tp, records in batches.items():
            limit = end[tp]
            for record in records:
                if record.offset >= limit or record.key is None:
                    continue
                key = parse_key(record.key)[0]
                if belongs_to(key, group_id):
                    snapshot.apply(record.key, record.value, wanted)
        pending = {tp for tp in pending if behind(tp)}
    return snapshot


def _ms_left(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))


def ensure_topic(
    admin: Any,
    topic: str,
    *,
    create: bool,
    partitions: int,
    replication_factor: int,
    timeout_ms: int,
) -> int:
    """Create ``topic`` compacted if ``create`` and it is missing; return its partition count.

    Raises ``LookupError`` if it is missing and may not be created, or is not compacted.
    """
    described = admin.describe_topics([topic])
    exists = bool(described) and described[0].get("error_code") == 0
    if not exists and not create:
        raise LookupError("topic does not exist")
    if not exists:
        spec = {
            "num_partitions": partitions,
            "replication_factor": replication_factor,
            "configs": {"cleanup.policy": "compact"},
        }
        try:
            admin.create_topics({topic: spec}, timeout_ms=timeout_ms)
            log.info("checkpoint_topic_created", topic=topic)
        except kafka_errors.TopicAlreadyExistsError:
            pass  # another replica was quicker
    admin.wait_for_topics([topic], timeout_ms=timeout_ms)
    described = admin.describe_topics([topic])
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, ["cleanup.policy"])
    configs = admin.describe_configs([resource], config_filter="all")
    entry = configs.get("topic", {}).get(topic, {}).get("cleanup.policy", {})
    policy = str(entry.get("value", ""))
    if "compact" not in policy:
        raise LookupError(
            f"cleanup.policy is {policy!r}: a checkpoint topic must be compacted, "
            "or retention deletes the checkpoints of idle partitions"
        )
    if "delete" in policy:
        log.warning("checkpoint_topic_retention", topic=topic, policy=policy)
    return len(described[0]["partitions"])


def _known_settings(cls: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``client_kwargs`` this client type takes (unknown to every client: kept, so
    that kafka-python refuses the typo)."""
    known = set(KafkaProducer.DEFAULT_CONFIG) | set(KafkaConsumer.DEFAULT_CONFIG)
    known |= set(KafkaAdminClient.DEFAULT_CONFIG)
    return {k: v for k, v in kwargs.items() if k in cls.DEFAULT_CONFIG or k not in known}


def client_settings(
    cls: Any, servers: list[str], kwargs: Mapping[str, Any], timeout_s: float, chunk_bytes: int
) -> dict[str, Any]:
    """Settings for a checkpoint-store client of type ``cls`` (holds secrets: never log)."""
    settings: dict[str, Any] = {
        "bootstrap_servers": servers,
        "client_id": _CLIENT_ID,
        "request_timeout_ms": max(1000, int(timeout_s * 500)),
        "bootstrap_timeout_ms": max(1000, int(timeout_s * 1000)),
    }
    settings.update(_known_settings(cls, kwargs))
    if cls is KafkaConsumer:
        fetch = max(4 * _MIB, chunk_bytes + _HEADROOM)
        settings.update(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(settings.get("max_partition_fetch_bytes", 0), fetch),
        )
    elif cls is KafkaProducer:
        settings.update(
            acks="all",
            # Duplicates are harmless here (same key, same value), and each phase
            # is flushed before the next, so ordering needs no idempotence.
            enable_idempotence=False,
            max_block_ms=int(timeout_s * 1000),
            delivery_timeout_ms=max(settings["request_timeout_ms"] + 5, int(timeout_s * 1000)),
            max_request_size=max(_MIB, chunk_bytes + _HEADROOM),
            compression_type=None,  # checkpoint blobs are compressed already
        )
    return settings
