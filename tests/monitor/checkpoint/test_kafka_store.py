"""KafkaCheckpointStore against a real Apache Kafka broker (and against no broker at all)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitor.errors import CheckpointCorruptError, CheckpointStorageError
from monitor.state import decode, encode
from monitor.state.kafka_store import KafkaCheckpointStore
from tests.kafka_broker import (
    Record,
    consume_all,
    create_topic,
    produce,
    unique_topic,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

pytestmark = pytest.mark.integration

Factory = Callable[..., KafkaCheckpointStore]
SOURCE = ("inference", 0)
MIB = 1024 * 1024


@pytest.fixture
def make_store(kafka_bootstrap: str) -> Iterator[Factory]:
    """Build stores on the session broker (a fresh topic and group unless given); close them."""
    made: list[KafkaCheckpointStore] = []
    defaults = {"topic": unique_topic("driftd-ckpt"), "group_id": f"g-{uuid.uuid4().hex[:8]}"}

    def make(**options: Any) -> KafkaCheckpointStore:
        settings = {**defaults, "timeout_s": 20.0, **options}
        store = KafkaCheckpointStore([kafka_bootstrap], **settings)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def records_by_key(bootstrap: str, topic: str) -> dict[str, list[Record]]:
    """Every record of ``topic``, grouped by key (in log order)."""
    grouped: dict[str, list[Record]] = {}
    for record in consume_all(bootstrap, topic):
        grouped.setdefault((record.key or b"").decode(), []).append(record)
    return grouped


def live_chunk_keys(bootstrap: str, topic: str) -> set[str]:
    """Chunk keys whose last record is not a tombstone."""
    return {
        key
        for key, records in records_by_key(bootstrap, topic).items()
        if "#" in key and records[-1].value is not None
    }


def test_large_blob_round_trips_in_chunks(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """A 5 MB blob is written as sub-MiB chunks plus a manifest and read back exactly."""
    store = make_store()
    big, small = os.urandom(5 * MIB), b"tiny"
    store.save({SOURCE: big, ("inference", 7): small, ("labels", 0): b""})
    loaded = store.load([SOURCE, ("inference", 7), ("labels", 0), ("inference", 3)])
    assert loaded == {SOURCE: big, ("inference", 7): small, ("labels", 0): b""}
    grouped = records_by_key(kafka_bootstrap, store.topic)
    key = f"{store.group_id}/inference/0"
    manifest = json.loads(grouped[key][-1].value or b"")
    assert manifest["size"] == len(big)
    assert manifest["sha256"] == hashlib.sha256(big).hexdigest()
    chunks = [k for k in grouped if k.startswith(f"{key}#{manifest['generation']}#")]
    assert len(chunks) == manifest["chunks"] == 7
    assert all(len(grouped[k][0].value or b"") <= 768 * 1024 for k in chunks)


def test_newer_generation_wins_and_old_chunks_are_tombstoned(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """A later save supersedes the earlier one; the earlier chunks get tombstones."""
    store = make_store()
    first, second = os.urandom(2 * MIB), os.urandom(MIB // 2)
    store.save({SOURCE: first})
    chunks_of_first = live_chunk_keys(kafka_bootstrap, store.topic)
    store.save({SOURCE: second})
    assert store.load([SOURCE]) == {SOURCE: second}
    grouped = records_by_key(kafka_bootstrap, store.topic)
    assert len(chunks_of_first) == 3
    for key in chunks_of_first:
        assert grouped[key][-1].value is None, f"{key} was not tombstoned"
    assert len(live_chunk_keys(kafka_bootstrap, store.topic)) == 1


def test_replica_takes_over_a_partition(make_store: Factory) -> None:
    """Another store instance of the same group loads what the first saved, and vice versa."""
    first = make_store()
    checkpoint = encode({"n": 1}, {SOURCE: 42}, state_version=1, fingerprint="f")
    first.save({SOURCE: checkpoint})
    second = make_store()
    loaded = second.load([SOURCE])
    assert decode(loaded[SOURCE], location="kafka").offsets == {SOURCE: 42}
    newer = encode({"n": 2}, {SOURCE: 99}, state_version=1, fingerprint="f")
    second.save({SOURCE: newer})
    assert first.load([SOURCE]) == {SOURCE: newer}
    first.save({SOURCE: checkpoint})
    assert second.load([SOURCE]) == {SOURCE: checkpoint}


def test_groups_do_not_see_each_other(make_store: Factory) -> None:
    """Two consumer groups sharing the checkpoint topic keep separate checkpoints."""
    mine = make_store(group_id="team-a")
    theirs = make_store(group_id="team-a/inference")
    mine.save({SOURCE: b"a"})
    theirs.save({("x", 1): b"b"})
    assert theirs.load([SOURCE]) == {}
    assert mine.load([("x", 1)]) == {}
    assert mine.load([SOURCE]) == {SOURCE: b"a"}


def write_manifest(
    bootstrap: str, store: KafkaCheckpointStore, *, generation: int, blob: bytes, chunks: int
) -> None:
    """Produce a manifest by hand (as a broken or foreign writer would)."""
    manifest = {
        "format": "driftd-checkpoint-manifest/1",
        "generation": generation,
        "chunks": chunks,
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    produce(
        bootstrap,
        store.topic,
        [json.dumps(manifest).encode()],
        partition=0,
        key=f"{store.group_id}/inference/0".encode(),
    )


def test_manifest_with_missing_chunks_is_refused(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """A manifest whose chunks are not all there is refused, or skipped when asked."""
    store = make_store()
    store.save({SOURCE: b"good", ("other", 1): b"fine"})
    write_manifest(kafka_bootstrap, store, generation=12345, blob=b"x" * 100, chunks=2)
    with pytest.raises(CheckpointCorruptError) as caught:
        store.load([SOURCE, ("other", 1)])
    assert caught.value.reason == "missing_chunks"
    assert "inference[0]" in str(caught.value)
    assert "2 of 2 chunks missing" in str(caught.value)
    assert store.load([SOURCE, ("other", 1)], skip_invalid=True) == {("other", 1): b"fine"}


def test_chunks_not_matching_the_manifest_are_refused(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """Chunks whose concatenation does not hash to the manifest's SHA-256 are refused."""
    store = make_store()
    store.save({("warmup", 0): b"x"})  # creates the topic (compacted)
    key = f"{store.group_id}/inference/0"
    produce(kafka_bootstrap, store.topic, [b"evil"], partition=0, key=f"{key}#777#0".encode())
    write_manifest(kafka_bootstrap, store, generation=777, blob=b"good", chunks=1)
    with pytest.raises(CheckpointCorruptError) as caught:
        store.load([SOURCE])
    assert caught.value.reason == "checksum"


