"""A person signs in with single sign-on in Chromium: dashvault's pages, a real OpenID provider.

A real `dashvault serve` and oidc-provider-mock (answering as Acme's Azure AD tenant) both run
over HTTPS on loopback. A new person from an allowed domain is created just in time and lands on
the dashboards their mapped group grants; a person from elsewhere is refused and not signed in.

The page watcher sees the provider's pages too. They send no CSP of their own, so they report
nothing once their CDN stylesheet is answered locally (`without_internet`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import OpenPage, PageProblems, screenshot
from tests.live import Server, dashvault, running_server
from tests.oidc import Provider, running_provider

pytestmark = pytest.mark.browser

# Acme's SSO set-up, the way its admin leaves it: Azure AD for acme.example with federation
# on, and Azure AD group "grp-support" mapped to the demo group Support ("Customer support").
SET_UP_ACME = """
from dashvault.accounts.models import User
from dashvault.orgs.models import Group, Organization
from dashvault.sso.actions import do_add_mapping, do_save_provider, do_save_sso_settings

org = Organization.objects.get(name="Acme")
admin = User.objects.get(email="admin@acme.example")
do_save_provider(
    org, "azure", client_id="dashvault-acme", client_secret="acme-client-secret",
    tenant_id=TENANT, acting=admin, ip=None,
)
do_save_sso_settings(
    org, domains=["acme.example"], federation=True, password_signin=True, break_glass=None,
    default_groups=[], acting=admin, ip=None,
)
do_add_mapping(
    org, value="grp-support", group=Group.objects.get(org=org, name="Support"), role="",
    acting=admin, ip=None,
)
"""
ACCOUNTS = """
import json
from dashvault.accounts.models import User

