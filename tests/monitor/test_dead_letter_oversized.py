"""The shrinking of dead letters too large for their topic (the real-broker test is in
test_start_refusals_kafka.py)."""

from __future__ import annotations

import hashlib

from monitor.ingest.kafka.dead_letter import PREFIX_BYTES, SHRINK_STEPS, shrink


def test_shrink_steps_keep_all_then_a_prefix_then_nothing() -> None:
    """Each step keeps less, and every cut value is described by size, prefix and SHA-256."""
    original = bytes(range(256)) * 200
    assert SHRINK_STEPS == (None, PREFIX_BYTES, 0)
    assert shrink(original, None) == (original, [])
    digest = hashlib.sha256(original).hexdigest().encode()
    value, headers = shrink(original, PREFIX_BYTES)
    assert value == original[:PREFIX_BYTES]
    assert dict(headers) == {
        "driftd-value-dropped": str(len(original)).encode(),
        "driftd-value-prefix-bytes": str(PREFIX_BYTES).encode(),
        "driftd-value-sha256": digest,
    }
    value, headers = shrink(original, 0)
    assert value is None
    assert dict(headers)["driftd-value-prefix-bytes"] == b"0"
    assert dict(headers)["driftd-value-sha256"] == digest


def test_a_value_within_the_prefix_is_not_cut() -> None:
    """A value no longer than the prefix is kept whole, with no header claiming a cut."""
    small = b"x" * PREFIX_BYTES
    assert shrink(small, PREFIX_BYTES) == (small, [])
