"""Erasures and backups (issue 8): a person erased or an org deleted after a backup stays so
after restoring that backup; the erased e-mail is nowhere in the live database; the remaining
orgs' encrypted fields open again (their data keys come from the escrow, backups hold none);
the deleted org's key is in no escrow, so its encrypted field in the old backup cannot be
opened by anyone; a restore without the local ledger uses the target's copy; `serve` re-applies
the ledger on start. Through the real `dashvault` command, on SQLite and on PostgreSQL."""

from __future__ import annotations

import gzip
import io
import json
import secrets
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest

from dashvault.lib import crypto
from tests.conftest import require_service
from tests.live import running_server
from tests.test_backups import Site, make_site, pg_admin, pg_databases, servers

PERSON = "erase-me@acme.example"
GONE_ADMIN = "admin@gone.example"
ACME_SECRET, GONE_SECRET = "acme-client-secret-7f3a", "gone-client-secret-91bc"  # noqa: S105
IDP_TABLE, IDP_COLUMN = "sso_identityprovider", "client_secret"

SETUP = f"""
import datetime as dt, json
from allauth.account.models import EmailAddress
from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Dashboard
from dashvault.metrics.ingest import PointIn, do_ingest
from dashvault.metrics.models import Metric
from dashvault.orgs.actions import do_create_org
from dashvault.orgs.keys import encrypt_field
from dashvault.orgs.models import Group, Organization
from dashvault.sso.models import IdentityProvider

def sealed_idp(org, secret):
    idp = IdentityProvider.objects.create(org=org, kind="google", client_id="c", client_secret=b"")
    idp.client_secret = encrypt_field(
        org, table="{IDP_TABLE}", column="{IDP_COLUMN}", row_id=idp.pk, plaintext=secret
    )
    idp.save(update_fields=["client_secret"])
    return idp

acme = Organization.objects.get(name="Acme")
second = User.objects.create_user("second-admin@acme.example", org=acme, role=Role.ADMIN)
person = User.objects.create_user("{PERSON}", org=acme, role=Role.VIEWER)
EmailAddress.objects.create(user=person, email=person.email, verified=True, primary=True)
Group.objects.create(org=acme, name="Readers").members.add(person)
acme_idp = sealed_idp(acme, "{ACME_SECRET}")
gone, gone_admin, _ = do_create_org("Gone Ltd", admin_email="{GONE_ADMIN}", base_url="https://x")
Metric.objects.create(org=gone, key="sales", name="Sales")
t0 = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
do_ingest(gone, [PointIn("sales", t0 + dt.timedelta(hours=i), float(i)) for i in range(5)])
Dashboard.objects.create(org=gone, title="Gone board")
gone_idp = sealed_idp(gone, "{GONE_SECRET}")
ids = {{
    "acme": acme.pk, "person": person.pk, "second": second.pk, "gone": gone.pk,
    "gone_admin": gone_admin.pk, "acme_idp": acme_idp.pk, "gone_idp": gone_idp.pk,
}}
print("IDS " + json.dumps({{k: str(v) for k, v in ids.items()}}))
"""

# An org admin erases a member (another admin acts: nobody erases themselves); the other
# org's own admin deletes it.
ERASE = f"""
from dashvault.accounts.models import User
from dashvault.orgs.models import Organization
from dashvault.privacy.erasure import delete_org, erase_person
erase_person(
    User.objects.get(email="{PERSON}"),
    acting=User.objects.get(email="second-admin@acme.example"),
    ip="127.0.0.1",
)
delete_org(
    Organization.objects.get(name="Gone Ltd"),
    acting=User.objects.get(email="{GONE_ADMIN}"),
    ip="127.0.0.1",
)
"""

