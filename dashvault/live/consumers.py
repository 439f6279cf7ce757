"""The websocket endpoints: one screen showing one dashboard, live.

- `/ws/dashboards/<uuid>/`: a signed-in person's screen (the session cookie).
- `/ws/kiosk/<token>/<uuid>/`: a TV on a kiosk link (the link's token, never a session).

Security contract, checked in this order before anything about a dashboard is sent:
1. Path: exactly one of the two above; anything else is refused at the handshake (HTTP 403).
2. Origin (cross-site websocket hijacking): browsers send cookies with a websocket handshake
   from any site, so the Origin header must be this very origin, scheme, host and port, as
   Django's CSRF check demands of a form post (`same_origin`), and name a host in
   ALLOWED_HOSTS (Channels' AllowedHostsOriginValidator). Otherwise refused at the handshake.
3. Who: for a session, the cookie must resolve to an active user through Django's own
   `auth.get_user` (the session store, the backend's is_active check, the session-hash check
   that ends sessions on a password change), within the absolute session lifetime, with a
   second factor enrolled where the org requires one (the rules of accounts.middleware), from
   an address the org's IP filter admits. For a kiosk token, kiosk.entry: the guessing guard
   (4429 while the address is blocked), the live link (4410 for an unknown, revoked, rotated
   or expired one alike, counted against the address), the IP filters (4403).
4. Policy: the principal → access_dashboard, the one path every view takes. Another org's
   dashboard, one not granted (or not on the link) and a missing one all get 4404.
Failures of 3 and 4 complete the handshake, send {"type": "closed", "reason": ...} and close
with a code the page acts on (4401 sign in again, 4403 forbidden, 4404 not found, 4410 link
ended, 4429 blocked); no name, count or data is sent. An admitted screen gets {"type": "data",
...dashboard_data} at once and after every commit that changes the dashboard; it is closed
with 4401 when its session or user ends (or the session reaches its absolute lifetime), with
4410 when its kiosk link is revoked, rotated or expires, with 4001 when the link's settings
change (the TV reloads), and with 4000 when its access may have changed (it reconnects
through this same check). Keepalive pings are uvicorn's.

Why a plain ASGI handler rather than a Channels consumer behind AuthMiddlewareStack: what
matters is thousands of idle screens per process and a thousand reconnecting at once. Measured
under uvicorn per idle socket: a bare ASGI app 20.7 KiB, a Channels consumer 23.6 KiB, the
consumer behind AuthMiddlewareStack 27.8 KiB (the stack keeps three scope copies, the session
and the user alive for the socket's lifetime); and the stack resolves the user in a thread hop
of its own before the policy check needs another. Here one hop does cookie → session → user
→ principal → policy with Django's functions, then the frame keeps only the `Screen`. Updates
are written through the server's own `send` (no wrapper in between), so the fan-out pays
nothing per screen beyond the write itself. Channels still checks the Origin's host
(AllowedHostsOriginValidator).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.http.cookie import parse_cookie
from django.utils import timezone

from dashvault.accounts.middleware import STARTED, needs_mfa_enrolment
from dashvault.dashboards.models import Dashboard
from dashvault.grants.actions import active_grant, record_view
from dashvault.kiosk import entry
from dashvault.live import publish
from dashvault.live.hub import (
    FORBIDDEN,
    LINK_ENDED,
    NOT_FOUND,
    RECONNECT,
    SIGNED_OUT,
    TOO_MANY,
    UNAVAILABLE,
    Screen,
    closed_text,
    hub,
    kiosk_owner,
    session_digest,
    user_owner,
)
from dashvault.policy import guard, ipfilter
from dashvault.policy.access import access_dashboard
from dashvault.policy.principal import Principal, principal_from_request

logger = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
DASHBOARD_PATH = re.compile(rf"/ws/dashboards/(?P<dashboard>{UUID_PATTERN})/")
KIOSK_PATH = re.compile(
    rf"/ws/kiosk/(?P<token>[A-Za-z0-9_-]{{1,100}})/(?P<dashboard>{UUID_PATTERN})/"
)
DASHBOARD = "dashvault.dashboard"  # the scope keys this module adds
TOKEN = "dashvault.kiosk_token"  # noqa: S105  (a scope key, not a secret)


@dataclass(frozen=True, slots=True)
class Grant:
    dashboard: Dashboard
    owner: str
    session: str | None
    expires_in: float | None
    expiry: tuple[int, str] = (SIGNED_OUT, "expired")


@dataclass(frozen=True, slots=True)
class Refusal:
    code: int
    reason: str


def authorize(cookie: str, ip: str | None, dashboard_id: str) -> Grant | Refusal:
    """Steps 3 and 4 of the module's contract, in one trip to a worker thread."""
    request = HttpRequest()  # the one request path takes a request: give it this socket's
    request.META["REMOTE_ADDR"] = ip
    key = parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME)
    session = request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = request.user = auth.get_user(request)
    principal = principal_from_request(request)  # None: anonymous or deactivated
    if principal is None:
        return Refusal(SIGNED_OUT, "signed_out")
    # The absolute lifetime, as accounts.middleware.SessionPolicyMiddleware counts it.
    started = session.get(STARTED) or int(time.time())
    expires_in = started + settings.SESSION_ABSOLUTE_SECONDS - time.time()
    if expires_in <= 0:
        return Refusal(SIGNED_OUT, "signed_out")
    if needs_mfa_enrolment(user):
        return Refusal(FORBIDDEN, "mfa_required")
    if principal.org is not None:
        try:
            ipfilter.check_address(principal.org, ip, actor=user, actor_kind="user")
        except ipfilter.AddressRefused:
            return Refusal(FORBIDDEN, "address_not_allowed")
    grant = None
    expiry = (SIGNED_OUT, "expired")
    if principal.kind == "staff":
        # Staff reach a customer's dashboard only inside an active access grant for its org;
        # the socket ends with the grant, and opening it is logged for the customer.
        org_id = Dashboard.objects.filter(pk=dashboard_id).values_list("org_id", flat=True).first()
        grant = active_grant(principal.user, org_id) if org_id else None
        if grant is None:
            return Refusal(NOT_FOUND, "not_found")
        principal = Principal("grant", principal.user, grant.org, None, ip, grant)
        assert grant.expires_at is not None
        grant_left = (grant.expires_at - timezone.now()).total_seconds()
        if grant_left < expires_in:
            # The grant ends first: the page reconnects and meets the refusal (4404), rather
            # than being told its session ended.
            expires_in, expiry = grant_left, (RECONNECT, "access_changed")
    try:
        dashboard = access_dashboard(principal, dashboard_id)
    except (Http404, PermissionDenied):
        return Refusal(NOT_FOUND, "not_found")
    if grant is not None:
        record_view(grant, "socket", target=dashboard, ip=ip)
    return Grant(
        dashboard, user_owner(user.pk), session_digest(session.session_key), expires_in, expiry
    )


