"""Platform staff see how the backups stand; the log raises an alert while they are stale."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from dashvault.backups import jobs
from dashvault.backups.status import status
from tests.conftest import make_client

NOW = dt.datetime.now(dt.UTC)


def fake_backup(folder: Path, when: dt.datetime) -> None:
    """A complete backup as snapshot.backups() reads it: the file and its manifest."""
    name = "dashvault-" + when.strftime("%Y%m%dT%H%M%S%fZ")
    file = f"{name}.sqlite3.gz.age"
    (folder / file).write_bytes(b"x" * 2048)
    manifest = {
        "format": 1,
        "name": name,
        "created_at": when.isoformat(),
        "engine": "sqlite",
        "file": file,
        "size": 2048,
        "sha256": "0" * 64,
        "schema": {},
        "version": "0.1.0",
    }
    (folder / f"{name}.json").write_text(json.dumps(manifest))


@pytest.fixture
def folder(settings: Any, tmp_path: Path) -> Path:
    settings.BACKUP_DIR = tmp_path
    settings.BACKUP_RECIPIENT = "age1" + "q" * 58
    settings.BACKUP_EVERY_HOURS = 6
    return tmp_path


def test_a_backup_within_twice_the_interval_is_fresh(folder: Path) -> None:
    fake_backup(folder, NOW - dt.timedelta(hours=11, minutes=50))
    current = status()
    assert (current.configured, current.count, current.stale) == (True, 1, False)


def test_no_backup_within_twice_the_interval_is_stale(folder: Path) -> None:
    fake_backup(folder, NOW - dt.timedelta(hours=12, minutes=10))
    assert status().stale
    for path in list(folder.glob("dashvault-*")):
        path.unlink()
    assert status().stale and status().last is None  # none at all


def test_without_a_key_backups_are_off_not_stale(folder: Path, settings: Any) -> None:
    settings.BACKUP_RECIPIENT = ""
    current = status()
    assert (current.configured, current.stale) == (False, False)


def test_the_hourly_check_logs_an_alert_only_while_stale(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_backup(folder, NOW - dt.timedelta(hours=30))
    with caplog.at_level(logging.ERROR, logger="dashvault.backups.jobs"):
        assert jobs.check_backup_age.call_local() is True
    assert "backups: ALERT no good backup within 12 hours: the last good one is 30 hours old" in (
        caplog.text
    )
    caplog.clear()
    fake_backup(folder, NOW - dt.timedelta(hours=1))
    assert jobs.check_backup_age.call_local() is False
    assert "ALERT" not in caplog.text


def test_the_staff_page_shows_the_last_backup_or_the_alert(folder: Path, staff: Any) -> None:
    client = make_client(staff)
    fake_backup(folder, NOW - dt.timedelta(hours=30))
    page = client.get(reverse("staff_home")).content.decode()
    assert "No good backup for 30 hours" in page
    assert "Last good backup:" in page and "1 kept" in page
    fake_backup(folder, NOW - dt.timedelta(hours=2))
    page = client.get(reverse("staff_home")).content.decode()
    assert "No good backup" not in page and "2 kept" in page


def test_the_staff_page_says_when_backups_are_off(folder: Path, staff: Any, settings: Any) -> None:
    settings.BACKUP_RECIPIENT = ""
    page = make_client(staff).get(reverse("staff_home")).content.decode()
    assert "Backups are off: no DASHVAULT_BACKUP_RECIPIENT is set." in page
