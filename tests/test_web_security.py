"""Web security checks against a live `dashvault serve` (issue 9, item 5; the browser XSS checks
live elsewhere): CSRF on every route that takes a POST and on every API call made with a
session, session fixation, open redirects, clickjacking headers and cookie flags.

One real server process on loopback serves the whole module over HTTPS (its own self-signed
certificate, verified), beside a real OpenID provider for the SSO sign-ins (tests/oidc.py).
The world (org A, its objects, members with and without TOTP, platform staff) is created with
`dashvault shell` before the server starts. "Changes nothing" is read from the server's
SQLite database itself: a digest of every row of every table but the sessions.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.urls import resolve

from tests import web_security_helpers as web
from tests.live import Server, running_server
from tests.oidc import Provider, running_provider

pytestmark = pytest.mark.servers

NEW_PASSWORD = "a brand new passphrase 42"
EVIL = "https://evil.example"


@dataclass
class Site:
    server: Server
    data_dir: Path
    world: dict[str, Any]
    oidc: Provider

    def url(self, path: str) -> str:
        return self.server.url + path

    def client(self, source: str | None = None) -> requests.Session:
        return web.client(self.data_dir, source)

    def signed_in(self, sid: str, path: str = "/dashboards/") -> bool:
        return web.signed_in(self.server, self.data_dir, sid, path)

    def fingerprint(self) -> dict[str, str]:
        return web.database_fingerprint(self.data_dir)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web-security")
    data_dir = root / "data"
    world = web.seed(data_dir)
    with running_provider(root) as oidc:
        env = {"DASHVAULT_SSO_GOOGLE_URL": oidc.url, "REQUESTS_CA_BUNDLE": str(oidc.ca_file)}
        with running_server(data_dir, env=env) as server:
            yield Site(server, data_dir, world, oidc)


@pytest.fixture(scope="module")
def sessions(site: Site) -> dict[str, requests.Session]:
    """An anonymous visitor (with a CSRF cookie), org A's admin and a platform staff member
    (through the TOTP step), each signed in once for the module."""
    anonymous = site.client()
    assert anonymous.get(site.url(web.SIGN_IN), timeout=30).status_code == 200
    admin = web.sign_in(site.server, site.client(), web.ADMIN)
    staff = web.sign_in(
        site.server, site.client(), web.STAFF, totp_seed=site.world["totp"][web.STAFF]
    )
    return {"anonymous": anonymous, "admin": admin, "staff": staff}


HOME_OF = {"admin": "/dashboards/", "staff": "/staff/"}


def page_token(site: Site, session: requests.Session) -> str:
    """A CSRF token from a form this session is shown (the sign-out confirmation once signed
    in), as a page of the site would carry it."""
    path = web.SIGN_IN if web.SESSION_COOKIE not in session.cookies else "/accounts/logout/"
    page = session.get(site.url(path), allow_redirects=False, timeout=30)
    assert page.status_code == 200, (path, page.status_code)
    return web.csrf_token(page.text)


# === 1. CSRF ==================================================================================

# Every route whose view takes a POST, with a path that reaches it ({...}: the seeded objects)
# and what a forged form would send. The first test below fails when a route is missing here.
CSRF_ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    # dashvault's own answers for allauth pages it does not use (404 for a real request)
    "accounts/email/": ("/accounts/email/", {"email": "forged@evil.example", "action_add": ""}),
    "accounts/signup/": (
        "/accounts/signup/",
        {"email": "forged@evil.example", "password1": NEW_PASSWORD},
    ),
    "^accounts/3rdparty/(signup/)?$": ("/accounts/3rdparty/", {"account": "1"}),
    "^accounts/social/": ("/accounts/social/connections/", {"account": "1"}),
    # allauth: sign-in, sign-out, passwords, reauthentication, MFA, sessions, SSO callback
    "accounts/login/": ("/accounts/login/", {"login": web.ADMIN, "password": web.PASSWORD}),
    "accounts/logout/": ("/accounts/logout/", {}),
    "accounts/reauthenticate/": ("/accounts/reauthenticate/", {"password": web.PASSWORD}),
    "accounts/reauthenticate/code/": ("/accounts/reauthenticate/code/", {}),
    "accounts/reauthenticate/code/confirm/": (
        "/accounts/reauthenticate/code/confirm/",
        {"code": "ABCDEF"},
    ),
    "accounts/confirm-email/": ("/accounts/confirm-email/", {}),
    "accounts/password/change/": (
        "/accounts/password/change/",
        {"oldpassword": web.PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    ),
    "accounts/password/set/": (
        "/accounts/password/set/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    ),
    "accounts/password/reset/": ("/accounts/password/reset/", {"email": web.ADMIN}),
    "accounts/login/code/confirm/": ("/accounts/login/code/confirm/", {"code": "ABCDEF"}),
    r"accounts/confirm-email/(?P<key>[-:\w]+)/$": ("/accounts/confirm-email/forged-key/", {}),
    "accounts/password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$": (
        "/accounts/password/reset/key/1-set-password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    ),
    "accounts/2fa/authenticate/": ("/accounts/2fa/authenticate/", {"code": "000000"}),
    "accounts/2fa/reauthenticate/": ("/accounts/2fa/reauthenticate/", {"code": "000000"}),
    "accounts/2fa/totp/activate/": ("/accounts/2fa/totp/activate/", {"code": "000000"}),
    "accounts/2fa/totp/deactivate/": ("/accounts/2fa/totp/deactivate/", {}),
    "accounts/2fa/recovery-codes/generate/": ("/accounts/2fa/recovery-codes/generate/", {}),
    "accounts/2fa/webauthn/add/": (
        "/accounts/2fa/webauthn/add/",
        {"name": "forged", "credential": "{}"},
    ),
    "accounts/2fa/webauthn/reauthenticate/": (
        "/accounts/2fa/webauthn/reauthenticate/",
        {"credential": "{}"},
    ),
    "accounts/2fa/webauthn/keys/<int:pk>/remove/": (
        "/accounts/2fa/webauthn/keys/{authenticator}/remove/",
        {},
    ),
    "accounts/2fa/webauthn/keys/<int:pk>/edit/": (
        "/accounts/2fa/webauthn/keys/{authenticator}/edit/",
        {"name": "forged"},
    ),
    "^accounts/oidc/(?P<provider_id>[^/]+)/login/$": (
        "/accounts/oidc/{idp}/login/",
        {"process": "login"},
    ),
    "accounts/oidc/(?P<provider_id>[^/]+)/login/callback/": (
        "/accounts/oidc/{idp}/login/callback/",
        {"code": "forged", "state": "forged"},
    ),
    "accounts/sessions/": ("/accounts/sessions/", {}),
    # dashboards and widgets
    "dashboards/new/": ("/dashboards/new/", {"title": "Forged"}),
    "dashboards/<uuid:dashboard_id>/rename/": (
        "/dashboards/{dashboard}/rename/",
        {"title": "Forged"},
    ),
    "dashboards/<uuid:dashboard_id>/duplicate/": ("/dashboards/{dashboard}/duplicate/", {}),
    "dashboards/<uuid:dashboard_id>/delete/": ("/dashboards/{dashboard}/delete/", {}),
    "dashboards/<uuid:dashboard_id>/widgets/new/": (
        "/dashboards/{dashboard}/widgets/new/",
        {"kind": "text", "title": "Forged"},
    ),
    "dashboards/<uuid:dashboard_id>/widgets/<uuid:widget_id>/": (
        "/dashboards/{dashboard}/widgets/{widget}/",
        {"title": "Forged"},
    ),
    "dashboards/<uuid:dashboard_id>/widgets/<uuid:widget_id>/arrange/": (
        "/dashboards/{dashboard}/widgets/{widget}/arrange/",
        {"x": "3", "y": "3", "w": "2", "h": "2"},
    ),
    "dashboards/<uuid:dashboard_id>/widgets/<uuid:widget_id>/delete/": (
        "/dashboards/{dashboard}/widgets/{widget}/delete/",
        {},
    ),
    # members, SSO settings, groups, org settings, tokens, kiosks, integrations, access grants
    "org/members/new/": ("/org/members/new/", {"email": "forged@a.example", "role": "admin"}),
    "org/members/<uuid:user_id>/role/": ("/org/members/{viewer}/role/", {"role": "admin"}),
    "org/members/<uuid:user_id>/active/": ("/org/members/{viewer}/active/", {"active": "0"}),
    "org/members/<uuid:user_id>/link/": ("/org/members/{viewer}/link/", {}),
    "org/members/<uuid:user_id>/sso/": ("/org/members/{viewer}/sso/", {"allowed": "1"}),
    "org/sso/": ("/org/sso/", {"domains": "evil.example", "federation": "on"}),
    "org/sso/mappings/": ("/org/sso/mappings/", {"value": "forged", "role": "admin"}),
    "org/sso/mappings/<uuid:mapping_id>/delete/": ("/org/sso/mappings/{mapping}/delete/", {}),
    "org/sso/<str:kind>/": (
        "/org/sso/google/",
        {"client_id": "forged", "client_secret": "forged", "enabled": "on"},
    ),
    "org/sso/<str:kind>/delete/": ("/org/sso/google/delete/", {}),
    "sso/": ("/sso/", {"email": "someone@a.example"}),
    "sso/<uuid:org_id>/": ("/sso/{org}/", {}),
    "org/groups/new/": ("/org/groups/new/", {"name": "Forged"}),
    "org/groups/<uuid:group_id>/": ("/org/groups/{group}/", {"name": "Forged"}),
    "org/groups/<uuid:group_id>/delete/": ("/org/groups/{group}/delete/", {}),
    "org/settings/": ("/org/settings/", {"name": "Forged", "require_mfa": ""}),
    "org/tokens/": ("/org/tokens/", {"name": "forged", "scopes": "push"}),
    "org/tokens/<uuid:token_id>/revoke/": ("/org/tokens/{token}/revoke/", {}),
    "org/kiosks/new/": ("/org/kiosks/new/", {"name": "Forged", "dashboards": "{dashboard}"}),
    "org/kiosks/<uuid:link_id>/": ("/org/kiosks/{kiosk}/", {"name": "Forged"}),
    "org/kiosks/<uuid:link_id>/rotate/": ("/org/kiosks/{kiosk}/rotate/", {}),
    "org/kiosks/<uuid:link_id>/revoke/": ("/org/kiosks/{kiosk}/revoke/", {}),
    "org/integrations/new/": (
        "/org/integrations/new/",
        {"name": "Forged", "url": "https://evil.example/", "metric": "sales.won"},
    ),
    "org/integrations/<uuid:integration_id>/": (
        "/org/integrations/{integration}/",
        {"name": "Forged", "url": "https://evil.example/"},
    ),
    "org/integrations/<uuid:integration_id>/sync/": ("/org/integrations/{integration}/sync/", {}),
    "org/integrations/<uuid:integration_id>/delete/": (
        "/org/integrations/{integration}/delete/",
        {},
    ),
    "org/access/approval/": ("/org/access/approval/", {"required": "0"}),
    "org/access/<uuid:grant_id>/<str:decision>/": ("/org/access/{grant}/end/", {}),
    # personal data: exports (downloads, audited) and erasures, confirmed by typing the name
    "account/data/": ("/account/data/", {}),
    "org/members/<uuid:user_id>/export/": ("/org/members/{viewer}/export/", {}),
    "org/members/<uuid:user_id>/erase/": ("/org/members/{viewer}/erase/", {"confirm": web.VIEWER}),
    "org/export/": ("/org/export/", {}),
    "org/delete/": ("/org/delete/", {"confirm": "Org A"}),
    # platform staff
    "staff/orgs/<uuid:org_id>/access/": (
        "/staff/orgs/{org}/access/",
        {"reason": "forged", "ticket": "X-1", "minutes": "60"},
    ),
    "staff/orgs/<uuid:org_id>/access/<uuid:grant_id>/end/": (
        "/staff/orgs/{org}/access/{grant}/end/",
        {},
    ),
    "staff/orgs/<uuid:org_id>/networks/": (
        "/staff/orgs/{org}/networks/",
        {"networks": "203.0.113.0/24", "ticket": "X-1"},
    ),
    "staff/orgs/<uuid:org_id>/integrations/": (
        "/staff/orgs/{org}/integrations/",
        {"integration": "{integration}", "allow": "on", "ticket": "X-1"},
    ),
    # the API's own answers that are not operations (the schema, the root, unknown paths)
    "api/v1/openapi.json": ("/api/v1/openapi.json", {}),
    "api/v1/": ("/api/v1/", {}),
    "^api/": ("/api/v2/metrics", {}),
}

# allauth routes an earlier pattern of dashvault.urls answers first (404, or dashvault's own
# SSO view): a path each would take, which must keep reaching the earlier pattern.
SHADOWED_ROUTES: dict[str, str] = {
    "accounts/3rdparty/signup/": "/accounts/3rdparty/signup/",
    "accounts/3rdparty/": "/accounts/3rdparty/",
    "accounts/social/login/cancelled/": "/accounts/social/login/cancelled/",
    "accounts/social/login/error/": "/accounts/social/login/error/",
    "accounts/social/signup/": "/accounts/social/signup/",
    "accounts/social/connections/": "/accounts/social/connections/",
    "accounts/oidc/(?P<provider_id>[^/]+)/login/": "/accounts/oidc/{idp}/login/",
}

# Every /api/v1/ operation (as its OpenAPI schema names it): CSRF-exempt because it takes a
# bearer token and no cookie. Called with a session cookie, a CSRF token and this site's
# Origin, the best a session could offer, each must answer 401 and do nothing.
API_CALLS: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
    ("POST", "/api/v1/datapoints"): (
        "",
        {"points": [{"metric": "sales.won", "ts": "2026-01-01T00:00:00Z", "value": 1}]},
    ),
    ("GET", "/api/v1/metrics"): ("", None),
    ("POST", "/api/v1/metrics"): ("", {"key": "forged.metric", "name": "Forged"}),
    ("GET", "/api/v1/metrics/{key}"): ("", None),
    ("PATCH", "/api/v1/metrics/{key}"): ("", {"name": "Forged"}),
    ("DELETE", "/api/v1/metrics/{key}"): ("", None),
    ("GET", "/api/v1/metrics/{key}/series"): ("", None),
    ("DELETE", "/api/v1/metrics/{key}/points"): (
        "?start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z",
        None,
    ),
    ("GET", "/api/v1/integrations"): ("", None),
    ("POST", "/api/v1/integrations"): (
        "",
        {
            "name": "Forged",
            "kind": "rest",
            "metric": "sales.won",
            "config": {
                "url": "https://evil.example/",
                "mapping": {"timestamp": "t", "value": "v", "id": "i"},
            },
        },
    ),
    ("GET", "/api/v1/integrations/{integration_id}"): ("", None),
    ("PATCH", "/api/v1/integrations/{integration_id}"): ("", {"name": "Forged"}),
    ("DELETE", "/api/v1/integrations/{integration_id}"): ("", None),
    ("POST", "/api/v1/integrations/{integration_id}/sync"): ("", {"full": True}),
}


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(site: Site, text: str) -> str:
    """`text` with each {name} replaced by the seeded object's id (other braces kept)."""
    return PLACEHOLDER.sub(lambda found: str(site.world[found.group(1)]), text)


