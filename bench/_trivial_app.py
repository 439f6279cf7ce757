"""The reference of bench/dashboard_api.py: a trivial Django JSON view served as dashvault is.

Not a benchmark (helpers start with "_"): bench/dashboard_api.py starts it as a server process.

    python bench/_trivial_app.py --handler wsgi --port P --cert C --key K [--threads N]

--handler wsgi: dashvault's own ASGI entry point (dashvault.asgi.Router: Django's WSGI handler
    on an a2wsgi thread pool) built around a minimal Django settings module with one view;
--handler asgi: Django's own ASGI handler (django.core.asgi), for comparison.
Both run under uvicorn with the settings of `dashvault serve` (dashvault.server.run.serve):
TLS with the same certificate and ciphers, no lifespan, no server header, no proxy headers.
Keep the uvicorn.Config below in step with that function.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import types
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path


def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "service": "trivial"})


urlpatterns = [path("trivial/", trivial)]


def configure(threads: int) -> None:
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=["localhost", "127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
        USE_I18N=False,
        # Read by dashvault.asgi.Router, as from dashvault's settings.
        HTTP_THREADS=threads,
        TRUSTED_PROXIES=(),
    )


def application_for(handler: str) -> Any:
    if handler == "wsgi":
        # dashvault.asgi builds its Router at import. The settings above are configured
        # already, so that Router wraps the minimal Django (its DJANGO_SETTINGS_MODULE default
        # is not used). Its websocket side (dashvault.live) needs dashvault's whole app
        # registry, and this app serves no websockets: a stand-in refuses them, the HTTP path
        # (resolve_client, then Django's WSGI handler on the a2wsgi pool) is dashvault's own.
        sys.modules["dashvault.live.consumers"] = _no_websockets()
        from a2wsgi import WSGIMiddleware

        from dashvault.asgi import Router, application

        assert isinstance(application, Router) and isinstance(application.http, WSGIMiddleware)  # noqa: S101
        return application
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def _no_websockets() -> types.ModuleType:
    module = types.ModuleType("dashvault.live.consumers")

    async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.close", "code": 1008})

    module.websocket_application = lambda: refuse  # type: ignore[attr-defined]
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", choices=("wsgi", "asgi"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--threads", type=int, default=8, help="dashvault's HTTP_THREADS")
    args = parser.parse_args()
    configure(args.threads)

    import uvicorn

    from dashvault.server.run import TLS12_CIPHERS

    config = uvicorn.Config(
        application_for(args.handler),
        host="127.0.0.1",
        port=args.port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        ssl_ciphers=TLS12_CIPHERS,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    print(f"trivial view ({args.handler}) on https://127.0.0.1:{args.port}/trivial/", flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
