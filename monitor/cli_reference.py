"""``driftd reference build | show | diff | merge``: make, read, compare and combine
reference profiles.

The work is in ``monitor.engine.reference`` (``build``, ``describe``, ``compare``,
``merge``); this module parses the command lines, loads the config (whose schema and
labels paths name the columns for ``build``, whose thresholds judge ``diff``), prints
warnings on stderr and results on stdout. Exit codes: 0 done, 2 on a bad input, output
or config (one line on stderr naming the file or option at fault), 4 when ``diff
--fail-on-drift`` finds a column over threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from detectors.profile import OTHER, CategoricalProfile, ReferenceProfile
from monitor.config import Settings, load_settings
from monitor.engine.reference.build import build_reference
from monitor.engine.reference.checks import SMALL_REFERENCE_ROWS, small_reference_warning
from monitor.engine.reference.compare import compare_profiles, diff_as_dict, render_diff
from monitor.engine.reference.describe import describe, render
from monitor.engine.reference.merge import merge_reference_files
from monitor.engine.reference.profile_file import load_reference
from monitor.engine.reference.training_data import FORMATS
from monitor.errors import ConfigError, InvalidConfigError, ReferenceProfileError

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_DRIFT = 4
"""``diff --fail-on-drift`` found a column over threshold (as ``backtest --fail-on-alert``
exits when anything would have paged)."""


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


def _merge_warn(message: str) -> None:
    print(f"driftd reference merge: warning: {message}", file=sys.stderr)


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


def _error(command: str, message: str) -> int:
    print(f"driftd reference {command}: {message}", file=sys.stderr)
    return EXIT_ERROR


def _build_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        grid = None if args.grid_from is None else load_reference(args.grid_from)
    except ReferenceProfileError as exc:
        return _error("build", f"--grid-from {exc}")
    except InvalidConfigError as exc:
        for error in exc.errors:
            print(f"driftd reference build: config {error}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigError as exc:
        return _error("build", f"config {exc}")
    try:
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
            grid=grid,
            multivariate=settings.detectors.multivariate_drift,
            embedding=settings.detectors.embedding_drift,
            decision_threshold=settings.labels.decision_threshold,
        )
    except ReferenceProfileError as exc:
        option = {str(args.input): "--input ", str(args.output): "--output "}.get(exc.path, "")
        return _error("build", f"{option}{exc}")
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


def _show_command(args: argparse.Namespace) -> int:
    try:
        profile = load_reference(args.profile)
    except ReferenceProfileError as exc:
        return _error("show", str(exc))
    try:
        description = describe(profile, args.feature)
    except KeyError:
        names = [*profile.names, *(p.name for p in (profile.prediction, profile.label) if p)]
        return _error(
            "show",
            f"--feature {args.feature!r} is not in {args.profile}; its columns: "
            + ", ".join(names),
        )
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        print(render(description, full=args.feature is not None))
    return EXIT_OK


def _detectors_config(command: str, config: Path | None) -> Settings | int:
    try:
        return load_settings(config)
    except InvalidConfigError as exc:
        for error in exc.errors:
            print(f"driftd reference {command}: config {error}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigError as exc:
        return _error(command, f"config {exc}")


def _diff_command(args: argparse.Namespace) -> int:
    settings = _detectors_config("diff", args.config)
    if isinstance(settings, int):
        return settings
    try:
        a, b = load_reference(args.a), load_reference(args.b)
    except ReferenceProfileError as exc:
        return _error("diff", str(exc))
    diff = compare_profiles(a, b, settings.detectors)
    if args.json:
        print(json.dumps(diff_as_dict(diff), indent=2))
    else:
        print(render_diff(diff, (str(args.a), str(args.b))))
    return EXIT_DRIFT if args.fail_on_drift and diff.drifted else EXIT_OK


def _merge_command(args: argparse.Namespace) -> int:
    try:
        merged = merge_reference_files(args.profiles, args.output, warn=_merge_warn)
    except ReferenceProfileError as exc:
        option = "--output " if exc.path == str(args.output) else ""
        return _error("merge", f"{option}{exc}")
    print(f"wrote {args.output}: {len(args.profiles)} profiles merged")
    print(_describe(merged))
    return EXIT_OK


def _add_tool_parsers(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="print a reference profile for people: per column its kind, count, missing "
        "share, quantiles or top categories, and bins",
        description=(
            "Print a reference profile: its version and rows, then per column (features, "
            "prediction, label) the kind, count and missing share, the quantiles (numeric: "
            "min, p1, p25, p50, p75, p99, max, read off the fine grid) or the top categories "
            "with their shares (categorical, with __other__), and the coarse bins as a bar "
            "line. --feature prints one column with every bin and category."
        ),
    )
    show.add_argument("profile", type=Path, help="reference profile JSON")
    show.add_argument("--feature", default=None, metavar="NAME", help="only this column, in full")
    show.add_argument("--json", action="store_true", help="print the description as JSON")
    show.set_defaults(handler=_show_command)

    diff = commands.add_parser(
        "diff",
        help="compare two reference profiles column by column (PSI, KS, chi-square, JS)",
        description=(
            "Score b against a (the reference) on every column both hold, with the drift "
            "statistics the daemon uses: PSI and KS on numeric columns, PSI, chi-square "
            "(Cohen's w) and Jensen-Shannon on categorical ones, and the change in missing "
            "share, each against the method's fixed threshold (detectors.<method>.threshold "
            "and detectors.overrides from -c, else the defaults). Columns only in one "
            "profile are listed as added or removed. Exit 0, or 4 with --fail-on-drift "
            "when a column is over threshold."
        ),
    )
    diff.add_argument("a", type=Path, help="the reference profile (say, the last training set)")
    diff.add_argument("b", type=Path, help="the profile compared with it (say, the new one)")
    diff.add_argument(
        "--fail-on-drift", action="store_true", help="exit 4 when a column is over threshold"
    )
    diff.add_argument("--json", action="store_true", help="print the comparison as JSON")
    diff.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="driftd YAML config whose detectors section sets the thresholds (without it: "
        "built-in defaults plus DRIFTD_ environment overrides)",
    )
    diff.set_defaults(handler=_diff_command)

    merge = commands.add_parser(
        "merge",
        help="combine profiles built on shards of one training set (on one grid)",
        description=(
            "Add up profiles of shards of one training set, given in time order: the result "
            "is the profile of the shards' data taken together. The shards must be built on "
            "one grid (reference build --grid-from GRID.json), so that their bins and top "
            "categories agree; profiles with other bins, kinds or columns are refused, "
            "naming the file and column. The segment mix and the score calibration (on the "
            "grid's calibration) add up too; a multivariate PCA or an embedding model does "
            "not, and is kept only when every shard carries the same one. Whatever the "
            "merged profile leaves out is named in a warning on stderr, with the remedy."
        ),
    )
    merge.add_argument("profiles", type=Path, nargs="+", help="profiles of the shards, in order")
    merge.add_argument("-o", "--output", type=Path, required=True, help="profile JSON to write")
    merge.set_defaults(handler=_merge_command)


def add_reference_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``reference build | show | diff | merge`` on a sub-command set and return
    the ``build`` parser; each ``handler`` returns an exit code (0 done, 2 on a bad input,
    output or config with the reason on stderr, 4 for ``diff --fail-on-drift`` on drift)."""
    reference = subparsers.add_parser(
        "reference", help="build, show, compare and merge reference profiles"
    )
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
        help="driftd YAML config whose schema and labels paths name the columns and whose "
        "labels.decision_threshold the score calibration is fitted for (without it: "
        "built-in defaults plus DRIFTD_ environment overrides)",
    )
    build.add_argument(
        "--grid-from",
        type=Path,
        default=None,
        metavar="GRID.json",
        help="profile on the bins, top categories and column kinds of this profile (say, "
        "of a sample or the first shard) instead of the data's own, and calibrate the scores "
        "on its score calibration's bins, so that profiles of shards can be merged; "
        "--n-fine, --n-coarse, --top-k and --categorical are then unused",
    )
    build.set_defaults(handler=_build_command)
    _add_tool_parsers(commands)
    return build
