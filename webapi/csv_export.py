"""CSV exports (the product list, the price gaps, the year index): one writer for all of them.

A download is streamed a thousand rows at a time, so the product list's export, which reads its
rows from a server-side cursor, never holds the whole answer in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from flask import Response

ROWS_PER_CHUNK = 1000


def cell(value: Any) -> Any:
    """A value as an export writes it: None as an empty cell, and a text a spreadsheet would
    run as a formula quoted as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def answer(description: str) -> dict[str, Any]:
    """An export's answer as the OpenAPI document shows it:
    `@blueprint.response(200, **csv_export.answer(description))`."""
    return {"schema": {"type": "string"}, "content_type": "text/csv", "description": description}


def lines(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The header, then `rows` (mappings with `columns`), as CSV text in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for number, row in enumerate(rows, 1):
        writer.writerow([cell(row[name]) for name in columns])
        if number % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def download(filename: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Response:
    """`rows` as a CSV download named `filename`, streamed: they are read after the request's
    own connections are closed, so `rows` is a list or holds a connection of its own."""
    return Response(
        lines(columns, rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
