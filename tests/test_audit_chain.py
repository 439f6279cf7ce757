"""The audit log's hash chains, signed checkpoints and `dashvault audit verify|checkpoint`.

Tampering is done the way someone holding the database would do it: raw SQL or `.update()`
behind the application's back (on PostgreSQL as the table's owner, who can switch the
append-only trigger off; the trigger itself is tested in test_audit_chain_postgres.py). Forging
"with the key" uses the audit key itself: only the signed checkpoints stand against that.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import ipaddress
import json
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from dashvault import audit
from dashvault.accounts.models import User
from dashvault.api.actions import do_create_token
from dashvault.audit import chain, checkpoints
from dashvault.audit.models import AuditEntry
from dashvault.lib import hashchain
from dashvault.orgs.actions import do_create_org
from dashvault.orgs.models import Organization
from tests.conftest import PASSWORD, make_client
from tests.live import dashvault
from tests.test_kiosk import new_link, tv
from tests.test_sso import azure, azure_person, configure, idp_server, oidc, sso_sign_in

# The SSO fixtures (a real OpenID provider on loopback) are reused for the e-mail scan.
__all__ = ["azure", "idp_server", "oidc"]

# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def checkpoint_dir(settings: Any, tmp_path: Path) -> Path:
    """A checkpoint store of each test's own: checkpoints outlive the test database, and one
    test's signed heads would make another's chains look truncated."""
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


@contextmanager
def behind_the_apps_back() -> Iterator[Any]:
    """A cursor of someone who holds the database: on PostgreSQL the table's owner, who can
    switch the append-only trigger off (and does, for the length of the tampering)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER USER")
        try:
            yield cursor
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER USER")


def tamper(entry: AuditEntry, **changes: Any) -> None:
    with behind_the_apps_back():
        AuditEntry.objects.filter(pk=entry.pk).update(**changes)


def entries_of(chain_name: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(chain=chain_name).order_by("id"))


def the_problem(org_id: object = None) -> hashchain.Problem:
    """The one problem `verify` finds (there must be exactly one)."""
    _, problems = chain.verify(org_id)
    assert len(problems) == 1, problems
    return problems[0]


def verify_command(*args: str) -> tuple[bool, str, str]:
    """`dashvault audit verify ARGS` in this process: (passed, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit", "verify", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return False, out.getvalue(), err.getvalue() + str(exc)
    return True, out.getvalue(), err.getvalue()


def checkpoint_now() -> str:
    out = io.StringIO()
    call_command("audit", "checkpoint", stdout=out)
    return out.getvalue()


def with_the_key(entry: AuditEntry, **changes: Any) -> dict[str, Any]:
    """`entry`'s fields with `changes`, and a MAC made with the audit key over them."""
    fields = {**chain.fields_of(entry), **changes}
    return {**fields, "mac": hashchain.mac(chain.audit_key(), fields)}


def rewrite_with_the_key(chain_name: str, from_seq: int, **changes: Any) -> None:
    """What a holder of the database and the audit key can do: change the entry at
    `from_seq`, then re-MAC and re-link every entry after it, so the chain verifies on its own."""
    prev = None
    for entry in entries_of(chain_name):
        if entry.seq < from_seq:
            continue
        fields = with_the_key(
            entry,
            **(changes if entry.seq == from_seq else {}),
            **({"prev": prev} if prev is not None else {}),
        )
        tamper(entry, action=fields["action"], prev=fields["prev"], mac=fields["mac"])
        prev = fields["mac"]


@pytest.fixture
def chain_a(org_a: Organization, admin_a: User, viewer_a: User) -> list[AuditEntry]:
    """Org A's chain of six entries of assorted shapes (addresses, details, actors)."""
    org = org_a
    audit.record("signin", org=org, actor=viewer_a, ip="203.0.113.9")
    audit.record("user.role", org=org, actor=admin_a, target=viewer_a, ip="::1", role="editor")
    audit.record("kiosk.screen_opened", org=org, actor_kind="kiosk", ip="2001:db8::7")
    audit.record("org.update", org=org, actor=admin_a, target=org, require_mfa=True, n=3)
    audit.record("signout", org=org, actor=viewer_a, ip="::ffff:198.51.100.4")
    audit.record("token.create", org=org, actor=admin_a, ip="10.1.2.3", scopes="push")
    entries = entries_of(str(org.pk))
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    return entries


# == a clean chain verifies ====================================================================


