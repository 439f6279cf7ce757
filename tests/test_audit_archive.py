"""Archiving old audit entries: they leave the database only verified and sealed in a file;
the history (archives, then the live chain) still verifies; any damage to a file is caught."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from dashvault import audit
from dashvault.audit import archive, chain
from dashvault.audit.models import AuditArchive, AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(org_a, settings, tmp_path, monkeypatch):
    """Twenty entries of org A, the first twelve written 400 days ago (the clock the chain
    reads is moved back for them, as no row may be changed afterwards: PostgreSQL refuses)."""
    settings.AUDIT_ARCHIVE_DIR = str(tmp_path / "archives")
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    real_now = timezone.now
    monkeypatch.setattr(chain.timezone, "now", lambda: real_now() - dt.timedelta(days=400))
    entries = [audit.record("test.event", org=org_a, n=i) for i in range(12)]
    monkeypatch.setattr(chain.timezone, "now", real_now)
    entries += [audit.record("test.event", org=org_a, n=i) for i in range(12, 20)]
    return entries


def before_now() -> dt.datetime:
    return timezone.now() - dt.timedelta(days=30)


def test_old_entries_move_to_a_file_and_the_history_still_verifies(org_a, history):
    assert chain.verify()[1] == []
    made = archive.archive(before_now())
    assert [(a.first_seq, a.last_seq) for a in made] == [(1, 12)]
    remaining = AuditEntry.objects.filter(chain=str(org_a.pk)).order_by("seq")
    assert remaining.first().seq == 13  # the archive run's own entry is appended after
    lengths, problems = chain.verify()
    assert problems == []
    assert lengths[str(org_a.pk)] == 21  # 20 events and the audit.archive entry
    path = archive.directory() / made[0].file
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert b"test.event" not in path.read_bytes()  # sealed, not readable


def test_the_command_archives_and_verifies_a_file(org_a, history):
    out = io.StringIO()
    call_command("audit", "archive", "--before", before_now().date().isoformat(), stdout=out)
    assert "entries 1-12 archived" in out.getvalue()
    record = AuditArchive.objects.get()
    out = io.StringIO()
    call_command("audit", "verify", "--archive", str(archive.directory() / record.file), stdout=out)
    assert "12 entries up to seq 12, verifies" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("audit", "archive", "--before", "last week")


def test_a_flipped_byte_in_an_archive_is_caught(org_a, history):
    record = archive.archive(before_now())[0]
    path = archive.directory() / record.file
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    problems = chain.verify()[1]
    assert [p.kind for p in problems] == ["changed"]
    with pytest.raises(CommandError):
        call_command("audit", "verify", "--archive", str(path), stderr=io.StringIO())


def test_a_missing_archive_file_is_caught(org_a, history):
    record = archive.archive(before_now())[0]
    (archive.directory() / record.file).unlink()
    assert [p.kind for p in chain.verify()[1]] == ["deleted"]


def test_a_chain_that_does_not_verify_is_not_archived(org_a, history):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Tampering as the table's owner would: PostgreSQL refuses the UPDATE otherwise.
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER USER")
        AuditEntry.objects.filter(chain=str(org_a.pk), seq=5).update(action="test.forged")
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER USER")
    with pytest.raises(archive.ArchiveError):
        archive.archive(before_now())
    assert AuditEntry.objects.filter(chain=str(org_a.pk)).count() == 20
    assert not AuditArchive.objects.exists()


def test_a_second_archive_continues_the_first(org_a, history):
    archive.archive(before_now())
    archive.archive(timezone.now() + dt.timedelta(days=1))
    runs = list(AuditArchive.objects.order_by("first_seq"))
    assert [(r.first_seq, r.last_seq) for r in runs] == [(1, 12), (13, 21)]
    assert chain.verify()[1] == []


def test_retention_deletes_old_files_and_the_rest_still_verifies(org_a, history, settings):
    record = archive.archive(before_now())[0]
    settings.AUDIT_ARCHIVE_RETENTION_DAYS = 30
    assert archive.prune(now=timezone.now() + dt.timedelta(days=31)) == 1
    assert not (archive.directory() / record.file).exists()
    assert chain.verify()[1] == []
    assert AuditEntry.objects.filter(action="audit.archive_prune").exists()
