"""The router's warm path for `GET /dashboards/<id>/data/` (see live.admission)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http import parse_cookie
from django.http.request import split_domain_port, validate_host

from dashvault.live.admission import admissions
from dashvault.live.hub import hub, session_digest

DATA_PATH = re.compile(
    r"/dashboards/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/data/"
)
# Headers of Django's answer that belong to that one response, not to every warm answer.
NOT_REPLAYED = {b"set-cookie", b"content-length", b"date", b"server"}

Send = Callable[[dict[str, Any]], Awaitable[None]]


def data_request(scope: dict[str, Any]) -> str | None:
    """The dashboard id of a plain HTTPS GET of its data endpoint, else None."""
    if scope["method"] != "GET" or scope["scheme"] != "https" or scope.get("query_string"):
        return None
    match = DATA_PATH.fullmatch(scope["path"])
    return match.group(1) if match else None


async def answer(scope: dict[str, Any], dashboard_id: str, send: Send) -> bool:
    """Answer from an admission if there is a valid one (True); else Django must (False)."""
    headers = admissions.headers
    if headers is None:
        return False  # Django has not answered this endpoint yet: no headers to replay
    if settings.REDIS_URL:
        if not _listening():
            return False
    elif not settings.EMBEDDED:
        # Production without Redis may run several processes, and revocations would reach
        # only the process where they happened: every read goes through Django.
        return False
    cookie = host = ""
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookie = f"{cookie}; {value.decode('latin-1')}" if cookie else value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False  # Django answers 400, as for any request
    digest = session_digest(parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME))
    address = (scope.get("client") or ("", 0))[0]
    body = admissions.lookup(digest, dashboard_id, address) if digest else None
    if body is None:
        return False
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return True


def capturing(send: Send) -> Send:
    """Wrap `send` for Django's answer to a data request: keep its headers for warm answers."""

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] == 200:
            admissions.headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower() not in NOT_REPLAYED
            ]
        await send(message)

    return wrapped


def _listening() -> bool:
    """Scale-out: warm answers need this process's subscription to hear revocations."""
    hub.bind()
    if not hub.listening() and hub.subscriber is None:
        from dashvault.live.consumers import resync

        asyncio.get_running_loop().create_task(hub.subscribe(settings.REDIS_URL, resync))
    return hub.listening()
