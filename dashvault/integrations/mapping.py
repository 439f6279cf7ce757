"""Records to data points: the integration's field mapping applied to each record.

mapping: `timestamp`, `value`, optional `dimension` and `id` (the external id that makes a
re-synced record replace its earlier point), each a dotted path into the record; `decimal`:
"," where numbers are written with a decimal comma (many CSV files). A record
without a value (null or empty: a deal without an amount) is skipped and counted; a value or
time that cannot be read stops the sync with the record's number, so nothing is half-stored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dashvault.integrations.connectors.session import SyncError, dig
from dashvault.metrics.ingest import MAX_MAGNITUDE, PointIn


@dataclass
class Mapped:
    points: list[PointIn]
    skipped: int


def points(records: Iterable[dict[str, Any]], mapping: dict[str, str], metric_key: str) -> Mapped:
    out: list[PointIn] = []
    skipped = 0
    for number, record in enumerate(records, start=1):
        raw_value = dig(record, mapping.get("value", ""))
        if raw_value is None or raw_value == "":
            skipped += 1
            continue
        decimal = "," if mapping.get("decimal") == "," else "."
        value = _number(raw_value, number, mapping.get("value", ""), decimal)
        ts = _time(dig(record, mapping.get("timestamp", "")), number, mapping.get("timestamp", ""))
        dimension = dig(record, mapping["dimension"]) if mapping.get("dimension") else ""
        external = dig(record, mapping["id"]) if mapping.get("id") else None
        out.append(
            PointIn(
                metric_key=metric_key,
                ts=ts,
                value=value,
                dimension="" if dimension is None else str(dimension)[:120],
                external_id=None if external in (None, "") else str(external)[:200],
            )
        )
    return Mapped(out, skipped)


THOUSANDS = {
    ".": re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$"),
    ",": re.compile(r"^[-+]?\d{1,3}(\.\d{3})+(,\d+)?$"),
}


def _number(raw: Any, number: int, field: str, decimal: str = ".") -> float:
    """A number, or a numeric string: "1234.5", "1,234.5" (or with `decimal` ",": "1234,5",
    "1.234,5"). Anything else is an error, not a guess: "12,5" with the point as decimal
    mark could be twelve and a half or a hundred and twenty-five."""
    if isinstance(raw, bool):
        raise SyncError(f"Record {number}: {field!r} is not a number.")
    if isinstance(raw, str):
        text = raw.strip().replace(" ", "")
        if THOUSANDS[decimal].match(text):
            text = text.replace("," if decimal == "." else ".", "")
        if decimal == ",":
            text = text.replace(",", ".") if "." not in text else text
        raw = text
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SyncError(f"Record {number}: {field!r} is not a number.") from None
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise SyncError(f"Record {number}: {field!r} is out of range.")
    return value


def _time(raw: Any, number: int, field: str) -> dt.datetime:
    """ISO 8601 (a date alone is its midnight in UTC), or seconds or milliseconds since 1970."""
    if raw is None or raw == "":
        raise SyncError(f"Record {number}: {field!r} has no time.")
    try:
        if isinstance(raw, (int, float)) or (isinstance(raw, str) and raw.isdigit()):
            seconds = float(raw)
            if seconds > 1e11:  # milliseconds
                seconds /= 1000
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise SyncError(f"Record {number}: {field!r} is not a time.") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
