"""SIGKILL the daemon again and again: the result equals an uninterrupted run, exactly.

A stream with an injected drift goes into a real Kafka topic, one partition per
segment (the producer keys by segment, as the per-partition state assumes). One
daemon process runs it start to finish; another is SIGKILLed at ten points and
restarted each time from its checkpoint. Both journal every closed window and
transition, and post alerts to a local webhook.

Each kill point is chosen, not hoped for. The daemon runs in short slices and is
frozen (SIGSTOP) between them while the test reads its files. Past a random share of
the stream, the first frozen look that finds a checkpoint of the daemon's own since
the last kill, with windows half full in it, and closed windows that checkpoint does
not cover, ends in a SIGKILL. So every kill lands mid-stream, after progress,
mid-window, with work the restart must replay (windows closed again, alerts sent
again), however fast the daemon runs; the test asserts this of all ten kills.
That is what the equivalence needs, and no longer a 1M-event stream to make random
sleeps land mid-stream (many of which used to land before the restarted daemon even
had its partitions back).

Then:

- per segment, the windows (with every score) and the transitions are the same;
- the final checkpointed state (windows, decisions, events counted) is the same, so
  no event was lost and none was counted twice;
- per alert, the sequence of delivered actions is the same (a repeat of an action
  that was delivered just before a kill is dropped: delivery is at least once).

The straight run is always the kafka-python reference, run once for the module (a
module fixture): a kafka-python daemon and a confluent-kafka daemon are each SIGKILLed
and restarted against it, ten times and four times.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from monitor.ingest.demo_stream import SEGMENTS, DemoStream
from monitor.state import FileCheckpointStore, decode, peek
from tests.alertmanager_server import Receiver, Request, http_receiver
from tests.kafka_broker import create_topic, produce, unique_topic
from tests.monitor.scenarios import write_reference

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 150_000
SHIFT_AT = 60_000  # 40% in, as west's shift always was
WINDOW = 5_000
KILLS = 10
CONFLUENT_KILLS = 4
"""Kills of the confluent-kafka daemon: each still chosen mid-stream, mid-window and with
closed windows to replay, fewer only to keep the suite within its time budget."""
CHUNK = 50_000
# How long the daemon runs between two looks at its files (it is frozen during a look).
RUN_SLICE_S = 0.01


def _produce(bootstrap: str, topic: str) -> None:
    stream = DemoStream(feature_shift_at=SHIFT_AT, prediction_shift_at=10**9)
    stream.start_ts = time.time() - N_EVENTS / stream.rate
    partition_of = {segment: i for i, segment in enumerate(SEGMENTS)}
    for _ in range(N_EVENTS // CHUNK):
        batch = stream.next_batch(CHUNK)
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        for event in batch.events():
            by_partition[partition_of[event["features"]["region"]]].append(orjson.dumps(event))
        for partition, messages in by_partition.items():
            produce(bootstrap, topic, messages, partition=partition, timeout=120)


def _config(
    root: Path,
    bootstrap: str,
    topic: str,
    hook: str,
    reference: Path,
    client: str,
    *,
    interval_s: float = 5.0,
) -> Path:
    config = {
        "model": "credit-risk",
        "kafka": {
            "client": client,
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": unique_topic("driftd-crash"),
            "dead_letter_topic": None,
            # Not a divisor of WINDOW: the consumer reads one partition at a time, so
            # batches of WINDOW events would close a window exactly at every checkpoint.
            "max_poll_records": 3_000,
            "poll_timeout_ms": 200,
            "commit_interval_ms": 0,
            # A restart waits this long for the group to drop the member it killed.
            "session_timeout_ms": 3_000,
            "heartbeat_interval_ms": 1_000,
        },
        "schema": {"segment_by": ["features.region"]},
        "reference": {"path": str(reference)},
        "windows": {"size_events": WINDOW, "min_samples": 500},
        "metrics": {"host": "127.0.0.1", "port": 0},
        # Saved every few batches, not every half second: the kill-point search freezes
        # the daemon most of the time, so a wall-clock cadence would save after nearly
        # every batch and leave no closed window uncovered to replay. The time bound only
        # commits the tail of the stream once the daemon goes idle: runs nobody freezes
        # (the straight one, the last one) take 1 s, so they end sooner.
        "checkpoint": {
            "directory": str(root / "state"),
            "interval_s": interval_s,
            "interval_batches": 4,
        },
        "journal": {"path": str(root / "journal.jsonl")},
        # Info: a run that never gets its partitions shows why in the assertion's tail.
        "logging": {"level": "info", "format": "json"},
        "alerts": {
            "sinks": [{"type": "webhook", "name": "hook", "url": hook}],
            "routes": [{"sinks": ["hook"]}],
            "retry": {"initial_s": 0.2, "max_s": 1.0},
        },
    }
    path = root / "driftd.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


STARTED: list[subprocess.Popen[bytes]] = []


def _start(config: Path) -> subprocess.Popen[bytes]:
    # A file, not a pipe: an unread pipe would fill up and stall the daemon.
    log = config.parent / f"daemon-{len(STARTED)}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    STARTED.append(proc)
    return proc


def _tail(config: Path) -> str:
    logs = sorted(config.parent.glob("daemon-*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace")[-3000:] if logs else ""


@pytest.fixture(autouse=True)
def reap_daemons() -> Iterator[None]:
    """No daemon outlives the test, whatever failed."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


