"""The erasure ledger (issue 8 item 5): parsing, merging, appends from many threads and
processes, the copy on the backup target, and re-applying it after a restore."""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress

from dashvault.accounts.models import Role, User
from dashvault.audit import chain
from dashvault.audit.models import AuditEntry
from dashvault.backups.targets import FolderTarget
from dashvault.dashboards.models import Dashboard
from dashvault.orgs.models import Organization
from dashvault.privacy import erasure, ledger
from dashvault.privacy.ledger import Erasure, LedgerError
from tests.conftest import PASSWORD
from tests.test_privacy import own_ledger

__all__ = ["own_ledger"]  # autouse: each test its own ledger, backup folder and checkpoints


def entry(kind: str = "person", at: str = "2026-03-01T10:00:00+00:00", **ids: str) -> Erasure:
    return Erasure(kind, ids.get("id", str(uuid.uuid4())), ids.get("org", str(uuid.uuid4())), at)


# -- parse -------------------------------------------------------------------------------------


def test_parse_reads_back_what_entries_write() -> None:
    written = [entry(), entry("org", at="2026-03-02T10:00:00+00:00")]
    assert ledger.parse("".join(e.line() for e in written)) == written


def test_parse_refuses_a_damaged_line_in_the_middle() -> None:
    good = entry().line()
    for damage in ("{not json\n", '{"kind": "person"}\n', good.replace('"id": "', '"id": "x')):
        with pytest.raises(LedgerError, match="line 2 is damaged"):
            ledger.parse(good + damage + good)


def test_parse_refuses_an_unknown_kind() -> None:
    with pytest.raises(LedgerError, match="line 1 has an unknown kind"):
        ledger.parse(entry("dashboard").line())


def test_parse_ignores_a_torn_last_line_without_its_newline() -> None:
    first, torn = entry(), entry()
    text = first.line() + torn.line()[:40]
    assert ledger.parse(text) == [first]
    # ... but a whole last line that is damaged is damage, not a write cut short.
    with pytest.raises(LedgerError):
        ledger.parse(first.line() + torn.line()[:40] + "\n")


def test_parse_skips_blank_lines() -> None:
    first = entry()
    assert ledger.parse("\n" + first.line() + "\n") == [first]


def test_a_missing_ledger_has_no_entries(own_ledger: Path) -> None:
    assert not own_ledger.exists() and ledger.entries() == []


def test_an_unreadable_ledger_is_an_error(own_ledger: Path) -> None:
    own_ledger.parent.mkdir(parents=True)
    own_ledger.write_bytes(b"\xff\xfe not text\n")
    with pytest.raises(LedgerError, match="cannot be read"):
        ledger.entries()


# -- merge -------------------------------------------------------------------------------------


def test_merge_keeps_one_entry_per_kind_and_id_the_earliest_in_time_order() -> None:
    person, org = str(uuid.uuid4()), str(uuid.uuid4())
    early = entry(id=person, org=org, at="2026-01-01T00:00:00+00:00")
    late = entry(id=person, org=org, at="2026-02-01T00:00:00+00:00")
    same_id_other_kind = entry("org", id=person, org=person, at="2026-03-01T00:00:00+00:00")
    other = entry(at="2025-12-01T00:00:00+00:00")

    merged = ledger.merge([late, same_id_other_kind], [early, other, late])

    assert merged == [other, early, same_id_other_kind]
    assert ledger.merge([late], [early]) == ledger.merge([early], [late]) == [early]


# -- append ------------------------------------------------------------------------------------


def test_append_writes_ids_only_and_refuses_what_is_not_an_id(own_ledger: Path) -> None:
    person, org = uuid.uuid4(), uuid.uuid4()
    written = ledger.append("person", person, org)
    assert ledger.entries() == [written]
    assert json.loads(own_ledger.read_text()) == {
        "kind": "person",
        "id": str(person),
        "org": str(org),
        "at": written.at,
    }
    assert own_ledger.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        ledger.append("person", "someone@a.example", org)
    with pytest.raises(ValueError):
        ledger.append("dashboard", person, org)
    assert ledger.entries() == [written]


