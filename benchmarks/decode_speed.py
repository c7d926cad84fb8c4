"""Decoder throughput: messages/s of ``Decoder.decode`` against bare ``orjson.loads``.

The messages are demo inference events (7 numeric and 3 categorical features, about
1% nulls, ISO 8601 timestamps with offset and microseconds), decoded in poll batches
of 5,000 with 7 numeric + 2 categorical features and 2 segment paths
(``model_version``, ``features.region``). The baseline parses the very same bytes
with ``orjson.loads`` and nothing else, so the ratio (decoder speed / orjson-only
speed) is the share of the parse-only rate the decoder keeps; 1.0 would mean
validation and columnar conversion are free. The decoder is built as the pipeline
builds it: tolerant (the default ``schema.strict: false``), ``ts_unit: auto``, and
refusing other models. Measured three times: with the demo's ISO timestamps; with
the same events carrying epoch-seconds timestamps; and ``tolerant_mix``, the epoch
events with 1% written by the stdlib ``json.dumps`` with a NaN literal (parsed again
by the lenient parser), 1% with a feature sent as a numeric string and 0.5% with a
feature of the wrong type (each a missing value, counted), whose target is 0.4 and
whose parse-only baseline falls back to ``json.loads`` where orjson refuses. The
per-event decoder driftd started with (kept as the tests' oracle) is reported too.

``22_features`` is the wide case: events with 20 numeric and 2 categorical features
over 10 segments (``segment_by: [segment]``), epoch timestamps, a model and a
prediction, all of which the decoder reads (the events ``benchmarks.e2e_throughput``
produces). Its baseline is bare ``orjson.loads`` of the same messages in the same run;
the target is 0.6 of it.

    python -m benchmarks.decode_speed [--quick]
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from benchmarks._report import Measurement, best_of, parse_args, report
from monitor.config import SchemaConfig
from monitor.ingest.decode import Decoder
from monitor.ingest.demo_stream import CATEGORICAL_FEATURES, NUMERIC_FEATURES, DemoStream
from tests.monitor.decode_oracle import OracleDecoder

BENCH = "decode_speed"
BATCH = 5_000
NOW = 1_795_000_000.0
WIDE_NUMERIC = [f"f{i:02d}" for i in range(20)]
WIDE_CATEGORICAL = ["c0", "c1"]
WIDE_SEGMENTS = 10


def _batches(n_batches: int, iso: bool, tolerated: bool = False) -> list[list[bytes]]:
    stream = DemoStream(start_ts=NOW - 3_600.0)
    out = []
    for _ in range(n_batches):
        demo = stream.next_batch(BATCH)
        events: list[dict[str, Any]] = demo.events()
        if not iso:
            for event, ts in zip(events, demo.ts.tolist(), strict=True):
                event["ts"] = ts
        messages = [orjson.dumps(e) for e in events]
        if tolerated:
            for i in range(0, BATCH, 100):  # 1%: Python's json.dumps with a NaN literal
                events[i]["features"][NUMERIC_FEATURES[0]] = math.nan
                messages[i] = json.dumps(events[i]).encode()
            for i in range(50, BATCH, 100):  # 1%: a number sent as a string
                value = events[i]["features"][NUMERIC_FEATURES[1]]
                events[i]["features"][NUMERIC_FEATURES[1]] = str(value)
                messages[i] = orjson.dumps(events[i])
            for i in range(25, BATCH, 200):  # 0.5%: a wrong type
                events[i]["features"][NUMERIC_FEATURES[2]] = True
                messages[i] = orjson.dumps(events[i])
        out.append(messages)
    return out


def _wide_batches(n_batches: int) -> list[list[bytes]]:
    """Events with 20 numeric and 2 categorical features over 10 segments."""
    rng = np.random.default_rng(1)
    out = []
    for b in range(n_batches):
        values = rng.normal(size=(BATCH, len(WIDE_NUMERIC))).round(4).tolist()
        cats = rng.integers(0, 4, (BATCH, len(WIDE_CATEGORICAL))).tolist()
        segment = rng.integers(0, WIDE_SEGMENTS, BATCH).tolist()
        messages = []
        for i in range(BATCH):
            features: dict[str, object] = dict(zip(WIDE_NUMERIC, values[i], strict=True))
            features.update({c: "abcd"[k] for c, k in zip(WIDE_CATEGORICAL, cats[i], strict=True)})
            event = {
                "id": f"r{b * BATCH + i}",
                "ts": NOW - 3_600.0 + (b * BATCH + i) * 1e-4,
                "model": "bench",
                "segment": f"s{segment[i]}",
                "features": features,
                "prediction": float(values[i][0] > 0),
            }
            messages.append(orjson.dumps(event))
        out.append(messages)
    return out


def _loads(message: bytes) -> Any:
    """The cheapest parse of bytes holding NaN literals: orjson, else the stdlib."""
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError:
        return json.loads(message)


def _interleaved_best(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Best wall time of each function, running them in turn ``repeats`` times."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], best_of(fn, 1))
    return best


def main() -> None:
    """Run and report."""
    args = parse_args(__doc__ or BENCH)
    n_batches, repeats = (4, 7) if args.quick else (20, 9)
    schema = SchemaConfig(segment_by=["model_version", "features.region"])
    categorical = CATEGORICAL_FEATURES[:2]
    model = "credit-risk"
    decoder = Decoder(schema, NUMERIC_FEATURES, categorical, now=NOW, model=model)
    oracle = OracleDecoder(schema, NUMERIC_FEATURES, categorical, now=NOW, model=model)
    wide_schema = SchemaConfig(segment_by=["segment"])
    wide = (
        Decoder(wide_schema, WIDE_NUMERIC, WIDE_CATEGORICAL, now=NOW, model="bench"),
        OracleDecoder(wide_schema, WIDE_NUMERIC, WIDE_CATEGORICAL, now=NOW, model="bench"),
    )
    measurements = []
    cases: tuple[tuple[str, bool, bool, float], ...] = (
        ("iso_ts", True, False, 0.5),
        ("epoch_ts", False, False, 0.5),
        ("tolerant_mix", False, True, 0.4),
        ("22_features", False, False, 0.6),
    )
    for label, iso, tolerated, target in cases:
        if label == "22_features":
            batches = _wide_batches(n_batches)
            decoder, oracle = wide
        else:
            batches = _batches(n_batches, iso, tolerated)
        total = n_batches * BATCH
        for batch in batches:  # every event must be accepted, or the speed means nothing
            decoded = decoder.decode(batch)
            assert len(decoded) == BATCH, decoded.rejections[:3]
            assert bool(decoded.invalid) == tolerated, decoded.invalid

        def parse_only(
            bs: list[list[bytes]] = batches,
            loads: Callable[[bytes], Any] = _loads if tolerated else orjson.loads,
        ) -> None:
            for batch in bs:
                list(map(loads, batch))

        def decode(bs: list[list[bytes]] = batches, d: Decoder = decoder) -> None:
            for batch in bs:
                d.decode(batch)

        def decode_per_event(bs: list[list[bytes]] = batches, o: OracleDecoder = oracle) -> None:
            for batch in bs:
                o.decode(batch)

        # Interleaved, so that a busy spell on a shared machine hits both sides alike.
        best = _interleaved_best([parse_only, decode, decode_per_event], repeats)
        orjson_rate, decode_rate, per_event_rate = (total / t for t in best)
        print(
            f"{label}: orjson.loads only {orjson_rate:,.0f} msg/s "
            f"({1e6 / orjson_rate:.2f} us/msg); decoder {decode_rate:,.0f} msg/s "
            f"({1e6 / decode_rate:.2f} us/msg, {decode_rate / orjson_rate:.3f} of orjson); "
            f"per-event decoder {per_event_rate:,.0f} msg/s"
        )
        measurements += [
            Measurement(
                BENCH,
                f"decode_msgs_per_s_{label}",
                decode_rate,
                "1/s",
                target,
                "higher",
                orjson_rate,
            ),
            Measurement(
                BENCH,
                f"decode_vs_per_event_{label}",
                decode_rate,
                "1/s",
                2.0,
                "higher",
                per_event_rate,
            ),
        ]
    report(measurements)


if __name__ == "__main__":
    main()
