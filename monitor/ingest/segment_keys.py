"""The segment key of each event: its segment paths' values as text, joined with ``,``.

A null or absent value is ``MISSING_SEGMENT``; a user's value can never be mistaken
for that marker, nor (with several paths) split differently, because the few
characters that would allow it are escaped (see ``_key_parts``). What a key may be
as a metric label, and how many segments are admitted, is ``monitor.ingest.segments``.
"""

from __future__ import annotations

from typing import Any

from monitor.ingest.columns import Problems, as_text

MISSING_SEGMENT = "__missing__"
"""The segment key component of an event whose segment path is null or absent."""


def segment_keys(
    columns: list[tuple[str, list[Any]]], n_rows: int, problems: Problems
) -> list[str]:
    """The key of every row from the segment paths' columns, given as (path, values) in
    ``schema.segment_by`` order; "" for every row when there are none."""
    joined = len(columns) > 1
    parts = [
        _key_parts(raw, as_text(raw, path, problems, MISSING_SEGMENT), joined)
        for path, raw in columns
    ]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return [""] * n_rows
    return list(map(",".join, zip(*parts, strict=True)))


def _key_parts(raw: list[Any], texts: list[str], joined: bool) -> list[str]:
    """Segment key parts that cannot be mistaken for the missing marker, or for another
    split of a key joined from several paths.

    A user's backslash is doubled and a user value ``__missing__`` gets a leading
    backslash; with several paths a user's comma becomes ``\\,``. Only an absent or
    null value is the bare marker.
    """
    marked = ("\\", ",") if joined else ("\\",)
    # The distinct values are few (segments), so the check is cheap on every batch.
    if not any(t == MISSING_SEGMENT or any(m in t for m in marked) for t in set(texts)):
        return texts
    out: list[str] = []
    for value, text in zip(raw, texts, strict=True):
        if value is None:
            out.append(text)
            continue
        escaped = text.replace("\\", "\\\\")
        if joined:
            escaped = escaped.replace(",", "\\,")
        out.append("\\" + escaped if escaped == MISSING_SEGMENT else escaped)
    return out
