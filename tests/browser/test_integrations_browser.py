"""An org admin connects a JSON REST API to a metric in Chromium and sees its numbers on a
dashboard.

Runs against a real `dashvault serve` with the demo org Acme, allowed to reach loopback
(DASHVAULT_OUTBOUND_ALLOWED_NETWORKS) and running jobs at once (DASHVAULT_JOBS_IMMEDIATE, so
"Sync now" has synced when its page comes back). The API is a real HTTPS server on loopback
whose certificate comes from a throwaway CA, pasted into the form's CA field. The admin tests
the connection (the mapped rows), saves, syncs, builds a dashboard with a KPI on the metric
and sees the synced total. Every page is watched for CSP violations and broken loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Credentials, OpenPage, read_credentials, screenshot
from tests.browser.test_dashboard_browser import add_widget, drawn
from tests.browser.test_signin_browser import sign_in
from tests.live import Server, dashvault, running_server
from tests.test_integrations_pages import (
    DealService,
    deals_now,
    start_deal_service,
    stop_deal_service,
)

pytestmark = pytest.mark.browser

SECRET = "tok-browser-S3cret-91c4"
METRIC_SCRIPT = """
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization
Metric.objects.create(org=Organization.objects.get(name="Acme"), key="crm_revenue",
                      name="CRM revenue")
"""
SERVER_ENV = {
    "DASHVAULT_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
    "DASHVAULT_JOBS_IMMEDIATE": "true",
}


def field(page: Page, label: str) -> Locator:
    """The form field labelled exactly `label` (Django's labels end with a colon)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}:?$"))


@pytest.fixture
def deal_service() -> Iterator[DealService]:
    service, thread = start_deal_service(deals_now(3))  # 100 + 200 + 300, closed just now
    yield service
    stop_deal_service(service, thread)


@pytest.fixture
def integrations_server(tmp_path: Path) -> Iterator[tuple[Server, dict[str, Credentials]]]:
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "demo")
    dashvault(data, "shell", "-c", METRIC_SCRIPT)
    with running_server(data, env=SERVER_ENV) as server:
        yield server, read_credentials(data / "demo-sign-ins.txt")


def test_an_admin_connects_a_rest_api_and_sees_its_numbers_on_a_dashboard(
    open_page: OpenPage,
    integrations_server: tuple[Server, dict[str, Credentials]],
    deal_service: DealService,
) -> None:
    server, people = integrations_server
    page, problems = open_page()
    sign_in(page, server, people["admin"])
    page.wait_for_url(f"{server.url}/dashboards/")

    page.get_by_role("link", name="Integrations", exact=True).click()
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()
    page.get_by_role("link", name="Add integration").click()
    expect(page.get_by_role("heading", name="New integration")).to_be_visible()
    field(page, "Name").fill("Deals API")
    field(page, "Metric").select_option(label="CRM revenue (crm_revenue)")
    field(page, "URL").fill(deal_service.url)
    field(page, "Records path").fill("data")
    field(page, "Authentication").select_option("bearer")
    field(page, "Time field").fill("closed")
    field(page, "Value field").fill("amount")
    field(page, "Dimension field (optional)").fill("rep")
    field(page, "Id field").fill("id")
    field(page, "CA certificate (PEM, optional)").fill(deal_service.ca_pem)
    page.get_by_label("Secret (API key").fill(SECRET)

    # Test connection: the first records as they would be stored; nothing saved.
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".preview-ok")).to_contain_text("Connected: 3 records")
    rows = page.locator("table.preview-rows tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("100.0")
    expect(rows.nth(0)).to_contain_text("d1")
    assert deal_service.authorizations == [f"Bearer {SECRET}"]
    assert SECRET not in page.content()
    expect(page.get_by_label("Secret (API key")).to_have_value("")
    screenshot(page, "integration-test-connection")

    # Save (the secret again: it never comes back to the browser), then sync now.
    page.get_by_label("Secret (API key").fill(SECRET)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Integration added.")).to_be_visible()
    expect(page.get_by_role("heading", name="Deals API")).to_be_visible()
    expect(page.locator(".credential-set")).to_have_text("A credential is set.")
    assert SECRET not in page.content()
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_text("Sync requested.")).to_be_visible()
    first_run = page.locator("table.sync-runs tbody tr").first
    expect(first_run).to_contain_text("OK")
    expect(first_run.locator("td:nth-child(4)")).to_have_text("3")
    screenshot(page, "integration-synced")

    page.get_by_role("link", name="Integrations", exact=True).click()
    listed = page.locator("table.integrations tbody tr", has_text="Deals API")
    expect(listed).to_contain_text("3 records")
    expect(listed).to_contain_text("OK")

    # A dashboard with a KPI on the metric shows the synced total.
    page.get_by_role("link", name="Dashboards", exact=True).click()
    page.get_by_role("link", name="New dashboard").click()
    page.get_by_label("Title").fill("CRM deals")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="CRM deals")).to_be_visible()
    drawn(page)
    page.get_by_role("link", name="Edit dashboard").click()
    add_widget(
        page,
        "kpi",
        {"Title": "Deal revenue today", "Metric": "CRM revenue (crm_revenue)", "Period": "Today"},
    )
    page.get_by_role("link", name="View dashboard").click()
    kpi = page.locator(".tile", has_text="Deal revenue today")
    expect(kpi.locator(".kpi-value")).to_have_text("600")
    drawn(page)
    screenshot(page, "integration-dashboard")
    assert deal_service.authorizations == [f"Bearer {SECRET}"] * 2
    problems.assert_clean()