def csrf_targets(site: Site) -> list[tuple[str, str, dict[str, str]]]:
    """(route, path, form) to forge a POST to: every listed route, every shadowed one, and any
    new `path()` route not listed yet (made-up ids: the CSRF check runs before any lookup)."""
    targets = [
        (route, fill(site, path), {k: fill(site, v) for k, v in data.items()})
        for route, (path, data) in CSRF_ROUTES.items()
    ]
    targets += [(route, fill(site, path), {}) for route, path in SHADOWED_ROUTES.items()]
    for route in unlisted_post_routes():
        sample = web.sample_path(route)
        if sample is not None:
            targets.append((route, sample, {}))
    return targets


def session_post_routes() -> dict[str, Any]:
    """Routes that take a POST and check CSRF (every view but the API's operations)."""
    return {
        route: pattern
        for route, pattern in web.post_routes().items()
        if not getattr(pattern.callback, "csrf_exempt", False)
    }


def unlisted_post_routes() -> list[str]:
    return sorted(set(session_post_routes()) - set(CSRF_ROUTES) - set(SHADOWED_ROUTES))


def test_every_route_that_takes_a_post_is_in_the_csrf_checks(site: Site) -> None:
    routes = session_post_routes()
    unlisted = unlisted_post_routes()
    assert not unlisted, (
        "routes that take a POST and are not in CSRF_ROUTES (add each with a path and the form "
        f"a forger would send; the sweep below already posts to them with made-up ids): {unlisted}"
    )
    stale = sorted((set(CSRF_ROUTES) | set(SHADOWED_ROUTES)) - set(routes))
    assert not stale, f"listed routes that no longer take a POST or no longer exist: {stale}"
    for route, (path, _) in CSRF_ROUTES.items():
        assert resolve(fill(site, path).split("?")[0]).route == route, (route, path)
    for route, path in SHADOWED_ROUTES.items():
        reached = resolve(fill(site, path)).route
        assert reached != route and reached in CSRF_ROUTES, (route, reached)
    # The CSRF-exempt views are exactly the API's operations (django-ninja), all listed.
    exempt = {
        route: pattern
        for route, pattern in web.post_routes().items()
        if getattr(pattern.callback, "csrf_exempt", False)
    }
    assert exempt, "the API's operations are CSRF-exempt views: none found"
    for route, pattern in exempt.items():
        assert route.startswith("api/v1/"), route
        assert pattern.callback.__module__ == "ninja.operation", route
    schema = requests_json(site, "/api/v1/openapi.json")
    operations = {
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    }
    assert operations == set(API_CALLS), (
        f"API operations not in API_CALLS: {sorted(operations - set(API_CALLS))}; "
        f"listed but gone: {sorted(set(API_CALLS) - operations)}"
    )


