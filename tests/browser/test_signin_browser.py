"""A person signs in through the real pages, in Chromium, against a real `dashvault serve`.

Every page visited is also watched for Content-Security-Policy violations, script errors and
sub-resources that fail to load: the CSP allows nothing inline and nothing from elsewhere.
"""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import Credentials, OpenPage, screenshot
from tests.live import Server

pytestmark = pytest.mark.browser


def sign_in(page: Page, server: Server, who: Credentials) -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.get_by_label("Email").fill(who.email)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Sign In", exact=True).click()


def fresh_code(totp: pyotp.TOTP, *, after: int = -1) -> tuple[int, str]:
    """The current code with at least 5 s left in its window, from a window later than `after`.

    allauth accepts only the current window and never the same code twice, so a test that has
    used one window's code waits for the next (at most about 35 s).
    """
    deadline = time.monotonic() + 70
    while True:
        now = time.time()
        counter = int(now // totp.interval)
        if counter > after and totp.interval - now % totp.interval >= 5:
            return counter, totp.generate_otp(counter)
        assert time.monotonic() < deadline, "no fresh TOTP window came"
        time.sleep(0.25)


def test_viewer_sees_only_their_groups_dashboards_and_404_for_the_rest(
    open_page: OpenPage, demo_server: tuple[Server, dict[str, Credentials]]
) -> None:
    server, people = demo_server

    # Where the dashboard the viewer may not see lives: the admin sees every dashboard.
    admin_page, admin_problems = open_page()
    sign_in(admin_page, server, people["admin"])
    admin_page.wait_for_url(f"{server.url}/dashboards/")
    support = admin_page.locator("#dashboard-list a", has_text="Customer support")
    support_url = server.url + (support.get_attribute("href") or "")
    assert support_url.startswith(f"{server.url}/dashboards/")
    admin_problems.assert_clean()

    page, problems = open_page()
    sign_in(page, server, people["viewer"])
    page.wait_for_url(f"{server.url}/dashboards/")
    expect(page.get_by_role("heading", name="Dashboards")).to_be_visible()
    titles = page.locator("#dashboard-list a").all_inner_texts()
    assert sorted(titles) == ["Pipeline", "Sales overview"]
    assert "Customer support" not in page.content()
    screenshot(page, "viewer-dashboards")

    page.get_by_role("link", name="Pipeline", exact=True).click()
    expect(page.get_by_role("heading", name="Pipeline", exact=True)).to_be_visible()

    response = page.goto(support_url)
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert "Customer support" not in page.content()
    screenshot(page, "viewer-other-dashboard-404")
    problems.assert_clean()


def test_admin_enrols_totp_and_then_signs_in_with_a_code(
    open_page: OpenPage, demo_server: tuple[Server, dict[str, Credentials]]
) -> None:
    server, people = demo_server
    admin = people["admin"]
    page, problems = open_page()
    sign_in(page, server, admin)
    page.wait_for_url(f"{server.url}/dashboards/")

    page.goto(f"{server.url}/accounts/2fa/totp/activate/")
    # allauth asks for the password again before any change to a second factor.
    page.wait_for_url(lambda url: url.startswith(f"{server.url}/accounts/reauthenticate/"))
    expect(page.get_by_role("heading", name="Confirm Access")).to_be_visible()
    page.get_by_label("Password").fill(admin.password)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{server.url}/accounts/2fa/totp/activate/")
    expect(page.get_by_role("heading", name="Activate Authenticator App")).to_be_visible()
    secret = page.locator("#authenticator_secret").input_value()
    assert len(secret) >= 16
    totp = pyotp.TOTP(secret)
    screenshot(page, "admin-totp-activate")
    used, code = fresh_code(totp)
    page.locator("input[name=code]").fill(code)
    page.get_by_role("button", name="Activate").click()
    # allauth makes recovery codes with the first authenticator and shows them next.
    page.wait_for_url(f"{server.url}/accounts/2fa/recovery-codes/")
    screenshot(page, "admin-totp-recovery-codes")

    page.goto(f"{server.url}/accounts/logout/")
    page.get_by_role("button", name="Sign Out").click()
    page.wait_for_url(f"{server.url}/accounts/login/")

    sign_in(page, server, admin)
    page.wait_for_url(f"{server.url}/accounts/2fa/authenticate/")
    expect(page.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
    screenshot(page, "admin-totp-asked-for-code")

    _, right = fresh_code(totp)
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    page.locator("input[name=code]").fill(wrong)
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_text("Incorrect code.")).to_be_visible()
    assert page.url == f"{server.url}/accounts/2fa/authenticate/"
    screenshot(page, "admin-totp-wrong-code")
    # Still not signed in: the dashboards send the half-signed-in session to the sign-in page.
    probe = page.context.request.get(f"{server.url}/dashboards/", max_redirects=0)
    assert probe.status == 302 and "/accounts/login/" in probe.headers["location"]

    _, code = fresh_code(totp, after=used)  # the activation code's window cannot be reused
    page.locator("input[name=code]").fill(code)
    page.get_by_role("button", name="Sign In", exact=True).click()
    page.wait_for_url(f"{server.url}/dashboards/")
    titles = page.locator("#dashboard-list a").all_inner_texts()
    assert sorted(titles) == ["Customer support", "Pipeline", "Sales overview"]
    screenshot(page, "admin-totp-signed-in")
    problems.assert_clean()


def test_the_page_watcher_reports_csp_violations_and_broken_loads(open_page: OpenPage) -> None:
    # Guards the guard: a watcher that heard nothing would let every test above pass.
    page, problems = open_page()
    html = (
        "<!DOCTYPE html><html><head><style>p{color:red}</style>"
        '<link rel="stylesheet" href="/missing.css"></head>'
        "<body><script>document.title = 'ran'</script><p>x</p></body></html>"
    )

    def fulfil(route: Route) -> None:
        if route.request.url.endswith("/missing.css"):
            route.fulfill(status=404, body="")
        else:
            route.fulfill(
                status=200,
                body=html,
                content_type="text/html",
                headers={"Content-Security-Policy": "default-src 'none'; style-src 'self'"},
            )

    page.route("https://watcher.test/**", fulfil)
    page.goto("https://watcher.test/")
    page.wait_for_load_state("load")
    assert page.title() != "ran"
    assert any("style-src" in line for line in problems.csp)
    assert any("script-src" in line for line in problems.csp)
    assert any("missing.css answered 404" in line for line in problems.broken)
    with pytest.raises(AssertionError, match="CSP violations"):
        problems.assert_clean()