class GroupWatch:
    """Whether a group has committed the end of every partition of a topic, asked
    through one admin client and one consumer for as many looks as needed."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.group = group
        self.parts = [TopicPartition(topic, p) for p in range(len(SEGMENTS))]
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap)

    def __enter__(self) -> GroupWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.admin.close()
        self.consumer.close()

    def done(self) -> bool:
        """Every partition's committed offset is its end offset."""
        try:
            committed = self.admin.list_group_offsets(self.group)
            ends = self.consumer.end_offsets(self.parts)
        except KafkaError:  # the group has no coordinator until its first join
            return False
        per_group = (
            committed.get(self.group, committed) if isinstance(committed, dict) else committed
        )
        got = {tp.partition: meta.offset for tp, meta in per_group.items()}
        return all(got.get(tp.partition, -1) == end for tp, end in ends.items())


def _group_done(bootstrap: str, group: str, topic: str) -> bool:
    with GroupWatch(bootstrap, group, topic) as watch:
        return watch.done()


def _finish(config: Path, bootstrap: str, group: str, topic: str) -> None:
    """Run until every offset is committed, then stop gracefully (exit 0)."""
    proc = _start(config)
    # Inside the test's own timeout, so that a stuck run reports its log.
    deadline = time.monotonic() + 420
    with GroupWatch(bootstrap, group, topic) as watch:
        while not watch.done():
            assert proc.poll() is None, _tail(config)
            assert time.monotonic() < deadline, "the daemon did not finish:\n" + _tail(config)
            time.sleep(0.25)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, _tail(config)


@dataclass(frozen=True)
class CrashPoint:
    """What a frozen daemon leaves behind: its last checkpoint's offsets and its journal."""

    checkpointed: dict[int, int]
    """The next offset per partition (one segment each) of the last checkpoint."""
    journaled: dict[str, int]
    """Closed windows per segment in the journal."""

    @property
    def events(self) -> int:
        """Events the checkpoint covers."""
        return sum(self.checkpointed.values())

    @property
    def replayed_windows(self) -> list[str]:
        """Segments with closed windows the checkpoint does not cover: a restart replays them."""
        return [
            segment
            for i, segment in enumerate(SEGMENTS)
            if self.journaled.get(segment, 0) > self.checkpointed.get(i, 0) // WINDOW
        ]

    @property
    def half_full_windows(self) -> list[str]:
        """Segments whose checkpointed window is neither empty nor full."""
        return [
            segment for i, segment in enumerate(SEGMENTS) if self.checkpointed.get(i, 0) % WINDOW
        ]


def _crash_point(config: Path, topic: str) -> CrashPoint:
    """Read the checkpoint and the journal as they are (never through a store, whose
    constructor would tidy up the running daemon's temporary files)."""
    path = config.parent / "state" / "checkpoint.ckpt"
    offsets: dict[int, int] = {}
    if path.exists():
        info = peek(path.read_bytes(), location=str(path))
        offsets = {p: offset for (t, p), offset in info.offsets.items() if t == topic}
    windows, _ = _journal(config.parent) if (config.parent / "journal.jsonl").exists() else ({}, {})
    return CrashPoint(offsets, {segment: len(w) for segment, w in windows.items()})