# The live database as the tests look at it: every column of every table is searched.
PROBE = """
import json, uuid
from django.db import connection
from dashvault.accounts.models import User
from dashvault.lib.crypto import DecryptionError
from dashvault.orgs.models import DataKey, Organization
from dashvault.sso.models import IdentityProvider
from dashvault.sso.providers import client_secret
ids = json.loads(IDS_JSON)

def hits(needles, skip=()):
    found = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table.startswith(skip):
                continue
            for column in connection.introspection.get_table_description(cursor, table):
                text = f"LOWER(CAST({connection.ops.quote_name(column.name)} AS TEXT))"
                cursor.execute(
                    f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)} WHERE "
                    + " OR ".join([f"{text} LIKE %s"] * len(needles)),
                    [f"%{needle.lower()}%" for needle in needles],
                )
                count = cursor.fetchone()[0]
                if count:
                    found[f"{table}.{column.name}"] = count
    return found

def as_ids(value):  # a UUID as SQLite (hex) and PostgreSQL (dashed) store it
    return [uuid.UUID(value).hex, str(uuid.UUID(value))]

try:
    secret = client_secret(IdentityProvider.objects.get(pk=ids["acme_idp"]))
except (DecryptionError, IdentityProvider.DoesNotExist) as exc:
    secret = f"ERROR {type(exc).__name__}: {exc}"
audit = ("audit_",)  # audit entries keep the ids, which point at nothing (by design)
print("PROBE " + json.dumps({
    "orgs": sorted(Organization.objects.values_list("name", flat=True)),
    "users": sorted(User.objects.values_list("email", flat=True)),
    "person_email": hits([PERSON]),
    "gone_email": hits([GONE_ADMIN]),
    "person_id": hits(as_ids(ids["person"]), skip=audit),
    "gone_id": hits(as_ids(ids["gone"]) + as_ids(ids["gone_admin"]), skip=audit),
    "keys": sorted(str(org) for org in DataKey.objects.values_list("org_id", flat=True)),
    "acme_secret": secret,
}, sort_keys=True))
"""


def tagged(out: str, tag: str) -> Any:
    line = next(row for row in out.splitlines() if row.startswith(tag + " "))
    return json.loads(line.removeprefix(tag + " "))


def probe(site: Site, ids: dict[str, str]) -> dict[str, Any]:
    script = (
        PROBE.replace("IDS_JSON", repr(json.dumps(ids)))
        .replace("[PERSON]", repr([PERSON]))
        .replace("[GONE_ADMIN]", repr([GONE_ADMIN]))
    )
    return dict(tagged(site.run("shell", "-c", script).stdout, "PROBE"))


def identity(site: Site) -> Any:
    line = next(ln for ln in site.key.read_text().splitlines() if ln.startswith("AGE-SECRET"))
    return pyrage.x25519.Identity.from_str(line)


def age_decrypt(site: Site, sealed: bytes) -> bytes:
    plain = io.BytesIO()
    pyrage.decrypt_io(io.BytesIO(sealed), plain, [identity(site)])
    return plain.getvalue()


def escrow_rows(site: Site, sealed: bytes) -> list[dict[str, Any]]:
    return list(json.loads(age_decrypt(site, sealed))["keys"])


def restore(site: Site, file: str, *extra: str, jobs_at_once: bool = False) -> str:
    """`backup restore`. As in production, the jobs it queues (the copy of the re-applied
    erasures to the target) wait for the servers' consumer, unless `jobs_at_once` (as a
    consumer that is running would take them)."""
    immediate = "true" if jobs_at_once else "false"
    args = ("backup", "restore", file, "--key", str(site.key), *extra)
    return site.run(*args, DASHVAULT_JOBS_IMMEDIATE=immediate).stdout


def reapplied(people: int, orgs: int) -> str:
    return f"Erasure ledger re-applied: {people} person(s) erased and {orgs} org(s) deleted again."


@dataclass
class World:
    """A site with a person and an org that a backup holds and that were erased after it."""

    site: Site
    ids: dict[str, str]
    file: str  # the backup taken before the erasures
    escrow_then: bytes  # datakeys.age right after that backup
    escrow_after: bytes  # datakeys.age right after the erasures
    before: dict[str, Any]  # PROBE before the erasures
    after: dict[str, Any]  # PROBE after them

    @property
    def ledger(self) -> Path:
        return self.site.data_dir / "erasure-ledger.jsonl"


def build_world(site: Site) -> World:
    ids = dict(tagged(site.run("shell", "-c", SETUP).stdout, "IDS"))
    file = site.run("backup", "create").stdout.split(":", 1)[0]
    escrow_then = (site.backup_dir / "datakeys.age").read_bytes()
    before = probe(site, ids)
    site.run("shell", "-c", ERASE)
    escrow_after = (site.backup_dir / "datakeys.age").read_bytes()
    return World(site, ids, file, escrow_then, escrow_after, before, probe(site, ids))


# -- SQLite ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    # Jobs run in the calling process: the erasure's copy to the backup target (ledger copy,
    # escrow) happens right after its commit, as the in-process consumer of `serve` would.
    site = make_site(tmp_path_factory.mktemp("erasure"), DASHVAULT_JOBS_IMMEDIATE="true")
    return build_world(site)