def test_append_fails_loudly_when_the_ledger_cannot_be_written(
    settings: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.ERASURE_LEDGER = blocker / "erasure-ledger.jsonl"  # its folder is a file
    with pytest.raises(LedgerError, match="cannot be written"):
        ledger.append("person", uuid.uuid4(), uuid.uuid4())


def _append_many(count: int) -> None:
    for _ in range(count):
        ledger.append("person", uuid.uuid4(), uuid.uuid4())


def _append_in_threads(threads: int, count: int) -> None:
    workers = [threading.Thread(target=_append_many, args=(count,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_appends_from_many_threads_and_processes_keep_whole_lines(own_ledger: Path) -> None:
    processes, threads, count = 4, 4, 40
    fork = multiprocessing.get_context("fork")  # the children inherit the test's settings
    children = [
        fork.Process(target=_append_in_threads, args=(threads, count)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    _append_in_threads(threads, count)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0

    text = own_ledger.read_text()
    lines = text.split("\n")
    assert lines[-1] == ""  # ends with a newline: no torn line
    found = ledger.parse(text)
    assert len(found) == len(lines) - 1 == (processes + 1) * threads * count
    assert len({e.id for e in found}) == len(found)


def test_appends_during_mirrors_are_never_lost(own_ledger: Path, tmp_path: Path) -> None:
    # A mirror rewrites the local file: an append landing between its read and its rewrite
    # must wait for the lock, not vanish. (Two mirrors at once: the test below.)
    target = FolderTarget(tmp_path / "target")
    stop = threading.Event()
    mirrored = []

    def mirror_until_stopped() -> None:
        while not stop.is_set():
            mirrored.append(len(ledger.mirror(target)))

    mirror = threading.Thread(target=mirror_until_stopped)
    mirror.start()
    try:
        _append_in_threads(4, 50)
    finally:
        stop.set()
        mirror.join()
    assert len(mirrored) > 1 and 0 < max(mirrored[:-1]) < 200  # ran during the appends
    assert len(ledger.entries()) == 200
    assert len(ledger.mirror(target)) == 200
    assert ledger.parse(target.get_bytes(ledger.NAME).decode()) == ledger.entries()


class FirstPutWaits(FolderTarget):
    """A target whose first upload is slow: it waits (at most a few seconds) for `go`."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.go, self.uploads = threading.Event(), 0

    def put_bytes(self, name: str, data: bytes, *, lock_until: Any) -> None:
        self.uploads += 1
        if self.uploads == 1:
            self.go.wait(timeout=3)
        super().put_bytes(name, data, lock_until=lock_until)


def test_a_slow_mirror_never_overwrites_a_newer_copy_on_the_target(
    own_ledger: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "target"
    slow = FirstPutWaits(folder)
    first = ledger.append("person", uuid.uuid4(), uuid.uuid4())
    mirror = threading.Thread(target=ledger.mirror, args=(slow,))
    mirror.start()
    while slow.uploads == 0 and mirror.is_alive():
        threading.Event().wait(0.01)  # the slow mirror has merged and is uploading [first]
    second = ledger.append("person", uuid.uuid4(), uuid.uuid4())
    ledger.mirror(FolderTarget(folder))  # a second mirror (an erasure's job) meanwhile
    slow.go.set()
    mirror.join()

    copy = ledger.parse(FolderTarget(folder).get_bytes(ledger.NAME).decode())
    assert set(ledger.entries()) == {first, second}
    assert set(copy) == {first, second}


# -- mirror ------------------------------------------------------------------------------------


def test_mirror_unions_the_local_ledger_and_the_targets_copy_and_writes_both(
    own_ledger: Path, tmp_path: Path
) -> None:
    target = FolderTarget(tmp_path / "target")
    person, org = str(uuid.uuid4()), str(uuid.uuid4())
    local_only = ledger.append("org", org, org)
    theirs_earlier = entry(id=person, org=org, at="2020-01-01T00:00:00+00:00")
    theirs_only = entry("org", at="2021-01-01T00:00:00+00:00")
    local_later = ledger.append("person", person, org)
    target.put_bytes(
        ledger.NAME, (theirs_earlier.line() + theirs_only.line()).encode(), lock_until=None
    )

    merged = ledger.mirror(target)

    assert merged == [theirs_earlier, theirs_only, local_only]
    assert local_later not in merged  # the same person, recorded earlier on the target
    text = "".join(e.line() for e in merged)
    assert own_ledger.read_text() == text
    assert target.get_bytes(ledger.NAME) == text.encode()
    assert ledger.mirror(target) == merged  # a second run changes nothing


def test_mirror_writes_the_targets_first_copy(own_ledger: Path, tmp_path: Path) -> None:
    target = FolderTarget(tmp_path / "target")
    written = ledger.append("person", uuid.uuid4(), uuid.uuid4())
    assert target.get_bytes(ledger.NAME) is None
    assert ledger.mirror(target) == [written]
    assert target.get_bytes(ledger.NAME) == written.line().encode()


def test_mirror_refuses_a_damaged_copy_and_leaves_the_local_ledger_alone(
    own_ledger: Path, tmp_path: Path
) -> None:
    target = FolderTarget(tmp_path / "target")
    written = ledger.append("person", uuid.uuid4(), uuid.uuid4())
    before = own_ledger.read_bytes()
    target.put_bytes(ledger.NAME, b"garbage\n" + written.line().encode(), lock_until=None)
    with pytest.raises(LedgerError):
        ledger.mirror(target)
    assert own_ledger.read_bytes() == before


def test_mirror_fills_an_empty_local_ledger_from_the_target(
    own_ledger: Path, tmp_path: Path
) -> None:
    # A new machine restoring a backup: its ledger is empty, the target's copy is not.
    target = FolderTarget(tmp_path / "target")
    theirs = entry()
    target.put_bytes(ledger.NAME, theirs.line().encode(), lock_until=None)
    assert ledger.mirror(target) == [theirs]
    assert ledger.entries() == [theirs]


# -- reapply after a restore -------------------------------------------------------------------


def snapshot_rows(*querysets: Any) -> list[tuple[type, dict[str, Any]]]:
    """Rows as a backup holds them, to put back as a restore would."""
    saved = []
    for queryset in querysets:
        for row in queryset:
            values = {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}
            saved.append((type(row), values))
    return saved


def restore(saved: list[tuple[type, dict[str, Any]]]) -> None:
    for model, values in saved:
        model.objects.bulk_create([model(**values)])


@pytest.fixture
def restored_world(
    org_a: Organization, org_b: Organization, admin_a: User, admin_b: User
) -> dict[str, Any]:
    """A person erased from org A and org B deleted, then both put back from a "backup" taken
    before: rows with the same ids as the ledger's entries."""
    person = User.objects.create_user("restored@a.example", PASSWORD, org=org_a, role=Role.VIEWER)
    EmailAddress.objects.create(user=person, email=person.email, primary=True, verified=True)
    Dashboard.objects.create(org=org_b, title="Board of B")
    backup = snapshot_rows(
        Organization.objects.filter(pk=org_b.pk),
        User.objects.filter(pk__in=[person.pk, admin_b.pk]),
        EmailAddress.objects.filter(user=person),
        Dashboard.objects.filter(org=org_b),
    )
    erasure.erase_person(person, acting=admin_a, ip=None)
    erasure.delete_org(org_b, acting=admin_b, ip=None)
    assert not User.objects.filter(pk__in=[person.pk, admin_b.pk]).exists()
    restore(backup)
    assert User.objects.filter(pk=person.pk).exists()
    assert Organization.objects.filter(pk=org_b.pk).exists()
    return {"person": person, "org_b": org_b, "admin_b": admin_b}


def test_reapply_erases_and_deletes_again_what_a_restore_brought_back(
    restored_world: dict[str, Any], org_a: Organization, admin_a: User
) -> None:
    person, org_b = restored_world["person"], restored_world["org_b"]

    assert erasure.reapply(ledger.entries()) == (1, 1)

    assert not User.objects.filter(pk__in=[person.pk, restored_world["admin_b"].pk]).exists()
    assert not EmailAddress.objects.filter(email=person.email).exists()
    assert not Organization.objects.filter(pk=org_b.pk).exists()
    assert not Dashboard.objects.filter(org_id=org_b.pk).exists()
    assert User.objects.filter(pk=admin_a.pk).exists()  # nobody else
    entry = AuditEntry.objects.get(action="erasure.reapply")
    assert entry.org_id is None and entry.actor_kind == "system"
    assert entry.detail == {"people": 1, "orgs": 1}
    assert chain.verify()[1] == []


def test_a_second_reapply_is_a_no_op(restored_world: dict[str, Any]) -> None:
    erasure.reapply(ledger.entries())
    audit_entries = AuditEntry.objects.count()
    assert erasure.reapply(ledger.entries()) == (0, 0)
    assert AuditEntry.objects.count() == audit_entries


def test_reapply_on_a_database_that_matches_the_ledger_does_nothing(
    org_a: Organization, admin_a: User, viewer_a: User
) -> None:
    erasure.erase_person(viewer_a, acting=admin_a, ip=None)
    audit_entries = AuditEntry.objects.count()
    assert erasure.reapply(ledger.entries()) == (0, 0)
    assert AuditEntry.objects.count() == audit_entries
    assert User.objects.filter(pk=admin_a.pk).exists()


def test_reapply_of_ledger_entries_alone_without_a_restore(
    org_a: Organization, admin_a: User, editor_a: User, own_ledger: Path
) -> None:
    # A crash between the ledger entry and the commit: the entry is there, the person too.
    ledger.append("person", editor_a.pk, org_a.pk)
    assert erasure.reapply(ledger.entries()) == (1, 0)
    assert not User.objects.filter(pk=editor_a.pk).exists()
    assert User.objects.filter(pk=admin_a.pk).exists()


def test_no_erasure_goes_on_without_the_ledger(
    settings: Any, tmp_path: Path, org_a: Organization, admin_a: User, viewer_a: User
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.ERASURE_LEDGER = blocker / "erasure-ledger.jsonl"
    with pytest.raises(LedgerError):
        erasure.erase_person(viewer_a, acting=admin_a, ip=None)
    with pytest.raises(LedgerError):
        erasure.delete_org(org_a, acting=admin_a, ip=None)
    assert User.objects.filter(pk=viewer_a.pk).exists()
    assert Organization.objects.filter(pk=org_a.pk).exists()
    assert not AuditEntry.objects.filter(action__in=["person.erase", "org.delete"]).exists()


# -- `dashvault serve` re-applies the ledger before serving anyone -----------------------------


def serve_until_static(monkeypatch: Any) -> str:
    """Run `serve` up to the step after the ledger's (collecting static files, before the
    jobs and the server start), and stop there."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from dashvault.server.management.commands import serve

    def stop_here(name: str, *args: Any, **kwargs: Any) -> None:
        if name == "collectstatic":
            raise CommandError("stopped by the test")

    monkeypatch.setattr(serve, "call_command", stop_here)
    with pytest.raises(CommandError) as stopped:
        call_command("serve", "--no-migrate")
    return str(stopped.value)


def test_serve_reapplies_the_ledger_before_anything_else_starts(
    monkeypatch: Any, org_a: Organization, admin_a: User, viewer_a: User
) -> None:
    ledger.append("person", viewer_a.pk, org_a.pk)  # as if restored after the erasure
    assert serve_until_static(monkeypatch) == "stopped by the test"
    assert not User.objects.filter(pk=viewer_a.pk).exists()
    assert User.objects.filter(pk=admin_a.pk).exists()
    assert AuditEntry.objects.filter(action="erasure.reapply").count() == 1


def test_serve_refuses_to_start_on_a_damaged_ledger(
    monkeypatch: Any, own_ledger: Path, org_a: Organization, viewer_a: User
) -> None:
    own_ledger.parent.mkdir(parents=True)
    own_ledger.write_text("damaged\n" + entry(id=str(viewer_a.pk), org=str(org_a.pk)).line())
    message = serve_until_static(monkeypatch)
    assert message.startswith("Erasure ledger: erasure ledger line 1 is damaged")
    assert User.objects.filter(pk=viewer_a.pk).exists()
