"""Startup: ``driftd --help`` and ``driftd check-config`` as whole commands, in seconds.

Each command runs as a new process (the venv's ``driftd`` console script, as a user
types it), paired in every round with ``python -c pass`` run by the same interpreter:
the baseline, what any Python command costs before its first import. The rounds
interleave the three commands so that a busy machine slows them alike; each line
reports the best of the rounds (the median is printed too). The config is the docker
compose demo's (deploy/compose/driftd.yaml): a Kafka source, labels, alert sinks.

The target, 0.5 s, applies to the value (the whole command), not to a ratio: the lines
carry the baseline beside the value and no ratio, so ``better`` is the value's
direction, lower.

    python -m benchmarks.startup [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._report import Measurement, parse_args, report

BENCH = "startup"
TARGET_S = 0.5
ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "deploy" / "compose" / "driftd.yaml"


def _timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``command``, which must exit 0."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, check=False, timeout=120)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{BENCH}: {' '.join(command)} exited {done.returncode}: "
            + done.stderr.decode(errors="replace").strip()[-500:]
        )
    return seconds


def main() -> None:
    """Run the rounds and report."""
    args = parse_args(__doc__ or BENCH)
    rounds = 7 if args.quick else 21
    driftd = str(Path(sys.executable).with_name("driftd"))
    commands = {
        "python_pass": [sys.executable, "-c", "pass"],
        "help": [driftd, "--help"],
        "check_config": [driftd, "check-config", "-c", str(DEMO_CONFIG)],
    }
    # DRIFTD_ variables would change what check-config validates; none of the caller's.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    for command in commands.values():  # warm the file cache once, untimed
        _timed(command, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(_timed(command, env))

    baseline = min(times["python_pass"])
    print(f"{rounds} rounds; config {DEMO_CONFIG.relative_to(ROOT)}")
    for name, seconds in times.items():
        print(f"  {name:<13} best {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s")
    report(
        [
            Measurement(
                BENCH,
                f"{name}_s",
                min(times[name]),
                "s",
                TARGET_S,
                "lower",
                baseline=baseline,
                target_on_value=True,
            )
            for name in ("help", "check_config")
        ]
    )


if __name__ == "__main__":
    main()
