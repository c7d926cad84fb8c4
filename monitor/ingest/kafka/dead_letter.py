"""Dead letters too large for the dead-letter topic: a bounded prefix, the size, a SHA-256.

A refused record is dead-lettered with its original bytes. When the dead-letter topic
refuses it as too large (its ``max.message.bytes``, or the producer's request limit),
it is written again with only the first ``PREFIX_BYTES`` bytes as its value, and if
even that is too large, with no value. Either way three headers say what is missing,
so nothing is lost silently and the original can be recognised (and fetched from the
source topic while its retention lasts, by the origin headers):

* ``driftd-value-dropped``: the original's size in bytes (the header older driftd
  versions wrote, with the same meaning: the value is not the whole original);
* ``driftd-value-prefix-bytes``: how many of the original's first bytes the value
  holds (0 when the value is null);
* ``driftd-value-sha256``: the hex SHA-256 of the whole original.

``driftd_dead_letter_truncated_total`` counts them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["PREFIX_BYTES", "SHRINK_STEPS", "TruncatedDeadLetters", "shrink"]

PREFIX_BYTES: Final = 16 * 1024
"""The bytes of an oversized original kept: enough to see what it was, far under any
topic limit worth the name (Kafka's default is 1 MiB)."""

SHRINK_STEPS: Final[tuple[int | None, ...]] = (None, PREFIX_BYTES, 0)
"""What each attempt keeps of the value: all of it, a prefix, nothing."""


def shrink(value: bytes, keep: int | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value to write keeping ``keep`` bytes of ``value`` (None: all), and the
    headers that describe what was cut (none when nothing was)."""
    if keep is None or len(value) <= keep:
        return value, []
    headers = [
        ("driftd-value-dropped", str(len(value)).encode("ascii")),
        ("driftd-value-prefix-bytes", str(keep).encode("ascii")),
        ("driftd-value-sha256", hashlib.sha256(value).hexdigest().encode("ascii")),
    ]
    return (value[:keep] if keep else None), headers


class TruncatedDeadLetters(Collector):
    """``driftd_dead_letter_truncated_total``, read from the source's own count."""

    def __init__(self, count: Callable[[], int], model: str) -> None:
        self._count = count
        self._model = model

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One sample: the dead letters written without their whole value."""
        family = CounterMetricFamily(
            "driftd_dead_letter_truncated",
            "Dead letters too large for the dead-letter topic, written with a bounded "
            "prefix of their value, its size and SHA-256.",
            labels=["model"],
        )
        family.add_metric([self._model], float(self._count()))
        yield family