@pytest.fixture
def busy(
    org_a: Organization,
    admin_a: User,
    viewer_a: User,
    admin_b: User,
    staff: User,
    dashboards_a: Any,
) -> Any:
    """Three orgs and the platform after real actions: groups, members, kiosk links and their
    screens, API tokens, sign-ins that work and fail, a staff sign-in."""
    org_c, _, _ = do_create_org(
        "Org C", admin_email="admin@c.example", base_url="https://dash.example"
    )
    admin = make_client(admin_a)
    made = admin.post("/org/groups/new/", {"name": "Team", "members": [str(viewer_a.pk)]})
    assert made.status_code == 302
    admin.post("/org/members/new/", {"email": "fresh@a.example", "role": "viewer"})
    assert User.objects.filter(email="fresh@a.example").exists()
    _, token = new_link([dashboards_a["sales"]], acting=admin_a)
    tv(token, REMOTE_ADDR="203.0.113.9")
    do_create_token(org_a, "ci", ["push"], expires_at=None, acting=admin_a, ip="::1")
    make_client(admin_b).post("/org/groups/new/", {"name": "B team", "members": []})
    for login, password in [
        (viewer_a.email, PASSWORD),
        (viewer_a.email, "wrong-wrong-wrong"),
        (admin_b.email, PASSWORD),
        ("nobody@nowhere.example", "wrong-wrong-wrong"),  # no account: a platform event
    ]:
        make_client().post(
            "/accounts/login/", {"login": login, "password": password}, REMOTE_ADDR="198.51.100.4"
        )
    make_client(staff)  # force_login: the platform's "signin"
    return {"a": admin_a.org, "b": admin_b.org, "c": org_c}


def test_a_clean_chain_of_many_orgs_and_the_platform_verifies(busy: dict[str, Any]) -> None:
    lengths, problems = chain.verify()
    assert problems == []
    expected = {str(org.pk): AuditEntry.objects.filter(org=org).count() for org in busy.values()}
    expected[chain.PLATFORM] = AuditEntry.objects.filter(org=None).count()
    assert lengths == expected
    assert all(length >= 2 for length in lengths.values()), lengths
    for name in lengths:
        entries = entries_of(name)
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert [e.prev for e in entries] == [hashchain.GENESIS] + [e.mac for e in entries[:-1]]
        assert chain.head(name) == (entries[-1].seq, entries[-1].mac)


def test_the_verify_command_reports_each_chain_ok_with_its_length(busy: dict[str, Any]) -> None:
    passed, out, err = verify_command()
    assert passed, err
    for org in busy.values():
        count = AuditEntry.objects.filter(org=org).count()
        assert f"chain {org.pk}: ok, {count} entries" in out
    assert f"chain platform: ok, {AuditEntry.objects.filter(org=None).count()} entries" in out
    assert out.strip().endswith("All 4 chain(s) verify.")
    assert err == ""


def test_an_empty_audit_table_verifies(db: Any) -> None:
    assert chain.verify() == ({}, [])
    assert verify_command()[0]


def test_the_real_command_exits_0_on_a_clean_log_and_1_on_a_changed_entry(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "createorg", "Org A", "--admin-email", "admin@a.example")
    dashvault(data, "createorg", "Org B", "--admin-email", "admin@b.example")
    dashvault(
        data, "shell", "-c", "from dashvault import audit; audit.record('signin.failed', ip='::1')"
    )
    clean = dashvault(data, "audit", "verify", check=False)
    assert clean.returncode == 0, clean.stderr
    assert "All 3 chain(s) verify." in clean.stdout
    assert "chain platform: ok, 1 entries" in clean.stdout

    with sqlite3.connect(data / "dashvault.sqlite3") as db:
        org_b = db.execute("SELECT id FROM orgs_organization WHERE name = 'Org B'").fetchone()[0]
        entry_id, seq = db.execute(
            "SELECT id, seq FROM audit_auditentry WHERE org_id = ? AND seq = 2", [org_b]
        ).fetchone()
        db.execute("UPDATE audit_auditentry SET ip = '192.0.2.1' WHERE id = ?", [entry_id])
    db.close()
    broken = dashvault(data, "audit", "verify", check=False)
    assert broken.returncode == 1
    assert f"entry {entry_id} (seq {seq}): changed" in broken.stderr
    assert "1 chain(s) failed verification." in broken.stderr
    only_a = dashvault(data, "audit", "verify", "--org", "Org A", check=False)
    assert only_a.returncode == 0, only_a.stderr


# == each kind of tampering is caught and named ================================================


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "signout"),
        ("ip", "192.0.2.1"),
        ("ip", None),
        ("detail", {"role": "admin"}),
        ("detail", {}),
        ("at", "an hour earlier"),
        ("actor_id", "someone else"),
        ("actor_kind", "system"),
        ("target_type", "org"),
        ("target_id", "0"),
        ("prev", hashchain.GENESIS),
        ("mac", "f" * 64),
    ],
)
def test_a_changed_field_is_named_by_entry_and_seq(
    chain_a: list[AuditEntry], admin_b: User, field: str, value: Any
) -> None:
    entry = chain_a[1]
    if value == "an hour earlier":
        value = entry.at - dt.timedelta(hours=1)
    elif value == "someone else":
        value = admin_b.pk
    tamper(entry, **{field: value})
    problem = the_problem()
    assert (problem.kind, problem.chain, problem.seq, problem.record_id) == (
        "changed",
        str(entry.org_id),
        2,
        entry.pk,
    )


