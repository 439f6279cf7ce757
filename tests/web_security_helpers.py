"""Helpers for tests/test_web_security.py: the seeded world of the live server, HTTPS clients
that record every cookie they are sent, the forms' hidden fields, TOTP codes, the POST routes
of the URL configuration, and a fingerprint of the server's database.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import sqlite3
import struct
import time
import uuid
from base64 import b32decode
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.urls import URLPattern, URLResolver, get_resolver
from requests.adapters import HTTPAdapter

from tests.live import Server, dashvault

PASSWORD = "correct horse battery staple"
ADMIN = "admin@a.example"
VIEWER = "viewer@a.example"
MFA_FIXATION = "mfa1@a.example"  # one TOTP sign-in each: allauth refuses a code used before
MFA_REDIRECT = "mfa2@a.example"
STAFF = "staff@provider.example"
SESSION_COOKIE = "__Host-dv_session"
CSRF_COOKIE = "__Host-dv_csrf"
SIGN_IN = "/accounts/login/"
CSRF_REFUSAL = "Form expired"  # the title of dashvault's CSRF failure page

# Run through `dashvault shell` against the server's data directory before it starts: org A
# with an object of every kind a POST route names, two members with TOTP, a platform staff
# member with TOTP and an open access grant, and org A's Google sign-in (pointed at the
# loopback provider by the server's environment). Prints ids, the kiosk link, a read token
# and the TOTP seeds as JSON on its last line.
SEED = """
import json
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from dashvault.accounts.models import Role, User
from dashvault.api.actions import do_create_token
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.grants.actions import do_open_grant
from dashvault.integrations.actions import do_create_integration
from dashvault.integrations.models import Integration
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Group, Organization
from dashvault.sso.actions import do_save_provider, do_save_sso_settings
from dashvault.sso.models import ClaimMapping

password = {password!r}
org = Organization.objects.create(name="Org A")
admin = User.objects.create_user({admin!r}, password, org=org, role=Role.ADMIN)
viewer = User.objects.create_user({viewer!r}, password, org=org, role=Role.VIEWER)
seeds = {{}}
for email in ({mfa_fixation!r}, {mfa_redirect!r}):
    user = User.objects.create_user(email, password, org=org, role=Role.EDITOR)
    seeds[email] = generate_totp_secret()
    TOTP.activate(user, seeds[email])
