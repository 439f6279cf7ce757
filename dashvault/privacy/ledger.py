"""The erasure ledger: which people were erased and which orgs deleted, by id only.

It lives outside the database (settings.ERASURE_LEDGER, a JSON-lines file appended to and
fsynced before the database changes), so restoring any backup cannot take it back in time.
A copy is kept on the backup target (rewritten after each backup and erasure); a restore
merges both and re-applies every entry before the instance serves anyone (`serve` does it
again on start). Entries hold ids and times, nothing that names a person.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from dashvault.lib.files import write_atomically

if TYPE_CHECKING:
    from dashvault.backups.targets import Target

NAME = "erasure-ledger.jsonl"  # the copy's name on the backup target
KINDS = ("person", "org")


class LedgerError(Exception):
    """The ledger cannot be read or written; erasures must not go on without it."""


@dataclass(frozen=True)
class Erasure:
    kind: str  # person | org
    id: str
    org: str  # the person's org, or the org itself
    at: str  # ISO time, UTC

    def line(self) -> str:
        fields = {"kind": self.kind, "id": self.id, "org": self.org, "at": self.at}
        return json.dumps(fields, sort_keys=True) + "\n"


def path() -> Path:
    return Path(settings.ERASURE_LEDGER)


def append(kind: str, id: object, org: object) -> Erasure:
    """Record an erasure durably; call before changing the database."""
    if kind not in KINDS:
        raise ValueError(kind)
    entry = Erasure(kind, str(uuid.UUID(str(id))), str(uuid.UUID(str(org))), _now())
    file = path()
    try:
        with _locked():
            fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, entry.line().encode())
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise LedgerError(f"the erasure ledger {file} cannot be written: {exc.strerror}") from None
    return entry


@contextmanager
def _locked() -> Iterator[None]:
    """Appends and rewrites of the ledger, one at a time across processes."""
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(file.with_name(file.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def parse(text: str) -> list[Erasure]:
    """Entries of a ledger's text. A last line without its newline (a write cut short) is
    ignored; any other damage is an error, since skipping it could bring data back."""
    found = []
    lines = text.split("\n")
    for number, line in enumerate(lines[:-1], start=1):  # the part after the last "\n" is cut
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            entry = Erasure(
                str(data["kind"]),
                str(uuid.UUID(data["id"])),
                str(uuid.UUID(data["org"])),
                str(data["at"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise LedgerError(f"erasure ledger line {number} is damaged") from None
        if entry.kind not in KINDS:
            raise LedgerError(f"erasure ledger line {number} has an unknown kind")
        found.append(entry)
    return found


def entries() -> list[Erasure]:
    try:
        return parse(path().read_text())
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"the erasure ledger {path()} cannot be read: {exc}") from None


def merge(*lists: list[Erasure]) -> list[Erasure]:
    """One entry per (kind, id), the earliest, in time order."""
    first: dict[tuple[str, str], Erasure] = {}
    for entry in (e for found in lists for e in found):
        key = (entry.kind, entry.id)
        if key not in first or entry.at < first[key].at:
            first[key] = entry
    return sorted(first.values(), key=lambda e: (e.at, e.kind, e.id))


def mirror(target: Target) -> list[Erasure]:
    """Merge the target's copy into the local ledger and write the union back to both;
    returns it. Run by every backup, after erasures, and by restores."""
    # All under the lock: two mirrors at once (job threads, a backup beside a job) must not
    # write an older union over a newer one on the target.
    with _locked():
        copy = target.get_bytes(NAME)
        merged = merge(entries(), parse(copy.decode()) if copy else [])
        text = "".join(entry.line() for entry in merged)
        if text != _read_text():
            _rewrite(text)
        if copy is None or copy.decode() != text:
            target.put_bytes(NAME, text.encode(), lock_until=None)
    return merged


def _read_text() -> str:
    try:
        return path().read_text()
    except FileNotFoundError:
        return ""


def _rewrite(text: str) -> None:
    write_atomically(path(), text.encode())
