"""The ``driftd`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monitor.detectors_demo import WindowReport, format_report, run_demo

EXIT_OK = 0
EXIT_CONFIG = 2


def _demo(args: argparse.Namespace) -> int:
    print(
        "driftd demo: simulated credit-risk model, 3 segments; 'west' gets a feature shift "
        "at event 60,000 and a prediction shift at 120,000.",
        flush=True,
    )

    def emit(report: WindowReport) -> None:
        print(format_report(report), flush=True)

    run_demo(events=args.events, emit=emit)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="driftd", description="Streaming drift monitor.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the detectors on the built-in demo stream")
    demo.add_argument("--events", type=int, default=200_000, help="events after the warm-up")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``driftd`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
