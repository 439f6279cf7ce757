"""Appending to and verifying the audit hash chains (dashvault.lib.hashchain does the math).

Security contract: every entry is appended through `append`, which holds the chain's lock row
(PostgreSQL; SQLite serializes writers) while it numbers the entry after the chain's newest,
links it to that one and computes its MAC, in the caller's transaction: a rolled-back change
leaves no entry and no gap. The audit key (settings.AUDIT_KEY) never enters the database.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from dashvault.audit.models import AuditChainLock, AuditEntry
from dashvault.lib import hashchain

PLATFORM = "platform"
NEWEST = "SELECT seq, mac FROM audit_auditentry WHERE chain = %s ORDER BY seq DESC LIMIT 1"
SQLITE_NEWEST = "SELECT seq, mac FROM audit_auditentry WHERE chain = ? ORDER BY seq DESC LIMIT 1"
LOCK = "SELECT chain FROM audit_auditchainlock WHERE chain = %s FOR UPDATE"
CHECKPOINT_EVERY = 10_000  # entries of one chain between signed checkpoints


def audit_key() -> bytes:
    return str(settings.AUDIT_KEY).encode()


@lru_cache(maxsize=4096)  # str() of a UUID is a fifth of what hashing an entry costs
def chain_of(org_id: object) -> str:
    return PLATFORM if org_id is None else str(org_id)


# The stored columns of an entry: its id, the org (the chain derives from it), the fields the
# MAC covers, and the MAC. SQLITE_RECORDS selects them in this order.
RECORD_COLUMNS = ("id", "org_id", *hashchain.FIELDS[1:], "mac")


def as_record(row: dict[str, Any]) -> dict[str, Any]:
    """An entry's stored values (RECORD_COLUMNS) as the MAC covers them. The chain is derived
    from the org column the audit pages filter by, so an entry moved into (or out of) another
    org's log does not verify."""
    actor_id = row["actor_id"]
    return {
        "id": row["id"],
        "chain": chain_of(row["org_id"]),
        "seq": row["seq"],
        "prev": row["prev"],
        "at": _iso(row["at"]),
        "action": row["action"],
        "actor_kind": row["actor_kind"],
        "actor_id": str(actor_id) if actor_id else None,
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "ip": row["ip"],
        "detail": row["detail"],
        "mac": row["mac"],
    }


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def fields_of(entry: AuditEntry) -> dict[str, Any]:
    """An entry (a model instance) as the MAC covers it."""
    return as_record({column: getattr(entry, column) for column in RECORD_COLUMNS})


# -- the head: where the next entry of a chain goes --------------------------------------------


def head(chain: str) -> tuple[int, str]:
    """The chain's newest (seq, MAC): its newest entry, or where its newest archive ended
    (archiving appends an entry of its own, so that is only for a chain emptied by hand)."""
    with connection.cursor() as cursor:
        cursor.execute(NEWEST, [chain])
        row = cursor.fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    from dashvault.audit.models import AuditArchive

    archived = AuditArchive.objects.filter(chain=chain).order_by("-last_seq").first()
    return (archived.last_seq, archived.last_mac) if archived else (0, hashchain.GENESIS)


def _locked_head(db: Any, chain: str) -> tuple[int, str]:
    """The chain's head, with the right to append after it until the transaction ends.

    PostgreSQL: the chain's lock row is locked FOR UPDATE, so concurrent writers of one chain
    queue instead of forking it. SQLite: the transaction began IMMEDIATE, so this connection
    already holds the database's only write lock; the head is read with the raw sqlite3
    connection, as through Django's cursor it cost five times as much (bench/audit_chain.py)."""
    if db.vendor == "sqlite":
        row = db.connection.execute(SQLITE_NEWEST, [chain]).fetchone()
        return (int(row[0]), str(row[1])) if row is not None else head(chain)
    with db.cursor() as cursor:
        cursor.execute(LOCK, [chain])
        locked = cursor.fetchone() is not None
    if not locked:
        try:
            with transaction.atomic():
                AuditChainLock.objects.create(chain=chain)
        except IntegrityError:
            pass  # another writer made it first
        return _locked_head(db, chain)
    return head(chain)


def _appended(db: Any, seq: int) -> None:
    if seq % CHECKPOINT_EVERY == 0:
        from dashvault.audit import checkpoints

        db.on_commit(checkpoints.write_checkpoint_safely)


