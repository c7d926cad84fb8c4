"""``driftd reference build``: the command that profiles training data into a reference.

The work is ``monitor.engine.reference.build.build_reference``; this module parses the
command line, loads the config whose schema and labels paths name the columns, prints
the warnings (id-like and time-like columns, a small reference) on stderr and a summary
of the profile on stdout. Exit code 0 when written, 2 on a bad input, output or config
(one line on stderr naming the option at fault).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from detectors.profile import OTHER, CategoricalProfile, ReferenceProfile
from monitor.config import Settings, load_settings
from monitor.engine.reference.build import build_reference
from monitor.engine.reference.checks import SMALL_REFERENCE_ROWS, small_reference_warning
from monitor.engine.reference.training_data import FORMATS
from monitor.errors import ConfigError, InvalidConfigError, ReferenceProfileError

EXIT_OK = 0
EXIT_ERROR = 2


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _leave_out(settings: Settings) -> list[str]:
    """The label events' id, timestamp and label paths: never features of the model.

    The schema's own id, timestamp and segment paths are left out by ``build_reference``;
    its label (and prediction) path is profiled as the label.
    """
    labels, schema = settings.labels, settings.schema_
    roles = {schema.prediction, schema.label}
    return sorted({labels.id, labels.timestamp, labels.label} - roles)


def _warn(message: str) -> None:
    print(f"driftd reference build: warning: {message}", file=sys.stderr)


def _describe(profile: ReferenceProfile) -> str:
    first = profile.features[0]
    rows = first.n_ref + first.n_missing
    lines = [
        f"reference version {profile.version}: {rows:,} rows, {len(profile.features)} features"
    ]
    parts = list(profile.features)
    for role, prof in (("prediction", profile.prediction), ("label", profile.label)):
        if prof is None:
            lines.append(f"  ({role}: none in the data)")
        else:
            parts.append(prof)
    for prof in parts:
        detail = (
            f"{len(prof.categories)} categories + {OTHER}"
            if isinstance(prof, CategoricalProfile)
            else f"{prof.n_bins} fine / {prof.n_coarse} coarse bins"
        )
        lines.append(
            f"  {prof.name:<24} {prof.kind:<11} {detail:<28} missing {prof.missing_rate:.1%}"
        )
    return "\n".join(lines)


def _build_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        profile = build_reference(
            args.input,
            args.output,
            schema=settings.schema_,
            categorical=args.categorical,
            n_fine=args.n_fine,
            n_coarse=args.n_coarse,
            top_k=args.top_k,
            exclude=args.exclude,
            leave_out=_leave_out(settings),
            warn=_warn,
        )
    except ReferenceProfileError as exc:
        option = {str(args.input): "--input ", str(args.output): "--output "}.get(exc.path, "")
        print(f"driftd reference build: {option}{exc}", file=sys.stderr)
        return EXIT_ERROR
    except InvalidConfigError as exc:
        for error in exc.errors:
            print(f"driftd reference build: config {error}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigError as exc:
        print(f"driftd reference build: config {exc}", file=sys.stderr)
        return EXIT_ERROR
    first = profile.features[0]
    windows = settings.windows
    small = small_reference_warning(
        first.n_ref + first.n_missing,
        window=windows.size_events or windows.min_samples,
        alpha=settings.detectors.alpha,
    )
    if small is not None:
        _warn(small)
    print(f"wrote {args.output}")
    print(_describe(profile))
    return EXIT_OK


def add_reference_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``reference build`` on a sub-command set; its ``handler`` returns an exit
    code (0 written, 2 on a bad input, output or config, with the reason on stderr)."""
    reference = subparsers.add_parser("reference", help="build reference profiles")
    commands = reference.add_subparsers(dest="reference_command", required=True)
    build: argparse.ArgumentParser = commands.add_parser(
        "build",
        help="profile training data (CSV, Parquet or JSONL) into a reference JSON",
        description=(
            "Profile training data into a versioned reference profile. The format follows "
            f"the input's suffix ({', '.join(FORMATS)}). Every column is a feature except "
            "the schema's id, timestamp, model, prediction, label and segment_by columns "
            "(a segment path into the features, like features.region, leaves out region) "
            "and the labels section's id, timestamp and label columns; the prediction and "
            "label columns are profiled as such. JSONL lines may also be inference events, "
            "whose features are read from the schema's features path. Columns that look "
            f"like ids or times, and references of fewer than {SMALL_REFERENCE_ROWS:,} rows, "
            "are warned about on stderr."
        ),
    )
    build.add_argument("-i", "--input", type=Path, required=True, help="training data file")
    build.add_argument("-o", "--output", type=Path, required=True, help="profile JSON to write")
    build.add_argument(
        "--categorical",
        type=_names,
        default=[],
        metavar="A,B",
        help="comma-separated columns to profile as categorical whatever they hold",
    )
    build.add_argument(
        "--exclude",
        type=_names,
        default=[],
        metavar="A,B",
        help="comma-separated columns to leave out of the profile",
    )
    build.add_argument(
        "--n-fine", type=int, default=100, help="fine (KS) bins, 100-200 (default: %(default)s)"
    )
    build.add_argument(
        "--n-coarse", type=int, default=10, help="coarse (PSI) bins, 2-50 (default: %(default)s)"
    )
    build.add_argument(
        "--top-k", type=int, default=20, help="categories kept, 1-1000 (default: %(default)s)"
    )
    build.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="driftd YAML config whose schema and labels paths name the columns (without "
        "it: built-in defaults plus DRIFTD_ environment overrides)",
    )
    build.set_defaults(handler=_build_command)
    return build
