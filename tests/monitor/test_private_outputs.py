"""Outputs that are signed, private and exact, through the real ``driftd run``.

- the journal is created 0600, and a run killed with SIGKILL then run again writes
  the same journal as one uninterrupted run: no line twice, none missing; so does a
  Kafka run restored from an older checkpoint, which closes the same windows again;
- the generic webhook's requests verify at a receiver that checks the timestamped
  signature and refuses old ones;
- a scrape client that hangs up is a debug line, not a traceback on stderr.
"""

from __future__ import annotations

import json
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.ingest.demo_stream import DemoStream
from monitor.state import FileCheckpointStore, decode
from tests.kafka_broker import create_topic, produce, unique_topic
from tests.monitor.alerts.receivers import receiver
from tests.monitor.scenarios import write_reference

EVENTS = 100_000
HMAC_SECRET = "journal-test-signing-key"


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A demo stream whose west segment drifts halfway, as a JSON Lines file, and a reference."""
    root = tmp_path_factory.mktemp("demo")
    stream = DemoStream(feature_shift_at=EVENTS // 2, prediction_shift_at=10**9)
    events = root / "events.jsonl"
    with events.open("wb") as out:
        for _ in range(EVENTS // 10_000):
            out.writelines(orjson.dumps(e) + b"\n" for e in stream.next_batch(10_000).events())
    reference = root / "reference.json"
    write_reference(reference)
    return events, reference


def _config(root: Path, files: tuple[Path, Path], **sections: Any) -> Path:
    events, reference = files
    config: dict[str, Any] = {
        "model": "credit-risk",
        "source": {"type": "file", "path": str(events), "batch_size": 1_000},
        "schema": {"segment_by": ["features.region"]},
        "reference": {"path": str(reference)},
        "windows": {"size_events": 2_000, "min_samples": 500},
        "checkpoint": {"store": "none"},  # a file replay always starts at its first line
        "journal": {"path": str(root / "journal.jsonl")},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "warning", "format": "json"},
    }
    config.update(sections)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "driftd.yaml"
    path.write_text(json.dumps(config))
    return path


def _run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _lines(journal: Path) -> int:
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


@pytest.mark.slow
def test_journal_is_private_and_a_rerun_after_sigkill_repeats_no_line(
    tmp_path: Path, demo_files: tuple[Path, Path]
) -> None:
    """SIGKILL mid-run, run again: the 0600 journal equals an uninterrupted run's, ids unique."""
    straight = _config(tmp_path / "straight", demo_files)
    done = _run(straight)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = (tmp_path / "straight" / "journal.jsonl").read_bytes()

    crash = _config(tmp_path / "crash", demo_files)
    journal = tmp_path / "crash" / "journal.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(crash)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while _lines(journal) < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    killed_at = _lines(journal)
    assert 10 <= killed_at < expected.count(b"\n")

    again = _run(crash)
    assert again.returncode == 0, again.stderr[-2000:]
    written = journal.read_bytes().splitlines()
    repeated = [line[:120] for line, n in Counter(written).items() if n > 1]
    assert repeated == []
    assert written == expected.splitlines()
    assert any(b'"kind":"transition"' in line for line in written)
    ids = Counter(orjson.loads(line)["id"] for line in written)
    assert max(ids.values()) == 1
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "straight" / "journal.jsonl").stat().st_mode) == 0o600


def _offset_of(checkpoint: bytes | None, topic: str) -> int:
    """The next offset of ``topic``'s partition 0 a checkpoint holds (-1: none)."""
    if checkpoint is None:
        return -1
    return decode(checkpoint, location="test").offsets.get((topic, 0), -1)


def _run_kafka_until_done(config: Path, directory: Path, topic: str, log: Path) -> bytes | None:
    """Run the daemon until its checkpoint holds the whole topic, then stop it (SIGTERM).

    Returns the first checkpoint seen that held only part of the topic.
    """
    store = FileCheckpointStore(directory)
    partial: bytes | None = None
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 300
        while (offset := _offset_of(data := store.load(), topic)) < EVENTS:
            if partial is None and offset > 0:
                partial = data
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the daemon did not finish the topic"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")[-2000:]
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return partial


