"""The rebalance equivalence of ``test_rebalance.py``, with replicas on confluent-kafka.

Replica A and B (``kafka.client: confluent``) hand partitions over mid-stream; their
windows together equal the kafka-python reference daemon's. A module of its own, so that
xdist's load-by-file puts it on another worker than the kafka-python run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.monitor.test_rebalance import check_partition_move

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_partition_moved_between_confluent_replicas_changes_no_result(
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """Confluent replicas A and B together close the kafka-python daemon's windows exactly."""
    check_partition_move(kafka_bootstrap, tmp_path, "confluent")
