"""An org admin reads, filters and exports the org's audit log, in Chromium.

Runs against a real `dashvault serve` with the demo org Acme. The admin makes audited changes
through the pages (two groups, one renamed, and a kiosk link), opens the audit log from the
navigation, narrows it by action, by client address and by a date range, exports the filtered
entries as CSV (a download) and finds the export itself recorded at the top of the log. Every
page is watched for CSP violations and broken loads.
"""

from __future__ import annotations

import csv
import datetime as dt
import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Credentials, OpenPage, screenshot
from tests.browser.test_signin_browser import sign_in
from tests.live import Server

pytestmark = pytest.mark.browser

WAIT_MS = 30_000  # the longest any single wait in this test may take
CSV_HEADER = ["id", "seq", "at", "action", "actor_kind", "actor_id", "target_type", "target_id"]
CSV_HEADER += ["ip", "detail", "mac"]
LOOPBACK = "127.0.0.1"  # `dashvault serve` listens on loopback; Chromium connects from there
MAC = re.compile(r"[0-9a-f]{64}")


def save_group(page: Page, name: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Group saved.")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=WAIT_MS)


def create_group(page: Page, name: str) -> None:
    page.get_by_role("link", name="Groups", exact=True).click()
    expect(page.get_by_role("heading", name="Groups", exact=True)).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("link", name="New group").click()
    expect(page.get_by_role("heading", name="New group")).to_be_visible(timeout=WAIT_MS)
    save_group(page, name)


def entry_rows(page: Page) -> Locator:
    return page.locator("table.audit-log tr[data-entry]")


def shown_actions(page: Page) -> list[str]:
    return entry_rows(page).locator("td:nth-child(3)").all_inner_texts()


def shown_ids(page: Page) -> list[str]:
    return entry_rows(page).evaluate_all("rows => rows.map((row) => row.dataset.entry)")


def apply_filter(page: Page, **fields: str) -> None:
    """Fill the filter form (every field not given is cleared) and press Filter."""
    form = page.locator("form#audit-filter")
    for name in ("action", "actor", "since", "until", "ip"):
        form.locator(f"[name={name}]").fill(fields.get(name, ""))
    with page.expect_navigation(timeout=WAIT_MS):
        form.get_by_role("button", name="Filter", exact=True).click()
    expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible(timeout=WAIT_MS)
    query = page.url.split("?", 1)[1]
    for name, value in fields.items():
        assert f"{name}={value}" in query, page.url


def test_an_admin_filters_the_audit_log_and_exports_exactly_the_filtered_entries_as_csv(
    open_page: OpenPage, demo_server: tuple[Server, dict[str, Credentials]]
) -> None:
    server, people = demo_server
    page, problems = open_page()
    sign_in(page, server, people["admin"])
    page.wait_for_url(f"{server.url}/dashboards/", timeout=WAIT_MS)

    # Audited changes through the pages: two groups (one renamed) and a kiosk link.
    create_group(page, "Night shift")
    save_group(page, "Night shift EMEA")
    create_group(page, "Weekend desk")
    page.get_by_role("link", name="Kiosk links", exact=True).click()
    page.get_by_role("link", name="New kiosk link").click()
    expect(page.get_by_role("heading", name="New kiosk link")).to_be_visible(timeout=WAIT_MS)
    page.get_by_label("Name").fill("Reception TV")
    page.get_by_label("Pipeline", exact=True).check()
    page.get_by_role("button", name="Create kiosk link").click()
    expect(page.get_by_role("heading", name="Kiosk link created: Reception TV")).to_be_visible(
        timeout=WAIT_MS
    )

    # The whole log, newest first, holds every change just made.
    page.get_by_role("link", name="Audit log", exact=True).click()
    page.wait_for_url(f"{server.url}/org/audit/", timeout=WAIT_MS)
    expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()
    everything = shown_actions(page)
    made = ["kiosk.create", "group.create", "group.update", "group.create"]
    assert everything[: len(made)] == made, everything
    assert "signin" in everything, everything

    # By action: a prefix, so "group" keeps group.create and group.update and nothing else.
    apply_filter(page, action="group")
    expect(page.locator("form#audit-filter [name=action]")).to_have_value("group")
    groups = shown_actions(page)
    assert groups == ["group.create", "group.update", "group.create"], groups
    expect(page.locator("p.pager")).to_contain_text("(3 entries)")

    # By address: what Chromium did came from loopback; the demo's own setup has no address.
    apply_filter(page, ip=LOOPBACK)
    by_address = shown_actions(page)
    assert by_address[: len(made)] == made and "signin" in by_address, by_address
    assert len(by_address) < len(everything), (by_address, everything)
    addresses = entry_rows(page).locator("td:nth-child(6)").all_inner_texts()
    assert set(addresses) == {LOOPBACK}, addresses

    # Both at once: the three group changes, which the export below must hold exactly.
    apply_filter(page, action="group", ip=LOOPBACK)
    assert shown_actions(page) == groups
    filtered = shown_ids(page)
    screenshot(page, "audit-log-filtered")

    # By date (UTC days): the days the entries were made keep them all; a range that ends the
    # day before the earliest of them (today, unless the test ran over midnight) keeps none.
    days = {
        dt.date.fromisoformat(time.split()[0])
        for time in entry_rows(page).locator("td:nth-child(2)").all_inner_texts()
    }
    since, until = min(days), max(days)
    apply_filter(
        page, action="group", ip=LOOPBACK, since=since.isoformat(), until=until.isoformat()
    )
    assert shown_ids(page) == filtered
    before = since - dt.timedelta(days=1)
    apply_filter(
        page,
        action="group",
        ip=LOOPBACK,
        since=(before - dt.timedelta(days=30)).isoformat(),
        until=before.isoformat(),
    )
    expect(entry_rows(page)).to_have_count(0)
    expect(page.locator("table.audit-log td.empty")).to_have_text("No entries match.")
    expect(page.locator("p.pager")).to_contain_text("(0 entries)")

    # Back to action and address; the export holds exactly the entries the table shows.
    apply_filter(page, action="group", ip=LOOPBACK)
    assert shown_ids(page) == filtered
    form = page.locator("form#audit-filter")
    with page.expect_download(timeout=WAIT_MS) as download_info:
        form.get_by_role("button", name="Export CSV").click()
    download = download_info.value
    assert download.failure() is None
    assert re.fullmatch(r"audit-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    with open(download.path(), newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert header == CSV_HEADER
    assert [row["id"] for row in rows] == filtered
    assert [row["action"] for row in rows] == groups
    assert all(row["action"].startswith("group") for row in rows), rows
    assert {row["ip"] for row in rows} == {LOOPBACK}
    assert all(MAC.fullmatch(row["mac"]) for row in rows), [row["mac"] for row in rows]
    assert len({row["mac"] for row in rows}) == len(rows)

    # The export is itself in the log, newest of all.
    page.get_by_role("link", name="Audit log", exact=True).click()
    page.wait_for_url(f"{server.url}/org/audit/", timeout=WAIT_MS)
    top = entry_rows(page).first
    expect(top.locator("td:nth-child(3)")).to_have_text("audit.export")
    expect(top).to_contain_text("format=csv")
    expect(top).to_contain_text(f"entries={len(rows)}")
    expect(top.locator("td:nth-child(6)")).to_have_text(LOOPBACK)
    problems.assert_clean()
