"""``render_html`` and ``render_report``: a backtest's result as one self-contained HTML page.

matplotlib is an optional extra (``pip install 'driftd[report]'``): the daemon never
needs it, so it is imported here only when a report is made, and its absence is a
``ReportError`` naming the package instead of an ``ImportError`` from deep inside.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.errors import ReportError
from monitor.report.digest import digest

DEFAULT_TOP_COLUMNS = 8
"""Columns per segment drawn as score charts; the others are named and still tested."""
INSTALL_HINT = "pip install 'driftd[report]'"


def render_html(data: Mapping[str, Any], *, top_columns: int = DEFAULT_TOP_COLUMNS) -> str:
    """The report of ``data`` (a ``driftd backtest`` result) as an HTML string.

    The same ``data`` always gives the same bytes. Raises ``ReportError`` when
    matplotlib is missing or a part of ``data`` has the wrong shape (its ``key`` names it).
    """
    if top_columns < 1:
        raise ReportError(f"must be at least 1, got {top_columns}", key="top_columns")
    try:
        # Imported on use: matplotlib is the optional "report" extra.
        from monitor.report.page import build_page  # noqa: PLC0415
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "matplotlib":
            raise
        raise ReportError(
            f"the HTML report needs matplotlib, which is not installed: {INSTALL_HINT}",
            missing_package="matplotlib",
        ) from error
    return build_page(digest(data, top_columns=top_columns))


def render_report(
    data: Mapping[str, Any], path: Path, *, top_columns: int = DEFAULT_TOP_COLUMNS
) -> None:
    """Write the report of ``data`` to ``path`` (UTF-8), replacing it whole or not at all."""
    page = render_html(data, top_columns=top_columns)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ReportError(
            f"cannot write the report: {error.strerror or error}", key=str(path)
        ) from error
