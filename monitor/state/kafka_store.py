"""A checkpoint store on a compacted Kafka topic: one blob per source partition.

Any replica of the consumer group can load what another saved, so a partition's
state follows the partition through a rebalance.

Saving (``save``), for each source partition ``(topic, partition)`` of group
``group_id``, with a new generation number (microseconds since the epoch, and
above any generation seen for that key):

1. the blob is cut into chunks of at most ``chunk_bytes`` (Kafka refuses
   records over ~1 MB by default) written under
   ``<group_id>/<topic>/<partition>#<generation>#<i>``; every one must be
   acknowledged (``acks=all``);
2. then a small manifest goes under ``<group_id>/<topic>/<partition>``: the
   generation, the chunk count, the total size and the blob's SHA-256;
3. once the manifest is acknowledged, the chunks it supersedes are tombstoned.
   Only generations a manifest named, generations this process wrote, and
   orphans older than ``orphan_grace_s`` are tombstoned: the chunks of another
   replica's save in flight are left alone. A tombstone that fails is retried at
   the next save; it never fails the save, whose manifest is already durable.

All records of one key go to the same partition of the checkpoint topic (CRC-32
of the key), so log order is the order they were written in.

Loading (``load``) reads the partitions that hold the keys asked for, from the
beginning up to the end offsets captured first, keeps the latest manifest per
key and the chunks not tombstoned, and returns a blob only if all its chunks are
there and their concatenation matches the manifest's size and SHA-256.

The topic is created if missing (``cleanup.policy=compact``, one partition by
default); an existing topic that is not compacted is refused, since retention
would delete checkpoints of idle partitions. Do not add partitions to it
later: keys would move to other partitions. Every failure raises a
``CheckpointError`` subclass; ``client_kwargs`` (security settings and the
like) go to every client and never into a log line.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import structlog

from monitor.errors import CheckpointCorruptError, CheckpointStorageError
from monitor.kafka.api import KafkaAdminClient, KafkaConsumer, KafkaProducer, kafka_errors
from monitor.kafka.clients import build_client, close_quietly
from monitor.state.kafka_log import (
    ChunksMismatchError,
    ChunksMissingError,
    KeyState,
    Manifest,
    Snapshot,
    belongs_to,
    chunk_key,
    client_settings,
    ensure_topic,
    read_snapshot,
)

__all__ = ["DEFAULT_CHUNK_BYTES", "KafkaCheckpointStore"]

log = structlog.get_logger()

DEFAULT_CHUNK_BYTES = 768 * 1024
"""Chunk size: well under Kafka's default 1 MiB record limit (``max.message.bytes``)."""

_MIN_CHUNK_BYTES = 1024
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_CONNECT_TIMEOUT_S = 5.0

TP = tuple[str, int]
_REASONS: dict[type[Exception], str] = {
    ChunksMissingError: "missing_chunks",
    ChunksMismatchError: "checksum",
}
_T = TypeVar("_T")


def _failure(future: Any) -> str | None:
    """Why a send future failed, or None once acknowledged."""
    if not future.is_done:
        return "not acknowledged in time"
    exc = future.exception
    return None if exc is None else f"{type(exc).__name__}: {exc}"


