"""Making, listing, checking and restoring encrypted backups.

A backup is two files on the target (backups.targets: settings.BACKUP_DIR, or S3):
- `<name>.<ext>.age`: the database without its data keys (backups.escrow), encrypted to the
  operator's age public key (settings.BACKUP_RECIPIENT). For SQLite the payload is the gzip of
  a copy taken with SQLite's online backup API (one step: in WAL mode it reads one consistent
  snapshot and blocks no writer); for PostgreSQL it is `pg_dump -Fc` (compressed already).
  The standard tool reads it: `age -d -i key.txt NAME.sqlite3.gz.age | gunzip > dashvault.sqlite3`.
- `<name>.json`: the manifest (time, engine, file, size, SHA-256, schema version per app, the
  dashvault version), written last: a backup without one (crashed, interrupted) does not count,
  and `prune` removes its leftovers.

Security contract: the running service holds only the public key, so it cannot read any backup
it made; restoring needs the private key, which the operator keeps offline. Nothing is
restored from a file whose SHA-256 differs from its manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from isal import igzip, isal_zlib
from pyrage import x25519

from dashvault.backups import escrow, targets
from dashvault.backups.errors import BackupError
from dashvault.orgs.models import DataKey
from dashvault.privacy import ledger

__all__ = ["BackupError", "Backup"]

FORMAT = 1
CHUNK = 1024 * 1024
PART = targets.PART
LEFTOVER_AGE = 24 * 3600  # seconds after which an incomplete backup's files are removed
SCRATCH = "dashvault-scratch-"  # folders holding a plain copy while a backup is made
MANIFEST = ".json"


@dataclass(frozen=True)
class Backup:
    name: str
    created_at: dt.datetime
    engine: str
    file: str
    size: int
    sha256: str
    schema: dict[str, str]
    version: str

    @property
    def manifest(self) -> str:
        return self.name + MANIFEST


def directory() -> Path:
    """The local folder backups are made in (the folder target keeps them there too)."""
    return targets.staging()


def keygen() -> tuple[str, str]:
    """A new age key pair: (public key for DASHVAULT_BACKUP_RECIPIENT, private key to keep
    offline)."""
    identity = x25519.Identity.generate()
    return str(identity.to_public()), str(identity)


def recipient() -> Any:
    key = str(settings.BACKUP_RECIPIENT or "").strip()
    if not key:
        raise BackupError(
            "No backup key: set DASHVAULT_BACKUP_RECIPIENT to an age public key "
            "(`dashvault backup keygen` makes a pair)."
        )
    try:
        return x25519.Recipient.from_str(key)
    except pyrage.RecipientError:
        raise BackupError(
            "DASHVAULT_BACKUP_RECIPIENT is not an age public key (age1...)."
        ) from None


def create(now: dt.datetime | None = None) -> Backup:
    """Take a consistent snapshot of the database, encrypt it, store it on the target with the
    data-key escrow and the erasure ledger's copy, and write its manifest last."""
    key = recipient()
    target = targets.current()
    now = now or dt.datetime.now(dt.UTC)
    folder = directory()
    name = "dashvault-" + now.strftime("%Y%m%dT%H%M%S%fZ")
    engine = connection.vendor
    file = f"{name}.sqlite3.gz.age" if engine == "sqlite" else f"{name}.pgdump.age"
    part = folder / (file + PART)
    # The plain copy lives only while this runs; a killed run's is removed by prune.
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=folder) as scratch:
        plain = Path(scratch) / "payload"
        if engine == "sqlite":
            _sqlite_snapshot(plain)
        else:
            _pg_dump(plain)
        # One pass: (gzip →) age → file, hashed as it is written. pg_dump -Fc is compressed.
        with open(plain, "rb") as raw, open(part, "wb") as out:
            sink = _Hashing(out)
            pyrage.encrypt_io(_Gzipped(raw) if engine == "sqlite" else raw, sink, [key])
            out.flush()
            os.fsync(out.fileno())
    backup = Backup(
        name=name,
        created_at=now,
        engine=engine,
        file=file,
        size=part.stat().st_size,
        sha256=sink.digest.hexdigest(),
        schema=_schema(),
        version=_version(),
    )
    escrow.check_writable()  # before anything is uploaded (and perhaps locked)
    locked = targets.lock_until(now)
    target.put_file(part, file, lock_until=locked)
    # Before the manifest: a backup that counts always has the keys and erasures it needs.
    escrow.write(target, key)
    ledger.mirror(target)
    target.put_bytes(backup.manifest, _manifest(backup), lock_until=locked)
    return backup