def test_a_raw_sql_update_of_the_action_fails_the_command_naming_the_entry(
    chain_a: list[AuditEntry],
) -> None:
    entry = chain_a[3]
    with behind_the_apps_back() as cursor:
        cursor.execute("UPDATE audit_auditentry SET action = 'org.view' WHERE id = %s", [entry.pk])
    passed, out, err = verify_command()
    assert not passed
    assert f"FAILED chain {entry.chain}: entry {entry.pk} (seq 4): changed" in err
    assert "1 chain(s) failed verification." in err
    assert entry.chain not in out


def test_an_entry_moved_into_another_orgs_log_is_changed(
    chain_a: list[AuditEntry], admin_b: User
) -> None:
    # The audit pages list an org's entries by the org column: moving an entry there hides it
    # from its org (and shows it to another) while its chain stays whole.
    entry = chain_a[2]
    tamper(entry, org_id=admin_b.org_id)
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("changed", 3, entry.pk)


def test_an_entry_moved_into_another_orgs_chain_is_caught_in_both(
    chain_a: list[AuditEntry], admin_b: User
) -> None:
    audit.record("signin", org=admin_b.org, actor=admin_b)
    entry = chain_a[2]
    tamper(entry, org_id=admin_b.org_id, chain=str(admin_b.org_id))
    _, problems = chain.verify()
    assert {(p.chain, p.kind, p.record_id) for p in problems} == {
        (str(admin_b.org_id), "changed", entry.pk),  # its MAC covers org A's chain
        (chain_a[0].chain, "deleted", chain_a[3].pk),
    }


def test_a_deleted_entry_in_the_middle_is_named_by_the_one_after_it(
    chain_a: list[AuditEntry],
) -> None:
    with behind_the_apps_back() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [chain_a[2].pk])
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("deleted", 4, chain_a[3].pk)
    assert problem.detail == "seq 3 missing before it"


def test_several_deleted_entries_are_named_as_a_range(chain_a: list[AuditEntry]) -> None:
    with behind_the_apps_back():
        AuditEntry.objects.filter(pk__in=[chain_a[1].pk, chain_a[2].pk]).delete()
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("deleted", 4, chain_a[3].pk)
    assert problem.detail == "seq 2-3 missing before it"


def test_a_forged_entry_without_the_key_is_named_as_not_matching_its_mac(
    chain_a: list[AuditEntry],
) -> None:
    last = chain_a[-1]
    forged = AuditEntry.objects.create(
        org_id=last.org_id,
        chain=last.chain,
        seq=7,
        prev=last.mac,
        action="user.role",
        actor_kind="user",
        mac=hashlib.sha256(b"made up").hexdigest(),
    )
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("changed", 7, forged.pk)


def test_a_copy_of_an_authentic_entry_cannot_be_passed_off_as_another(
    chain_a: list[AuditEntry],
) -> None:
    # Without the key the only MACs at hand are real ones: a copy of the last entry with the
    # next seq no longer matches its MAC (the seq is under it).
    last = chain_a[-1]
    copy = AuditEntry.objects.create(
        **{**chain.fields_of(last), "id": None, "seq": 7, "prev": last.mac, "at": last.at},
        org_id=last.org_id,
    )
    assert the_problem().record_id == copy.pk


def test_an_entry_appended_with_the_key_but_linked_to_the_wrong_entry_is_relinked(
    chain_a: list[AuditEntry],
) -> None:
    last = chain_a[-1]
    fields = with_the_key(last, id=None, seq=7, prev=chain_a[2].mac, action="org.delete")
    forged = AuditEntry.objects.create(**{**fields, "at": last.at, "id": None}, org_id=last.org_id)
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("relinked", 7, forged.pk)


def test_entries_swapped_in_place_keeping_their_macs_are_reordered(
    chain_a: list[AuditEntry],
) -> None:
    third, fourth = chain_a[2], chain_a[3]
    with behind_the_apps_back() as cursor:
        for old, new in [(third.pk, -1), (fourth.pk, third.pk), (-1, fourth.pk)]:
            cursor.execute("UPDATE audit_auditentry SET id = %s WHERE id = %s", [new, old])
    problem = the_problem()
    # Seq 3 now comes after seq 4: the entry out of its place is named, by its new id.
    assert (problem.kind, problem.seq, problem.record_id) == ("reordered", 3, fourth.pk)
    assert problem.detail == "stored after seq 4"


def test_swapped_sequence_numbers_are_changed_entries(chain_a: list[AuditEntry]) -> None:
    third, fourth = chain_a[2], chain_a[3]
    with behind_the_apps_back() as cursor:
        for pk, seq in [(third.pk, -1), (fourth.pk, 3), (third.pk, 4)]:
            cursor.execute("UPDATE audit_auditentry SET seq = %s WHERE id = %s", [seq, pk])
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("changed", 4, third.pk)


def test_entries_reinserted_in_another_order_are_reordered(chain_a: list[AuditEntry]) -> None:
    second, third = chain_a[1], chain_a[2]
    with behind_the_apps_back():
        AuditEntry.objects.filter(pk__in=[second.pk, third.pk]).delete()
    for entry in (third, second):  # back at the end, the later one first
        entry.pk = None
        entry.save(force_insert=True)
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("reordered", 3, third.pk)
    assert problem.detail == "stored after seq 4"