def authorize_kiosk(token: str, ip: str | None, dashboard_id: str) -> Grant | Refusal:
    """A kiosk screen's admission: kiosk.entry (guard, link, IP filter), then the same policy
    check as any screen. The socket authenticates with the link alone, never a session."""
    try:
        principal = entry.enter(token, ip, source="kiosk_ws")
    except guard.Blocked:
        return Refusal(TOO_MANY, "blocked")
    except entry.LinkInvalid:
        return Refusal(LINK_ENDED, "link_invalid")
    except ipfilter.AddressRefused:
        return Refusal(FORBIDDEN, "address_not_allowed")
    try:
        dashboard = access_dashboard(principal, dashboard_id)
    except (Http404, PermissionDenied):
        return Refusal(NOT_FOUND, "not_found")
    expires_at = principal.link.expires_at
    expires_in = (expires_at - timezone.now()).total_seconds() if expires_at else None
    owner = kiosk_owner(principal.link.pk)
    return Grant(dashboard, owner, None, expires_in, (LINK_ENDED, "link_expired"))


async def _snapshot(dashboard: Dashboard) -> str:
    return await database_sync_to_async(publish.render)(dashboard)


async def resync(dashboard_ids: list[str]) -> None:
    """After the Redis subscription came back: updates may have been missed, send afresh."""
    for dashboard_id in dashboard_ids:
        try:
            text = await database_sync_to_async(publish.render_by_id)(dashboard_id)
        except Exception:
            logger.exception("live: resync of dashboard %s failed", dashboard_id)
            continue
        if text is not None:
            hub.deliver(dashboard_id, text)