def _kill_at_a_replay_point(
    proc: subprocess.Popen[bytes], config: Path, topic: str, past: float
) -> CrashPoint:
    """SIGKILL ``proc`` once its checkpoint covers more than ``past`` events, with a
    window half full, and it has closed windows beyond that checkpoint; the point.

    The daemon is looked at only while frozen (SIGSTOP), and let run for a short slice
    between looks. So however fast it is, it cannot run far past the first point that
    qualifies while its files are being read: the kill lands near ``past``.
    """
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "the daemon died:\n" + _tail(config)
        assert time.monotonic() < deadline, "no kill point:\n" + _tail(config)
        proc.send_signal(signal.SIGSTOP)
        point = _crash_point(config, topic)
        if point.events > past and point.replayed_windows and point.half_full_windows:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return point
        proc.send_signal(signal.SIGCONT)
        time.sleep(RUN_SLICE_S)


def _journal(root: Path) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    windows: dict[str, list[Any]] = defaultdict(list)
    transitions: dict[str, list[Any]] = defaultdict(list)
    seen: set[str] = set()
    for line in (root / "journal.jsonl").read_bytes().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the line a SIGKILL cut short is written again on replay
        identity = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()
        if identity in seen:
            continue
        seen.add(identity)
        if entry["kind"] == "window":
            windows[entry["segment"]].append(entry)
        elif entry["kind"] == "transition":
            transitions[entry["dedup_key"]].append(entry)
    return dict(windows), dict(transitions)


def _final_state(root: Path) -> dict[str, Any]:
    data = FileCheckpointStore(root / "state").load()
    assert data is not None
    state = decode(data, location="final").state["pipeline"]
    names = state["segments"]["names"]
    windows = state["windows"]
    per_segment = {
        name: {
            **{key: np.asarray(windows[key])[:, i].tolist() for key in ("panes", "pane_rows")},
            **{key: np.asarray(windows[key])[i].tolist() for key in ("head", "completed")},
        }
        for i, name in enumerate(names)
    }
    decisions = state["decisions"]
    return {
        "events": state["events_accepted"],
        "windows": per_segment,
        # Segments interleave differently from run to run; compare as sets.
        "entries": sorted(
            orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in decisions["entries"]
        ),
        "transitions": sorted(map(tuple, decisions["transitions"])),
        "skipped": decisions["skipped"],
    }


def _cut_short(request: Request) -> bool:
    """A request a SIGKILL cut off (headers or body short; driftd always sends a length):
    it was never answered, so the restarted daemon sends it again."""
    length = request.headers.get("Content-Length")
    return length is None or len(request.body) < int(length)


def _alerts(hook: Receiver) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen: set[tuple[str, str, str]] = set()
    for request in hook.received():
        if _cut_short(request):
            continue
        body = request.json()
        key = (body["dedup_key"], body["event_action"], body["timestamp"])
        if key not in seen:
            seen.add(key)
            out[body["dedup_key"]].append((body["event_action"], body["timestamp"]))
    return dict(out)


@dataclass(frozen=True)
class StraightRun:
    """The stream in its topic, and the run of a kafka-python daemon that nobody killed."""

    bootstrap: str
    topic: str
    reference: Path
    root: Path
    hook: Receiver