def test_an_old_entry_moved_to_the_end_is_reordered_not_deleted(
    chain_a: list[AuditEntry],
) -> None:
    second = chain_a[1]
    # Past every id in the table (PostgreSQL's id sequence is not reset between tests).
    moved = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() + 1000
    with behind_the_apps_back() as cursor:
        cursor.execute("UPDATE audit_auditentry SET id = %s WHERE id = %s", [moved, second.pk])
    problem = the_problem()
    assert (problem.kind, problem.seq, problem.record_id) == ("reordered", 2, moved)


def test_a_second_entry_with_a_seen_seq_is_inserted() -> None:
    # A copy of an authentic record (the database refuses it: (chain, seq) is unique; an
    # owner could drop that), right after it or further on.
    key = b"k" * 32
    records: list[dict[str, Any]] = []
    prev = hashchain.GENESIS
    for seq in range(1, 5):
        record: dict[str, Any] = dict.fromkeys(hashchain.FIELDS)
        record.update(id=seq, chain="c", seq=seq, prev=prev, action="x", detail={})
        record["mac"] = prev = hashchain.mac(key, record)
        records.append(record)
    for at in (2, 4):
        copied = [*records[:at], {**records[1], "id": 99}, *records[at:]]
        _, problem = hashchain.verify_chain(key, "c", copied)
        assert problem is not None
        assert (problem.kind, problem.seq, problem.record_id) == ("inserted", 2, 99)
    assert hashchain.verify_chain(key, "c", records) == (hashchain.Head(4, prev), None)


def test_a_truncated_tail_is_caught_against_the_checkpoint(chain_a: list[AuditEntry]) -> None:
    checkpoint_now()
    with behind_the_apps_back():
        AuditEntry.objects.filter(pk__in=[chain_a[4].pk, chain_a[5].pk]).delete()
    problem = the_problem()
    assert (problem.kind, problem.chain, problem.seq) == ("truncated", chain_a[0].chain, None)
    assert problem.detail == "a signed checkpoint saw seq 6; the chain ends at 4"
    passed, _, err = verify_command()
    assert not passed and f"chain {chain_a[0].chain}: chain: truncated" in err


def test_a_chain_deleted_whole_is_caught_against_the_checkpoint(
    chain_a: list[AuditEntry],
) -> None:
    checkpoint_now()
    with behind_the_apps_back():
        AuditEntry.objects.filter(chain=chain_a[0].chain).delete()
    problem = the_problem()
    assert problem.kind == "truncated"
    assert problem.detail == "a signed checkpoint saw seq 6; the chain ends at 0"


def test_without_a_checkpoint_a_truncated_tail_is_not_seen(chain_a: list[AuditEntry]) -> None:
    """Documents the limit: until a checkpoint signs a chain's head, its newest entries can
    go unseen, and the next entry continues from the newest one left. Signed checkpoints
    (hourly, and every 10,000 entries of a chain) bound that window; once one has seen the
    tail, its removal is caught (test_a_truncated_tail_is_caught_against_the_checkpoint)."""
    with behind_the_apps_back():
        AuditEntry.objects.filter(pk__in=[chain_a[4].pk, chain_a[5].pk]).delete()
    assert chain.verify()[1] == []
    after = audit.record("signin", org=chain_a[0].org_id)
    assert (after.seq, after.prev) == (5, chain_a[3].mac)
    assert chain.verify()[1] == []


def test_a_chain_rewritten_with_the_key_verifies_alone_but_not_against_checkpoints(
    chain_a: list[AuditEntry], viewer_a: User
) -> None:
    name = chain_a[0].chain
    checkpoint_now()  # seq 6
    audit.record("signin", org=viewer_a.org, actor=viewer_a)
    audit.record("signout", org=viewer_a.org, actor=viewer_a)
    checkpoint_now()  # seq 8
    rewrite_with_the_key(name, 3, action="signin")
    problem = the_problem()
    # The first entry a checkpoint signed that the rewrite reached is named.
    assert (problem.kind, problem.seq, problem.record_id) == ("rewritten", 6, chain_a[5].pk)
    assert problem.detail == "differs from the signed checkpoint"
    passed, _, err = verify_command()
    assert not passed and f"entry {chain_a[5].pk} (seq 6): rewritten" in err

    # Without the checkpoints the same rewrite verifies: they are what stands against the key.
    for path in checkpoints.directory().glob("checkpoint-*.json"):
        path.unlink()
    assert chain.verify() == ({name: 8}, [])


def test_a_rewrite_after_the_newest_checkpoint_is_not_seen(chain_a: list[AuditEntry]) -> None:
    """Documents the limit: entries newer than the newest checkpoint are only as safe as the
    audit key (hourly and every CHECKPOINT_EVERY entries bound that window)."""
    checkpoint_now()  # seq 6
    audit.record("signin", org=chain_a[0].org_id)
    rewrite_with_the_key(chain_a[0].chain, 7, action="signout")
    assert chain.verify()[1] == []
    rewrite_with_the_key(chain_a[0].chain, 6, action="signout")
    assert the_problem().kind == "rewritten"


