"""An editor builds a dashboard in Chromium; a viewer watching it sees pushed data arrive live.

Runs against a real `dashvault serve` (HTTPS and WSS on loopback) with the demo org Acme. Data
comes in the way customers send it: a push-scoped token from `dashvault token create`, then
POST /api/v1/datapoints. Every page is watched for CSP violations and broken loads.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from playwright.sync_api import APIRequestContext, Page, expect

from tests.browser.conftest import Credentials, OpenPage, screenshot
from tests.browser.test_signin_browser import sign_in
from tests.live import Server, dashvault

pytestmark = pytest.mark.browser

METRIC = "signups_live"


def push(api: APIRequestContext, server: Server, token: str, value: float) -> None:
    response = api.post(
        f"{server.url}/api/v1/datapoints",
        headers={"Authorization": f"Bearer {token}"},
        data={
            "points": [
                {"metric": METRIC, "ts": dt.datetime.now(dt.UTC).isoformat(), "value": value}
            ]
        },
    )
    assert response.status == 201, response.text()


def has_class(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def drawn(page: Page) -> None:
    """Wait until dashboard.js has drawn the board (so leaving the page aborts no load)."""
    expect(page.locator("#board")).to_have_attribute("data-rendered", "1")


def add_widget(page: Page, kind: str, fields: dict[str, str], shot: str = "") -> None:
    drawn(page)
    page.get_by_role("link", name="Add widget", exact=True).click()
    expect(page.get_by_role("heading", name="Add a widget")).to_be_visible()
    page.get_by_label("Kind").select_option(kind)
    for label, value in fields.items():
        field = page.get_by_label(label, exact=True)
        if field.evaluate("node => node.tagName") == "SELECT":
            field.select_option(label=value)
        else:
            field.fill(value)
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name="Add widget").click()
    expect(page.get_by_text("Widget added.")).to_be_visible()
    drawn(page)


def test_an_editor_builds_a_dashboard_and_a_viewer_sees_a_push_arrive_live(
    open_page: OpenPage,
    demo_server: tuple[Server, dict[str, Credentials]],
    tmp_path: Path,
) -> None:
    server, people = demo_server
    token = dashvault(
        tmp_path / "data", "token", "create", "--org", "Acme", "--scope", "push"
    ).stdout.strip()
    api_page, _ = open_page()  # its own context: no session, only the bearer token
    api = api_page.context.request
    created = api.post(
        f"{server.url}/api/v1/metrics",
        headers={"Authorization": f"Bearer {token}"},
        data={"key": METRIC, "name": "Live signups", "aggregation": "sum"},
    )
    assert created.status == 201, created.text()
    push(api, server, token, 5)

    # The editor builds it: a new dashboard, a KPI for today and a line chart of the week.
    editor, editor_problems = open_page()
    sign_in(editor, server, people["editor"])
    editor.wait_for_url(f"{server.url}/dashboards/")
    editor.get_by_role("link", name="New dashboard").click()
    editor.get_by_label("Title").fill("Live signups")
    editor.get_by_role("button", name="Create").click()
    expect(editor.get_by_role("heading", name="Live signups")).to_be_visible()
    dashboard_url = editor.url
    drawn(editor)
    editor.get_by_role("link", name="Edit dashboard").click()
    add_widget(
        editor,
        "kpi",
        {
            "Title": "Signups today",
            "Metric": "Live signups (signups_live)",
            "Period": "Today",
            "Target": "40",
        },
    )
    add_widget(
        editor,
        "line",
        {
            "Title": "Signups this week",
            "Metric": "Live signups (signups_live)",
            "Period": "Last 7 days",
            "Group by": "Day",
            "Width (of 12 columns)": "8",
        },
        shot="dashboard-widget-form",
    )
    tiles = editor.locator("#grid .tile")
    expect(tiles).to_have_count(2)
    # Arrange: the KPI one column wider with its button (no reload: the page answers JSON).
    kpi_tile = tiles.filter(has_text="Signups today")
    kpi_tile.get_by_role("button", name="Wider").click()
    expect(kpi_tile).to_have_class(has_class("gw-5"))
    drawn(editor)
    screenshot(editor, "dashboard-edit")
    editor.get_by_role("link", name="View dashboard").click()
    expect(editor.locator(".kpi-value")).to_have_text("5")
    editor_problems.assert_clean()

    # The viewer has it open; the page is live over the websocket.
    viewer, viewer_problems = open_page()
    sign_in(viewer, server, people["viewer"])
    viewer.wait_for_url(f"{server.url}/dashboards/")
    viewer.goto(dashboard_url)
    kpi = viewer.locator(".tile", has_text="Signups today")
    expect(kpi.locator(".kpi-value")).to_have_text("5")
    expect(kpi.locator(".kpi-target-text")).to_contain_text("12.5% of target 40")
    expect(viewer.locator("#board")).to_have_attribute("data-live-state", "live")
    expect(viewer.locator("#live-badge")).to_have_text("Live")
    expect(viewer.locator(".tile", has_text="Signups this week").locator("canvas")).to_have_count(1)
    viewer.evaluate("window.__sameDocument = true")

    push(api, server, token, 7)
    expect(kpi.locator(".kpi-value")).to_have_text("12", timeout=10_000)
    expect(kpi.locator(".kpi-target-text")).to_contain_text("30% of target 40")
    assert viewer.evaluate("window.__sameDocument === true"), "the page reloaded"
    expect(viewer.locator("#updated")).to_contain_text("Updated")
    expect(viewer.get_by_role("link", name="Edit dashboard")).to_have_count(0)
    screenshot(viewer, "dashboard")
    viewer_problems.assert_clean()
    editor_problems.assert_clean()