def _sqlite_snapshot(copy: Path) -> None:
    source = sqlite3.connect(settings.DATABASES["default"]["NAME"])
    destination = sqlite3.connect(copy)
    try:
        # One step: in WAL mode one read transaction, one consistent snapshot, no writer
        # blocked; in steps SQLite would restart the copy whenever another connection writes.
        source.backup(destination, pages=-1)
    finally:
        destination.close()
        source.close()
    _drop_data_keys(copy)


class _Gzipped(io.RawIOBase):
    """The gzip of `raw`, read as a stream: compressed while age encrypts it, with no
    compressed copy on disk. ISA-L's deflate at level 1 is standard gzip (`gunzip` reads it)
    at about five times zlib's level-6 speed, for a file some 10% larger (bench/backup.py)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.packer = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)  # 31: gzip framing
        self.pending = memoryview(b"")
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self.pending:
            if self.done:
                return 0
            data = self.raw.read(CHUNK)
            if data:
                self.pending = memoryview(self.packer.compress(data))
            else:
                self.pending, self.done = memoryview(self.packer.flush()), True
        size = min(len(target), len(self.pending))
        target[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


class _Hashing:
    """pyrage's sink: writes to `out`, taking the SHA-256 of the encrypted bytes on the way."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.digest = out, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _drop_data_keys(copy: Path) -> None:
    """Backups hold no data keys: those live in the escrow, which drops a deleted org's key,
    so that org's encrypted fields in every older backup become unreadable (backups.escrow).
    secure_delete zeroes the rows' bytes rather than leaving them in free pages."""
    db = sqlite3.connect(copy)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA secure_delete=ON")
        table = DataKey._meta.db_table  # a model's table name, not input
        db.execute(f"DELETE FROM {table}")  # noqa: S608
        db.commit()
    finally:
        db.close()


def _pg_dump(payload: Path) -> None:
    db = settings.DATABASES["default"]
    command = [
        "pg_dump",
        "-Fc",
        "--no-owner",
        f"--exclude-table-data={DataKey._meta.db_table}",  # see _drop_data_keys
        "-f",
        str(payload),
        *_pg_args(db),
    ]
    # No shell; the arguments are settings and paths made here.
    done = subprocess.run(command, env=_pg_env(db), capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[-300:]}")


def _pg_args(db: Mapping[str, Any]) -> list[str]:
    args = ["-d", str(db["NAME"])]
    if db.get("HOST"):
        args += ["-h", str(db["HOST"])]
    if db.get("PORT"):
        args += ["-p", str(db["PORT"])]
    if db.get("USER"):
        args += ["-U", str(db["USER"])]
    return args


def _pg_env(db: Mapping[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])  # never on the command line
    return env


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _schema() -> dict[str, str]:
    """Each app's newest applied migration."""
    return _newest(MigrationRecorder(connection).migration_qs.values_list("app", "name"))