# == the checkpoints themselves ================================================================


def signed_file(number: int, chains: dict[str, Any], prev: str, key: Ed25519PrivateKey) -> bytes:
    at = "2026-01-01T00:00:00+00:00"
    body = checkpoints._body(number, at, chains, prev)
    sig = base64.b64encode(key.sign(body)).decode()
    return json.dumps(
        {"number": number, "at": at, "chains": chains, "prev": prev, "sig": sig}
    ).encode()


def assert_checkpoints_refused(message: str) -> None:
    with pytest.raises(checkpoints.CheckpointError, match=message):
        checkpoints.load()
    with pytest.raises(checkpoints.CheckpointError):
        chain.verify()
    passed, _, err = verify_command()
    assert not passed and "Checkpoints do not verify" in err and message.strip("^") in err
    with pytest.raises(CommandError, match="Checkpoints do not verify"):
        checkpoint_now()


def three_checkpoints(org: Organization) -> list[Path]:
    for _ in range(3):
        audit.record("signin", org=org)
        checkpoint_now()
    return sorted(checkpoints.directory().glob("checkpoint-*.json"))


def test_an_altered_checkpoint_is_refused(org_a: Organization) -> None:
    second = three_checkpoints(org_a)[1]
    data = json.loads(second.read_bytes())
    data["chains"][str(org_a.pk)]["seq"] = 1
    second.write_text(json.dumps(data, sort_keys=True, indent=1))
    assert_checkpoints_refused("checkpoint-00000002.json: not a valid signed checkpoint")


def test_a_checkpoint_changed_outside_its_signature_breaks_the_link_to_the_next(
    org_a: Organization,
) -> None:
    second = three_checkpoints(org_a)[1]
    second.write_bytes(json.dumps(json.loads(second.read_bytes())).encode())  # same content
    assert_checkpoints_refused("checkpoint-00000003.json: does not follow the checkpoint before")


def test_a_checkpoint_removed_from_the_middle_is_refused(org_a: Organization) -> None:
    three_checkpoints(org_a)[1].unlink()
    assert_checkpoints_refused("checkpoint-00000003.json: checkpoint 2 is missing")


def test_a_later_checkpoint_renamed_into_a_gap_is_refused(org_a: Organization) -> None:
    files = three_checkpoints(org_a)
    files[1].unlink()
    files[2].rename(files[1])
    assert_checkpoints_refused("checkpoint-00000002.json: checkpoint 2 is missing")


def test_a_checkpoint_signed_by_another_key_is_refused(org_a: Organization) -> None:
    first = three_checkpoints(org_a)[0]
    forged = signed_file(
        1, {str(org_a.pk): {"seq": 1, "mac": "0" * 64}}, "", Ed25519PrivateKey.generate()
    )
    first.write_bytes(forged)
    assert_checkpoints_refused("checkpoint-00000001.json: not a valid signed checkpoint")


def test_a_checkpoint_appended_with_another_key_is_refused(chain_a: list[AuditEntry]) -> None:
    checkpoint_now()
    first = checkpoints.directory() / "checkpoint-00000001.json"
    (checkpoints.directory() / "checkpoint-00000002.json").write_bytes(
        signed_file(
            2,
            {chain_a[0].chain: {"seq": 9, "mac": "0" * 64}},
            hashlib.sha256(first.read_bytes()).hexdigest(),
            Ed25519PrivateKey.generate(),
        )
    )
    assert_checkpoints_refused("checkpoint-00000002.json: not a valid signed checkpoint")


def test_the_checkpoint_command_writes_one_then_nothing_until_the_chains_move(
    chain_a: list[AuditEntry], checkpoint_dir: Path
) -> None:
    assert not checkpoint_dir.exists()
    assert checkpoint_now().strip() == "Checkpoint 1 signed: 1 chain(s)."
    assert checkpoint_now().strip() == "Nothing new since the last checkpoint."
    assert [p.name for p in checkpoint_dir.glob("checkpoint-*")] == ["checkpoint-00000001.json"]
    audit.record("signin.failed")
    assert checkpoint_now().strip() == "Checkpoint 2 signed: 2 chain(s)."

    first, second = sorted(checkpoint_dir.glob("checkpoint-*.json"))
    for path in (first, second):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(checkpoint_dir.stat().st_mode) & 0o077 == 0
    assert json.loads(first.read_bytes())["prev"] == ""
    assert json.loads(second.read_bytes())["prev"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert json.loads(second.read_bytes())["chains"] == {
        chain_a[0].chain: {"seq": 6, "mac": chain_a[-1].mac},
        "platform": {"seq": 1, "mac": AuditEntry.objects.get(chain="platform").mac},
    }
    loaded = checkpoints.load()
    assert [c.number for c in loaded] == [1, 2]
    assert checkpoints.signed_heads(loaded)[chain_a[0].chain] == {6: chain_a[-1].mac}


@pytest.mark.django_db(transaction=True)
def test_every_nth_entry_of_a_chain_writes_a_checkpoint_once_committed(
    monkeypatch: pytest.MonkeyPatch, checkpoint_dir: Path
) -> None:
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 5)
    org = Organization.objects.create(name="Org A")

    def written() -> list[dict[str, Any]]:
        return [json.loads(p.read_bytes()) for p in sorted(checkpoint_dir.glob("checkpoint-*"))]

    for _ in range(4):
        audit.record("signin", org=org)
        audit.record("signin.failed")  # the platform's chain counts on its own
    assert written() == []
    with transaction.atomic():
        audit.record("signin", org=org)  # the 5th of org A's chain
        assert written() == []  # not before the entry is committed
    assert [c["chains"][str(org.pk)]["seq"] for c in written()] == [5]
    audit.record("signin.failed")  # the platform's 5th
    assert [c["chains"]["platform"]["seq"] for c in written()] == [4, 5]
    for _ in range(5):
        audit.record("signin", org=org)
    assert [c["chains"][str(org.pk)]["seq"] for c in written()] == [5, 5, 10]
    assert chain.verify() == ({str(org.pk): 10, "platform": 5}, [])


