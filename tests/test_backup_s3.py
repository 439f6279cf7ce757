"""Backups on S3 (dashvault.backups.targets.S3Target) against a moto S3 server on loopback: the
real `dashvault backup` command puts, lists, verifies, restores and prunes in the bucket; the
standard `age` tool reads an object; damage is refused; Object Lock holds backups that prune
then reports; a rewritten escrow leaves no older version; old multipart uploads and objects
without a manifest are cleaned up."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from botocore.exceptions import ClientError
from django.test import override_settings

from tests.conftest import IN_CI
from tests.s3_server import S3Server, s3_server
from tests.test_backups import CHANGE, Site, Taken, make_site, servers

PREFIX = "dashvault/backups/"
ESCROW, LEDGER = "datakeys.age", "erasure-ledger.jsonl"
NOW = dt.datetime.now(dt.UTC)  # fake backups are placed relative to the real clock: the
# command decides what to keep by it


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Site:
    """A data directory whose backups go to a versioned bucket, under a prefix."""
    return make_site(tmp_path_factory.mktemp("s3"), **s3.env(s3.bucket(versioned=True), PREFIX))


@pytest.fixture(scope="module")
def taken(site: Site, s3: S3Server) -> Taken:
    before = site.state()
    out = site.run("backup", "create").stdout
    file = out.split(":", 1)[0]
    bucket = site.env["DASHVAULT_BACKUP_S3_BUCKET"]
    manifests = [k for k in s3.keys(bucket) if k.endswith(".json")]
    assert len(manifests) == 1, manifests
    manifest = json.loads(s3.read(bucket, manifests[0]))
    assert manifest["file"] == file
    return Taken(manifest["name"], file, before, manifest)


def bucket_of(site: Site) -> str:
    return site.env["DASHVAULT_BACKUP_S3_BUCKET"]


def escrowed_orgs(sealed: bytes, site: Site) -> list[str]:
    """The org ids whose data keys an escrow holds (opened with the site's private key)."""
    identity = pyrage.x25519.Identity.from_str(
        next(line for line in site.key.read_text().splitlines() if line.startswith("AGE-"))
    )
    plain = io.BytesIO()
    pyrage.decrypt_io(io.BytesIO(sealed), plain, [identity])
    data = json.loads(plain.getvalue())
    assert data["format"] == 1
    return [row["org"] for row in data["keys"]]


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- 1. create, list, verify, restore -------------------------------------------------------


@servers
def test_backup_create_puts_backup_manifest_escrow_and_ledger_copy_under_the_prefix(
    site: Site, taken: Taken, s3: S3Server
) -> None:
    bucket = bucket_of(site)
    expected = {taken.file, f"{taken.name}.json", ESCROW, LEDGER}
    assert s3.keys(bucket) == sorted(PREFIX + name for name in expected)  # nothing elsewhere

    stored = s3.read(bucket, PREFIX + taken.file)
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert len(stored) == taken.manifest["size"]
    assert hashlib.sha256(stored).hexdigest() == taken.manifest["sha256"]
    head = s3.client().head_object(Bucket=bucket, Key=PREFIX + taken.file)
    assert "ObjectLockMode" not in head and "ObjectLockRetainUntilDate" not in head  # no lock
    assert escrowed_orgs(s3.read(bucket, PREFIX + ESCROW), site) == []  # no sealed field yet
    assert s3.read(bucket, PREFIX + LEDGER) == b""  # nobody erased

    # Made in the staging folder, uploaded, removed: no copy (plain or encrypted) stays.
    assert files_in(site.backup_dir) == []
    assert not list(site.backup_dir.glob("dashvault-scratch-*"))


@servers
def test_backup_list_shows_the_s3_backup_with_its_rule(
    site: Site, taken: Taken, s3: S3Server
) -> None:
    listed = site.run("backup", "list").stdout.splitlines()
    assert len(listed) == 1
    assert taken.file in listed[0] and listed[0].endswith("kept: last 24 hours")
    assert f"{taken.manifest['size']:,} bytes" in listed[0]

    empty = s3.bucket()
    out = site.run("backup", "list", **s3.env(empty, PREFIX)).stdout
    assert out.strip() == f"No backups in s3://{empty}/{PREFIX}."


@servers
def test_verify_and_restore_from_s3_give_back_the_data(site: Site, taken: Taken) -> None:
    verified = site.run("backup", "verify", taken.name, "--key", str(site.key)).stdout
    assert verified.startswith(f"{taken.file}: restores, ")
    assert int(verified.split("restores, ", 1)[1].split()[0]) > 20

    site.run("shell", "-c", CHANGE)
    site.run("createorg", "Later Inc", "--admin-email", "later@later.example")
    assert site.state() != taken.state

    database = site.data_dir / "dashvault.sqlite3"
    done = site.run("backup", "restore", taken.file, "--key", str(site.key), "--replace")
    assert f"Restored {taken.file} into {database}" in done.stdout
    assert "Erasure ledger re-applied: 0 person(s) erased and 0 org(s) deleted again." in (
        done.stdout
    )
    assert "warning" not in done.stderr  # the escrow and the ledger copy were found
    assert site.state() == {**taken.state, "restores": 1}
    # The download went to a scratch folder beside the database, removed after.
    assert not list(site.data_dir.glob("dashvault-scratch-*"))
    assert not list(site.data_dir.glob("*.restoring*"))
    assert files_in(site.backup_dir) == []


@servers
def test_debian_age_decrypts_the_object_in_the_bucket_to_a_gzipped_sqlite_database(
    site: Site, taken: Taken, s3: S3Server, tmp_path: Path
) -> None:
    age = shutil.which("age")
    if age is None:
        if IN_CI:
            pytest.fail("the age command must be installed in CI (apt-get install age)")
        pytest.skip("the age command is not installed (apt-get install age)")
    encrypted = tmp_path / taken.file
    encrypted.write_bytes(s3.read(bucket_of(site), PREFIX + taken.file))
    decrypted = subprocess.run(
        [age, "-d", "-i", str(site.key), str(encrypted)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert decrypted.stdout[:2] == b"\x1f\x8b"  # gzip
    copy = tmp_path / "dashvault.sqlite3"
    copy.write_bytes(gzip.decompress(decrypted.stdout))
    db = sqlite3.connect(copy)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orgs = [row[0] for row in db.execute("SELECT name FROM orgs_organization")]
        points = db.execute("SELECT COUNT(*) FROM metrics_datapoint").fetchone()[0]
        keys = db.execute("SELECT COUNT(*) FROM orgs_datakey").fetchone()[0]
    finally:
        db.close()
    assert orgs == ["Acme"]
    assert points == taken.state["counts"]["DataPoint"]
    assert keys == 0


# -- 2. damage ------------------------------------------------------------------------------


@servers
@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_a_damaged_object_is_refused_and_nothing_is_restored(
    site: Site, taken: Taken, s3: S3Server, damage: str
) -> None:
    bucket = s3.bucket()
    client = s3.client()
    for name in (taken.file, f"{taken.name}.json"):
        client.copy_object(
            Bucket=bucket,
            Key=PREFIX + name,
            CopySource={"Bucket": bucket_of(site), "Key": PREFIX + name},
        )
    env = s3.env(bucket, PREFIX)
    key = ["--key", str(site.key)]
    assert "restores, " in site.run("backup", "verify", taken.name, *key, **env).stdout  # intact

    data = bytearray(s3.read(bucket, PREFIX + taken.file))
    if damage == "truncated":
        data = data[: len(data) - len(data) // 3]
    else:
        data[len(data) // 2] ^= 0xFF
    client.put_object(Bucket=bucket, Key=PREFIX + taken.file, Body=bytes(data))

    database = site.data_dir / "dashvault.sqlite3"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    for action in (["verify"], ["restore", "--replace"]):
        done = site.run("backup", action[0], taken.name, *action[1:], *key, check=False, **env)
        assert done.returncode != 0, done.stdout
        assert f"{taken.file} is not the file its manifest describes" in done.stderr
        assert "Nothing was restored." in done.stderr
        assert "Traceback" not in done.stderr
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    assert not list(site.data_dir.glob("*.restoring*"))
    assert not list(site.data_dir.glob("dashvault-scratch-*"))


@servers
def test_listing_a_missing_bucket_is_a_plain_error(site: Site, s3: S3Server) -> None:
    missing = "dashvault-never-created"
    listed = site.run("backup", "list", check=False, **s3.env(missing, PREFIX))
    assert listed.returncode != 0
    assert f"S3 listing of s3://{missing}/{PREFIX} failed" in listed.stderr
    assert "Traceback" not in listed.stderr


@servers
def test_an_upload_to_a_missing_bucket_is_a_plain_error(site: Site, s3: S3Server) -> None:
    missing = "dashvault-never-created"
    try:
        made = site.run("backup", "create", check=False, **s3.env(missing, PREFIX))
        assert made.returncode != 0
        assert "Traceback" not in made.stderr
        assert f"to s3://{missing}/{PREFIX} failed" in made.stderr
        assert "NoSuchBucket" in made.stderr
        # What stays in the staging folder is encrypted (prune removes it after a day).
        for path in files_in(site.backup_dir):
            assert path.read_bytes().startswith(b"age-encryption.org/v1\n"), path
    finally:
        for path in files_in(site.backup_dir):
            path.unlink()


# -- 3. pruning -----------------------------------------------------------------------------


@servers
def test_prune_deletes_every_version_of_unkept_backups_from_s3(site: Site, s3: S3Server) -> None:
    bucket = s3.bucket(versioned=True)
    env = s3.env(bucket, PREFIX)
    recent = s3.put_fake_backup(bucket, PREFIX, NOW - dt.timedelta(hours=1))
    old = s3.put_fake_backup(bucket, PREFIX, NOW - dt.timedelta(days=430))  # > 13 months
    older = s3.put_fake_backup(bucket, PREFIX, NOW - dt.timedelta(days=700))

    listed = site.run("backup", "list", **env).stdout.splitlines()
    assert [line.split("  ")[1] for line in listed] == [older[0], old[0], recent[0]]
    assert [line.split("kept: ")[1] for line in listed] == [
        "no (to prune)",
        "no (to prune)",
        "last 24 hours",
    ]

    dry = site.run("backup", "prune", "--dry-run", **env).stdout.splitlines()
    assert dry == [
        f"would prune {older[0]}",
        f"would prune {old[0]}",
        "2 backup(s) would be pruned.",
    ]
    assert len(s3.keys(bucket)) == 6

    out = site.run("backup", "prune", **env).stdout.splitlines()
    assert out == [f"pruned {older[0]}", f"pruned {old[0]}", "2 backup(s) pruned."]
    assert s3.keys(bucket) == sorted(PREFIX + name for name in recent)
    for name in (*old, *older):  # no version and no delete marker left behind
        assert s3.versions(bucket, PREFIX + name) == [], name
    assert site.run("backup", "prune", **env).stdout.strip() == "0 backup(s) pruned."


@servers
def test_object_lock_holds_backups_and_prune_says_not_pruned_yet(site: Site, s3: S3Server) -> None:
    bucket = s3.bucket(lock=True)
    env = s3.env(bucket, PREFIX, DASHVAULT_BACKUP_S3_LOCK_DAYS="1")
    locked = s3.put_fake_backup(
        bucket, PREFIX, NOW - dt.timedelta(days=700), lock_until=NOW + dt.timedelta(days=1)
    )
    unlocked = s3.put_fake_backup(bucket, PREFIX, NOW - dt.timedelta(days=430))

    out = site.run("backup", "create", **env).stdout.splitlines()
    file = out[0].split(":", 1)[0]
    name = file.removesuffix(".sqlite3.gz.age")
    assert out[1:] == [
        f"pruned {unlocked[0]}",
        f"not pruned yet: {locked[0]}: S3 delete failed on s3://{bucket}/{PREFIX}: "
        "AccessDenied Access Denied",
    ]
    keys = s3.keys(bucket)
    assert PREFIX + unlocked[0] not in keys and PREFIX + unlocked[1] not in keys
    assert PREFIX + locked[0] in keys and PREFIX + locked[1] in keys

    # The new backup's file and manifest are locked a day past its time; the escrow and the
    # ledger copy, which must be rewritable, are not.
    created = dt.datetime.fromisoformat(
        json.loads(s3.read(bucket, f"{PREFIX}{name}.json"))["created_at"]
    )
    client = s3.client()
    for key in (file, f"{name}.json"):
        head = client.head_object(Bucket=bucket, Key=PREFIX + key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert abs(until - (created + dt.timedelta(days=1))) < dt.timedelta(seconds=2), key
    for key in (ESCROW, LEDGER):
        assert "ObjectLockMode" not in client.head_object(Bucket=bucket, Key=PREFIX + key)
    version = s3.versions(bucket, PREFIX + file)[0]["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):  # nobody deletes it: not even us
        client.delete_object(Bucket=bucket, Key=PREFIX + file, VersionId=version)

    again = site.run("backup", "prune", **env).stdout.splitlines()
    assert again[0].startswith(f"not pruned yet: {locked[0]}: ")
    assert again[-1] == "0 backup(s) pruned."
    listed = site.run("backup", "list", **env).stdout
    assert f"{locked[0]}  " in listed and "kept: no (to prune)" in listed
    assert f"{file}  " in listed and "kept: last 24 hours" in listed

    # A locked bucket is versioned: the escrow, rewritten by a second backup, keeps one version.
    site.run("backup", "create", **env)
    assert len(s3.versions(bucket, PREFIX + ESCROW)) == 1


SEAL = """
from dashvault.orgs.actions import do_create_org
from dashvault.orgs.keys import encrypt_field
from dashvault.sso.models import IdentityProvider
org, _, _ = do_create_org("Temp Ltd", admin_email="admin@temp.example", base_url="https://x")
idp = IdentityProvider.objects.create(org=org, kind="google", client_id="temp", client_secret=b"")
idp.client_secret = encrypt_field(
    org, table="sso_identityprovider", column="client_secret", row_id=idp.pk, plaintext="s3cret"
)
idp.save(update_fields=["client_secret"])
print("ORG", org.pk)
"""

DELETE = """
from dashvault.orgs.models import Organization
from dashvault.privacy.erasure import delete_org
delete_org(Organization.objects.get(name="Temp Ltd"), acting=None, ip=None)
"""


@servers
def test_a_rewritten_escrow_leaves_no_older_version_in_a_versioned_bucket(
    site: Site, s3: S3Server
) -> None:
    bucket = s3.bucket(versioned=True)
    env = s3.env(bucket, PREFIX)
    out = site.run("shell", "-c", SEAL).stdout
    temp = next(line for line in out.splitlines() if line.startswith("ORG ")).split()[1]

    for _ in range(2):
        site.run("backup", "create", **env)
        versions = s3.versions(bucket, PREFIX + ESCROW)
        assert len(versions) == 1 and versions[0]["IsLatest"], versions
        assert escrowed_orgs(s3.read(bucket, PREFIX + ESCROW), site) == [temp]

    # Deleting the org rewrites the escrow at once (the job runs in the caller here): its key
    # is then in no version of it, and the ledger copy names the org.
    site.run("shell", "-c", DELETE, DASHVAULT_JOBS_IMMEDIATE="true", **env)
    versions = s3.versions(bucket, PREFIX + ESCROW)
    assert len(versions) == 1 and versions[0]["IsLatest"], versions
    assert escrowed_orgs(s3.read(bucket, PREFIX + ESCROW), site) == []
    ledger = [json.loads(line) for line in s3.read(bucket, PREFIX + LEDGER).splitlines()]
    assert [(e["kind"], e["id"]) for e in ledger] == [("org", temp)]
    assert len(s3.versions(bucket, PREFIX + LEDGER)) == 1


# -- 4. what killed backups leave -----------------------------------------------------------


@servers
def test_prune_aborts_incomplete_multipart_uploads_under_its_prefix(
    site: Site, s3: S3Server
) -> None:
    bucket = s3.bucket()
    client = s3.client()
    ours = client.create_multipart_upload(
        Bucket=bucket, Key=f"{PREFIX}dashvault-20260101T000000000000Z.sqlite3.gz.age"
    )
    theirs = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/big.bin")
    # moto reports every upload as initiated on 2010-11-10: more than a day ago.
    site.run("backup", "prune", **s3.env(bucket, PREFIX))
    left = [u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == [theirs["UploadId"]]
    assert ours["UploadId"] not in left


def test_prune_leaves_multipart_uploads_younger_than_a_day(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashvault.backups import pruning

    bucket = s3.bucket()
    client = s3.client()
    client.create_multipart_upload(Bucket=bucket, Key=f"{PREFIX}dashvault-x.sqlite3.gz.age")
    initiated = client.list_multipart_uploads(Bucket=bucket)["Uploads"][0]["Initiated"]
    for name, value in s3.env(bucket, PREFIX).items():
        if not name.startswith("DASHVAULT_"):
            monkeypatch.setenv(name, value)
    settings = {
        "BACKUP_DIR": tmp_path / "staging",
        "BACKUP_S3_BUCKET": bucket,
        "BACKUP_S3_PREFIX": PREFIX,
        "BACKUP_S3_ENDPOINT_URL": s3.endpoint,
        "BACKUP_S3_REGION": "us-east-1",
    }

    def uploads_after(hours: float) -> int:
        clock = types.SimpleNamespace(time=lambda: initiated.timestamp() + hours * 3600)
        monkeypatch.setattr(pruning, "time", clock)  # prune's idea of now, for the uploads
        with override_settings(**settings):
            assert pruning.prune() == ([], [])
        return len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    assert uploads_after(1) == 1  # perhaps a backup still being uploaded
    assert uploads_after(23.9) == 1
    assert uploads_after(24.1) == 0


@servers
def test_prune_removes_objects_without_a_manifest_once_a_day_old(site: Site, s3: S3Server) -> None:
    bucket = s3.bucket(versioned=True)
    env = s3.env(bucket, PREFIX)
    client = s3.client()
    complete = s3.put_fake_backup(bucket, PREFIX, NOW - dt.timedelta(hours=2))
    old_orphan = f"{PREFIX}dashvault-20260101T000000000000Z.sqlite3.gz.age"
    young_orphan = f"{PREFIX}dashvault-20260102T000000000000Z.sqlite3.gz.age"
    mine = f"{PREFIX}notes.txt"
    outside = "other/dashvault-20250101T000000000000Z.sqlite3.gz.age"
    for key in (old_orphan, young_orphan, mine, outside):
        client.put_object(Bucket=bucket, Key=key, Body=b"age-encryption.org/v1 half")
    for key in (old_orphan, mine, outside, *(PREFIX + name for name in complete)):
        s3.backdate(bucket, key, dt.timedelta(days=2))

    listed = site.run("backup", "list", **env).stdout.splitlines()
    assert len(listed) == 1 and complete[0] in listed[0]
    site.run("backup", "prune", **env)

    assert s3.versions(bucket, old_orphan) == []  # gone, every version
    assert s3.keys(bucket) == sorted(
        [young_orphan, mine, outside, *(PREFIX + name for name in complete)]
    )

    s3.backdate(bucket, young_orphan, dt.timedelta(hours=25))
    site.run("backup", "prune", **env)
    assert young_orphan not in s3.keys(bucket)
