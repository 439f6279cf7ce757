"""A keyed hash chain over audit records, and its verification (no models, no database).

Each record carries its chain's sequence number (1, 2, ...), the previous record's MAC (the
first record's is GENESIS) and its own MAC: HMAC-SHA256, under a key kept outside the database,
over a canonical encoding of every stored field. Without the key nobody can make a record that
verifies; with it, a whole rewritten chain still disagrees with the signed checkpoints.

Security contract of `verify_chain`: walking the records in append order it names the first
record that is changed (its MAC does not match its fields), deleted (a sequence number is
skipped), inserted or duplicated (a number repeats), reordered (a skipped number comes later),
or re-linked (its previous-MAC is not its predecessor's), and a truncated tail or a rewritten
chain against the newest checkpoint's (sequence, MAC) for the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = (
    "chain",
    "seq",
    "prev",
    "at",
    "action",
    "actor_kind",
    "actor_id",
    "target_type",
    "target_id",
    "ip",
    "detail",
)


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a record's MAC covers: its FIELDS as compact JSON with sorted keys."""
    return json.dumps(
        {name: record[name] for name in FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()


def mac(key: bytes, record: dict[str, Any]) -> str:
    return hmac.new(key, canonical(record), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Problem:
    kind: str  # changed | deleted | inserted | reordered | relinked | truncated | rewritten
    chain: str
    seq: int | None  # the record's sequence number (None: the chain as a whole)
    record_id: object  # the record's id where there is one
    detail: str

    def __str__(self) -> str:
        where = f"entry {self.record_id} (seq {self.seq})" if self.seq is not None else "chain"
        return f"chain {self.chain}: {where}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Head:
    seq: int
    mac: str


def verify_chain(
    key: bytes,
    chain: str,
    records: Iterable[dict[str, Any]],
    *,
    start: Head | None = None,
    checkpoints: dict[int, str] | None = None,
) -> tuple[Head | None, Problem | None]:
    """Verify one chain's records (dicts with "id", FIELDS and "mac", in append order).

    `start` is where an earlier part of the chain ended (an archive); `checkpoints` maps the
    sequence numbers that signed checkpoints saw to the MACs they saw. Returns the last
    record's head and the first problem (None: the chain verifies).
    """
    checkpoints = checkpoints or {}
    expected_seq = start.seq + 1 if start else 1
    expected_prev = start.mac if start else GENESIS
    last: Head | None = start
    records = iter(records)
    for record in records:
        seq = int(record["seq"])
        record_id = record.get("id")
        record_mac = str(record["mac"])
        if not hmac.compare_digest(mac(key, record), record_mac):
            return last, Problem("changed", chain, seq, record_id, "its MAC does not match")
        if seq > expected_seq:
            # A skipped number that turns up later, authentic, was moved, not deleted: name it.
            for later in records:
                later_seq = int(later["seq"])
                if expected_seq <= later_seq < seq and hmac.compare_digest(
                    mac(key, later), str(later["mac"])
                ):
                    return last, Problem(
                        "reordered", chain, later_seq, later.get("id"), f"stored after seq {seq}"
                    )
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
            return last, Problem(
                "deleted", chain, seq, record_id, f"seq {missing} missing before it"
            )
        if seq < expected_seq:
            # Every number below expected_seq was seen already: this one is an extra entry.
            return last, Problem("inserted", chain, seq, record_id, "a second entry with this seq")
        if not hmac.compare_digest(str(record["prev"]), expected_prev):
            return last, Problem(
                "relinked", chain, seq, record_id, "its previous MAC is not its predecessor's"
            )
        signed = checkpoints.get(seq)
        if signed is not None and not hmac.compare_digest(signed, record_mac):
            return last, Problem(
                "rewritten", chain, seq, record_id, "differs from the signed checkpoint"
            )
        last = Head(seq, record_mac)
        expected_seq, expected_prev = seq + 1, record_mac
    newest = max(checkpoints, default=0)
    if newest > (last.seq if last else 0):
        have = last.seq if last else 0
        return last, Problem(
            "truncated",
            chain,
            None,
            None,
            f"a signed checkpoint saw seq {newest}; the chain ends at {have}",
        )
    return last, None
