"""Moving old audit entries into encrypted archive files that stay verifiable.

`archive(before)` takes, chain by chain, the entries older than `before`, verifies them (from
the end of the chain's previous archive), seals them into one file under
settings.AUDIT_ARCHIVE_DIR (AES-256-GCM under a key derived from the master keyring, bound to
the chain and range: orgs.keys.encrypt_platform), records the archive (chain, range, last MAC,
the file's SHA-256) and only then deletes the entries, in one transaction (on PostgreSQL the
append-only trigger lets this transaction delete, and only it). The live chain's next entry
still links to the archived last MAC, so the whole history verifies: archives in order, then
the live entries from the newest archive's end.

Security contract: nothing is deleted that did not verify and was not durably written first;
an archive file that was changed, swapped, removed or does not end where its record says fails
verification; archives older than AUDIT_ARCHIVE_RETENTION_DAYS are deleted by `prune` (their
records stay, marked pruned, so verification knows the history before them was let go on
purpose).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dashvault import audit
from dashvault.audit import chain as chains
from dashvault.audit.models import AuditArchive, AuditEntry
from dashvault.lib import hashchain
from dashvault.orgs.keys import decrypt_platform, encrypt_platform

FORMAT = "dashvault-audit-archive-1"


class ArchiveError(Exception):
    pass


@dataclass(frozen=True)
class Contents:
    chain: str
    start: hashchain.Head | None
    records: list[dict[str, Any]]


def directory() -> Path:
    return Path(settings.AUDIT_ARCHIVE_DIR)


def _purpose(chain: str, first: int, last: int) -> str:
    return f"audit-archive:{chain}:{first}-{last}"


def read(path: Path) -> Contents:
    """Open an archive file (raises ArchiveError when it does not decrypt or parse)."""
    try:
        header, sealed = path.read_text().split("\n", 1)
        meta = json.loads(header)
        if meta.get("format") != FORMAT:
            raise ValueError("not an archive")
        text = decrypt_platform(
            _purpose(meta["chain"], meta["first"], meta["last"]), sealed.strip()
        )
        body = json.loads(text)
    except Exception as exc:  # any damage reads the same: this file cannot be trusted
        raise ArchiveError(f"{path.name}: cannot be opened ({type(exc).__name__})") from None
    start = body.get("start")
    return Contents(
        body["chain"],
        hashchain.Head(int(start["seq"]), str(start["mac"])) if start else None,
        body["records"],
    )


def verify_file(
    path: Path, checkpoints: dict[int, str] | None = None
) -> tuple[hashchain.Head | None, hashchain.Problem | None, Contents]:
    contents = read(path)
    last, problem = hashchain.verify_chain(
        chains.audit_key(),
        contents.chain,
        contents.records,
        start=contents.start,
        checkpoints=checkpoints,
    )
    return last, problem, contents


def archive(before: dt.datetime, *, org_id: object = None) -> list[AuditArchive]:
    """Archive every chain's entries older than `before` (or one org's)."""
    made = []
    for name in chains.chains(org_id):
        result = _archive_chain(name, before)
        if result is not None:
            made.append(result)
    return made


def _archive_chain(name: str, before: dt.datetime) -> AuditArchive | None:
    previous = AuditArchive.objects.filter(chain=name).order_by("-last_seq").first()
    start = hashchain.Head(previous.last_seq, previous.last_mac) if previous else None
    cutoff = (
        AuditEntry.objects.filter(chain=name, at__lt=before)
        .order_by("-seq")
        .values_list("seq", flat=True)
    ).first()
    if cutoff is None:
        return None
    records = [r for r in chains.records(name) if int(r["seq"]) <= cutoff]
    last, problem = hashchain.verify_chain(chains.audit_key(), name, records, start=start)
    if problem is not None or last is None:
        raise ArchiveError(f"chain {name} does not verify, nothing archived: {problem}")
    first = int(records[0]["seq"])
    body = json.dumps(
        {
            "chain": name,
            "start": {"seq": start.seq, "mac": start.mac} if start else None,
            "records": records,
        },
        default=str,
    )
    header = json.dumps({"format": FORMAT, "chain": name, "first": first, "last": last.seq})
    text = header + "\n" + encrypt_platform(_purpose(name, first, last.seq), body) + "\n"
    folder = directory()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"audit-{name}-{first:010d}-{last.seq:010d}.dvaa"
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL dashvault.audit_archive = 'on'")
        record = AuditArchive.objects.create(
            chain=name,
            first_seq=first,
            last_seq=last.seq,
            last_mac=last.mac,
            file=path.name,
            sha256=digest,
        )
        AuditEntry.objects.filter(chain=name, seq__lte=last.seq).delete()
        audit.record(
            "audit.archive",
            org=None if name == chains.PLATFORM else name,
            first=first,
            last=last.seq,
            archive=record.pk,
        )
    return record


def prune(now: dt.datetime | None = None) -> int:
    """Delete archive files older than AUDIT_ARCHIVE_RETENTION_DAYS (0: keep for ever)."""
    days = settings.AUDIT_ARCHIVE_RETENTION_DAYS
    if not days:
        return 0
    limit = (now or timezone.now()) - dt.timedelta(days=days)
    pruned = 0
    for record in AuditArchive.objects.filter(created_at__lt=limit, pruned_at__isnull=True):
        (directory() / record.file).unlink(missing_ok=True)
        record.pruned_at = timezone.now()
        record.save(update_fields=["pruned_at"])
        audit.record("audit.archive_prune", archive=record.pk, last=record.last_seq)
        pruned += 1
    return pruned
