"""A real OpenID provider on loopback for the SSO tests: oidc-provider-mock served over HTTPS
with a certificate from a throwaway CA (trustme), in a thread of the test process.

The same provider answers as Google (at its root) and as an Azure AD tenant (mounted under
`/<tenant>/v2.0`, the shape of Microsoft's tenant-specific authority), so dashvault's settings
point SSO_GOOGLE_URL and SSO_AZURE_URL at it. dashvault's outbound `requests` trust the CA
through REQUESTS_CA_BUNDLE, which `requests` reads at call time.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import trustme
import werkzeug.serving
from oidc_provider_mock import app as oidc_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware

TENANT = "6f1c2b7e-1d7a-4c1e-9a55-0d3a3f9b2c11"


@dataclass
class Provider:
    url: str  # https://127.0.0.1:PORT
    ca_file: Path
    tenant: str

    @property
    def azure_url(self) -> str:
        return f"{self.url}/{{tenant}}/v2.0"

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """Create or replace a person at the provider (the claims go into the ID token)."""
        response = requests.put(
            f"{self.url}/users/{urllib.parse.quote(sub)}",
            data=json.dumps(claims),
            headers={"Content-Type": "application/json"},
            verify=str(self.ca_file),
            timeout=10,
        )
        response.raise_for_status()

    def authorize(self, authorize_url: str, sub: str) -> str:
        """Act as the person at the provider: approve `authorize_url` as `sub`; returns the
        redirect back to dashvault (with code and state)."""
        response = requests.post(
            authorize_url,
            data={"sub": sub, "action": "approve"},
            verify=str(self.ca_file),
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text[:500]
        return str(response.headers["Location"])


@contextmanager
def running_provider(tmp_dir: Path, tenant: str = TENANT) -> Iterator[Provider]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_dir / "oidc-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    application = oidc_app()
    mounted = DispatcherMiddleware(application, {f"/{tenant}/v2.0": application})
    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, mounted, threaded=True, ssl_context=context
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield Provider(f"https://127.0.0.1:{server.server_port}", ca_file, tenant)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def path_and_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


CALLBACK_RE = re.compile(r"/accounts/oidc/(?P<provider>[0-9a-f-]{36})/login/callback/")
