"""The audit log on PostgreSQL: the append-only trigger, and appends serialized by the head
row's lock.

Run with DASHVAULT_TEST_ON_POSTGRES=1 (CI does); skipped on SQLite, whose threaded appends are
tested on a real database file in test_audit_chain.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction

from dashvault import audit
from dashvault.audit import chain
from dashvault.audit.models import AuditEntry
from dashvault.orgs.models import Organization

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (DASHVAULT_TEST_ON_POSTGRES=1)"
)


@pytest.fixture(autouse=True)
def checkpoint_dir(settings: Any, tmp_path: Path) -> Path:
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def raw(sql: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def refused(sql: str, params: list[Any] | None = None) -> bool:
    """Whether the trigger refuses `sql` (in a savepoint, so the test's transaction goes on)."""
    try:
        with transaction.atomic():
            raw(sql, params)
    except DatabaseError as exc:
        assert "the audit log is append-only" in str(exc)
        return True
    return False


# == the append-only trigger ===================================================================


def test_the_trigger_refuses_update_and_delete_and_the_row_stays(org_a: Organization) -> None:
    entry = audit.record("signin", org=org_a, ip="203.0.113.9")
    assert refused("UPDATE audit_auditentry SET action = 'signout' WHERE id = %s", [entry.pk])
    assert refused("UPDATE audit_auditentry SET ip = NULL")
    assert refused("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk])
    assert refused("DELETE FROM audit_auditentry")
    with pytest.raises(DatabaseError, match="append-only: UPDATE refused"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(action="signout")
    with pytest.raises(DatabaseError, match="append-only: DELETE refused"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.action, stored.ip, stored.mac) == ("signin", "203.0.113.9", entry.mac)
    assert chain.verify() == ({str(org_a.pk): 1}, [])


def test_truncate_as_the_test_flush_does_is_not_refused(org_a: Organization) -> None:
    audit.record("signin", org=org_a)
    raw("TRUNCATE audit_auditentry")
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_only_a_transaction_that_set_the_archive_flag_may_delete() -> None:
    org = Organization.objects.create(name="Org A")
    old, kept = audit.record("signin", org=org), audit.record("signout", org=org)
    for value in ("off", "true", "1"):  # only 'on' opens the door
        with pytest.raises(DatabaseError, match="DELETE refused"), transaction.atomic():
            raw(f"SET LOCAL dashvault.audit_archive = '{value}'")
            raw("DELETE FROM audit_auditentry WHERE id = %s", [old.pk])
    with transaction.atomic():  # the archive's path
        raw("SET LOCAL dashvault.audit_archive = 'on'")
        raw("DELETE FROM audit_auditentry WHERE id = %s", [old.pk])
        assert refused("UPDATE audit_auditentry SET action = 'x' WHERE id = %s", [kept.pk])
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [kept.pk]
    # SET LOCAL ended with its transaction: the next one is refused again.
    assert refused("DELETE FROM audit_auditentry WHERE id = %s", [kept.pk])


# == appends are serialized by the head row's lock =============================================


@pytest.mark.django_db(transaction=True)
def test_eight_threads_appending_at_once_make_one_unbroken_chain_per_org() -> None:
    orgs = [Organization.objects.create(name=f"Org {n}") for n in range(2)]
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def append(thread: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(24):
                with transaction.atomic():  # each in its own transaction, as actions do
                    org = orgs[n % 2] if n % 3 else None
                    audit.record("thread.append", org=org, thread=thread, n=n)
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=[n]) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    lengths, problems = chain.verify()
    assert problems == []
    assert lengths == {str(orgs[0].pk): 64, str(orgs[1].pk): 64, "platform": 64}
    for name in lengths:
        seqs = AuditEntry.objects.filter(chain=name).order_by("id").values_list("seq", flat=True)
        assert list(seqs) == list(range(1, 65))


@pytest.mark.django_db(transaction=True)
def test_eight_threads_starting_a_new_chain_at_once_make_one() -> None:
    # No head row yet: the writers race to create it, and the losers must queue, not fail.
    org = Organization.objects.create(name="Org A")
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def append() -> None:
        try:
            start.wait(timeout=10)
            with transaction.atomic():
                audit.record("signin", org=org)
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert chain.verify() == ({str(org.pk): 8}, [])


@pytest.mark.django_db(transaction=True)
def test_an_append_waits_for_the_open_transaction_that_appended_before_it() -> None:
    org = Organization.objects.create(name="Org A")
    first_appended, second_done, release = threading.Event(), threading.Event(), threading.Event()
    seqs: dict[str, int] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                seqs["first"] = audit.record("signin", org=org).seq
                first_appended.set()
                release.wait(timeout=10)
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            first_appended.wait(timeout=10)
            with transaction.atomic():
                seqs["second"] = audit.record("signin", org=org).seq
            second_done.set()
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert first_appended.wait(timeout=10)
    assert not second_done.wait(timeout=1), "the second append did not wait for the first"
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert seqs == {"first": 1, "second": 2}
    assert chain.verify() == ({str(org.pk): 2}, [])