@pytest.fixture(scope="module")
def old_backup(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backup taken before the erasures, decrypted: a SQLite database file."""
    sealed = (world.site.backup_dir / world.file).read_bytes()
    path = tmp_path_factory.mktemp("old") / "backup.sqlite3"
    path.write_bytes(gzip.decompress(age_decrypt(world.site, sealed)))
    return path


@pytest.fixture(scope="module")
def restored(world: World) -> tuple[str, dict[str, Any]]:
    """Restore the old backup: the command's output and the live database after it."""
    out = restore(world.site, world.file, "--replace")
    return out, probe(world.site, world.ids)


def query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def database_bytes(site: Site) -> bytes:
    """The live SQLite database's files, as they lie on disk (main file and WAL)."""
    database = site.data_dir / "dashvault.sqlite3"
    wal = database.with_name(database.name + "-wal")
    return database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def assert_erased(state: dict[str, Any], ids: dict[str, str]) -> None:
    assert PERSON not in state["users"] and GONE_ADMIN not in state["users"]
    assert state["orgs"] == ["Acme"]
    assert state["person_email"] == {}, "the erased e-mail is still in these columns"
    assert state["gone_email"] == {}
    assert state["person_id"] == {}, "rows still point at the erased person"
    assert state["gone_id"] == {}, "rows of the deleted org are left"
    assert state["keys"] == [ids["acme"]]


@servers
def test_erasures_leave_no_trace_in_the_live_database(world: World) -> None:
    before, after = world.before, world.after
    # Before: the person and the org are there, in several tables (the probe finds them).
    assert PERSON in before["users"] and "Gone Ltd" in before["orgs"]
    assert {"accounts_user.email", "account_emailaddress.email"} <= set(before["person_email"])
    assert "orgs_datakey.org_id" in before["gone_id"]
    assert sorted(before["keys"]) == sorted([world.ids["acme"], world.ids["gone"]])
    assert_erased(after, world.ids)
    assert after["acme_secret"] == ACME_SECRET
    # Not in the files either: SQLite zeroes deleted rows and the WAL was checkpointed.
    raw = database_bytes(world.site)
    assert PERSON.encode() not in raw and GONE_ADMIN.encode() not in raw


@servers
def test_a_person_erased_after_a_backup_stays_erased_after_restoring_it(
    world: World, old_backup: Path, restored: tuple[str, dict[str, Any]]
) -> None:
    # The backup holds the person, with their e-mail address...
    held = query(old_backup, "SELECT id, email FROM accounts_user WHERE email = ?", PERSON)
    assert held == [(uuid.UUID(world.ids["person"]).hex, PERSON)]
    assert (
        query(old_backup, "SELECT COUNT(*) FROM account_emailaddress WHERE email = ?", PERSON)[0][0]
        == 1
    )
    # ...and the restore erased them again before returning.
    out, state = restored
    assert reapplied(1, 1) in out
    assert_erased(state, world.ids)
    raw = database_bytes(world.site)
    assert PERSON.encode() not in raw and GONE_ADMIN.encode() not in raw


@servers
def test_an_org_deleted_after_a_backup_stays_deleted_after_restoring_it(
    world: World, old_backup: Path, restored: tuple[str, dict[str, Any]]
) -> None:
    gone = uuid.UUID(world.ids["gone"]).hex
    assert query(old_backup, "SELECT name FROM orgs_organization WHERE id = ?", gone) == [
        ("Gone Ltd",)
    ]
    assert (
        query(old_backup, "SELECT COUNT(*) FROM metrics_datapoint WHERE org_id = ?", gone)[0][0]
        == 5
    )
    out, state = restored
    assert reapplied(1, 1) in out
    assert state["orgs"] == ["Acme"]
    assert state["gone_id"] == {}, "rows of the deleted org came back"
    assert state["gone_email"] == {}


@servers
def test_a_remaining_orgs_encrypted_field_opens_after_restore_with_keys_from_the_escrow(
    world: World, old_backup: Path, restored: tuple[str, dict[str, Any]]
) -> None:
    assert query(old_backup, "SELECT COUNT(*) FROM orgs_datakey") == [(0,)]  # no keys in it
    # Not in its free pages either (the rows were zeroed): no wrapped key of the escrow.
    raw = old_backup.read_bytes()
    wrapped = [w for _, _, w in from_escrow(world.site, world.escrow_then)]
    assert len(wrapped) == 2 and not [w for w in wrapped if w in raw]
    sealed = query(
        old_backup,
        f"SELECT {IDP_COLUMN} FROM {IDP_TABLE} WHERE id = ?",  # noqa: S608
        uuid.UUID(world.ids["acme_idp"]).hex,
    )[0][0]
    assert ACME_SECRET.encode() not in bytes(sealed) and len(sealed) > len(ACME_SECRET)
    out, state = restored
    assert "1 data key(s) taken from the escrow." in out
    assert state["keys"] == [world.ids["acme"]]
    assert state["acme_secret"] == ACME_SECRET


def keys_opening(
    ring: crypto.Keyring, rows: list[tuple[str, int, bytes]], blob: bytes, aad: bytes
) -> list[str]:
    """The orgs among `rows` (org id, version, wrapped key) whose data key opens `blob`."""
    opened = []
    for org, version, wrapped in rows:
        try:
            key = crypto.unwrap_data_key(ring, wrapped, uuid.UUID(org), version)
            crypto.open_sealed(key, blob, aad)
        except (crypto.DecryptionError, crypto.KeyringError):
            continue
        opened.append(str(uuid.UUID(org)))
    return opened


def from_escrow(site: Site, sealed: bytes) -> list[tuple[str, int, bytes]]:
    import base64

    return [
        (row["org"], int(row["version"]), base64.b64decode(row["wrapped"]))
        for row in escrow_rows(site, sealed)
    ]


@servers
def test_the_deleted_orgs_key_is_in_no_escrow_so_its_field_in_an_old_backup_stays_sealed(
    world: World, old_backup: Path
) -> None:
    site, ids = world.site, world.ids
    ring = crypto.Keyring.loads((site.data_dir / "keys" / "master.keys").read_text())
    blob = bytes(
        query(
            old_backup,
            f"SELECT {IDP_COLUMN} FROM {IDP_TABLE} WHERE id = ?",  # noqa: S608
            uuid.UUID(ids["gone_idp"]).hex,
        )[0][0]
    )
    aad = crypto.field_aad(
        uuid.UUID(ids["gone"]), IDP_TABLE, IDP_COLUMN, uuid.UUID(ids["gone_idp"])
    )

    # The escrow as it was at backup time held the key, and it opened the field: the check
    # below would see a surviving copy.
    then = from_escrow(site, world.escrow_then)
    assert sorted(row[0] for row in then) == sorted([ids["acme"], ids["gone"]])
    assert keys_opening(ring, then, blob, aad) == [ids["gone"]]
    wrapped = {org: wrapped for org, _, wrapped in then}[ids["gone"]]
    key = crypto.unwrap_data_key(ring, wrapped, uuid.UUID(ids["gone"]), 1)
    assert crypto.open_sealed(key, blob, aad).decode() == GONE_SECRET

    # Now: every datakeys.age anywhere, and the live database, hold no key that opens it.
    escrows = [p for p in site.data_dir.rglob("datakeys.age*") if p.is_file()]
    assert escrows == [site.backup_dir / "datakeys.age"]
    now = from_escrow(site, world.escrow_after)
    assert [row[0] for row in now] == [ids["acme"]]
    live = [
        (str(uuid.UUID(org)), version, bytes(wrapped))
        for org, version, wrapped in query(
            site.data_dir / "dashvault.sqlite3", "SELECT org_id, version, wrapped FROM orgs_datakey"
        )
    ]
    assert [row[0] for row in live] == [ids["acme"]]
    assert keys_opening(ring, now + live, blob, aad) == []


@servers
def test_a_restore_without_the_local_ledger_reapplies_the_targets_copy(world: World) -> None:
    entries = [json.loads(line) for line in world.ledger.read_text().splitlines()]
    assert sorted((e["kind"], e["id"]) for e in entries) == sorted(
        [("person", world.ids["person"]), ("org", world.ids["gone"])]
    )
    world.ledger.unlink()  # a new machine: the ledger did not come along
    out = restore(world.site, world.file, "--replace")
    assert reapplied(1, 1) in out
    assert_erased(probe(world.site, world.ids), world.ids)
    # The local ledger is back, from the target's copy.
    back = [json.loads(line) for line in world.ledger.read_text().splitlines()]
    assert back == entries


LATE = """
from dashvault.accounts.models import User
from dashvault.orgs.models import Organization
org = Organization.objects.get(name="Acme")
late = User.objects.create_user("late@acme.example", org=org)
print("LATE " + __import__("json").dumps([str(late.pk), str(org.pk)]))
"""

COUNT_LATE = """
from dashvault.accounts.models import User
print("LATE", User.objects.filter(email="late@acme.example").count())
"""


@servers
def test_serve_start_reapplies_a_ledger_entry_the_database_contradicts(world: World) -> None:
    # A ledger line written, then a crash before the database commit (or a restore that
    # brought the person back): `serve` erases them before serving anyone.
    person, org = tagged(world.site.run("shell", "-c", LATE).stdout, "LATE")
    line = {"at": "2026-01-01T00:00:00+00:00", "id": person, "kind": "person", "org": org}
    with open(world.ledger, "a") as ledger:
        ledger.write(json.dumps(line, sort_keys=True) + "\n")
    assert "LATE 1" in world.site.run("shell", "-c", COUNT_LATE).stdout
    with running_server(world.site.data_dir, world.site.env) as server:
        assert server.process.poll() is None
    assert "LATE 0" in world.site.run("shell", "-c", COUNT_LATE).stdout


@servers
def test_serve_refuses_to_start_on_a_damaged_ledger(world: World) -> None:
    kept = world.ledger.read_bytes()
    damaged = kept + b'{"kind": "person", "id": "not a uuid"}\n'
    world.ledger.write_bytes(damaged)
    line = damaged.count(b"\n")
    try:
        with pytest.raises(RuntimeError, match="server exited early") as failed:
            with running_server(world.site.data_dir, world.site.env):
                pass
        assert f"Erasure ledger: erasure ledger line {line} is damaged" in str(failed.value)
        assert "Traceback" not in str(failed.value)
    finally:
        world.ledger.write_bytes(kept)


@servers
def test_a_restore_keeps_the_remaining_orgs_keys_when_its_jobs_run_at_once(world: World) -> None:
    # Last of the SQLite tests: were the escrow emptied, the tests after it would fail too.
    out = restore(world.site, world.file, "--replace", jobs_at_once=True)
    assert reapplied(1, 1) in out
    state = probe(world.site, world.ids)
    assert_erased(state, world.ids)
    assert "1 data key(s) taken from the escrow." in out
    assert state["acme_secret"] == ACME_SECRET
    escrow = (world.site.backup_dir / "datakeys.age").read_bytes()
    assert [row["org"] for row in escrow_rows(world.site, escrow)] == [world.ids["acme"]]


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"dashvault_backup_erasure_{secrets.token_hex(4)}"
    assert name not in ("test", "test_test")
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        site = make_site(
            tmp_path_factory.mktemp("pg-erasure"),
            DASHVAULT_DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}",
            DASHVAULT_JOBS_IMMEDIATE="true",
        )
        yield build_world(site)
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        assert name not in pg_databases()