def _newest(migrations: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(app, migration) rows as each app's newest migration, by app: what a manifest records."""
    newest: dict[str, str] = {}
    for app, name in migrations:
        newest[app] = max(newest.get(app, ""), name)
    return dict(sorted(newest.items()))


def _check_schema(migrations: Iterable[tuple[str, str]], backup: Backup) -> None:
    if _newest(migrations) != backup.schema:
        raise BackupError("The restored database's migrations differ from the manifest.")


def _version() -> str:
    try:
        return metadata.version("dashvault")
    except metadata.PackageNotFoundError:
        return "unknown"


def _manifest(backup: Backup) -> bytes:
    data = {
        "format": FORMAT,
        "name": backup.name,
        "created_at": backup.created_at.isoformat(),
        "engine": backup.engine,
        "file": backup.file,
        "size": backup.size,
        "sha256": backup.sha256,
        "schema": backup.schema,
        "version": backup.version,
    }
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


def _parse_manifest(raw: bytes) -> Backup:
    data = json.loads(raw)
    return Backup(
        name=str(data["name"]),
        created_at=dt.datetime.fromisoformat(data["created_at"]),
        engine=str(data["engine"]),
        file=str(data["file"]),
        size=int(data["size"]),
        sha256=str(data["sha256"]),
        schema=dict(data["schema"]),
        version=str(data["version"]),
    )


def backups() -> list[Backup]:
    """Every complete backup on the target (manifest and file present), oldest first."""
    target = targets.current()
    stored = target.listing("dashvault-")
    names = {item.name for item in stored}
    found = []
    for item in stored:
        if not item.name.endswith(MANIFEST):
            continue
        try:
            backup = _parse_manifest(target.get_bytes(item.name) or b"")
        except (ValueError, KeyError, TypeError):
            continue  # unreadable: not listed, and its files are left for the operator
        if backup.file in names:
            found.append(backup)
    return sorted(found, key=lambda b: b.created_at)


def find(name: str) -> Backup:
    for backup in backups():
        if name in (backup.name, backup.file, backup.manifest):
            return backup
    raise BackupError(f"No complete backup named {name!r} in {targets.current().describe()}.")


def delete(backup: Backup) -> None:
    """The file first, then the manifest: a half-deleted backup is no longer listed. Raises
    BackupError while S3 Object Lock still holds it."""
    target = targets.current()
    target.delete(backup.file)
    target.delete(backup.manifest)


def leftovers() -> list[tuple[targets.Target, str]]:
    """Files of backups that never completed (no manifest), orphaned parts and scratch
    folders, a day old: on the target, and in the local staging folder."""
    old = time.time() - LEFTOVER_AGE  # younger ones may belong to a backup being written
    places: list[targets.Target] = [targets.current()]
    if not isinstance(places[0], targets.FolderTarget):
        places.append(targets.FolderTarget(directory()))
    found = []
    for place in places:
        stored = place.listing("dashvault-")
        # Anything with a manifest beside it, readable or not, is the operator's to look at:
        # only files that never got one go.
        with_manifest = {i.name[: -len(MANIFEST)] for i in stored if i.name.endswith(MANIFEST)}
        found += [
            (place, item.name)
            for item in stored
            if item.modified < old
            and (item.name.startswith(SCRATCH) or item.name.split(".", 1)[0] not in with_manifest)
        ]
    return found


def identity_from(path: Path) -> list[Any]:
    """Every age private key in `path` (lines starting AGE-SECRET-KEY-): after the backup key
    was changed, the old and the new key in one file open old and new backups alike."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BackupError(f"Cannot read the key file: {exc.strerror}.") from None
    found = []
    for line in (line.strip() for line in lines):
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                found.append(x25519.Identity.from_str(line))
            except pyrage.IdentityError:
                raise BackupError(f"{path} holds a damaged age private key.") from None
    if not found:
        raise BackupError(f"{path} holds no age private key (AGE-SECRET-KEY-...).")
    return found


def decrypt_to(backup: Backup, identity: Any, payload: Path) -> None:
    """Fetch the backup, check its SHA-256 against the manifest, then decrypt it into
    `payload` (for SQLite: the database file itself, unzipped)."""
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=payload.parent) as scratch:
        stored = targets.current().fetch(backup.file, Path(scratch))
        if stored.stat().st_size != backup.size or _sha256(stored) != backup.sha256:
            raise BackupError(
                f"{backup.file} is not the file its manifest describes (size or SHA-256 "
                "differ): it was changed, truncated or damaged. Nothing was restored."
            )
        _decrypt(backup, stored, identity, payload)


def _decrypt(backup: Backup, stored: Path, identity: Any, payload: Path) -> None:
    encrypted = payload.with_name(payload.name + ".dec")
    try:
        with open(stored, "rb") as source, open(encrypted, "wb") as sink:
            pyrage.decrypt_io(source, sink, escrow.identities(identity))
    except pyrage.DecryptError:
        encrypted.unlink(missing_ok=True)
        raise BackupError(
            f"{backup.file} does not decrypt with this key (a different key, or a damaged "
            "file). Nothing was restored."
        ) from None
    if backup.engine == "sqlite":
        try:
            with igzip.open(encrypted, "rb") as packed, open(payload, "wb") as raw:
                shutil.copyfileobj(packed, raw, CHUNK)
        except (OSError, EOFError) as exc:
            raise BackupError(f"{backup.file} does not unpack: {exc}.") from None
        finally:
            encrypted.unlink(missing_ok=True)
    else:
        os.replace(encrypted, payload)


def check_sqlite(path: Path, backup: Backup) -> int:
    """A restored SQLite database: intact, and at the backup's schema; returns its table
    count."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"The restored database fails its integrity check: {result}.")
        tables = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()
        applied = list(db.execute("SELECT app, name FROM django_migrations"))
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"The restored file is not a usable SQLite database: {exc}.") from None
    finally:
        db.close()
    _check_schema(applied, backup)
    return int(tables[0])