@pytest.mark.integration
@pytest.mark.slow
def test_restore_from_an_older_checkpoint_journals_nothing_twice(
    kafka_bootstrap: str,
    tmp_path: Path,
    demo_files: tuple[Path, Path],
) -> None:
    """Real Kafka: restored to an older checkpoint, the daemon re-closes windows, adds no line."""
    topic = unique_topic("driftd-journal")
    create_topic(kafka_bootstrap, topic, partitions=1)
    events, _ = demo_files
    produce(kafka_bootstrap, topic, events.read_bytes().splitlines(), timeout=120)
    state = tmp_path / "state"

    def config(group: str) -> Path:
        return _config(
            tmp_path,
            demo_files,
            source={"type": "kafka"},
            kafka={
                "bootstrap_servers": [kafka_bootstrap],
                "topics": [topic],
                "group_id": group,
                "dead_letter_topic": None,
                "max_poll_records": 1_000,
                "commit_interval_ms": 0,
            },
            checkpoint={"directory": str(state), "interval_s": 1.0, "interval_batches": 20},
            logging={"level": "info", "format": "json"},
        )

    log = tmp_path / "daemon.log"
    older = _run_kafka_until_done(config(unique_topic("driftd-journal")), state, topic, log)
    journal = tmp_path / "journal.jsonl"
    first = journal.read_bytes()
    assert first.count(b"\n") >= 40
    assert 0 < _offset_of(older, topic) < EVENTS, "no checkpoint was seen mid-topic"

    # Back to the older checkpoint (a restored backup): every window closed after it is
    # closed again. A new group, so no rebalance wait and no committed offset: the
    # checkpoint alone says where to start.
    assert older is not None
    (state / "checkpoint.ckpt").write_bytes(older)
    _run_kafka_until_done(config(unique_topic("driftd-journal")), state, topic, log)
    assert journal.read_bytes() == first
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    skipped = [json.loads(x) for x in log.read_text().splitlines() if "journal_replay_skipped" in x]
    assert skipped and skipped[0]["lines"] > 0


def test_cli_webhook_requests_verify_with_their_timestamp(
    tmp_path: Path, demo_files: tuple[Path, Path]
) -> None:
    """Every alert the run posts passes a receiver checking t=<unix>,v1=<hmac of t.body>."""
    with receiver(validate=False, ok_status=200, hmac_secret=HMAC_SECRET) as hook:
        alerts = {
            "sinks": [
                {"type": "webhook", "name": "hook", "url": hook.url, "hmac_secret": HMAC_SECRET}
            ],
            "routes": [{"sinks": ["hook"]}],
        }
        done = _run(_config(tmp_path, demo_files, alerts=alerts))
        assert done.returncode == 0, done.stderr[-2000:]
        assert hook.violations == []
        assert len(hook.requests) >= 10
        assert len(hook.accepted) == len(hook.requests)
        assert all(r.headers["X-Driftd-Signature"].startswith("t=") for r in hook.requests)


def _metrics_port(proc: subprocess.Popen[str]) -> int:
    """The port the daemon's metrics server reports in its start-up log line."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "metrics_server_started" in line:
            return int(json.loads(line)["port"])
    raise AssertionError("the daemon never started its metrics server")


def test_scrape_client_that_hangs_up_is_a_debug_line_not_a_traceback(tmp_path: Path) -> None:
    """Clients that send GET /metrics and reset the connection leave no traceback on stderr."""
    config = {
        "source": {"type": "stdin"},
        "checkpoint": {"store": "none"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "debug", "format": "json"},
    }
    path = tmp_path / "driftd.yaml"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _metrics_port(proc)
        for _ in range(5):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: driftd\r\n\r\n")
            # Linger 0: close() sends a reset, so the server's write (or read) fails.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        # The server goes on serving the next scraper.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.status == 200
        _, stderr = proc.communicate("", timeout=60)  # end of stdin ends the run
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert "Traceback" not in stderr
    assert "metrics_client_disconnected" in stderr
