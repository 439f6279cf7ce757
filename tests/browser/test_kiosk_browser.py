"""An admin puts two dashboards on an office TV through a kiosk link, in Chromium.

Runs against a real `dashvault serve` (HTTPS and WSS on loopback) with the demo org Acme. The
admin creates the link through the pages; a second browser context with no cookies plays the
TV: it rotates between the link's dashboards, shows pushed data arriving live, fits a 1080p and
a 4K screen without scrolling, and says plainly that the link no longer works once the admin
revokes it. Every page is watched for CSP violations and broken loads.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import ssl
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, ViewportSize, expect

from tests.browser.conftest import Credentials, OpenPage, screenshot
from tests.browser.test_signin_browser import sign_in
from tests.live import Server, dashvault

pytestmark = pytest.mark.browser

SHOWN = ["Pipeline", "Sales overview"]  # the link's dashboards, in the order the TV shows them
LEFT_OUT = "Customer support"
ROTATION_SECONDS = 10
KPI = "Deals won this month"  # on Sales overview; the sum of `deals_won` this month
ENDED = "This kiosk link no longer works"
FULL_HD = ViewportSize(width=1920, height=1080)
UHD = ViewportSize(width=3840, height=2160)


def push_deals(server: Server, data_dir: Path, token: str, value: float) -> None:
    """POST /api/v1/datapoints as a customer's script would, verifying the server's TLS
    certificate (the self-signed one `dashvault serve` made in the data directory)."""
    point = {"metric": "deals_won", "ts": dt.datetime.now(dt.UTC).isoformat(), "value": value}
    request = urllib.request.Request(
        f"{server.url}/api/v1/datapoints",
        data=json.dumps({"points": [point]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    tls = ssl.create_default_context(cafile=str(data_dir / "tls" / "cert.pem"))
    with urllib.request.urlopen(request, context=tls, timeout=15) as response:
        assert response.status == 201, response.read()


def assert_kiosk_headers(response: Response | None, status: int) -> None:
    assert response is not None and response.status == status
    headers = response.all_headers()  # `.headers` leaves out Set-Cookie
    assert "set-cookie" not in headers, headers["set-cookie"]
    assert headers.get("referrer-policy") == "no-referrer"
    assert "noindex" in headers.get("x-robots-tag", "")


def assert_no_scrollbars(page: Page) -> None:
    size = page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            scrollHeight: document.documentElement.scrollHeight,
            innerWidth: window.innerWidth,
            innerHeight: window.innerHeight,
        })"""
    )
    assert size["scrollHeight"] <= size["innerHeight"] + 1, size
    assert size["scrollWidth"] <= size["innerWidth"] + 1, size


def kpi_font_px(page: Page, board_id: str, kpi_title: str) -> float:
    """The KPI number's font size, read once the board shows (the TV rotates on its own).

    One script both checks that the board shows and reads the size, so a rotation cannot slip
    in between."""
    handle = page.wait_for_function(
        """([boardId, kpiTitle]) => {
            const board = document.querySelector(`.kiosk-board[data-dashboard="${boardId}"]`);
            if (!board || board.hidden || document.body.dataset.currentDashboard !== boardId) {
                return null;
            }
            const tile = [...board.querySelectorAll(".tile")].find(
                (node) => node.querySelector(".tile-title").textContent.trim() === kpiTitle);
            const value = tile && tile.querySelector(".kpi-value");
            return value ? parseFloat(getComputedStyle(value).fontSize) : null;
        }""",
        arg=[board_id, kpi_title],
        timeout=3 * ROTATION_SECONDS * 1000,
    )
    return float(handle.json_value())


def shot(page: Page, name: str) -> None:
    """A screenshot once the shown board has faded in (kiosk.css animates it for 0.6 s)."""
    page.wait_for_function(
        """() => document.getAnimations().every(
            (animation) => animation.animationName !== "kiosk-in"
                || animation.playState === "finished")""",
        timeout=5_000,
    )
    screenshot(page, name)


def assert_never_shows_left_out(tv: Page) -> None:
    assert LEFT_OUT not in tv.content()
    assert LEFT_OUT not in tv.title()
    titles = tv.locator("section.kiosk-board").evaluate_all(
        "nodes => nodes.map((node) => node.dataset.title)"
    )
    assert titles == SHOWN


