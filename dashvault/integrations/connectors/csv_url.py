"""CSV by URL: one file, a header row; the mapping names its columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from dashvault.integrations.connectors.session import Session, SyncError

MAX_ROWS = 1_000_000


def fetch(session: Session, config: dict[str, Any], full: bool) -> Iterator[list[dict[str, Any]]]:
    text = session.get_text(str(config.get("url", "")))
    delimiter = str(config.get("delimiter") or ",")[:1]
    try:
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise SyncError(f"The CSV file cannot be read: {exc}.") from exc
    if len(rows) > MAX_ROWS:
        raise SyncError(f"The CSV file has more than {MAX_ROWS:,} rows.")
    for start in range(0, len(rows), 5000):
        yield [dict(row) for row in rows[start : start + 5000]]