def restore_sqlite(backup: Backup, identity: Any, target: Path, *, replace: bool) -> int:
    """Rebuild the SQLite database at `target` from `backup`; returns its table count. The
    server must be stopped (its files are replaced)."""
    if backup.engine != "sqlite":
        raise BackupError(f"{backup.file} is a {backup.engine} backup; this database is SQLite.")
    if target.exists() and not replace:
        raise BackupError(f"{target} exists: stop the server and pass --replace to overwrite it.")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = target.with_name(target.name + ".restoring")
    try:
        decrypt_to(backup, identity, fresh)
        tables = check_sqlite(fresh, backup)
        for suffix in ("-wal", "-shm"):  # the old database's log must not meet the new file
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(fresh, target)
    finally:
        for leftover in (fresh, *(fresh.with_name(fresh.name + x) for x in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    return tables


def restore_postgresql(backup: Backup, identity: Any) -> None:
    """Replace the configured PostgreSQL database's contents with `backup` (pg_restore
    --clean); the servers must be stopped."""
    if backup.engine != "postgresql":
        raise BackupError(
            f"{backup.file} is a {backup.engine} backup; this database is PostgreSQL."
        )
    db = settings.DATABASES["default"]
    with tempfile.TemporaryDirectory() as scratch:
        payload = Path(scratch) / "dump"
        decrypt_to(backup, identity, payload)
        command = [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            *_pg_args(db),
            str(payload),
        ]
        # No shell; the arguments are settings and paths made here.
        done = subprocess.run(command, env=_pg_env(db), capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[-300:]}")


@dataclass(frozen=True)
class Restored:
    people: int  # erased again from the ledger
    orgs: int  # deleted again from the ledger
    keys: int  # data keys taken back from the escrow
    warnings: list[str]


@dataclass(frozen=True)
class Prepared:
    """What a restore needs from beside the backup, read before the database is touched."""

    entries: list[ledger.Erasure]
    keys: list[dict[str, Any]]
    warnings: list[str]


def prepare_restore(identity: Any) -> Prepared:
    """Read the erasure ledger (local file and the target's copy) and the data-key escrow
    first: a restore that could not re-apply every erasure, or take the keys back, must not
    replace the database at all."""
    target = targets.current()
    try:
        copy = target.get_bytes(ledger.NAME)
        entries = ledger.merge(ledger.entries(), ledger.parse(copy.decode()) if copy else [])
    except (ledger.LedgerError, UnicodeDecodeError) as exc:
        raise BackupError(
            f"The erasure ledger cannot be read ({exc}): nothing was restored, since erased "
            "data could come back."
        ) from None
    keys = escrow.read(target, identity)  # BackupError: not with this key, or damaged
    warnings = []
    if copy is None:
        warnings.append(f"no copy of the erasure ledger on {target.describe()}: the local one")
    if keys is None:
        warnings.append("no data-key escrow on the target: encrypted fields must be entered again")
    return Prepared(entries, keys or [], warnings)


def finish_restore(backup: Backup, prepared: Prepared) -> Restored:
    """Run right after the database is back, before anything serves it: take the data keys
    of the orgs it holds from the escrow, then re-apply every erasure of the ledger. Audited
    in the platform chain."""
    from dashvault import audit
    from dashvault.privacy import erasure

    connections.close_all()  # the file or the database under them was replaced
    warnings = list(prepared.warnings)
    # Keys first: re-applying queues a rewrite of the escrow, which must find them in place
    # (a rewrite from a database without keys would empty it).
    keys = escrow.reinstate(prepared.keys)
    people, orgs = erasure.reapply(prepared.entries)
    try:
        ledger.mirror(targets.current())  # both copies hold the union from now on
    except (BackupError, ledger.LedgerError) as exc:
        warnings.append(f"the ledger's copies were not brought together: {exc}")
    with transaction.atomic():
        audit.record("backup.restore", backup=backup.name, people=people, orgs=orgs, keys=keys)
    return Restored(people, orgs, keys, warnings)


def verify(backup: Backup, identity: Any) -> int:
    """A trial restore into a scratch database (SQLite: a scratch file; PostgreSQL: a scratch
    database, dropped after); returns the number of tables restored."""
    with tempfile.TemporaryDirectory() as scratch:
        payload = Path(scratch) / "trial"
        decrypt_to(backup, identity, payload)
        if backup.engine == "sqlite":
            return check_sqlite(payload, backup)
        return _trial_pg_restore(payload, backup)


def _trial_pg_restore(payload: Path, backup: Backup) -> int:
    import secrets

    import psycopg

    db = settings.DATABASES["default"]
    scratch = f"dashvault_verify_{secrets.token_hex(6)}"
    admin: dict[str, Any] = {
        "dbname": str(db["NAME"]),
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
    }
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')  # a name made here, not input
    try:
        command = ["pg_restore", "--no-owner", *_pg_args({**db, "NAME": scratch}), str(payload)]
        # No shell; the arguments are settings and paths made here.
        done = subprocess.run(command, env=_pg_env(db), capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise BackupError(
                f"pg_restore into a scratch database failed: {done.stderr.strip()[-300:]}"
            )
        with psycopg.connect(**{**admin, "dbname": scratch}) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            applied = list(conn.execute("SELECT app, name FROM django_migrations"))
        _check_schema(applied, backup)
        return int(row[0]) if row else 0
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