def append(
    *,
    org_id: object,
    action: str,
    actor_kind: str,
    actor_id: object,
    target_type: str,
    target_id: str,
    ip: str | None,
    detail: dict[str, Any],
) -> AuditEntry:
    org = _uuid(org_id)
    actor = _uuid(actor_id)
    chain = chain_of(org)  # canonical, as `records` derives it from the org column
    ip = _canonical_ip(ip)  # what the database will give back
    # One lookup of the thread's connection: each use of django.db.connection costs one.
    db = transaction.get_connection()
    with transaction.atomic():
        seq, prev = _locked_head(db, chain)
        seq += 1
        at = timezone.now()  # in UTC, as _iso would put it
        fields = {
            "chain": chain,
            "seq": seq,
            "prev": prev,
            "at": at.isoformat(timespec="microseconds"),
            "action": action,
            "actor_kind": actor_kind,
            "actor_id": chain_of(actor) if actor else None,
            "target_type": target_type,
            "target_id": target_id,
            "ip": ip,
            "detail": detail,
        }
        mac = hashchain.mac(audit_key(), fields, exact=True)
        entry = AuditEntry(
            org_id=org,
            at=at,
            action=action,
            actor_kind=actor_kind,
            actor_id=actor,
            target_type=target_type,
            target_id=target_id,
            ip=ip,
            detail=detail,
            chain=chain,
            seq=seq,
            prev=prev,
            mac=mac,
        )
        entry.save(force_insert=True)
        _appended(db, seq)
    return entry


def _uuid(value: object) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


@lru_cache(maxsize=4096)
def _canonical_ip(ip: str | None) -> str | None:
    from dashvault.lib.clientip import ip_or_none

    return ip_or_none(ip) if ip else None


def chains(org_id: object = None) -> list[str]:
    """Every chain in the table (or the one of `org_id`)."""
    if org_id is not None:
        return [chain_of(org_id)]
    return sorted(set(AuditEntry.objects.values_list("chain", flat=True).distinct()))


def records(
    chain: str, *, after: int = 0, upto: int = 2**63 - 1, batch: int = 5000
) -> Iterator[dict[str, Any]]:
    """A chain's entries in append order (by id; those with ids in (after, upto]), as dicts,
    read in batches (values, not model objects: models were a third of verifying)."""
    if connection.vendor == "sqlite":
        yield from _sqlite_records(chain, after, upto, batch)
        return
    last_id = after
    while True:
        rows = list(
            AuditEntry.objects.filter(chain=chain, id__gt=last_id, id__lte=upto)
            .order_by("id")
            .values(*RECORD_COLUMNS)[:batch]
        )
        if not rows:
            return
        for row in rows:
            yield as_record(row)
        last_id = rows[-1]["id"]


# CAST: as an expression the time has no declared type, so Django's converter (a Python call
# per row, a third of reading) does not parse it.
SQLITE_RECORDS = (  # RECORD_COLUMNS
    "SELECT id, org_id, seq, prev, CAST(at AS TEXT), action, actor_kind, actor_id, target_type,"
    " target_id, ip, detail, mac FROM audit_auditentry"
    " WHERE chain = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?"
)


def _sqlite_records(chain: str, after: int, upto: int, batch: int) -> Iterator[dict[str, Any]]:
    """`records` on SQLite, from the stored text without Django's per-value conversions (they
    were two thirds of verifying a million entries). What Django stores there: UUIDs as 32 hex
    digits, times as naive UTC 'YYYY-MM-DD HH:MM:SS[.ffffff]', JSON as text."""
    connection.ensure_connection()
    raw = connection.connection
    own = None if chain == PLATFORM else chain.replace("-", "")
    loads = json.loads
    last_id = after
    while True:
        rows = raw.execute(SQLITE_RECORDS, [chain, last_id, upto, batch]).fetchall()
        if not rows:
            return
        for id_, org, seq, prev, at, action, kind, actor, t_type, t_id, ip, detail, mac in rows:
            yield {
                "id": id_,
                "chain": chain if org == own else chain_of(org and uuid.UUID(org)),
                "seq": seq,
                "prev": prev,
                "at": (at if len(at) > 19 else at + ".000000").replace(" ", "T") + "+00:00",
                "action": action,
                "actor_kind": kind,
                "actor_id": actor and _dashed(actor),
                "target_type": t_type,
                "target_id": t_id,
                "ip": ip,
                "detail": {} if detail == "{}" else loads(detail),
                "mac": mac,
            }
        last_id = rows[-1][0]


