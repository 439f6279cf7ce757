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


def points(
    records: Iterable[dict[str, Any]],
    mapping: dict[str, str],
    metric_key: str,
    *,
    id_prefix: str = "",
    tz: dt.tzinfo = dt.UTC,
) -> Mapped:
    """`id_prefix` (the integration's id) keeps two sources' ids apart in one metric; `tz` (the
    org's) places times written without an offset, and dates, on the org's own days."""
    out: list[PointIn] = []
    skipped = 0
    for number, record in enumerate(records, start=1):
        raw_value = dig(record, mapping.get("value", ""))
        if raw_value is None or raw_value == "":
            skipped += 1
            continue
        decimal = "," if mapping.get("decimal") == "," else "."
        value = _number(raw_value, number, mapping.get("value", ""), decimal)
        field = mapping.get("timestamp", "")
        ts = _time(dig(record, field), number, field, tz)
        dimension = dig(record, mapping["dimension"]) if mapping.get("dimension") else ""
        external = dig(record, mapping["id"]) if mapping.get("id") else None
        dimension = "" if dimension is None else str(dimension)[:120]
        external = None if external in (None, "") else (id_prefix + str(external))[:200]
        if "\x00" in dimension or (external is not None and "\x00" in external):
            raise SyncError(f"Record {number}: a field holds a NUL character.")
        out.append(PointIn(metric_key, ts, value, dimension, external))
    return Mapped(out, skipped)


THOUSANDS = {  # a number written with thousands separators, per decimal mark
    ".": re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$"),
    ",": re.compile(r"^[-+]?\d{1,3}(\.\d{3})+(,\d+)?$"),
}


def _number(raw: Any, number: int, field: str, decimal: str = ".") -> float:
    """A number, or a numeric string: "1234.5", "1,234.5" (or with `decimal` ",": "1234,5",
    "1.234,5"). Anything else is an error, not a guess: "12,5" with the point as decimal
    mark could be twelve and a half or a hundred and twenty-five, and so could "12.5" with
    the comma."""
    if isinstance(raw, bool):
        raise SyncError(f"Record {number}: {field!r} is not a number.")
    if isinstance(raw, str):
        text = raw.strip().replace(" ", "")
        if THOUSANDS[decimal].match(text):
            text = text.replace("," if decimal == "." else ".", "")
        if decimal == ",":
            if "." in text:  # not a thousands separator (see above): refused, not a guess
                raise SyncError(f"Record {number}: {field!r} is not a number.")
            text = text.replace(",", ".")
        raw = text
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SyncError(f"Record {number}: {field!r} is not a number.") from None
    except OverflowError:  # a JSON integer beyond a double, such as 10**400
        value = math.inf
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise SyncError(f"Record {number}: {field!r} is out of range.")
    return value


FIRST, LAST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC), dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def _time(raw: Any, number: int, field: str, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    """ISO 8601 (without an offset, or a date alone: in `tz`), or seconds or milliseconds
    since 1970; between 1900 and 2200, as the push API takes them."""
    when = _parse_time(raw, number, field, tz)
    if not FIRST <= when < LAST:
        raise SyncError(f"Record {number}: {field!r} is outside 1900-2200.")
    return when


def _parse_time(raw: Any, number: int, field: str, tz: dt.tzinfo) -> dt.datetime:
    if raw is None or raw == "":
        raise SyncError(f"Record {number}: {field!r} has no time.")
    if isinstance(raw, bool):  # an int to Python, but true is not 1970-01-01T00:00:01Z
        raise SyncError(f"Record {number}: {field!r} is not a time.")
    try:
        if isinstance(raw, (int, float)) or (isinstance(raw, str) and raw.isdigit()):
            seconds = float(raw)
            if seconds > 1e11:  # milliseconds
                seconds /= 1000
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise SyncError(f"Record {number}: {field!r} is not a time.") from None
    return when if when.tzinfo else when.replace(tzinfo=tz)
