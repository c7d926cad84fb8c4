"""The crash equivalence of ``test_crash_equivalence.py``, with the daemon on confluent-kafka.

The daemon that is SIGKILLed and restarted runs ``kafka.client: confluent``; the straight
run it is compared with is the kafka-python reference, so the windows, transitions, final
state and alerts of the librdkafka source equal the reference's exactly. Four kills
instead of ten keep the suite within its time budget: each kill point is still chosen
mid-stream, mid-window and with closed windows to replay. A module of its own, so that
xdist's load-by-file puts it on another worker than the kafka-python run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.alertmanager_server import Receiver
from tests.monitor.test_crash_equivalence import check_crash_equivalence, hooks, reap_daemons

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["hooks", "reap_daemons"]  # the fixtures: no daemon outlives a test; two webhooks

CONFLUENT_KILLS = 4


def test_sigkill_of_a_confluent_daemon_changes_nothing(
    kafka_bootstrap: str,
    hooks: tuple[Receiver, Receiver],
    tmp_path: Path,
) -> None:
    """Four SIGKILLs of a confluent-kafka daemon: everything equals a straight kafka-python run."""
    check_crash_equivalence(
        kafka_bootstrap, hooks, tmp_path, client="confluent", kills=CONFLUENT_KILLS
    )