async def dashboard_socket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The inner application, behind the path and origin checks."""
    if (await receive())["type"] != "websocket.connect":
        return
    client = scope.get("client") or (None, 0)
    authorized_at = time.monotonic()  # before the database is read: see Hub.add
    if TOKEN in scope:
        verdict = await database_sync_to_async(authorize_kiosk)(
            scope[TOKEN], client[0], scope[DASHBOARD]
        )
    else:
        cookie = b"; ".join(v for k, v in scope["headers"] if k == b"cookie").decode("latin-1")
        verdict = await database_sync_to_async(authorize)(cookie, client[0], scope[DASHBOARD])
    await send({"type": "websocket.accept"})
    if isinstance(verdict, Refusal):
        await send({"type": "websocket.send", "text": closed_text(verdict.reason)})
        await send({"type": "websocket.close", "code": verdict.code})
        return

    # Registered before the snapshot is read: an update committing meanwhile is not missed.
    screen = Screen(send, str(verdict.dashboard.pk), verdict.owner, verdict.session)
    hub.add(
        screen, authorized_at=authorized_at, expires_in=verdict.expires_in, expiry=verdict.expiry
    )
    try:
        await _prime(screen, verdict.dashboard)
        del verdict  # the long wait below keeps only the screen alive
        # Nothing to read from the client; wait for it (or our close) to end the socket.
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        hub.discard(screen)


async def _prime(screen: Screen, dashboard: Dashboard) -> None:
    """Send the dashboard's current data to a registered screen, then what arrived since."""
    if settings.REDIS_URL:
        await hub.subscribe(settings.REDIS_URL, resync)
    first: dict[str, Any] | None = None
    try:
        text = await hub.snapshot(screen.dashboard, partial(_snapshot, dashboard))
        first = {"type": "websocket.send", "text": text}
    except Exception:
        logger.exception("live: snapshot of dashboard %s failed", screen.dashboard)
        hub.close(screen, UNAVAILABLE, "unavailable")
    # Updates delivered meanwhile wait in screen.pending; run sends them after the snapshot.
    await screen.run(first)


def same_origin(scope: dict[str, Any]) -> bool:
    """Whether the Origin header is exactly the origin the client connected to."""
    origin = host = None
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    if not origin or not host:
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return origin.lower() == f"{scheme}://{host}".lower()


async def refuse(receive: Any, send: Any) -> None:
    """Refuse the handshake: the server answers HTTP 403 and nothing runs."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close"})


def websocket_application() -> ASGIApp:
    """The ASGI application for every websocket dashvault serves (dashvault.asgi routes to it;
    the scope's client and scheme are already resolved through trusted proxies there)."""
    inner = AllowedHostsOriginValidator(dashboard_socket)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        match = DASHBOARD_PATH.fullmatch(path) or KIOSK_PATH.fullmatch(path)
        if match is None or not same_origin(scope):
            return await refuse(receive, send)
        scope[DASHBOARD] = match["dashboard"]
        if "token" in match.groupdict():
            scope[TOKEN] = match["token"]
        await inner(scope, receive, send)

    return app
