"""The targets a benchmark run missed, one line each, from the JSON lines it wrote.

``make bench`` runs every benchmark with ``BENCHMARK_LINES=FILE`` (each appends its
JSON lines there) and ends with::

    python -m benchmarks.summary FILE [--failed NAME ...]

It reads the lines by the convention of ``benchmarks._report`` (the target applies to
the ratio where there is one, else to the value; ``better`` is that number's
direction), prints one line per missed target, then a count. ``--failed`` names the
benchmarks that exited non-zero: each gets a line too. Exit 0 when every benchmark
ran (missed targets included: the numbers of a busy machine are noisy, and the lines
say so), 1 when one failed or the file holds no measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._report import target_met

KEYS = ("bench", "metric", "value", "unit", "baseline", "ratio", "target", "better")


def measurements(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The benchmark lines among ``lines`` (anything else a benchmark printed is skipped)."""
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and all(key in data for key in KEYS):
            yield data


def missed(line: dict[str, Any]) -> str | None:
    """How ``line`` misses its target, in words; None when it meets it."""
    ratio, value, target = line["ratio"], line["value"], line["target"]
    if target_met(ratio, value, target, line["better"]):
        return None
    on = "ratio" if ratio is not None else "value"
    subject = f"{ratio:.3g}x" if ratio is not None else f"{value:.4g} {line['unit']}"
    wanted = ">=" if line["better"] == "higher" else "<="
    return (
        f"MISSED {line['bench']} {line['metric']}: {on} {subject}, "
        f"target {wanted} {target:.4g}{'x' if ratio is not None else ''}"
    )


def summarise(lines: Iterable[str], failed: Iterable[str] = ()) -> tuple[list[str], int]:
    """The summary's lines and its exit code."""
    found = list(measurements(lines))
    out = [miss for line in found if (miss := missed(line)) is not None]
    n_missed = len(out)
    failures = [name for name in failed if name]
    out += [
        f"FAILED {name}: the benchmark exited non-zero (its lines are missing)" for name in failures
    ]
    if not found:
        out.append("FAILED: no benchmark line was written")
    out.append(
        f"benchmarks: {len(found)} measurements, {n_missed} targets missed"
        + (f", {len(failures)} benchmarks failed" if failures else "")
    )
    return out, 1 if failures or not found else 0


def main(argv: list[str] | None = None) -> int:
    """Print the summary of FILE; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", type=Path, help="the JSON lines the benchmarks appended")
    parser.add_argument(
        "--failed", nargs="*", default=[], metavar="NAME", help="benchmarks that exited non-zero"
    )
    args = parser.parse_args(argv)
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"benchmarks.summary: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        text = ""
    lines, code = summarise(text.splitlines(), args.failed)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