@pytest.fixture(scope="module")
def straight_run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StraightRun]:
    """Produced and run once for the module: both clients' crashing runs are held to it."""
    tmp_path = tmp_path_factory.mktemp("crash-equivalence")
    topic = unique_topic("driftd-crash-in")
    create_topic(kafka_bootstrap, topic, partitions=len(SEGMENTS))
    _produce(kafka_bootstrap, topic)
    reference = tmp_path / "reference.json"
    write_reference(reference)
    root = tmp_path / "straight"
    root.mkdir()
    with http_receiver() as hook:
        config = _config(
            root, kafka_bootstrap, topic, hook.url, reference, "kafka-python", interval_s=1.0
        )
        group = json.loads(config.read_text())["kafka"]["group_id"]
        _finish(config, kafka_bootstrap, group, topic)
        # The yardstick of the kill points: a window closes every WINDOW events of a segment.
        done = _crash_point(config, topic)
        assert done.events == N_EVENTS
        assert done.journaled == {s: done.checkpointed[i] // WINDOW for i, s in enumerate(SEGMENTS)}
        yield StraightRun(kafka_bootstrap, topic, reference, root, hook)


@pytest.fixture
def crash_hook() -> Iterator[Receiver]:
    """The webhook receiver of the crashing run."""
    with http_receiver() as hook:
        yield hook


def test_sigkill_at_random_points_changes_nothing(
    straight_run: StraightRun, crash_hook: Receiver, tmp_path: Path
) -> None:
    """Ten SIGKILLs and restarts: windows, transitions, state and alerts equal a straight run."""
    check_crash_equivalence(straight_run, crash_hook, tmp_path, client="kafka-python", kills=KILLS)


def test_sigkill_of_a_confluent_daemon_changes_nothing(
    straight_run: StraightRun, crash_hook: Receiver, tmp_path: Path
) -> None:
    """Four SIGKILLs of a confluent-kafka daemon: everything equals the kafka-python run."""
    check_crash_equivalence(
        straight_run, crash_hook, tmp_path, client="confluent", kills=CONFLUENT_KILLS
    )


def check_crash_equivalence(
    straight: StraightRun,
    crash_hook: Receiver,
    tmp_path: Path,
    *,
    client: str,
    kills: int,
) -> None:
    """``kills`` SIGKILLs of a daemon on ``client``, against the straight kafka-python run."""
    kafka_bootstrap, topic = straight.bootstrap, straight.topic
    crash_root = tmp_path / "crash"
    crash_root.mkdir()
    crash_cfg = _config(
        crash_root, kafka_bootstrap, topic, crash_hook.url, straight.reference, client
    )
    crash_group = json.loads(crash_cfg.read_text())["kafka"]["group_id"]

    rng = random.Random(20261126)
    # Where each kill point is looked for from: ten random shares of the stream. A kill
    # lands a slice past its share at most, so the shares can spread over most of it.
    shares = sorted(rng.uniform(0.05, 0.8) for _ in range(kills))
    points: list[CrashPoint] = []
    for share in shares:
        last = points[-1].events if points else 0
        proc = _start(crash_cfg)
        points.append(
            _kill_at_a_replay_point(proc, crash_cfg, topic, max(last + 1, share * N_EVENTS))
        )
        assert not _group_done(kafka_bootstrap, crash_group, topic), (
            "the stream ended before all kills; kill earlier"
        )
    # Each kill came after a checkpoint of the restarted run's own (progress), with a
    # window half full in it, and left closed windows that checkpoint does not cover
    # (replayed after the restart).
    assert len(points) == kills
    assert all(p.events < N_EVENTS for p in points)
    assert [p.events for p in points] == sorted({p.events for p in points})
    assert all(p.replayed_windows and p.half_full_windows for p in points), points
    # The last run is not frozen: the shorter time bound only commits its tail sooner
    # (the checkpoint cadence is no part of the state a checkpoint must match).
    settings = json.loads(crash_cfg.read_text())
    settings["checkpoint"]["interval_s"] = 1.0
    crash_cfg.write_text(json.dumps(settings))
    _finish(crash_cfg, kafka_bootstrap, crash_group, topic)

    straight_windows, straight_transitions = _journal(straight.root)
    crash_windows, crash_transitions = _journal(crash_root)
    assert sum(len(w) for w in straight_windows.values()) >= N_EVENTS // WINDOW - 3
    assert straight_windows == crash_windows
    assert any("/west/" in key for key in straight_transitions)
    assert straight_transitions == crash_transitions

    straight_state, crash_state = _final_state(straight.root), _final_state(crash_root)
    assert straight_state["events"] == N_EVENTS
    assert crash_state == straight_state

    deadline = time.monotonic() + 30
    while _alerts(crash_hook) != _alerts(straight.hook) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _alerts(straight.hook)
    assert not any(_cut_short(r) for r in straight.hook.received())
    assert _alerts(crash_hook) == _alerts(straight.hook)