staff = User.objects.create_user({staff!r}, password, is_platform_staff=True)
seeds[{staff!r}] = generate_totp_secret()
authenticator = TOTP.activate(staff, seeds[{staff!r}]).instance
metric = Metric.objects.create(org=org, key="sales.won", name="Won deals")
dashboard = Dashboard.objects.create(org=org, title="Sales A")
widget = Widget.objects.create(
    org=org, dashboard=dashboard, kind="kpi", metric=metric, config={{"period": "all_time"}}
)
group = Group.objects.create(org=org, name="Sales team A")
group.members.set([viewer])
group.dashboards.set([dashboard])
link, kiosk_token = do_create_kiosk_link(
    org, name="Lobby TV", dashboards=[dashboard], acting=admin
)
token, _ = do_create_token(org, "push", ["push"], expires_at=None, acting=admin)
_, read_token = do_create_token(org, "read", ["read"], expires_at=None, acting=admin)
integration = do_create_integration(
    org, acting=admin, ip=None, name="Deals", kind="rest", metric=metric,
    config={{"url": "https://crm.example/deals", "mapping": {{"value": "v"}}}}, secret="",
)
# No scheduled run: a sync in the background would change the database under the checks.
Integration.objects.filter(pk=integration.pk).update(next_run_at=None)
idp = do_save_provider(
    org, "google", client_id="dashvault-g", client_secret="sso-secret-of-org-a",
    hosted_domain="a.example", acting=admin, ip=None,
)
do_save_sso_settings(
    org, domains=["a.example"], federation=True, password_signin=True, break_glass=None,
    default_groups=[], acting=admin, ip=None,
)
mapping = ClaimMapping.objects.create(org=org, value="app-editors", role="editor")
grant = do_open_grant(org, staff, reason="support", ticket="SUP-1", minutes=30, ip=None)
print(json.dumps({{
    "org": str(org.pk), "viewer": str(viewer.pk), "dashboard": str(dashboard.pk),
    "widget": str(widget.pk), "group": str(group.pk), "kiosk": str(link.pk),
    "kiosk_token": kiosk_token, "token": str(token.pk), "read_token": read_token,
    "integration": str(integration.pk), "metric": metric.key, "mapping": str(mapping.pk),
    "grant": str(grant.pk), "idp": idp.provider_id, "authenticator": authenticator.pk,
    "totp": seeds,
}}))
"""


def seed(data_dir: Path) -> dict[str, Any]:
    """Migrate the data directory and create the world above; returns its ids."""
    dashvault(data_dir, "migrate", "--no-input", "--verbosity", "0")
    script = SEED.format(
        password=PASSWORD,
        admin=ADMIN,
        viewer=VIEWER,
        mfa_fixation=MFA_FIXATION,
        mfa_redirect=MFA_REDIRECT,
        staff=STAFF,
    )
    done = dashvault(data_dir, "shell", "-c", script)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- clients ----------------------------------------------------------------------------------

SET_COOKIES: list[tuple[str, str]] = []  # (request path, Set-Cookie header) of every response


def _record_cookies(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    for header in response.raw.headers.getlist("Set-Cookie"):
        SET_COOKIES.append((response.request.path_url, header))


class FromAddress(HTTPAdapter):
    """Connects from a given loopback address (any of 127.0.0.0/8 is this machine's)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client(data_dir: Path, source: str | None = None) -> requests.Session:
    """A client that trusts only the server's own certificate (no proxy or CA bundle from the
    environment), records every Set-Cookie header it receives and, given `source`, connects
    from that loopback address."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(data_dir / "tls" / "cert.pem")
    session.hooks["response"].append(_record_cookies)
    if source is not None:
        session.mount("https://", FromAddress(source))
    return session


def session_id(session: requests.Session) -> str:
    value = session.cookies.get(SESSION_COOKIE)
    assert value, "the client holds no session cookie"
    return str(value)


def plant_session_id(session: requests.Session, value: str) -> None:
    """Put a session id into the client's jar, as a fixation attack would into a browser."""
    session.cookies.set(SESSION_COOKIE, value, domain="localhost.local", path="/")


def cookie_attributes(header: str) -> tuple[str, str, dict[str, str]]:
    """(name, value, {lowercased attribute: value}) of one Set-Cookie header."""
    first, *rest = header.split(";")
    name, _, value = first.strip().partition("=")
    attributes = {}
    for part in rest:
        key, _, val = part.strip().partition("=")
        attributes[key.lower()] = val
    return name, value, attributes


# -- forms and sign-in ------------------------------------------------------------------------

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
INPUT = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
ATTRIBUTE = re.compile(r'([\w-]+)="([^"]*)"')
LINK = re.compile(r'\b(?:href|action|src|formaction)="([^"]*)"', re.IGNORECASE)


def csrf_token(page: str) -> str:
    found = CSRF_INPUT.search(page)
    assert found, "no CSRF token in the page"
    return found.group(1)


FORM = re.compile(r"<form\b.*?</form>", re.IGNORECASE | re.DOTALL)


def hidden_inputs(page: str, field: str) -> dict[str, str]:
    """The hidden inputs of the page's form that has an input named `field`, as a browser
    would post them (HTML-unescaped)."""
    forms = [form for form in FORM.findall(page) if f'name="{field}"' in form]
    assert len(forms) == 1, f"{len(forms)} forms with a {field} field"
    values = {}
    for tag in INPUT.findall(forms[0]):
        attributes = {k.lower(): html.unescape(v) for k, v in ATTRIBUTE.findall(tag)}
        if attributes.get("type") == "hidden" and "name" in attributes:
            values[attributes["name"]] = attributes.get("value", "")
    return values


def links(page: str) -> list[str]:
    """Every href, action and src of a page, HTML-unescaped."""
    return [html.unescape(value) for value in LINK.findall(page)]


def totp_now(seed: str) -> str:
    """The current TOTP code of a base32 seed (RFC 6238: SHA-1, 30 s, 6 digits), taken with at
    least 3 s of its period left so that the server checks it in the same period."""
    remaining = 30 - time.time() % 30
    if remaining < 3:
        time.sleep(remaining + 0.1)
    counter = int(time.time() // 30)
    key = b32decode(seed.upper() + "=" * (-len(seed) % 8))
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def post_password(
    server: Server, session: requests.Session, email: str, query: str = ""
) -> requests.Response:
    """The sign-in form, filled in and sent as a browser would (its hidden fields included);
    `query` goes on the page's URL (e.g. "?next=...")."""
    url = f"{server.url}{SIGN_IN}{query}"
    page = session.get(url, timeout=30)
    assert page.status_code == 200, page.status_code
    data = {**hidden_inputs(page.text, "password"), "login": email, "password": PASSWORD}
    return session.post(
        url, data=data, headers={"Origin": server.url}, allow_redirects=False, timeout=30
    )


def post_totp(server: Server, session: requests.Session, seed: str) -> requests.Response:
    """The second step of a sign-in: the TOTP form, filled in with the current code."""
    url = f"{server.url}/accounts/2fa/authenticate/"
    page = session.get(url, timeout=30)
    assert page.status_code == 200, page.status_code
    data = {**hidden_inputs(page.text, "code"), "code": totp_now(seed)}
    return session.post(
        url, data=data, headers={"Origin": server.url}, allow_redirects=False, timeout=30
    )


def sign_in(
    server: Server,
    session: requests.Session,
    email: str,
    *,
    totp_seed: str | None = None,
) -> requests.Session:
    """Sign in through the real forms (and the TOTP step when a seed is given)."""
    response = post_password(server, session, email)
    assert response.status_code == 302, response.text[:500]
    if totp_seed is not None:
        assert response.headers["Location"].startswith("/accounts/2fa/authenticate/")
        response = post_totp(server, session, totp_seed)
        assert response.status_code == 302, response.text[:500]
    assert not response.headers["Location"].startswith(SIGN_IN), response.headers["Location"]
    return session


def signed_in(server: Server, data_dir: Path, sid: str, path: str = "/dashboards/") -> bool:
    """Whether a bare client holding only this session id gets `path` (True) or is sent to
    the sign-in page (False)."""
    response = client(data_dir).get(
        f"{server.url}{path}",
        headers={"Cookie": f"{SESSION_COOKIE}={sid}"},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code == 200:
        return True
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"].startswith(SIGN_IN), response.headers["Location"]
    return False


def stays_on_site(location: str, origin: str) -> bool:
    """Whether a browser following this Location stays on `origin` (https://host:port).

    Strict: backslashes, whitespace and control characters anywhere are refused outright, since
    browsers read them in ways urljoin does not (\\ as /, tabs and newlines dropped)."""
    if any(ch in location for ch in "\\ ") or any(ord(ch) < 0x20 for ch in location):
        return False
    if location.startswith("//"):
        return False
    target = urlsplit(urljoin(origin + SIGN_IN, location))
    return target.scheme == "https" and target.netloc == urlsplit(origin).netloc


# -- the URL configuration --------------------------------------------------------------------


def url_patterns(
    resolver: URLResolver | None = None, prefix: str = ""
) -> list[tuple[str, URLPattern]]:
    """(route, pattern) of every URL pattern, the route written as Django's ResolverMatch.route
    writes it (an included regex loses its leading ^)."""
    found = []
    for pattern in (resolver or get_resolver()).url_patterns:
        part = str(pattern.pattern)
        route = prefix + part.removeprefix("^") if prefix else part
        if isinstance(pattern, URLResolver):
            found.extend(url_patterns(pattern, route))
        else:
            found.append((route, pattern))
    return found


def accepted_methods(view: Any) -> set[str]:
    """The HTTP methods a view admits before its own code runs: a class-based view's handler
    methods, or the list given to require_http_methods (and require_GET/POST/safe) anywhere in
    its decorator chain; {"*"} for a view that admits any method."""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        return {m.upper() for m in view_class.http_method_names if hasattr(view_class, m)}
    function = view
    while function is not None:
        code = getattr(function, "__code__", None)
        if code is not None and "request_method_list" in code.co_freevars:
            cell = function.__closure__[code.co_freevars.index("request_method_list")]
            return {str(m).upper() for m in cell.cell_contents}
        function = getattr(function, "__wrapped__", None)
    return {"*"}


def post_routes() -> dict[str, URLPattern]:
    """Every route whose view admits POST (first pattern of each route)."""
    routes: dict[str, URLPattern] = {}
    for route, pattern in url_patterns():
        methods = accepted_methods(pattern.callback)
        if ("POST" in methods or "*" in methods) and route not in routes:
            routes[route] = pattern
    return routes


CONVERTER = re.compile(r"<(?:(\w+):)?\w+>")
SAMPLES = {"uuid": str(uuid.UUID(int=1)), "int": "1", "str": "x", "slug": "x", "path": "x"}


def sample_path(route: str) -> str | None:
    """A path that reaches a `path()` route, with made-up values (None for a regex route)."""
    if route.startswith("^") or "(?P<" in route:
        return None
    return "/" + CONVERTER.sub(lambda m: SAMPLES.get(m.group(1) or "str", "x"), route)


# -- the server's database --------------------------------------------------------------------

# Rows a refused request may still touch: the sessions themselves.
VOLATILE_TABLES = {"django_session", "usersessions_usersession"}


def _connect(data_dir: Path) -> sqlite3.Connection:
    path = data_dir / "dashvault.sqlite3"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=20)


def database_fingerprint(data_dir: Path) -> dict[str, str]:
    """A digest per table of every row of the server's SQLite database (read only), except
    the volatile tables above."""
    connection = _connect(data_dir)
    try:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
            if name not in VOLATILE_TABLES and not name.startswith("sqlite_")
        ]
        digests = {}
        for table in tables:
            digest = hashlib.sha256()
            # Table names come from sqlite_master, not from outside input.
            for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):  # noqa: S608
                digest.update(repr(row).encode())
            digests[table] = digest.hexdigest()
        return digests
    finally:
        connection.close()


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))


def session_stored(data_dir: Path, sid: str) -> bool:
    """Whether the server's database still holds a session with this id."""
    connection = _connect(data_dir)
    try:
        row = connection.execute(
            "SELECT 1 FROM django_session WHERE session_key = ?", (sid,)
        ).fetchone()
        return row is not None
    finally:
        connection.close()
