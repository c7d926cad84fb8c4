"""The rendered ``/metrics`` answer, kept until a batch changes it.

Rendering a registry is pure Python and holds the GIL: every scrape that renders slows
the consumer thread for as long. :class:`ExpositionCache` renders at most once per
batch (the daemon calls :meth:`ExpositionCache.invalidate` after each) and at most once
per ``max_age`` seconds while idle (so the lag and the poll age stay fresh); in between,
a scrape is a copy of bytes. Scrapes that arrive together wait for one render and share
it, instead of rendering side by side. The gzipped body is kept beside the plain one.
"""

from __future__ import annotations

import gzip
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics.exposition import UNDERSCORES, escape_metric_name
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["ExpositionCache", "Rendered", "text_exposition"]

GZIP_LEVEL = 6
"""zlib's default: most of level 9's size at a fraction of its time on exposition text."""


@dataclass
class Rendered:
    """One rendered answer: the body, its content type, and when and of what it was made."""

    body: bytes
    content_type: str
    generation: int
    made_at: float
    gzipped: bytes | None = None

    def gzip(self) -> bytes:
        """The body gzipped (compressed once, on first use)."""
        if self.gzipped is None:
            self.gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL)
        return self.gzipped


class ExpositionCache:
    """Renders ``registry`` in the format a scrape asks for, reusing a fresh answer.

    An answer is fresh while no :meth:`invalidate` came since it was rendered and it is
    younger than ``max_age`` seconds; ``max_age=0`` renders every scrape.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.registry = registry
        self.max_age = max_age
        self.clock = clock
        self.renders = 0
        """Renders so far (a scrape served from the cache does not count)."""
        self._generation = 0
        self._lock = threading.Lock()
        self._answers: dict[str, Rendered] = {}

    def invalidate(self) -> None:
        """The data changed (a batch was processed): the next scrape renders again."""
        self._generation += 1

    def render(self, accept: str) -> Rendered:
        """The answer for a scrape with this ``Accept`` header (text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept)
        with self._lock:  # a second scrape waits for this render instead of repeating it
            generation = self._generation
            now = self.clock()
            kept = self._answers.get(content_type)
            if (
                kept is not None
                and kept.generation == generation
                and now - kept.made_at < self.max_age
            ):
                return kept
            # The generation is read before rendering: a batch during the render makes
            # this answer stale at once, so the next scrape sees that batch.
            render = text_exposition if encoder is generate_latest else encoder
            answer = Rendered(render(self.registry), content_type, generation, now)
            self.renders += 1
            self._answers[content_type] = answer
            return answer


_OPENMETRICS_SUFFIXES = ("_created", "_gsum", "_gcount")
_PROMETHEUS_TYPES = {
    "counter": ("_total", "counter"),
    "info": ("_info", "gauge"),
    "stateset": ("", "gauge"),
    "gaugehistogram": ("", "histogram"),
    "unknown": ("", "untyped"),
}


class _Names:
    """Escaped metric names and sorted, escaped label names, worked out once per name."""

    def __init__(self) -> None:
        self.metrics: dict[str, str] = {}
        self.labels: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}

    def metric(self, name: str) -> str:
        found = self.metrics.get(name)
        if found is None:
            found = self.metrics[name] = escape_metric_name(name, UNDERSCORES)
        return found

    def label_order(self, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        found = self.labels.get(keys)
        if found is None:
            found = self.labels[keys] = tuple(
                (key, escape_metric_name(key, UNDERSCORES)) for key in sorted(keys)
            )
        return found


def _label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _go_float(value: float) -> str:
    """``prometheus_client.utils.floatToGoString``: Go's float text (exponents from 1e7)."""
    d = float(value)
    if math.isinf(d):
        return "+Inf" if d > 0 else "-Inf"
    if math.isnan(d):
        return "NaN"
    text = repr(d)
    dot = text.find(".")
    if d > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def text_exposition(registry: Collector) -> bytes:
    """The Prometheus text format (0.0.4), byte for byte what ``generate_latest`` writes.

    ``generate_latest`` validates and escapes every label name of every sample; here a
    metric's names are escaped once and only label values are checked per sample, which
    makes a 10k-series scrape about twice as fast.
    """
    names = _Names()
    output: list[str] = []

    def line(sample: Sample) -> str:
        labels = sample.labels
        name = names.metric(sample.name)
        value = _go_float(sample.value)
        stamp = "" if sample.timestamp is None else f" {int(float(sample.timestamp) * 1000):d}"
        if not labels:
            return f"{name} {value}{stamp}\n"
        pairs = ",".join(
            f'{escaped}="{_label_value(labels[key])}"'
            for key, escaped in names.label_order(tuple(labels))
        )
        return f"{name}{{{pairs}}} {value}{stamp}\n"

    for metric in registry.collect():
        suffix, kind = _PROMETHEUS_TYPES.get(metric.type, ("", metric.type))
        name = names.metric(metric.name + suffix)
        documentation = _help(metric.documentation)
        output.append(f"# HELP {name} {documentation}\n# TYPE {name} {kind}\n")
        extra: dict[str, list[str]] = {}
        for sample in metric.samples:
            for openmetrics_suffix in _OPENMETRICS_SUFFIXES:
                if sample.name == metric.name + openmetrics_suffix:
                    extra.setdefault(openmetrics_suffix, []).append(line(sample))
                    break
            else:
                output.append(line(sample))
        for openmetrics_suffix, lines in sorted(extra.items()):
            gauge = names.metric(metric.name + openmetrics_suffix)
            output.append(f"# HELP {gauge} {documentation}\n# TYPE {gauge} gauge\n")
            output.extend(lines)
    return "".join(output).encode("utf-8")