@pytest.mark.django_db(transaction=True)
def test_a_failing_checkpoint_never_undoes_the_entry(
    monkeypatch: pytest.MonkeyPatch, checkpoint_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 1)
    checkpoint_dir.mkdir()
    (checkpoint_dir / "checkpoint-00000001.json").write_text("not a checkpoint")
    entry = audit.record("signin.failed")
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    assert "audit: writing a checkpoint failed" in caplog.text


# == one org at a time =========================================================================


def test_verify_org_checks_only_that_orgs_chain(chain_a: list[AuditEntry], admin_b: User) -> None:
    org_a, org_b = chain_a[0].org_id, admin_b.org_id
    audit.record("signin", org=org_b, actor=admin_b)
    broken = audit.record("signout", org=org_b, actor=admin_b)
    tamper(broken, action="signin")

    passed, out, err = verify_command("--org", str(org_a))
    assert passed, err
    assert out.splitlines() == [f"chain {org_a}: ok, 6 entries", "All 1 chain(s) verify."]
    assert chain.verify(org_a) == ({str(org_a): 6}, [])

    passed, out, err = verify_command("--org", "Org B")
    assert not passed
    assert f"FAILED chain {org_b}: entry {broken.pk} (seq 2): changed" in err
    assert str(org_a) not in out + err
    assert not verify_command()[0]


def test_verify_org_refuses_an_unknown_org(db: Any) -> None:
    with pytest.raises(CommandError, match="No single organization matches 'Nope'"):
        call_command("audit", "verify", "--org", "Nope")


def test_verify_org_still_checks_the_orgs_checkpoints(chain_a: list[AuditEntry]) -> None:
    checkpoint_now()
    with behind_the_apps_back():
        AuditEntry.objects.filter(pk=chain_a[-1].pk).delete()
    passed, _, err = verify_command("--org", "Org A")
    assert not passed and "truncated" in err


# == appends are serialized ====================================================================


# Run through `dashvault shell` on a real data directory (the SQLite test database is in
# memory with a shared cache, where a second writer fails at once instead of waiting): 8
# threads append 24 entries each, every one in its own transaction, to orgs A and B and the
# platform; prints the errors.
EIGHT_THREADS = """
import json, threading
from django.db import connections, transaction
from dashvault import audit
from dashvault.orgs.models import Organization
orgs = list(Organization.objects.order_by("name"))
start, errors = threading.Barrier(8), []
def append(thread):
    try:
        start.wait(timeout=10)
        for n in range(24):
            with transaction.atomic():
                org = orgs[n % 2] if n % 3 else None
                audit.record("thread.append", org=org, thread=thread, n=n)
    except BaseException as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()
threads = [threading.Thread(target=append, args=[n]) for n in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(errors))
"""

SEQS = """
import json
from dashvault.audit.models import AuditEntry
chains = {}
for chain, seq in AuditEntry.objects.order_by("id").values_list("chain", "seq"):
    chains.setdefault(chain, []).append(seq)
print(json.dumps(chains))
"""


def test_eight_threads_appending_at_once_on_sqlite_make_one_unbroken_chain_per_org(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    for name in ("Org A", "Org B"):
        dashvault(data, "createorg", name, "--admin-email", f"admin@{name[-1].lower()}.example")
    errors = dashvault(data, "shell", "-c", EIGHT_THREADS).stdout.strip().splitlines()[-1]
    assert json.loads(errors) == []
    verified = dashvault(data, "audit", "verify", check=False)
    assert verified.returncode == 0, verified.stderr
    assert "chain platform: ok, 64 entries" in verified.stdout
    assert verified.stdout.count(": ok, 66 entries") == 2  # org.create, user.create, 64 more
    chains = json.loads(dashvault(data, "shell", "-c", SEQS).stdout.strip().splitlines()[-1])
    assert sorted(len(seqs) for seqs in chains.values()) == [64, 66, 66]
    for seqs in chains.values():
        assert seqs == list(range(1, len(seqs) + 1))  # numbered in the order of the ids


def run_in_org_a(data: Path, script: str) -> Any:
    """`script` through `dashvault shell` on a new data directory holding "Org A" (its chain
    at seq 2: org.create, user.create); returns the JSON of the script's last line."""
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "createorg", "Org A", "--admin-email", "admin@a.example")
    return json.loads(dashvault(data, "shell", "-c", script).stdout.strip().splitlines()[-1])


