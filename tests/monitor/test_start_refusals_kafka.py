"""Against a real broker: an unusable checkpoint topic stops the start (exit 3), and an
oversized dead letter keeps a bounded prefix, its size and SHA-256; the daemon's
checkpoint and saved reference are private files."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.ingest.demo_stream import DemoStream
from monitor.ingest.kafka.dead_letter import PREFIX_BYTES
from tests.kafka_broker import (
    consume_all,
    create_topic,
    produce,
    unique_topic,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODEL = "credit-risk"
WARMUP = 2_000
OVERSIZED = 200_000
DLQ_LIMIT = 64 * 1024


def _env() -> dict[str, str]:
    """This environment without DRIFTD_ variables, running the code of this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    return env | {"PYTHONPATH": str(ROOT)}


def _config(tmp_path: Path, bootstrap: str, topic: str, **sections: Any) -> Path:
    """A Kafka config reading ``topic`` with a small warm-up; ``sections`` override."""
    config: dict[str, Any] = {
        "model": MODEL,
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": unique_topic("driftd-refusal-group"),
            "dead_letter_topic": None,
            "poll_timeout_ms": 200,
        },
        "reference": {"warmup_events": WARMUP},
        "windows": {"size_events": 1_000, "min_samples": 200},
        "checkpoint": {"directory": str(tmp_path / "state")},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "info", "format": "json"},
    }
    for name, section in sections.items():
        config[name] = {**config.get(name, {}), **section}
    path = tmp_path / "driftd.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("problem", ["name_collides", "not_compacted"])
def test_unusable_checkpoint_topic_refuses_the_start(
    tmp_path: Path,
    kafka_bootstrap: str,
    problem: str,
) -> None:
    """A checkpoint topic the broker will not create, or one not compacted: exit 3 naming it."""
    source = unique_topic("driftd-refusal-in")
    create_topic(kafka_bootstrap, source)
    suffix = uuid.uuid4().hex[:12]
    if problem == "name_collides":
        # Kafka refuses a topic whose name differs from an existing one only by . and _.
        create_topic(kafka_bootstrap, f"driftd.ckpt.{suffix}")
        topic, expected = f"driftd_ckpt_{suffix}", "InvalidTopic"
    else:
        topic, expected = f"driftd-ckpt-{suffix}", "cleanup.policy is 'delete'"
        create_topic(kafka_bootstrap, topic, configs={"cleanup.policy": "delete"})
    config = _config(
        tmp_path, kafka_bootstrap, source, checkpoint={"store": "kafka", "topic": topic}
    )
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(),
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("driftd")]
    assert line.startswith(f"driftd: refusing to start: checkpoint.topic: {topic}: ")
    assert expected in line
    assert '"daemon_started"' not in proc.stderr


def test_missing_checkpoint_topic_is_created_before_the_start(
    tmp_path: Path,
    kafka_bootstrap: str,
) -> None:
    """A checkpoint topic that does not exist yet is created, compacted, before daemon_started."""
    source, topic = unique_topic("driftd-refusal-in"), unique_topic("driftd-ckpt")
    create_topic(kafka_bootstrap, source)
    config = _config(
        tmp_path, kafka_bootstrap, source, checkpoint={"store": "kafka", "topic": topic}
    )
    log = tmp_path / "driftd.log"
    with log.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_env(),
        )
    try:
        deadline = time.monotonic() + 60
        while _metrics_port(log) is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        lines = log.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line).get("event") for line in lines if line.startswith("{")]
        assert events.index("checkpoint_topic_created") < events.index("daemon_started")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert consume_all(kafka_bootstrap, topic) == []  # it exists (else: TimeoutError)


@dataclass
class DaemonRun:
    """What a daemon run over good events and one oversized bad message left behind."""

    state: Path
    dead_letters: list[Any]
    metrics: str
    oversized: bytes
    offset: int
    source: str


def _metrics_port(log: Path) -> int | None:
    """The metrics port the daemon announced in its JSON log, once it has."""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"daemon_started"' in line:
            return int(json.loads(line)["metrics_port"])
    return None


@pytest.fixture(scope="module")
def daemon_run(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaemonRun]:
    """Run `driftd run` (umask 0) until the oversized message is dead-lettered and the
    state checkpointed; then scrape /metrics and stop it with SIGTERM."""
    tmp_path = tmp_path_factory.mktemp("oversized")
    source, dlq = unique_topic("driftd-oversized-in"), unique_topic("driftd-oversized-dlq")
    create_topic(kafka_bootstrap, source)
    create_topic(kafka_bootstrap, dlq, configs={"max.message.bytes": str(DLQ_LIMIT)})
    stream = DemoStream()
    stream.start_ts = time.time() - 2 * WARMUP / stream.rate
    events = [orjson.dumps(e) for e in stream.next_batch(2 * WARMUP).events()]
    oversized = b"{not json " + os.urandom(OVERSIZED // 2).hex().encode()[: OVERSIZED - 10]
    offsets = produce(kafka_bootstrap, source, [*events[:WARMUP], oversized, *events[WARMUP:]])
    config = _config(
        tmp_path,
        kafka_bootstrap,
        source,
        kafka={"dead_letter_topic": dlq},
        checkpoint={"interval_s": 0, "interval_batches": 1},
    )
    log = tmp_path / "driftd.log"
    with log.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_env(),
            umask=0,  # a file created without an explicit mode would be world-writable
        )
    state = tmp_path / "state"
    try:
        deadline = time.monotonic() + 120
        dead_letters: list[Any] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            saved = (state / "checkpoint.ckpt").exists()
            if saved and (state / "checkpoint.reference.ckpt").exists():
                dead_letters = consume_all(kafka_bootstrap, dlq)
                if dead_letters:
                    break
            time.sleep(0.5)
        port = _metrics_port(log)
        assert port is not None, log.read_text()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    yield DaemonRun(state, dead_letters, metrics, oversized, offsets[WARMUP], source)


def test_oversized_dead_letter_keeps_a_prefix_its_size_and_sha256(daemon_run: DaemonRun) -> None:
    """A message over the dead-letter topic's limit is written cut, with what identifies it."""
    (letter,) = daemon_run.dead_letters
    original = daemon_run.oversized
    assert letter.value == original[:PREFIX_BYTES]
    headers = dict(letter.headers)
    assert headers["driftd-value-dropped"] == str(len(original)).encode()
    assert headers["driftd-value-prefix-bytes"] == str(PREFIX_BYTES).encode()
    assert headers["driftd-value-sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert headers["driftd-original-topic"] == daemon_run.source.encode()
    assert headers["driftd-original-offset"] == str(daemon_run.offset).encode()
    assert headers["driftd-error"]
    truncated = f'driftd_dead_letter_truncated_total{{model="{MODEL}"}} 1.0'
    assert truncated in daemon_run.metrics.splitlines()


def test_checkpoint_and_saved_reference_are_private(daemon_run: DaemonRun) -> None:
    """Under umask 0 the daemon's checkpoint, its predecessor and its reference are 0600."""
    files = sorted(p for p in daemon_run.state.iterdir() if p.is_file())
    names = {p.name for p in files}
    assert {"checkpoint.ckpt", "checkpoint.reference.ckpt"} <= names
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