def pg_dump_text(site: Site, file: str, tmp_path: Path) -> str:
    """The old backup as the SQL that pg_restore would run (no database needed)."""
    dump = tmp_path / "backup.pgdump"
    dump.write_bytes(age_decrypt(site, (site.backup_dir / file).read_bytes()))
    done = subprocess.run(
        ["pg_restore", "-f", "-", str(dump)],  # noqa: S607  (the PostgreSQL client on PATH)
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@servers
def test_postgresql_erasures_survive_restores_and_keys_come_from_the_escrow(
    pg_world: World, tmp_path: Path
) -> None:
    world, site, ids = pg_world, pg_world.site, pg_world.ids
    assert world.file.endswith(".pgdump.age")
    sql = pg_dump_text(site, world.file, tmp_path)
    assert PERSON in sql and "Gone Ltd" in sql  # the backup holds both
    assert "COPY public.accounts_user " in sql
    assert "COPY public.orgs_datakey " not in sql  # ...and no data keys

    assert PERSON in world.before["users"] and "Gone Ltd" in world.before["orgs"]
    assert world.before["person_email"] and world.before["gone_id"]  # the probe finds them
    assert_erased(world.after, ids)
    assert [r["org"] for r in escrow_rows(site, world.escrow_then)] == sorted(
        [ids["acme"], ids["gone"]]
    )
    escrow = (site.backup_dir / "datakeys.age").read_bytes()
    assert [r["org"] for r in escrow_rows(site, escrow)] == [ids["acme"]]

    out = restore(site, world.file)
    assert reapplied(1, 1) in out and "1 data key(s) taken from the escrow." in out
    state = probe(site, ids)
    assert_erased(state, ids)
    assert state["acme_secret"] == ACME_SECRET

    world.ledger.unlink()  # restored on a machine without the local ledger
    out = restore(site, world.file)
    assert reapplied(1, 1) in out
    assert_erased(probe(site, ids), ids)
    assert len(world.ledger.read_text().splitlines()) == 2
