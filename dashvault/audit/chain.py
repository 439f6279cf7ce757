"""Appending to and verifying the audit hash chains (dashvault.lib.hashchain does the math).

Security contract: every entry is appended through `append`, which holds the chain's head row
locked (PostgreSQL; SQLite serializes writers) while it numbers the entry, links it to its
predecessor and computes its MAC, in the caller's transaction: a rolled-back change leaves no
entry and no gap. The audit key (settings.AUDIT_KEY) never enters the database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from dashvault.audit.models import AuditChainHead, AuditEntry
from dashvault.lib import hashchain

PLATFORM = "platform"
SELECT_HEAD = "SELECT seq, mac FROM audit_auditchainhead WHERE chain = %s"
UPDATE_HEAD = "UPDATE audit_auditchainhead SET seq = %s, mac = %s WHERE chain = %s"
CHECKPOINT_EVERY = 10_000  # entries of one chain between signed checkpoints


def audit_key() -> bytes:
    return str(settings.AUDIT_KEY).encode()


def chain_of(org_id: object) -> str:
    return PLATFORM if org_id is None else str(org_id)


RECORD_COLUMNS = (
    "id",
    "org_id",
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
    "mac",
)


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
        "at": row["at"].astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "action": row["action"],
        "actor_kind": row["actor_kind"],
        "actor_id": str(actor_id) if actor_id else None,
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "ip": row["ip"],
        "detail": row["detail"],
        "mac": row["mac"],
    }


def fields_of(entry: AuditEntry) -> dict[str, Any]:
    """An entry (a model instance) as the MAC covers it."""
    return as_record({column: getattr(entry, column) for column in RECORD_COLUMNS})


def _locked_head(chain: str) -> tuple[int, str]:
    """The chain's (seq, MAC), its head row locked until the transaction ends.

    Raw SQL on purpose: this runs for every audited change, and Django building these two
    small queries cost ten times what the database did (bench/audit_chain.py)."""
    query = SELECT_HEAD + (" FOR UPDATE" if connection.vendor == "postgresql" else "")
    with connection.cursor() as cursor:
        cursor.execute(query, [chain])
        row = cursor.fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
    try:
        with transaction.atomic():
            AuditChainHead.objects.create(chain=chain)
    except IntegrityError:
        pass  # another writer made it first
    return _locked_head(chain)


def _move_head(chain: str, seq: int, mac: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(UPDATE_HEAD, [seq, mac, chain])


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
    org = None if org_id is None else uuid.UUID(str(org_id))
    chain = chain_of(org)  # canonical, as `records` derives it from the org column
    with transaction.atomic():
        head_seq, head_mac = _locked_head(chain)
        entry = AuditEntry(
            org_id=org,
            at=timezone.now(),
            action=action,
            actor_kind=actor_kind,
            actor_id=actor_id if actor_id is None else uuid.UUID(str(actor_id)),
            target_type=target_type,
            target_id=target_id,
            ip=ip,
            detail=detail,
            chain=chain,
            seq=head_seq + 1,
            prev=head_mac or hashchain.GENESIS,
        )
        # What the database will give back: the address in canonical form.
        entry.ip = _canonical_ip(ip)
        entry.mac = hashchain.mac(audit_key(), fields_of(entry))
        entry.save(force_insert=True)
        _move_head(chain, entry.seq, entry.mac)
        if entry.seq % CHECKPOINT_EVERY == 0:
            from dashvault.audit import checkpoints

            transaction.on_commit(checkpoints.write_checkpoint_safely)
    return entry


def _canonical_ip(ip: str | None) -> str | None:
    from dashvault.lib.clientip import ip_or_none

    return ip_or_none(ip) if ip else None


def chains(org_id: object = None) -> list[str]:
    """Every chain in the table (or the one of `org_id`)."""
    if org_id is not None:
        return [chain_of(org_id)]
    found = set(AuditEntry.objects.values_list("chain", flat=True).distinct())
    found |= set(AuditChainHead.objects.values_list("chain", flat=True))
    return sorted(found)


def records(chain: str, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """A chain's entries in append order (by id), as dicts, read in batches (values, not
    model objects: verifying a million entries spent a third of its time building models)."""
    last_id = 0
    while True:
        rows = list(
            AuditEntry.objects.filter(chain=chain, id__gt=last_id)
            .order_by("id")
            .values(*RECORD_COLUMNS)[:batch]
        )
        if not rows:
            return
        for row in rows:
            yield as_record(row)
        last_id = rows[-1]["id"]


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
            last, problem = hashchain.verify_chain(
                audit_key(), name, records(name), start=start, checkpoints=signed
            )
            start = last
        lengths[name] = start.seq if start else 0
        if problem is not None:
            problems.append(problem)
    return lengths, problems


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