class KafkaCheckpointStore:
    """Per-partition checkpoint blobs on a compacted topic (see the module doc)."""

    def __init__(
        self,
        bootstrap_servers: list[str],
        topic: str,
        group_id: str,
        *,
        create_topic: bool = True,
        client_kwargs: Mapping[str, Any] | None = None,
        timeout_s: float = 30.0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        partitions: int = 1,
        replication_factor: int = -1,
        orphan_grace_s: float = 3600.0,
    ) -> None:
        if not bootstrap_servers:
            raise ValueError("bootstrap_servers is empty")
        if not _TOPIC.fullmatch(topic) or topic in {".", ".."}:
            raise ValueError(f"{topic!r} is not a valid topic name")
        if not group_id:
            raise ValueError("group_id is empty")
        if chunk_bytes < _MIN_CHUNK_BYTES or timeout_s <= 0 or partitions < 1:
            raise ValueError("chunk_bytes >= 1024, timeout_s > 0 and partitions >= 1 required")
        self.topic = topic
        self.group_id = group_id
        self.location = f"kafka:{topic}"
        self._servers = list(bootstrap_servers)
        self._create = create_topic
        self._kwargs = dict(client_kwargs or {})
        self._timeout_s = timeout_s
        self._chunk_bytes = chunk_bytes
        self._new_partitions = partitions
        self._replication = replication_factor
        self._grace_us = int(orphan_grace_s * 1_000_000)
        self._lock = threading.Lock()
        self._closed = False
        self._producer: Any = None
        self._n_partitions: int | None = None
        self._keys: dict[str, KeyState] = {}
        self._scanned: set[int] = set()

    # ---------------------------------------------------------------- public

    def save(self, blobs: Mapping[TP, bytes]) -> None:
        """Write one blob per source partition (see the module doc), durably.

        Raises ``CheckpointStorageError`` naming the partitions whose chunks or
        manifest were not acknowledged: their last good checkpoint stays the one
        ``load`` returns. The other partitions of the call are saved all the same.
        """
        items = [(self._key(tp), tp, bytes(blob)) for tp, blob in blobs.items()]
        if not items:
            return
        with self._lock:
            self._guard("save", lambda: self._save(items))

    def load(self, partitions: Iterable[TP], *, skip_invalid: bool = False) -> dict[TP, bytes]:
        """The latest sound blob of each source partition that has one.

        A partition whose latest manifest names missing chunks or does not match
        them raises ``CheckpointCorruptError`` (``reason`` ``missing_chunks`` or
        ``checksum``), or, with ``skip_invalid``, is logged and left out.
        """
        wanted = {self._key(tp): tp for tp in partitions}
        if not wanted:
            return {}
        with self._lock:
            return self._guard("load", lambda: self._load(wanted, skip_invalid))

    def probe(self) -> bool:
        """Make sure the topic exists (created if allowed), is compacted and can be read.

        Called at start, so that a topic the broker refuses stops the daemon before it
        reports ready, instead of failing the first rebalance. Raises
        ``CheckpointStorageError`` when the broker said no. Returns False, and logs,
        when no broker answered: an outage at start is waited out like any other, and
        the topic is then checked at first use. Reading every partition once also
        spares the first ``save`` that scan.
        """
        with self._lock:
            try:
                self._guard("probe", self._probe)
            except CheckpointStorageError as exc:
                cause = exc.__cause__
                if isinstance(cause, OSError | TimeoutError) or getattr(cause, "retriable", False):
                    log.warning("checkpoint_topic_unchecked", topic=self.topic, error=str(exc))
                    return False
                raise
        return True

    def _probe(self) -> None:
        self._ensure_topic()
        assert self._n_partitions is not None
        self._scan(list(range(self._n_partitions)), {})

    def remove(self, partitions: Iterable[TP]) -> None:
        """Delete the checkpoints of these source partitions (to start them fresh)."""
        keys = [self._key(tp) for tp in partitions]
        if not keys:
            return
        with self._lock:
            self._guard("remove", lambda: self._remove(keys))

    def close(self) -> None:
        """Flush and close the producer; the store cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=self._timeout_s)
            except Exception as exc:
                log.warning("checkpoint_producer_close_failed", error=str(exc))

    # ------------------------------------------------------------------ save

    def _save(self, items: list[tuple[str, TP, bytes]]) -> None:
        producer = self._ensure_producer()
        try:
            self._write(producer, items)
        except BaseException:
            # Records of a failed save may still sit in the producer and arrive after
            # the next save's tombstones; a fresh producer cannot deliver them late.
            self._discard_producer()
            raise

    def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        close_quietly(producer, "checkpoint_producer_close_failed")

    def _write(self, producer: Any, items: list[tuple[str, TP, bytes]]) -> None:
        self._ensure_scanned([key for key, _, _ in items])
        now_us = time.time_ns() // 1000
        sent: list[tuple[str, TP, Manifest, list[Any]]] = []
        for key, tp, blob in items:
            state = self._keys.setdefault(key, KeyState())
            generation = max(now_us, state.latest_generation + 1)
            pieces = [
                blob[i : i + self._chunk_bytes] for i in range(0, len(blob), self._chunk_bytes)
            ]
            digest = hashlib.sha256(blob).hexdigest()
            manifest = Manifest(generation, len(pieces), len(blob), digest)
            state.own.add(generation)
            if pieces:
                state.live[generation] = set(range(len(pieces)))
            futures = [
                self._send(producer, key, piece, chunk=(generation, i))
                for i, piece in enumerate(pieces)
            ]
            sent.append((key, tp, manifest, futures))
        self._flush(producer)
        failed = {tp: e for _, tp, _, fs in sent for e in map(_failure, fs) if e is not None}
        manifests = [
            (key, tp, manifest, self._send(producer, key, manifest.encode()))
            for key, tp, manifest, _ in sent
            if tp not in failed
        ]
        self._flush(producer)
        saved: list[tuple[str, int]] = []
        for key, tp, manifest, future in manifests:
            error = _failure(future)
            if error is None:
                self._keys[key].named.add(manifest.generation)
                saved.append((key, manifest.generation))
            else:
                failed[tp] = error
        self._tombstone_superseded(producer, saved, now_us)
        log.debug("checkpoint_saved", topic=self.topic, saved=len(saved), failed=len(failed))
        if failed:
            names = ", ".join(f"{t}[{p}]" for t, p in sorted(failed))
            first = next(iter(failed.values()))
            raise CheckpointStorageError(
                self.location, f"checkpoint of {names} not acknowledged: {first}"
            )

    def _tombstone_superseded(
        self, producer: Any, saved: list[tuple[str, int]], now_us: int
    ) -> None:
        doomed: list[tuple[str, int, int, Any]] = []
        for key, current in saved:
            state = self._keys[key]
            for generation, indices in state.live.items():
                if generation == current:
                    continue
                stale = generation < now_us - self._grace_us
                if generation in state.named or generation in state.own or stale:
                    doomed.extend(
                        (key, generation, i, self._send(producer, key, chunk=(generation, i)))
                        for i in sorted(indices)
                    )
        failures = 0
        if doomed:
            self._flush(producer, raising=False)
        for key, generation, index, future in doomed:
            if _failure(future) is not None:
                failures += 1
                continue
            alive = self._keys[key].live.get(generation)
            if alive is not None:
                alive.discard(index)
                if not alive:
                    del self._keys[key].live[generation]
        for key, current in saved:
            self._keys[key].prune(current)
        if failures:
            log.warning("checkpoint_tombstones_failed", topic=self.topic, count=failures)

    def _send(
        self,
        producer: Any,
        key: str,
        value: bytes | None = None,
        *,
        chunk: tuple[int, int] | None = None,
    ) -> Any:
        """Send a record of checkpoint ``key`` (its manifest, or one of its chunks) to the
        partition every record of ``key`` goes to; a None value is a tombstone."""
        record_key = key if chunk is None else chunk_key(key, *chunk)
        return producer.send(
            self.topic,
            key=record_key.encode("utf-8"),
            value=value,
            partition=self._partition(key),
        )

    def _flush(self, producer: Any, *, raising: bool = True) -> None:
        try:
            producer.flush(timeout=self._timeout_s)
        except kafka_errors.KafkaTimeoutError:
            if raising:
                raise

    # ------------------------------------------------------------------ load

    def _load(self, wanted: dict[str, TP], skip_invalid: bool) -> dict[TP, bytes]:
        self._ensure_topic()
        snapshot = self._scan(sorted({self._partition(key) for key in wanted}), wanted)
        found: dict[TP, bytes] = {}
        for key, tp in wanted.items():
            state = snapshot.keys.get(key)
            if state is None or state.manifest is None:
                continue
            try:
                manifest = Manifest.decode(state.manifest)
                blob = manifest.assemble(snapshot.chunks.get(key, {}))
            except ValueError as exc:
                reason = _REASONS.get(type(exc), "malformed")
                message = f"checkpoint of {tp[0]}[{tp[1]}] refused: {exc}"
                if not skip_invalid:
                    raise CheckpointCorruptError(self.location, message, reason=reason) from exc
                log.error("checkpoint_refused", topic=self.topic, key=key, error=str(exc))
                continue
            found[tp] = blob
        log.debug("checkpoint_loaded", topic=self.topic, asked=len(wanted), found=len(found))
        return found

    def _remove(self, keys: list[str]) -> None:
        producer = self._ensure_producer()
        self._ensure_scanned(keys)
        futures = [self._send(producer, key) for key in keys]
        self._flush(producer)
        errors = [e for e in map(_failure, futures) if e is not None]
        if errors:
            raise CheckpointStorageError(self.location, f"manifest tombstone failed: {errors[0]}")
        for key in keys:
            state = self._keys.setdefault(key, KeyState())
            state.named |= set(state.live)  # no manifest left: every chunk is garbage now
            state.manifest = None
        self._tombstone_superseded(producer, [(key, -1) for key in keys], 0)
        log.info("checkpoint_removed", topic=self.topic, partitions=len(keys))

    # --------------------------------------------------------------- helpers

    def _key(self, tp: TP) -> str:
        topic, partition = tp
        if not (isinstance(topic, str) and _TOPIC.fullmatch(topic)):
            raise ValueError(f"{topic!r} is not a valid topic name")
        if type(partition) is not int or partition < 0:
            raise ValueError(f"{partition!r} is not a partition number")
        key = f"{self.group_id}/{topic}/{partition}"
        assert belongs_to(key, self.group_id)
        return key

    def _partition(self, key: str) -> int:
        assert self._n_partitions is not None
        return zlib.crc32(key.encode("utf-8")) % self._n_partitions

    def _ensure_scanned(self, keys: list[str]) -> None:
        """Learn which chunks are alive for these keys' partitions (once per partition)."""
        missing = sorted({self._partition(k) for k in keys} - self._scanned)
        if missing:
            self._scan(missing, {})

    def _scan(self, partitions: list[int], wanted: Mapping[str, TP]) -> Snapshot:
        """Read these partitions of the topic; what they hold replaces what was known."""
        settings = client_settings(
            KafkaConsumer, self._servers, self._kwargs, self._timeout_s, self._chunk_bytes
        )
        consumer = build_client(KafkaConsumer, settings, _CONNECT_TIMEOUT_S)
        try:
            deadline = time.monotonic() + self._timeout_s
            snapshot = read_snapshot(
                consumer, self.topic, partitions, self.group_id, set(wanted), deadline
            )
        finally:
            try:
                consumer.close(autocommit=False)
            except Exception as exc:
                log.debug("checkpoint_consumer_close_failed", error=str(exc))
        scanned = set(partitions)
        for key in [k for k in self._keys if self._partition(k) in scanned]:
            if key not in snapshot.keys:
                del self._keys[key]
        for key, state in snapshot.keys.items():
            previous = self._keys.get(key)
            if previous is not None:
                state.own = set(previous.own)
            state.prune(state.manifest_generation())
            self._keys[key] = state
        self._scanned |= scanned
        return snapshot

    def _guard(self, action: str, operation: Callable[[], _T]) -> _T:
        if self._closed:
            raise CheckpointStorageError(self.location, f"{action}() after close()")
        try:
            return operation()
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            log.error("checkpoint_kafka_failed", topic=self.topic, action=action, error=str(exc))
            raise CheckpointStorageError(
                self.location,
                f"{action} failed: {type(exc).__name__}: {exc}",
                errno=exc.errno if isinstance(exc, OSError) else None,
            ) from exc

    def _ensure_producer(self) -> Any:
        self._ensure_topic()
        if self._producer is None:
            settings = client_settings(
                KafkaProducer, self._servers, self._kwargs, self._timeout_s, self._chunk_bytes
            )
            self._producer = build_client(KafkaProducer, settings, _CONNECT_TIMEOUT_S)
        return self._producer

    def _ensure_topic(self) -> None:
        """Create the topic if allowed and missing, check it is compacted, learn its size."""
        if self._n_partitions is not None:
            return
        settings = client_settings(
            KafkaAdminClient, self._servers, self._kwargs, self._timeout_s, self._chunk_bytes
        )
        admin = build_client(KafkaAdminClient, settings, _CONNECT_TIMEOUT_S)
        try:
            self._n_partitions = ensure_topic(
                admin,
                self.topic,
                create=self._create,
                partitions=self._new_partitions,
                replication_factor=self._replication,
                timeout_ms=int(self._timeout_s * 1000),
            )
        except LookupError as exc:
            raise CheckpointStorageError(self.location, str(exc)) from exc
        finally:
            admin.close()