def requests_json(site: Site, path: str) -> Any:
    response = site.client().get(site.url(path), timeout=30)
    assert response.status_code == 200, response.status_code
    return response.json()


# How each forged POST differs from the site's own: the token, or where the request comes from.
Variant = Callable[[Site, str, str], tuple[dict[str, str], dict[str, str]]]
VARIANTS: dict[str, Variant] = {
    "without-a-token": lambda s, token, other: ({}, {"Origin": s.server.url}),
    "with-another-sessions-token": lambda s, token, other: (
        {"csrfmiddlewaretoken": other},
        {"Origin": s.server.url},
    ),
    "from-a-foreign-origin": lambda s, token, other: (
        {"csrfmiddlewaretoken": token},
        {"Origin": EVIL},
    ),
    "from-a-null-origin": lambda s, token, other: (
        {"csrfmiddlewaretoken": token},
        {"Origin": "null"},
    ),
    "from-this-host-over-http": lambda s, token, other: (
        {"csrfmiddlewaretoken": token},
        {"Origin": s.server.url.replace("https://", "http://")},
    ),
    "with-a-foreign-referer": lambda s, token, other: (
        {"csrfmiddlewaretoken": token},
        {"Referer": EVIL + "/page"},
    ),
    "without-origin-or-referer": lambda s, token, other: ({"csrfmiddlewaretoken": token}, {}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("principal", ["anonymous", "admin", "staff"])
def test_a_forged_post_is_refused_and_changes_nothing(
    site: Site, sessions: dict[str, requests.Session], principal: str, variant: str
) -> None:
    session = sessions[principal]
    token = page_token(site, session)
    other_token = page_token(site, site.client())  # real, but of another visitor's cookie
    data, headers = VARIANTS[variant](site, token, other_token)
    before = site.fingerprint()
    accepted = []
    for route, path, form in csrf_targets(site):
        response = session.post(
            site.url(path),
            data={**form, **data},
            headers=headers,
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 403 or web.CSRF_REFUSAL not in response.text:
            accepted.append(f"{route} -> {response.status_code}")
    assert not accepted, f"forged POSTs not refused by the CSRF check: {accepted}"
    assert web.changed_tables(before, site.fingerprint()) == []
    if principal != "anonymous":  # no forged sign-out, password change or deactivation
        assert site.signed_in(web.session_id(session), HOME_OF[principal])


@pytest.mark.parametrize("principal", ["anonymous", "admin", "staff"])
def test_a_post_with_this_sites_token_and_origin_gets_past_the_csrf_check(
    site: Site, sessions: dict[str, requests.Session], principal: str
) -> None:
    """The other side of the sweep: the same session's own token from this site's origin (or
    referer) is let through, to the home view, which takes GET only (405)."""
    session = sessions[principal]
    token = page_token(site, session)
    for headers in ({"Origin": site.server.url}, {"Referer": site.url("/dashboards/")}):
        response = session.post(
            site.url("/"),
            data={"csrfmiddlewaretoken": token},
            headers=headers,
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 405, (headers, response.status_code)


def test_a_post_with_the_token_changes_what_the_fingerprint_sees(
    site: Site, sessions: dict[str, requests.Session]
) -> None:
    """The database fingerprint sees a real change: the admin renames the dashboard."""
    session = sessions["admin"]
    before = site.fingerprint()
    response = session.post(
        site.url(fill(site, "/dashboards/{dashboard}/rename/")),
        data={"csrfmiddlewaretoken": page_token(site, session), "title": "Sales A (renamed)"},
        headers={"Origin": site.server.url},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.status_code
    assert "dashboards_dashboard" in web.changed_tables(before, site.fingerprint())


def test_a_get_to_sign_out_does_not_sign_out(
    site: Site, sessions: dict[str, requests.Session]
) -> None:
    session = sessions["admin"]
    response = session.get(site.url("/accounts/logout/"), allow_redirects=False, timeout=30)
    assert response.status_code == 200
    assert 'method="post"' in response.text.lower()  # a confirmation form, not a sign-out
    assert site.signed_in(web.session_id(session))


def test_the_api_does_not_act_on_a_session_cookie(
    site: Site, sessions: dict[str, requests.Session]
) -> None:
    session = sessions["admin"]
    token = page_token(site, session)
    ids = {"key": site.world["metric"], "integration_id": site.world["integration"]}
    before = site.fingerprint()
    answered = []
    for (method, template), (query, body) in API_CALLS.items():
        response = session.request(
            method,
            site.url(template.format(**ids) + query),
            json=body,
            headers={"Origin": site.server.url, "X-CSRFToken": token},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 401 or "sales.won" in response.text:
            answered.append(f"{method} {template} -> {response.status_code}")
    assert not answered, f"API operations that acted on a session cookie: {answered}"
    assert web.changed_tables(before, site.fingerprint()) == []
    # The same session is good for pages, and the API answers a token: the 401s were the API
    # refusing the cookie, not a broken request.
    assert site.signed_in(web.session_id(session))
    response = site.client().get(
        site.url("/api/v1/metrics"),
        headers={"Authorization": f"Bearer {site.world['read_token']}"},
        timeout=30,
    )
    assert response.status_code == 200 and "sales.won" in response.text


# === 2. Session fixation ======================================================================


def start_sso(site: Site, session: requests.Session, next_url: str | None = None) -> str:
    """Press org A's "Sign in with Google" button; returns the provider's authorize URL. The
    anonymous session this makes (it holds the OAuth state) is what a fixation attacker could
    get from the server and plant."""
    login = site.url(fill(site, "/accounts/oidc/{idp}/login/"))
    page = session.get(login, timeout=30)
    assert page.status_code == 200, page.status_code
    data = {"csrfmiddlewaretoken": web.csrf_token(page.text), "process": "login"}
    if next_url is not None:
        data["next"] = next_url
    response = session.post(
        login, data=data, headers={"Origin": site.server.url}, allow_redirects=False, timeout=30
    )
    assert response.status_code == 302, response.status_code
    return str(response.headers["Location"])


def finish_sso(site: Site, session: requests.Session, authorize: str, sub: str) -> Any:
    """Approve as `sub` (a Workspace person of a.example) at the provider and come back."""
    site.oidc.set_user(
        sub, {"email": f"{sub}@a.example", "email_verified": True, "hd": "a.example"}
    )
    back = site.oidc.authorize(authorize, sub)
    assert back.startswith(site.server.url + "/accounts/oidc/"), back
    return session.get(back, allow_redirects=False, timeout=30)


def server_issued_anonymous_session(site: Site) -> str:
    attacker = site.client()
    start_sso(site, attacker)
    planted = web.session_id(attacker)
    assert web.session_stored(site.data_dir, planted)
    return planted


def test_signing_in_replaces_a_session_id_the_server_issued_before(site: Site) -> None:
    planted = server_issued_anonymous_session(site)
    victim = site.client()
    web.plant_session_id(victim, planted)
    web.sign_in(site.server, victim, web.ADMIN)
    after = web.session_id(victim)
    assert after != planted
    assert site.signed_in(after)
    assert not site.signed_in(planted)
    assert not web.session_stored(site.data_dir, planted)


def test_signing_in_never_adopts_a_made_up_session_id(site: Site) -> None:
    made_up = "fixat10n" + uuid.uuid4().hex[:24]
    victim = site.client()
    web.plant_session_id(victim, made_up)
    web.sign_in(site.server, victim, web.ADMIN)
    assert web.session_id(victim) != made_up
    assert site.signed_in(web.session_id(victim))
    assert not site.signed_in(made_up)
    assert not web.session_stored(site.data_dir, made_up)


def test_the_mfa_step_ends_with_a_session_id_of_its_own(site: Site) -> None:
    planted = server_issued_anonymous_session(site)
    victim = site.client()
    web.plant_session_id(victim, planted)
    response = web.post_password(site.server, victim, web.MFA_FIXATION)
    assert response.headers["Location"].startswith("/accounts/2fa/authenticate/")
    halfway = web.session_id(victim)  # password given, second factor pending
    assert not site.signed_in(halfway)
    response = web.post_totp(site.server, victim, site.world["totp"][web.MFA_FIXATION])
    assert response.status_code == 302, response.text[:300]
    after = web.session_id(victim)
    assert after not in (planted, halfway)
    assert site.signed_in(after)
    for old in (planted, halfway):
        assert not site.signed_in(old)
        assert not web.session_stored(site.data_dir, old)


def test_sso_sign_in_ends_with_a_session_id_of_its_own(site: Site) -> None:
    victim = site.client()
    authorize = start_sso(site, victim)
    before = web.session_id(victim)  # the anonymous session holding the OAuth state
    response = finish_sso(site, victim, authorize, "sso-fixation")
    assert response.status_code == 302 and not response.headers["Location"].startswith(
        web.SIGN_IN
    ), response.headers.get("Location")
    after = web.session_id(victim)
    assert after != before
    assert site.signed_in(after)
    assert not site.signed_in(before)
    assert not web.session_stored(site.data_dir, before)


def test_signing_out_ends_the_session_id(site: Site) -> None:
    session = web.sign_in(site.server, site.client(), web.ADMIN)
    signed_in = web.session_id(session)
    response = session.post(
        site.url("/accounts/logout/"),
        data={"csrfmiddlewaretoken": page_token(site, session)},
        headers={"Origin": site.server.url},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302
    assert session.cookies.get(web.SESSION_COOKIE) != signed_in
    assert not site.signed_in(signed_in)
    assert not web.session_stored(site.data_dir, signed_in)


# === 3. Open redirects ========================================================================

# Values of `next` that lead off the site, or into script, in some browser. "{origin}" is the
# site's own https://localhost:PORT, for tricks that dress a foreign host up as ours.
OFF_SITE = {
    "absolute-https": "https://evil.example/",
    "absolute-http": "http://evil.example/",
    "scheme-relative": "//evil.example/",
    "three-slashes": "///evil.example/",
    "four-slashes": "////evil.example/",
    "slash-backslash": "/\\evil.example/",
    "backslash-slash": "\\/evil.example/",
    "two-backslashes": "\\\\evil.example/",
    "scheme-no-slashes": "https:evil.example/",
    "scheme-one-slash": "https:/evil.example/",
    "scheme-three-slashes": "https:///evil.example/",
    "tab-inside-slashes": "/\t/evil.example/",
    "leading-space": " //evil.example/",
    "encoded-slashes": "%2F%2Fevil.example/",
    "encoded-scheme": "https%3A%2F%2Fevil.example/",
    "encoded-backslash": "/%5Cevil.example/",
    "userinfo-of-ours": "{origin}@evil.example/",
    "fragment-of-ours": "https://evil.example#@{host}/",
    "our-host-over-http": "http://{host}/dashboards/",
    "another-allowed-host": "https://127.0.0.1/dashboards/",
    "javascript": "javascript:alert(document.domain)",
    "javascript-mixed-case": "JaVaScRiPt:alert(1)",
    "javascript-with-newline": "java\nscript:alert(1)",
    "data-url": "data:text/html,<script>alert(1)</script>",
}
# A few of them for the flows that cost a sign-in each.
OFF_SITE_SAMPLE = ["absolute-https", "scheme-relative", "slash-backslash", "javascript"]


def off_site_params() -> list[Any]:
    return [pytest.param(name, id=name) for name in sorted(OFF_SITE)]


def payload(site: Site, name: str) -> str:
    host = site.server.url.removeprefix("https://")
    return OFF_SITE[name].replace("{origin}", site.server.url).replace("{host}", host)


def next_query(value: str) -> str:
    return "?next=" + quote(value, safe="")


def assert_stays_on_site(site: Site, response: requests.Response) -> None:
    assert response.status_code == 302, (response.status_code, response.text[:300])
    location = response.headers["Location"]
    assert web.stays_on_site(location, site.server.url), location


def source_address(name: str) -> str:
    """A loopback address of its own per payload: each sign-in counts against allauth's 30
    sign-ins per minute per address, and the module signs in many times."""
    return f"127.0.{10 + sorted(OFF_SITE).index(name)}.1"


@pytest.mark.parametrize("name", off_site_params())
def test_sign_in_never_redirects_off_site(site: Site, name: str) -> None:
    session = site.client(source=source_address(name))
    query = next_query(payload(site, name))
    page = session.get(site.url(web.SIGN_IN + query), timeout=30)
    assert page.status_code == 200
    for link in web.links(page.text):  # the page itself offers no way off the site
        assert web.stays_on_site(link, site.server.url), link
    response = web.post_password(site.server, session, web.ADMIN, query)
    assert_stays_on_site(site, response)
    assert site.signed_in(web.session_id(session))


def test_sign_in_follows_a_next_on_this_site(site: Site) -> None:
    session = site.client(source="127.0.9.1")
    response = web.post_password(site.server, session, web.ADMIN, next_query("/org/members/"))
    assert response.status_code == 302
    assert response.headers["Location"] == "/org/members/"


@pytest.mark.parametrize("name", off_site_params())
def test_a_signed_in_visit_to_sign_in_never_redirects_off_site(
    site: Site, sessions: dict[str, requests.Session], name: str
) -> None:
    """allauth sends a signed-in visitor of the sign-in page on to `next` at once."""
    url = site.url(web.SIGN_IN + next_query(payload(site, name)))
    response = sessions["admin"].get(url, allow_redirects=False, timeout=30)
    assert_stays_on_site(site, response)


def test_a_signed_in_visit_to_sign_in_follows_a_next_on_this_site(
    site: Site, sessions: dict[str, requests.Session]
) -> None:
    url = site.url(web.SIGN_IN + next_query("/org/members/"))
    response = sessions["admin"].get(url, allow_redirects=False, timeout=30)
    assert response.status_code == 302 and response.headers["Location"] == "/org/members/"


@pytest.mark.parametrize("name", OFF_SITE_SAMPLE)
def test_reauthentication_never_redirects_off_site(
    site: Site, sessions: dict[str, requests.Session], name: str
) -> None:
    session = sessions["admin"]
    url = site.url("/accounts/reauthenticate/" + next_query(payload(site, name)))
    page = session.get(url, timeout=30)
    assert page.status_code == 200
    data = {**web.hidden_inputs(page.text, "password"), "password": web.PASSWORD}
    response = session.post(
        url, data=data, headers={"Origin": site.server.url}, allow_redirects=False, timeout=30
    )
    assert_stays_on_site(site, response)


@pytest.mark.parametrize("name", OFF_SITE_SAMPLE)
def test_sign_out_never_redirects_off_site(site: Site, name: str) -> None:
    session = web.sign_in(site.server, site.client(source="127.0.8.1"), web.ADMIN)
    response = session.post(
        site.url("/accounts/logout/"),
        data={"csrfmiddlewaretoken": page_token(site, session), "next": payload(site, name)},
        headers={"Origin": site.server.url},
        allow_redirects=False,
        timeout=30,
    )
    assert_stays_on_site(site, response)


def test_the_mfa_step_never_redirects_off_site(site: Site) -> None:
    session = site.client()
    query = next_query(payload(site, "scheme-relative"))
    response = web.post_password(site.server, session, web.MFA_REDIRECT, query)
    assert response.headers["Location"].startswith("/accounts/2fa/authenticate/")
    response = web.post_totp(site.server, session, site.world["totp"][web.MFA_REDIRECT])
    assert_stays_on_site(site, response)
    assert site.signed_in(web.session_id(session))


@pytest.mark.parametrize("name", OFF_SITE_SAMPLE)
def test_sso_sign_in_never_redirects_off_site(site: Site, name: str) -> None:
    session = site.client()
    authorize = start_sso(site, session, payload(site, name))
    response = finish_sso(site, session, authorize, "sso-redirect")
    assert_stays_on_site(site, response)
    assert site.signed_in(web.session_id(session))


def test_sso_sign_in_follows_a_next_on_this_site(site: Site) -> None:
    session = site.client()
    authorize = start_sso(site, session, "/dashboards/")
    response = finish_sso(site, session, authorize, "sso-redirect")
    assert response.status_code == 302 and response.headers["Location"] == "/dashboards/"


# === 4. Clickjacking ==========================================================================


def get(principal: str, path: str) -> Callable[[Site, dict[str, requests.Session]], Any]:
    def fetch(site: Site, sessions: dict[str, requests.Session]) -> Any:
        session = site.client() if principal == "nobody" else sessions[principal]
        return session.get(site.url(fill(site, path)), allow_redirects=False, timeout=30)

    return fetch


def forged_post(site: Site, sessions: dict[str, requests.Session]) -> Any:
    return sessions["admin"].post(
        site.url("/dashboards/new/"),
        data={"title": "Forged"},
        headers={"Origin": site.server.url},
        allow_redirects=False,
        timeout=30,
    )


def wrong_method(site: Site, sessions: dict[str, requests.Session]) -> Any:
    session = sessions["admin"]
    return session.post(
        site.url("/"),
        data={"csrfmiddlewaretoken": page_token(site, session)},
        headers={"Origin": site.server.url},
        allow_redirects=False,
        timeout=30,
    )


# (page, how to get it, the status it answers)
FRAMED_PAGES: dict[str, tuple[Callable[[Site, dict[str, requests.Session]], Any], int]] = {
    "sign-in": (get("nobody", "/accounts/login/"), 200),
    "sso-start": (get("nobody", "/sso/"), 200),
    "sso-org": (get("nobody", "/sso/{org}/"), 200),
    "kiosk-tv": (get("nobody", "/kiosk/{kiosk_token}/"), 200),
    "kiosk-unknown-link": (get("nobody", "/kiosk/dvk_" + "N" * 43 + "/"), 404),
    "dashboards": (get("admin", "/dashboards/"), 200),
    "dashboard": (get("admin", "/dashboards/{dashboard}/"), 200),
    "dashboard-editor": (get("admin", "/dashboards/{dashboard}/edit/"), 200),
    "members": (get("admin", "/org/members/"), 200),
    "tokens": (get("admin", "/org/tokens/"), 200),
    "password-change": (get("admin", "/accounts/password/change/"), 200),
    "my-data": (get("admin", "/account/data/"), 200),
    "member-erase": (get("admin", "/org/members/{viewer}/erase/"), 200),
    "org-delete": (get("admin", "/org/delete/"), 200),
    "mfa": (get("staff", "/accounts/2fa/"), 200),
    "staff-home": (get("staff", "/staff/"), 200),
    "not-found": (get("nobody", "/no-such-page/"), 404),
    "not-found-signed-in": (get("admin", f"/dashboards/{uuid.uuid4()}/"), 404),
    "forbidden": (get("staff", "/org/members/"), 403),
    "csrf-refusal": (forged_post, 403),
    "wrong-method": (wrong_method, 405),
    "api-refusal": (get("nobody", "/api/v1/metrics"), 401),
}


def assert_not_framable(response: requests.Response) -> None:
    assert response.headers.get("X-Frame-Options") == "DENY", response.headers
    policies = response.raw.headers.getlist("Content-Security-Policy")
    assert len(policies) == 1, policies
    directives = {}
    for part in policies[0].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    assert directives.get("frame-ancestors") == ["'none'"], policies[0]


@pytest.mark.parametrize("page", sorted(FRAMED_PAGES))
def test_pages_refuse_to_be_framed(
    site: Site, sessions: dict[str, requests.Session], page: str
) -> None:
    fetch, status = FRAMED_PAGES[page]
    response = fetch(site, sessions)
    assert response.status_code == status, response.status_code
    assert_not_framable(response)


def bad_host(site: Site) -> requests.Response:
    return site.client().get(
        site.url("/accounts/login/"),
        headers={"Host": "evil.example"},
        allow_redirects=False,
        timeout=30,
    )


def blocked_kiosk_guesser(site: Site) -> requests.Response:
    """The guessing guard's page for an address that tried 10 bad kiosk links (an address of
    its own, so that nothing else of the module is blocked)."""
    guesser = site.client(source="127.0.7.1")
    for attempt in range(10):
        guess = f"/kiosk/dvk_{attempt:02d}" + "G" * 41 + "/"
        assert guesser.get(site.url(guess), timeout=30).status_code == 404
    return guesser.get(site.url("/kiosk/dvk_" + "H" * 43 + "/"), timeout=30)


@pytest.mark.parametrize(
    ("fetch", "status"), [(bad_host, 400), (blocked_kiosk_guesser, 429)], ids=["400", "429"]
)
def test_early_error_pages_refuse_to_be_framed(
    site: Site, fetch: Callable[[Site], requests.Response], status: int
) -> None:
    response = fetch(site)
    assert response.status_code == status, response.status_code
    assert "evil.example" not in response.text
    assert_not_framable(response)


# === 5. Cookies ===============================================================================

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def exercise_cookies(site: Site) -> None:
    """Make the server set and clear its cookies once more: a visit, a sign-in (with its
    message), a page, a sign-out."""
    session = web.sign_in(site.server, site.client(source="127.0.6.1"), web.ADMIN)
    session.get(site.url("/dashboards/"), timeout=30)
    session.post(
        site.url("/accounts/logout/"),
        data={"csrfmiddlewaretoken": page_token(site, session)},
        headers={"Origin": site.server.url},
        timeout=30,
    )


def test_session_and_csrf_cookies_are_secure_host_only_httponly_and_samesite(
    site: Site,
) -> None:
    exercise_cookies(site)
    seen = set()
    for path, header in web.SET_COOKIES:
        name, value, attributes = web.cookie_attributes(header)
        if name not in (web.SESSION_COOKIE, web.CSRF_COOKIE):
            continue
        seen.add(name)
        where = f"{path}: {header}"
        assert "secure" in attributes, where
        assert attributes.get("samesite", "").lower() in ("lax", "strict"), where
        assert attributes.get("path") == "/" and "domain" not in attributes, where  # __Host-
        cleared = attributes.get("max-age") == "0"
        assert cleared or "httponly" in attributes, where  # CSRF_COOKIE_HTTPONLY is on
    assert seen == {web.SESSION_COOKIE, web.CSRF_COOKIE}


def test_kiosk_pages_set_no_cookie(site: Site) -> None:
    response = site.client().get(site.url(fill(site, "/kiosk/{kiosk_token}/")), timeout=30)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def readable(value: str) -> str:
    """A cookie value as a reader would see it: as sent, and its signed-base64 part decoded."""
    head = value.strip('"').split(":")[0]
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("utf-8", "replace")
    except ValueError:
        decoded = ""
    return value + " " + decoded


def test_every_cookie_is_a_secure_host_cookie_without_personal_data(site: Site) -> None:
    exercise_cookies(site)
    assert web.SET_COOKIES
    for path, header in web.SET_COOKIES:
        name, value, attributes = web.cookie_attributes(header)
        where = f"{path}: {header}"
        assert name.startswith("__Host-"), where
        assert "secure" in attributes, where
        assert not EMAIL.search(readable(value)), where