def _dashed(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def verify(org_id: object = None) -> tuple[dict[str, int], list[hashchain.Problem]]:
    """Verify every chain (or one org's) against the audit key and the signed checkpoints,
    its archive files first, then its live entries from the newest archive's end; returns each
    chain's verified length and the first problem of each broken chain. Raises
    checkpoints.CheckpointError when the checkpoints themselves do not verify."""
    from dashvault.audit import checkpoints

    heads = checkpoints.signed_heads(checkpoints.load())
    names = chains(org_id) if org_id is not None else sorted(set(chains()) | set(heads))
    lengths: dict[str, int] = {}
    problems: list[hashchain.Problem] = []
    for name in names:
        signed = heads.get(name, {})
        start, problem = _verify_archives(name, signed)
        if problem is None:
            start, problem = _verify_live(name, start, signed)
        lengths[name] = start.seq if start else 0
        if problem is not None:
            problems.append(problem)
    return lengths, problems


PARALLEL_FROM = 50_000  # live entries of one chain from which a second process helps


def _verify_live(
    name: str, start: hashchain.Head | None, signed: dict[int, str]
) -> tuple[hashchain.Head | None, hashchain.Problem | None]:
    """The chain's live entries after `start`. A long chain is verified in halves by two
    processes at once when they are clean; anything else (a problem, halves that do not join)
    is verified again in one pass, which names the first bad entry exactly."""
    halves = _halves(name)
    if halves is not None:
        joined = _verify_halves(name, halves, start, signed)
        if joined is not None:
            return joined, None
    return hashchain.verify_chain(audit_key(), name, records(name), start=start, checkpoints=signed)


def _halves(name: str) -> list[tuple[int, int]] | None:
    """Id ranges (after, upto] splitting the chain in two, when worth a second process: on a
    machine with more than one CPU, a chain of PARALLEL_FROM entries or more, and outside a
    transaction (the other process could not see what it has not committed)."""
    if connection.in_atomic_block or (os.cpu_count() or 1) < 2:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM audit_auditentry WHERE chain = %s", [name])
        count = cursor.fetchone()[0]
        if count < PARALLEL_FROM:
            return None
        cursor.execute(
            "SELECT id FROM audit_auditentry WHERE chain = %s ORDER BY id LIMIT 1 OFFSET %s",
            [name, count // 2],
        )
        middle = cursor.fetchone()[0]
    return [(0, middle), (middle, 2**63 - 1)]


def _verify_halves(
    name: str,
    halves: list[tuple[int, int]],
    start: hashchain.Head | None,
    signed: dict[int, str],
) -> hashchain.Head | None:
    """The chain's head when both halves verify and join, after `start` and up to the newest
    checkpoint; None otherwise (the caller then verifies in one pass)."""
    connections.close_all()  # the forked process opens its own connection
    with multiprocessing.get_context("fork").Pool(len(halves)) as pool:
        parts = pool.starmap(_verify_part, [(name, after, upto, signed) for after, upto in halves])
    expected = start or hashchain.Head(0, hashchain.GENESIS)
    for part in parts:
        if part is None or part[0] != expected:
            return None
        expected = part[1]
    if max(signed, default=0) > expected.seq:
        return None  # truncated: the one pass says so
    return expected if expected.seq else None


def _verify_part(
    name: str, after: int, upto: int, signed: dict[int, str]
) -> tuple[hashchain.Head, hashchain.Head] | None:
    """In a worker process: ((seq - 1, prev) of the part's first entry, the part's head) when
    the entries of ids (after, upto] verify among themselves; None when they do not."""
    try:
        entries = records(name, after=after, upto=upto)
        first = next(entries, None)
        if first is None:
            return None
        before = hashchain.Head(int(first["seq"]) - 1, str(first["prev"]))
        last, problem = hashchain.verify_chain(
            audit_key(), name, itertools.chain([first], entries), start=before, checkpoints=signed
        )
        # A checkpoint past this part's end is the next part's business (or a truncated tail,
        # which the caller checks against the whole chain's head).
        if last is None or (problem is not None and problem.kind != "truncated"):
            return None
        return before, last
    finally:
        connections.close_all()


def _verify_archives(
    name: str, signed: dict[int, str]
) -> tuple[hashchain.Head | None, hashchain.Problem | None]:
    """The chain's archives in order: each file present, unchanged (SHA-256), decrypting,
    starting where the one before ended and ending where its record says. Where retention
    pruned the oldest files, the chain starts from the newest pruned archive's recorded end."""
    import hashlib

    from dashvault.audit import archive
    from dashvault.audit.models import AuditArchive

    start: hashchain.Head | None = None
    for record in AuditArchive.objects.filter(chain=name).order_by("first_seq"):
        if record.pruned_at is not None:
            start = hashchain.Head(record.last_seq, record.last_mac)
            continue
        path = archive.directory() / record.file
        if not path.exists():
            return start, _archive_problem(record, "deleted", "the file is missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != record.sha256:
            return start, _archive_problem(record, "changed", "the file is not the one archived")
        try:
            contents = archive.read(path)
        except archive.ArchiveError as exc:
            return start, _archive_problem(record, "changed", str(exc))
        if contents.chain != name or contents.start != start:
            return start, _archive_problem(
                record, "relinked", "does not continue the archive before it"
            )
        within = {seq: mac for seq, mac in signed.items() if seq <= record.last_seq}
        last, found = hashchain.verify_chain(
            audit_key(), name, contents.records, start=start, checkpoints=within
        )
        if found is not None:
            return start, found
        if last is None or (last.seq, last.mac) != (record.last_seq, record.last_mac):
            return start, _archive_problem(record, "truncated", "ends before its recorded end")
        start = last
    return start, None


def _archive_problem(record: Any, kind: str, detail: str) -> hashchain.Problem:
    return hashchain.Problem(
        kind, record.chain, record.first_seq, None, f"archive {record.file}: {detail}"
    )