print(json.dumps({
    u.email: {"role": u.role, "groups": sorted(g.name for g in u.dashboard_groups.all())}
    for u in User.objects.filter(email__in=["dana@acme.example", "eve@evil.example"])
}))
"""
AZURE_BUTTON = "Sign in with Azure AD (Microsoft Entra ID)"


@pytest.fixture
def sso_server(tmp_path: Path) -> Iterator[tuple[Server, Provider, Path]]:
    """The demo org Acme set up for Azure AD SSO against a real provider; both serving."""
    with running_provider(tmp_path) as provider:
        data = tmp_path / "data"
        dashvault(data, "migrate", "--no-input", "--verbosity", "0")
        dashvault(data, "demo")
        dashvault(data, "shell", "-v", "0", "-c", f"TENANT = {provider.tenant!r}\n{SET_UP_ACME}")
        env = {
            "DASHVAULT_SSO_AZURE_URL": provider.azure_url,
            "DASHVAULT_SSO_GOOGLE_URL": provider.url,
            # dashvault's token request (server to provider) must trust the provider's CA.
            "REQUESTS_CA_BUNDLE": str(provider.ca_file),
        }
        with running_server(data, env=env) as server:
            yield server, provider, data


def without_internet(page: Page) -> None:
    """The provider's pages pull a stylesheet from a CDN; the tests have no internet, so the
    browser gets an empty one instead of a failed load (the form works unstyled)."""

    def empty_stylesheet(route: Route) -> None:
        route.fulfill(status=200, body="", content_type="text/css")

    page.route("https://cdn.jsdelivr.net/**", empty_stylesheet)


def enter_subject_at_provider(
    page: Page, problems: PageProblems, provider: Provider, sub: str
) -> None:
    """At the provider's authorization page, type who the person is there (the test then
    approves with "Authorize"). When the browser never gets there, say what stopped it."""
    try:
        page.wait_for_url(lambda url: url.startswith(f"{provider.url}/{provider.tenant}/v2.0/"))
    except PlaywrightTimeoutError:
        problems.assert_clean()  # e.g. a CSP that blocked the way out
        raise
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    expect(page.get_by_text("Client ID: dashvault-acme")).to_be_visible()
    page.get_by_placeholder("sub").fill(sub)


def test_a_new_person_signs_in_with_azure_ad_and_sees_their_mapped_groups_dashboards(
    open_page: OpenPage, sso_server: tuple[Server, Provider, Path]
) -> None:
    server, provider, data = sso_server
    provider.set_user(
        "dana",
        {
            "email": "dana@acme.example",
            "tid": provider.tenant,
            "oid": "oid-dana",
            "groups": ["grp-support"],
            "name": "Dana",
        },
    )
    provider.set_user(
        "eve",
        {
            "email": "eve@evil.example",
            "tid": provider.tenant,
            "oid": "oid-eve",
            "groups": ["grp-sales"],
            "name": "Eve",
        },
    )

    page, problems = open_page()
    without_internet(page)
    page.goto(f"{server.url}/accounts/login/")
    page.locator("#sso-start").click()
    page.wait_for_url(f"{server.url}/sso/")
    expect(page.get_by_role("heading", name="Sign in with single sign-on")).to_be_visible()
    page.get_by_label("Your work e-mail address").fill("dana@acme.example")
    screenshot(page, "sso-start")
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url(re.compile(rf"{re.escape(server.url)}/sso/[0-9a-f-]{{36}}/$"))
    acme_signin_url = page.url  # Acme's own sign-in page, the one its admin shares
    expect(page.get_by_role("heading", name="Sign in to Acme")).to_be_visible()
    screenshot(page, "sso-org")
    page.get_by_role("button", name=AZURE_BUTTON).click()

    enter_subject_at_provider(page, problems, provider, "dana")
    screenshot(page, "sso-provider")
    page.get_by_role("button", name="Authorize").click()

    page.wait_for_url(f"{server.url}/dashboards/")
    expect(page.get_by_role("heading", name="Dashboards")).to_be_visible()
    titles = page.locator("#dashboard-list a").all_inner_texts()
    assert titles == ["Customer support"]
    assert "Sales overview" not in page.content()
    assert "Pipeline" not in page.content()
    screenshot(page, "sso-landed")

    page.get_by_role("link", name="Customer support", exact=True).click()
    expect(page.get_by_role("heading", name="Customer support", exact=True)).to_be_visible()
    expect(page.locator("#board")).to_have_attribute("data-rendered", "1")
    tiles = page.locator("#board .tile")
    expect(tiles).to_have_count(4)
    solved = tiles.filter(has_text="Tickets solved this week")
    expect(solved.locator(".kpi-value")).not_to_be_empty()
    expect(tiles.filter(has_text="Tickets solved per day").locator("canvas")).to_have_count(1)
    expect(page.locator("#board")).to_have_attribute("data-live-state", "live")
    screenshot(page, "sso-dashboard")
    problems.assert_clean()

    # Eve's address is of no org's domain, so "Sign in with SSO" finds no org for her ...
    page, problems = open_page()
    without_internet(page)
    page.goto(f"{server.url}/sso/")
    page.get_by_label("Your work e-mail address").fill("eve@evil.example")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Single sign-on is not set up for this e-mail domain.")).to_be_visible()
    # ... and through Acme's own sign-in page, the provider vouches for her, but Acme refuses.
    page.goto(acme_signin_url)
    page.get_by_role("button", name=AZURE_BUTTON).click()
    enter_subject_at_provider(page, problems, provider, "eve")
    with page.expect_response(lambda r: "/login/callback/" in r.url) as callback:
        page.get_by_role("button", name="Authorize").click()
    assert callback.value.status == 403
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    refusal = page.locator(".sso-refused")
    expect(refusal).to_have_text(
        "Your e-mail domain is not allowed to sign in to this organization."
    )
    expect(refusal).to_have_attribute("data-reason", "domain_not_allowed")
    screenshot(page, "sso-refused")
    probe = page.context.request.get(f"{server.url}/dashboards/", max_redirects=0)
    assert probe.status == 302 and "/accounts/login/" in probe.headers["location"]
    problems.assert_clean()

    accounts = json.loads(dashvault(data, "shell", "-v", "0", "-c", ACCOUNTS).stdout)
    assert accounts == {"dana@acme.example": {"role": "viewer", "groups": ["Support"]}}