def test_garbage_manifest_is_refused(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """A record under a manifest key that is not a manifest is refused as malformed."""
    store = make_store()
    store.save({("warmup", 0): b"x"})
    key = f"{store.group_id}/inference/0".encode()
    produce(kafka_bootstrap, store.topic, [b"\x80not json"], partition=0, key=key)
    with pytest.raises(CheckpointCorruptError) as caught:
        store.load([SOURCE])
    assert caught.value.reason == "malformed"


def test_orphans_of_a_save_in_flight_are_left_alone(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """Chunks without a manifest are tombstoned only once older than the grace period."""
    store = make_store(orphan_grace_s=600.0)
    key = f"{store.group_id}/inference/0"
    now_us = time.time_ns() // 1000
    recent, old = f"{key}#{now_us - 1_000_000}#0", f"{key}#{now_us - 3_600_000_000}#0"
    store.save({("warmup", 0): b"x"})  # creates the topic (compacted)
    produce(kafka_bootstrap, store.topic, [b"a"], partition=0, key=recent.encode())
    produce(kafka_bootstrap, store.topic, [b"b"], partition=0, key=old.encode())
    assert store.load([SOURCE]) == {}
    store.save({SOURCE: b"mine"})
    live = live_chunk_keys(kafka_bootstrap, store.topic)
    assert recent in live
    assert old not in live
    assert store.load([SOURCE]) == {SOURCE: b"mine"}


def test_save_without_load_learns_what_to_tombstone(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """A fresh instance that saves without loading first still tombstones the old chunks."""
    make_store().save({SOURCE: b"old"})
    fresh = make_store()
    fresh.save({SOURCE: b"new"})
    assert len(live_chunk_keys(kafka_bootstrap, fresh.topic)) == 1
    assert fresh.load([SOURCE]) == {SOURCE: b"new"}


def test_remove_deletes_a_checkpoint(make_store: Factory) -> None:
    """remove() makes a partition start fresh; others keep their checkpoints."""
    store = make_store()
    store.save({SOURCE: b"a", ("inference", 1): b"b"})
    store.remove([SOURCE])
    assert store.load([SOURCE, ("inference", 1)]) == {("inference", 1): b"b"}
    assert make_store().load([SOURCE]) == {}


def test_topic_is_created_compacted(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """A missing topic is created with cleanup.policy=compact and one partition."""
    store = make_store()
    store.save({SOURCE: b"x"})
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, store.topic, ["cleanup.policy"])
        configs = admin.describe_configs([resource], config_filter="all")
        described = admin.describe_topics([store.topic])
    finally:
        admin.close()
    assert configs["topic"][store.topic]["cleanup.policy"]["value"] == "compact"
    assert len(described[0]["partitions"]) == 1


def test_uncompacted_topic_is_refused(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """An existing topic with delete retention is refused: it would lose idle checkpoints."""
    topic = unique_topic("driftd-ckpt")
    create_topic(kafka_bootstrap, topic, configs={"cleanup.policy": "delete"})
    with pytest.raises(CheckpointStorageError, match="compact"):
        make_store(topic=topic).save({SOURCE: b"x"})


def test_missing_topic_without_create_is_an_error(make_store: Factory) -> None:
    """With create_topic=False a missing topic raises instead of being auto-created."""
    store = make_store(create_topic=False)
    with pytest.raises(CheckpointStorageError, match="does not exist"):
        store.load([SOURCE])


def test_multi_partition_topic_keeps_keys_together(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """On a topic of several partitions each checkpoint's records share one partition."""
    topic = unique_topic("driftd-ckpt")
    create_topic(kafka_bootstrap, topic, partitions=3, configs={"cleanup.policy": "compact"})
    store = make_store(topic=topic, group_id="driftd-multi", chunk_bytes=4096)
    blobs = {("inference", p): os.urandom(20_000 + p) for p in range(6)}
    store.save(blobs)
    assert make_store(topic=topic, group_id="driftd-multi").load(list(blobs)) == blobs
    partitions: dict[str, set[int]] = {}
    for record in consume_all(kafka_bootstrap, topic):
        base = (record.key or b"").decode().split("#")[0]
        partitions.setdefault(base, set()).add(record.partition)
    assert len(partitions) == 6
    assert all(len(p) == 1 for p in partitions.values())
    assert len(set().union(*partitions.values())) > 1


def test_rejected_chunks_leave_the_last_good_checkpoint(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """When the broker refuses a chunk the save raises and the previous checkpoint still loads."""
    topic = unique_topic("driftd-ckpt")
    configs = {"cleanup.policy": "compact", "max.message.bytes": "8192"}
    create_topic(kafka_bootstrap, topic, configs=configs)
    store = make_store(topic=topic, chunk_bytes=64 * 1024)
    store.save({SOURCE: b"small and good"})
    with pytest.raises(CheckpointStorageError, match="inference\\[0\\]"):
        store.save({SOURCE: os.urandom(100_000)})
    assert make_store(topic=topic).load([SOURCE]) == {SOURCE: b"small and good"}
    store.save({SOURCE: b"good again"})
    assert make_store(topic=topic).load([SOURCE]) == {SOURCE: b"good again"}


def free_port() -> int:
    """A local TCP port nothing listens on (a broker that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_broker_down_raises_storage_error() -> None:
    """With no broker, save and load raise CheckpointStorageError quickly."""
    store = KafkaCheckpointStore([f"127.0.0.1:{free_port()}"], "t", "g", timeout_s=2.0)
    started = time.monotonic()
    for action in (lambda: store.save({SOURCE: b"x"}), lambda: store.load([SOURCE])):
        with pytest.raises(CheckpointStorageError) as caught:
            action()
        assert caught.value.location == "kafka:t"
    assert time.monotonic() - started < 30
    store.close()
    with pytest.raises(CheckpointStorageError, match="after close"):
        store.load([SOURCE])


def test_bad_arguments_are_refused() -> None:
    """Invalid topic, group, chunk size or source partitions raise ValueError up front."""
    for kwargs in (
        {"topic": "bad topic"},
        {"group_id": ""},
        {"chunk_bytes": 10},
        {"timeout_s": 0},
    ):
        settings: dict[str, Any] = {"topic": "t", "group_id": "g", **kwargs}
        with pytest.raises(ValueError):
            KafkaCheckpointStore(["127.0.0.1:1"], **settings)
    store = KafkaCheckpointStore(["127.0.0.1:1"], "t", "g")
    for partition in (("bad/topic", 0), ("t", -1), ("t", True)):
        with pytest.raises(ValueError):
            store.load([partition])


def test_many_saves_keep_one_live_generation(
    make_store: Factory,
    kafka_bootstrap: str,
) -> None:
    """Repeated saves (empty blobs too) leave one live generation and bounded bookkeeping."""
    store = make_store(chunk_bytes=1024)
    for i in range(12):
        store.save({SOURCE: b"" if i % 4 == 0 else os.urandom(3000 + i)})
    last = os.urandom(2500)
    store.save({SOURCE: last})
    assert store.load([SOURCE]) == {SOURCE: last}
    live = live_chunk_keys(kafka_bootstrap, store.topic)
    assert len(live) == 3
    assert len({key.split("#")[1] for key in live}) == 1
    state = store._keys[f"{store.group_id}/inference/0"]
    assert len(state.named) <= 2 and len(state.own) <= 2 and len(state.live) == 1


def test_client_kwargs_reach_the_clients_that_take_them(make_store: Factory) -> None:
    """Producer-only or consumer-only settings are passed to those clients only; typos fail."""
    kwargs = {"linger_ms": 1, "fetch_min_bytes": 1, "security_protocol": "PLAINTEXT"}
    store = make_store(client_kwargs=kwargs)
    store.save({SOURCE: b"x"})
    assert store.load([SOURCE]) == {SOURCE: b"x"}
    broken = make_store(client_kwargs={"no_such_setting": 1})
    with pytest.raises(CheckpointStorageError, match="no_such_setting"):
        broken.load([SOURCE])
