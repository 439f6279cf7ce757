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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
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


# Made once: json.dumps with these options builds a new encoder per call, a fifth of the cost.
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
_QUOTE = json.encoder.encode_basestring  # how _ENCODE writes a string (ensure_ascii=False)
# The compact JSON _ENCODE makes of a record with FIELDS, for the usual types (below).
_TEMPLATE = (
    '{"action":%s,"actor_id":%s,"actor_kind":%s,"at":%s,"chain":%s,"detail":%s,"ip":%s,'
    '"prev":%s,"seq":%d,"target_id":%s,"target_type":%s}'
)


def canonical(record: dict[str, Any], *, exact: bool = False) -> bytes:
    """The bytes a record's MAC covers: its FIELDS as compact JSON with sorted keys.

    Records as appending and the readers make them (every field a string, seq an int,
    actor_id and ip possibly None, detail a dict) are written straight into _TEMPLATE: a third
    cheaper than the encoder, and the same bytes (tests/test_hashchain.py compares the two).
    Anything else goes through the encoder. `exact`: the record holds FIELDS and nothing else.
    """
    try:
        actor, ip, detail, seq = record["actor_id"], record["ip"], record["detail"], record["seq"]
        if type(seq) is int and type(detail) is dict:
            text = _TEMPLATE % (
                _QUOTE(record["action"]),
                "null" if actor is None else _QUOTE(actor),
                _QUOTE(record["actor_kind"]),
                _QUOTE(record["at"]),
                _QUOTE(record["chain"]),
                _ENCODE(detail) if detail else "{}",
                "null" if ip is None else _QUOTE(ip),
                _QUOTE(record["prev"]),
                seq,
                _QUOTE(record["target_id"]),
                _QUOTE(record["target_type"]),
            )
            return text.encode()
    except TypeError:
        pass  # a field that is not a string: the encoder decides
    return _ENCODE(record if exact else {name: record[name] for name in FIELDS}).encode()


@lru_cache(maxsize=8)
def _keyed(key: bytes) -> Any:
    """HMAC-SHA256 with the key already absorbed; copying it is cheaper than starting anew."""
    return hmac.new(key, digestmod=hashlib.sha256)


def mac(key: bytes, record: dict[str, Any], *, exact: bool = False) -> str:
    keyed = _keyed(key).copy()
    keyed.update(canonical(record, exact=exact))
    return str(keyed.hexdigest())


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
    last_seq, last_mac = (start.seq, start.mac) if start else (0, "")
    same, keyed = hmac.compare_digest, _keyed(key)  # locals: this loop runs a million times
    records = iter(records)
    for record in records:
        seq = int(record["seq"])
        record_mac = str(record["mac"])
        computed = keyed.copy()
        computed.update(canonical(record))
        problem = None
        if not same(computed.hexdigest(), record_mac):
            problem = Problem("changed", chain, seq, record.get("id"), "its MAC does not match")
        elif seq != expected_seq or not same(str(record["prev"]), expected_prev):
            problem = _misplaced(key, chain, record, seq, expected_seq, records)
        elif (signed := checkpoints.get(seq)) is not None and not same(signed, record_mac):
            problem = Problem(
                "rewritten", chain, seq, record.get("id"), "differs from the signed checkpoint"
            )
        if problem is not None:
            return (Head(last_seq, last_mac) if last_seq else None), problem
        last_seq, last_mac = seq, record_mac
        expected_seq, expected_prev = seq + 1, record_mac
    last = Head(last_seq, last_mac) if last_seq else None
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


def _misplaced(
    key: bytes,
    chain: str,
    record: dict[str, Any],
    seq: int,
    expected_seq: int,
    records: Iterator[dict[str, Any]],
) -> Problem:
    """Why an authentic record is not the one expected next (`records`: those after it)."""
    record_id = record.get("id")
    if seq > expected_seq:
        # A skipped number that turns up later, authentic, was moved, not deleted: name it.
        for later in records:
            later_seq = int(later["seq"])
            if expected_seq <= later_seq < seq and hmac.compare_digest(
                mac(key, later), str(later["mac"])
            ):
                return Problem(
                    "reordered", chain, later_seq, later.get("id"), f"stored after seq {seq}"
                )
        missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
        return Problem("deleted", chain, seq, record_id, f"seq {missing} missing before it")
    if seq < expected_seq:
        # Every number below expected_seq was seen already: this one is an extra entry.
        return Problem("inserted", chain, seq, record_id, "a second entry with this seq")
    return Problem("relinked", chain, seq, record_id, "its previous MAC is not its predecessor's")