def test_an_admin_puts_two_dashboards_on_a_tv_that_rotates_updates_live_and_ends_on_revoke(
    open_page: OpenPage,
    demo_server: tuple[Server, dict[str, Credentials]],
    tmp_path: Path,
) -> None:
    server, people = demo_server
    data_dir = tmp_path / "data"

    # The admin makes the link: Pipeline first, Sales overview second, Customer support not.
    admin, admin_problems = open_page()
    sign_in(admin, server, people["admin"])
    admin.wait_for_url(f"{server.url}/dashboards/")
    admin.get_by_role("link", name="Kiosk links", exact=True).click()
    expect(admin.get_by_role("heading", name="Kiosk links")).to_be_visible()
    admin.get_by_role("link", name="New kiosk link").click()
    expect(admin.get_by_role("heading", name="New kiosk link")).to_be_visible()
    admin.get_by_label("Name").fill("Lobby TV")
    for position, title in enumerate(SHOWN, start=1):
        admin.get_by_label(title, exact=True).check()
        row = admin.locator("table.kiosk-dashboards tbody tr", has_text=title)
        row.locator("input[type=number]").fill(str(position))
    admin.get_by_label(LEFT_OUT, exact=True).uncheck()
    admin.get_by_label("Seconds per dashboard").fill(str(ROTATION_SECONDS))
    screenshot(admin, "kiosk-new-form")
    admin.get_by_role("button", name="Create kiosk link").click()

    expect(admin.get_by_role("heading", name="Kiosk link created: Lobby TV")).to_be_visible()
    expect(admin.locator("#kiosk-qr svg")).to_be_visible()
    kiosk_url = admin.locator("input#kiosk-url").input_value()
    assert re.fullmatch(rf"{re.escape(server.url)}/kiosk/[A-Za-z0-9_-]{{20,}}/?", kiosk_url)
    token = kiosk_url.rstrip("/").rsplit("/", 1)[1]
    screenshot(admin, "kiosk-created")
    admin.get_by_role("link", name="Back to kiosk links").click()
    link_row = admin.locator("table.kiosk-links tbody tr", has_text="Lobby TV")
    expect(link_row).to_contain_text("Pipeline, Sales overview")
    expect(link_row).to_contain_text(f"{ROTATION_SECONDS} s")
    shown = link_row.locator("code").first.inner_text()
    match = re.fullmatch(r"/kiosk/(\S+)…", shown)
    assert match and token.startswith(match[1]) and len(match[1]) < len(token) // 2, shown
    assert token not in admin.content()
    admin_problems.assert_clean()

    # The TV: a browser of its own (no admin cookies), full HD.
    tv, tv_problems = open_page()
    tv.set_viewport_size(FULL_HD)
    assert_kiosk_headers(tv.goto(kiosk_url), 200)
    body = tv.locator("body")
    expect(body).to_have_attribute("data-kiosk-state", "live", timeout=15_000)
    boards = {
        title: tv.locator(f'section.kiosk-board[data-title="{title}"]').get_attribute(
            "data-dashboard"
        )
        or ""
        for title in SHOWN
    }
    expect(body).to_have_attribute("data-current-dashboard", boards["Pipeline"])
    expect(tv.locator("#kiosk-title")).to_have_text("Pipeline")
    expect(tv.locator(f'section[data-dashboard="{boards["Pipeline"]}"]')).to_be_visible()
    expect(tv.locator(f'section[data-dashboard="{boards["Sales overview"]}"]')).to_be_hidden()
    assert_never_shows_left_out(tv)
    assert tv.context.cookies() == []
    assert_no_scrollbars(tv)
    shot(tv, "kiosk-tv-1080p")

    expect(body).to_have_attribute(
        "data-current-dashboard", boards["Sales overview"], timeout=3 * ROTATION_SECONDS * 1000
    )
    expect(tv.locator("#kiosk-title")).to_have_text("Sales overview")
    expect(tv.locator(f'section[data-dashboard="{boards["Pipeline"]}"]')).to_be_hidden()
    assert_never_shows_left_out(tv)
    assert_no_scrollbars(tv)
    shot(tv, "kiosk-tv-1080p-sales")

    # A live update: deals pushed through the API reach the TV without a reload.
    kpi = tv.locator(f'section[data-dashboard="{boards["Sales overview"]}"] .tile', has_text=KPI)
    kpi_value = kpi.locator(".kpi-value")
    expect(kpi_value).to_have_text(re.compile(r"^\d[\d,]*$"))
    before = int((kpi_value.text_content() or "").replace(",", ""))
    updates = int(body.get_attribute("data-updated") or "0")
    assert updates >= len(SHOWN)  # each board's socket sent its snapshot on connecting
    tv.evaluate("window.__sameDocument = true")
    api_token = dashvault(
        data_dir, "token", "create", "--org", "Acme", "--scope", "push"
    ).stdout.strip()
    push_deals(server, data_dir, api_token, 1000)
    tv.wait_for_function(
        "count => Number(document.body.dataset.updated) > count", arg=updates, timeout=15_000
    )
    # to_have_text reads textContent: it holds whether or not the board shows right now.
    expect(kpi_value).to_have_text(f"{before + 1000:,}", timeout=10_000)
    assert tv.evaluate("window.__sameDocument === true"), "the TV reloaded"
    expect(body).to_have_attribute("data-kiosk-state", "live")

    # 4K: the same layout at twice the size, still without scrolling.
    font_1080p = kpi_font_px(tv, boards["Sales overview"], KPI)
    tv.set_viewport_size(UHD)
    font_4k = kpi_font_px(tv, boards["Sales overview"], KPI)
    assert font_4k > font_1080p * 1.5, (font_1080p, font_4k)
    assert_no_scrollbars(tv)
    shot(tv, "kiosk-tv-4k")
    expect(body).to_have_attribute(
        "data-current-dashboard", boards["Pipeline"], timeout=3 * ROTATION_SECONDS * 1000
    )
    assert_no_scrollbars(tv)
    assert_never_shows_left_out(tv)
    shot(tv, "kiosk-tv-4k-pipeline")

    # The admin revokes the link: the TV says so within seconds, and keeps saying so.
    link_row.get_by_role("button", name="Revoke").click()
    expect(admin.get_by_text("Kiosk link revoked.")).to_be_visible()
    expect(link_row.get_by_role("button", name="Revoke")).to_have_count(0)
    ended = tv.locator("#kiosk-ended")
    expect(ended).to_be_visible(timeout=10_000)
    expect(ended.locator(".kiosk-message-title")).to_have_text(ENDED)
    expect(body).to_have_attribute("data-kiosk-state", "ended")
    shot(tv, "kiosk-tv-revoked")

    assert_kiosk_headers(tv.reload(), 404)
    expect(tv.locator("h1.kiosk-message-title")).to_have_text(ENDED)
    expect(tv.locator(".kiosk-board")).to_have_count(0)
    page_text = tv.content()
    assert LEFT_OUT not in page_text
    assert "Pipeline" not in page_text and "Sales overview" not in page_text
    shot(tv, "kiosk-tv-revoked-reload")
    assert tv.context.cookies() == []

    tv_problems.assert_clean()
    admin_problems.assert_clean()