# One process on a real data directory: a rolled-back append and another connection's commit
# between this connection's appends leave one unbroken chain.
ROLLBACK_AND_OTHER_WRITER = """
import json, threading
from django.db import connections, transaction
from dashvault import audit
from dashvault.orgs.models import Organization
org = Organization.objects.get(name="Org A")
seqs = [audit.record("first", org=org).seq, audit.record("follows", org=org).seq]
try:
    with transaction.atomic():
        seqs.append(-audit.record("rolled.back", org=org).seq)
        raise RuntimeError("undo")
except RuntimeError:
    pass
seqs.append(audit.record("after.rollback", org=org).seq)
def other():
    try:
        seqs.append(audit.record("other.connection", org=org).seq)
    finally:
        connections.close_all()
thread = threading.Thread(target=other)
thread.start()
thread.join()
seqs.append(audit.record("after.other", org=org).seq)
print(json.dumps(seqs))
"""


def test_rollbacks_and_other_writers_between_appends_leave_one_chain_on_sqlite(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    out = run_in_org_a(data, ROLLBACK_AND_OTHER_WRITER)
    assert out == [3, 4, -5, 5, 6, 7]
    verified = dashvault(data, "audit", "verify", check=False)
    assert verified.returncode == 0, verified.stderr
    assert "ok, 7 entries" in verified.stdout


# A long chain is verified in two halves by two processes; any problem is verified again in
# one pass, which names it. Run on a real data directory (the forked process must see the
# entries), with PARALLEL_FROM lowered so 42 entries count as long.
HALVES = """
import json, sqlite3
from django.conf import settings
from dashvault import audit
from dashvault.audit import chain, checkpoints
from dashvault.orgs.models import Organization
chain.PARALLEL_FROM = 10
org = Organization.objects.get(name="Org A")
name = str(org.pk)
for n in range(40):
    audit.record("signin", org=org)
checkpoints.write_checkpoint()
joined = []
real = chain._verify_halves
def spy(*args):
    joined.append(real(*args))
    return joined[-1]
chain._verify_halves = spy
db = sqlite3.connect(settings.DATABASES["default"]["NAME"])
def verify(label):
    lengths, problems = chain.verify()
    out[label] = [lengths.get(name), [str(p) for p in problems], joined[-1] is not None]
def change(sql, *params):
    db.execute(sql, [*params, name])
    db.commit()
out = {"halves": chain._halves(name)}
verify("clean")
change("UPDATE audit_auditentry SET action = 'signout' WHERE seq = 30 AND chain = ?")
verify("changed")
change("UPDATE audit_auditentry SET action = 'signin' WHERE seq = 30 AND chain = ?")
saved = db.execute("SELECT * FROM audit_auditentry WHERE seq = 23 AND chain = ?", [name]).fetchone()
change("DELETE FROM audit_auditentry WHERE seq = 23 AND chain = ?")
verify("gap at the join")
db.execute("INSERT INTO audit_auditentry VALUES (" + ", ".join("?" * len(saved)) + ")", saved)
change("DELETE FROM audit_auditentry WHERE seq = 42 AND chain = ?")
verify("truncated")
print(json.dumps(out))
"""


def test_a_long_chain_is_verified_in_two_processes_and_problems_named_in_one_pass(
    tmp_path: Path,
) -> None:
    out = run_in_org_a(tmp_path / "data", HALVES)
    assert out["halves"] is not None and len(out["halves"]) == 2
    assert out["clean"] == [42, [], True]  # the two halves joined: no second pass
    length, problems, joined = out["changed"]
    assert (length, joined) == (29, False)
    assert len(problems) == 1 and "(seq 30): changed" in problems[0]
    length, problems, joined = out["gap at the join"]
    assert (length, joined) == (22, False)
    assert len(problems) == 1 and "(seq 24): deleted: seq 23 missing before it" in problems[0]
    length, problems, joined = out["truncated"]
    assert (length, joined) == (41, False)
    assert len(problems) == 1 and "truncated: a signed checkpoint saw seq 42" in problems[0]


# == transactions ==============================================================================


def test_a_rolled_back_change_leaves_no_entry_and_no_gap(chain_a: list[AuditEntry]) -> None:
    org = chain_a[0].org_id
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record("signin", org=org)
        audit.record("signin.failed")  # a new chain, its head row made in this transaction
        raise RuntimeError("the change failed")
    assert AuditEntry.objects.count() == 6
    assert audit.record("signout", org=org).seq == 7
    assert audit.record("signin.failed").seq == 1
    assert chain.verify() == ({str(org): 7, "platform": 1}, [])


def test_an_org_id_given_as_text_lands_in_the_orgs_chain(chain_a: list[AuditEntry]) -> None:
    org = chain_a[0].org_id
    assert org is not None
    entry = audit.record("signin", org=org.hex.upper())
    assert (entry.chain, entry.seq) == (str(org), 7)
    assert chain.verify() == ({str(org): 7}, [])


# == the migration chains the entries written before it ========================================


@pytest.mark.django_db(transaction=True)
def test_the_migration_chains_entries_written_the_old_way() -> None:
    executor = MigrationExecutor(connection)
    before, after = [("audit", "0002_initial")], executor.loader.graph.leaf_nodes()
    org_a, org_b = Organization.objects.create(name="A"), Organization.objects.create(name="B")
    executor.migrate(before)
    try:
        executor.loader.build_graph()
        old = executor.loader.project_state(before).apps.get_model("audit", "AuditEntry")
        for n in range(12):
            old.objects.create(
                org_id=[org_a.pk, org_b.pk, None][n % 3],
                action="signin",
                actor_kind="user",
                actor_id=uuid.uuid4(),
                target_type="user",
                target_id=str(n),
                ip=["203.0.113.9", "2001:db8::1", None][n % 3],
                detail={"n": n, "role": "viewer"},
            )
    finally:
        executor.loader.build_graph()
        executor.migrate(after)
    lengths, problems = chain.verify()
    assert problems == []
    assert lengths == {str(org_a.pk): 4, str(org_b.pk): 4, "platform": 4}
    for name in lengths:
        entries = entries_of(name)
        assert [e.seq for e in entries] == [1, 2, 3, 4]
        assert chain.head(name) == (4, entries[-1].mac)
    assert audit.record("signin", org=org_a).seq == 5  # new entries continue the chains
    assert chain.verify()[1] == []


# == what the database gives back is what the MAC covered (inet, jsonb on PostgreSQL) ==========


@pytest.mark.parametrize(
    "ip",
    [
        "203.0.113.9",
        "::ffff:198.51.100.4",
        "::1",
        "::",
        "2001:DB8::0:1",
        "2001:db8:0:1:1:1:1:1",
        "2001:db8:0:0:1:0:0:1",
        "fe80::1",
        "2001:db8::",
    ],
)
def test_addresses_verify_as_the_address_column_gives_them_back(
    org_a: Organization, ip: str
) -> None:
    entry = audit.record("signin", org=org_a, ip=ip)
    entry.refresh_from_db()
    assert entry.ip == str(ipaddress.ip_address(ip.removeprefix("::ffff:")))
    assert chain.verify()[1] == []


def test_details_verify_as_the_json_column_gives_them_back(org_a: Organization) -> None:
    audit.record(
        "org.update",
        org=org_a,
        require_mfa=True,
        count=2**70,
        negative=-1,
        name="Zürich ✓",
        none=None,
        b="first key by name, last by length",
        aa="jsonb orders keys by length",
        kiosk=uuid.UUID(int=7),
    )
    assert chain.verify()[1] == []


@pytest.mark.parametrize("value", [1e16, -0.0, 0.5])
def test_a_float_detail_is_refused_since_jsonb_may_give_it_back_changed(
    org_a: Organization, value: float
) -> None:
    with pytest.raises(ValueError, match="must be an id or enum value"):
        audit.record("org.update", org=org_a, share=value)
    assert not AuditEntry.objects.exists()


# == no e-mail address in the audit table ======================================================


def test_a_realistic_day_leaves_no_email_address_in_any_audit_column(
    busy: dict[str, Any], azure: Any, idp_server: Any, admin_a: User, viewer_a: User
) -> None:
    sso_sign_in(idp_server, azure, "alice", azure_person("alice"))  # created just in time
    configure(admin_a.org, admin_a, federation=False)
    sso_sign_in(idp_server, azure, "bob", azure_person("bob"))  # refused
    admin = make_client(admin_a)
    admin.post(f"/org/members/{viewer_a.pk}/sso/", {"allowed": "1"})
    admin.post(f"/org/members/{viewer_a.pk}/role/", {"role": "editor"})
    make_client().post("/accounts/login/", {"login": "Admin@A.example", "password": "x" * 12})

    emails = {*User.objects.values_list("email", flat=True)}
    emails |= {"alice@a.example", "bob@a.example", "nobody@nowhere.example", "fresh@a.example"}
    assert len(emails) >= 8
    columns = [field.attname for field in AuditEntry._meta.concrete_fields]
    rows = list(AuditEntry.objects.values_list(*columns))
    assert {
        "org.create",
        "user.create",
        "group.create",
        "kiosk.create",
        "kiosk.screen_opened",
        "token.create",
        "signin",
        "signin.failed",
        "sso.jit_create",
        "sso.signin",
        "sso.refused",
        "user.sso_allow",
        "user.role",
    } <= {row[columns.index("action")] for row in rows}
    for row in rows:
        text = json.dumps(row, default=str)
        assert "@" not in text, text
        assert not any(email.lower() in text.lower() for email in emails), text
    assert chain.verify()[1] == []
