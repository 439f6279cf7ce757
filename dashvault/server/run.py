"""`dashvault serve`: HTTPS (and WSS) with uvicorn, plus a plain-HTTP port that only redirects."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from dashvault.live import UVICORN_WS_OPTIONS
from dashvault.server.tls import ensure_self_signed

# Modern TLS only: 1.2 with forward-secret AEAD suites, and 1.3 (whose suites are all strong).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def tls_files() -> tuple[str, str]:
    """The operator's certificate and key, or the embedded self-signed pair (made once)."""
    cert, key = settings.TLS_CERT, settings.TLS_KEY
    if cert and key:
        return cert, key
    if not settings.EMBEDDED:
        raise SystemExit("DASHVAULT_TLS_CERT and DASHVAULT_TLS_KEY are required in production")
    cert_path = Path(settings.DATA_DIR) / "tls" / "cert.pem"
    key_path = Path(settings.DATA_DIR) / "tls" / "key.pem"
    hosts = [h for h in settings.ALLOWED_HOSTS if h != "*"] or ["localhost"]
    if ensure_self_signed(cert_path, key_path, hosts):
        print(f"Generated a self-signed certificate: {cert_path}", flush=True)
    return str(cert_path), str(key_path)


def redirect_app(https_port: int) -> Any:
    """ASGI app for the plain-HTTP port: every page request is redirected to HTTPS, API calls
    are refused; nothing is served."""
    fallback = urlsplit(settings.PUBLIC_URL).hostname or "localhost"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope.get("raw_path", b"/").decode("latin-1") or "/"
        if path.startswith("/api/"):
            # An API client that sent its token in clear must hear so, not be followed to
            # HTTPS as if nothing happened (ASVS V4.1.2); the token should be revoked.
            body = b'{"detail": "HTTPS only: this request went in clear. Revoke its token."}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        headers = dict(scope.get("headers", []))
        host, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
        if not host or not validate_host(host, settings.ALLOWED_HOSTS):
            host = fallback  # never redirect to a host we do not serve
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = "" if https_port == 443 else f":{https_port}"
        query = scope.get("query_string", b"").decode("latin-1")
        location = f"https://{host}{port}{path}" + (f"?{query}" if query else "")
        await send(
            {
                "type": "http.response.start",
                "status": 308,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    return app


class TlsConfig(uvicorn.Config):
    """uvicorn's config with TLS 1.2 as an explicit floor (the cipher list alone would also
    exclude 1.0/1.1 today, but would stop doing so silently if it were ever widened)."""

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2


class _Server(uvicorn.Server):
    """uvicorn's server, with `on_shutdown` run once it has stopped serving: on SIGTERM uvicorn
    re-raises the signal with its default action after shutting down, which ends the process
    before any `finally` of the caller could run."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.on_shutdown is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.on_shutdown)


def serve(
    host: str,
    port: int,
    redirect_port: int | None,
    on_shutdown: Callable[[], None] | None = None,
) -> None:
    cert, key = tls_files()
    main = TlsConfig(
        "dashvault.asgi:application",
        host=host,
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_ciphers=TLS12_CIPHERS,
        lifespan="off",
        server_header=False,
        proxy_headers=False,  # the router trusts X-Forwarded-* only from configured proxies
        log_level="warning",
        timeout_graceful_shutdown=5,
        **UVICORN_WS_OPTIONS,  # type: ignore[arg-type]  # a dict of uvicorn keyword options
    )
    if redirect_port:
        plain = uvicorn.Config(
            redirect_app(port),
            host=host,
            port=redirect_port,
            lifespan="off",
            server_header=False,
            log_level="warning",
        )
        # A daemon thread: uvicorn installs signal handlers only in the main thread, so the
        # HTTPS server below owns Ctrl-C / SIGTERM and the redirector dies with the process.
        threading.Thread(
            target=uvicorn.Server(plain).run, name="http-redirect", daemon=True
        ).start()
    print(f"dashvault serving https://{_display(host)}:{port}/", flush=True)
    _Server(main, on_shutdown).run()


def _display(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  (display only)
        return "localhost"
    return f"[{host}]" if ":" in host else host
