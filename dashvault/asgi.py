"""The served application: one ASGI entry point on one HTTPS origin.

HTTP goes to Django's *WSGI* handler on a thread pool (a2wsgi), not Django's ASGI handler:
measured here, Django behind its ASGI handler served a trivial view at about a fifth of its
WSGI rate, because every request hops threads several times. Websockets (live dashboards,
dashvault.live.consumers) are dispatched from this same router on the event loop, so pages,
API and sockets share one origin and one certificate.

Before dispatch the router fixes the client address and scheme once for everyone: from the
connection, or from X-Forwarded-For / X-Forwarded-Proto only when the connection comes from a
trusted proxy (dashvault.lib.clientip).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashvault.settings")

from a2wsgi import WSGIMiddleware  # noqa: E402  (settings module must be set first)
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from dashvault.lib.clientip import client_address, is_trusted  # noqa: E402
from dashvault.live import warm  # noqa: E402

Scope = dict[str, Any]


def resolve_client(scope: Scope, trusted: tuple[Any, ...]) -> Scope:
    """A copy of `scope` with `client` and `scheme` as seen through trusted proxies."""
    peer, port = scope.get("client") or ("", 0)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    scope = dict(
        scope, client=(client_address(peer, headers.get("x-forwarded-for"), trusted), port)
    )
    if is_trusted(peer, trusted):
        proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        if proto == "https":
            scope["scheme"] = "wss" if scope["type"] == "websocket" else "https"
    return scope


class Router:
    def __init__(self) -> None:
        self.http = WSGIMiddleware(get_wsgi_application(), workers=settings.HTTP_THREADS)  # type: ignore[arg-type]
        self.trusted = settings.TRUSTED_PROXIES
        from dashvault.live.consumers import websocket_application  # needs the app registry

        self.websocket = websocket_application()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        scope = resolve_client(scope, self.trusted)
        if scope["type"] == "http":
            dashboard_id = warm.data_request(scope)
            if dashboard_id is not None:
                if await warm.answer(scope, dashboard_id, send):
                    return None  # a session Django admitted moments ago (live.admission)
                send = warm.capturing(send)
            return await self.http(scope, receive, send)  # type: ignore[arg-type]  # a plain dict scope
        if scope["type"] == "websocket":
            return await self.websocket(scope, receive, send)
        return None  # lifespan is off in `dashvault serve`; nothing else is served


application = Router()
