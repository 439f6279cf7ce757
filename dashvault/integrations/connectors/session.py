"""Requests on behalf of one integration: the SSRF-safe client (lib.http) with its
authentication (an API key header, a bearer token, basic, or OAuth2 client credentials).

Security contract: the secret is held in memory for the length of one sync or connection test
only; it goes into a request header (or the OAuth2 token request's body) and nowhere else:
never into a URL, an error message or a log line. An OAuth2 access token is fetched at the
first request and again once when the service answers 401 (expired).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from dashvault.lib import http

MAX_PAGES = 10_000  # a runaway pagination stops here


class SyncError(Exception):
    """A sync or test that cannot go on; the message is for people (no secret, no body)."""


@dataclass
class Session:
    config: dict[str, Any]
    secret: str
    policy: http.Policy
    sleep: Callable[[float], None] | None = None
    state: str = ""
    _token: str = field(default="", repr=False)

    def get_json(self, url: str, *, params: dict[str, Any] | None = None) -> Any:
        return self._json(self.request("GET", _with_params(url, params)))

    def post_json(self, url: str, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        return self._json(self.request("POST", url, body=body, headers=headers))

    def get_text(self, url: str) -> str:
        response = self.request("GET", url)
        try:
            return response.body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SyncError("The file is not UTF-8 text.") from exc

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.Response:
        # The credential goes only to the service's own origin: a next-page link elsewhere is
        # fetched without it (and lib.http drops it on a redirect elsewhere).
        own = http.origin(url) == http.origin(str(self.config.get("url", "")))
        send = {"Accept": "application/json", **(headers or {})}
        if own:
            send.update(self._auth_headers())
        response = self._send(method, url, body, send)
        if own and response.status == 401 and self.config.get("auth") == "oauth2":
            self._token = ""  # expired or revoked: one new token, one more try
            send.update(self._auth_headers())
            response = self._send(method, url, body, send)
        if response.status == 401 or response.status == 403:
            raise SyncError(
                f"The service refused the credentials (HTTP {response.status}). "
                "Check the API key or token."
            )
        if response.status >= 400:
            raise SyncError(f"The service answered HTTP {response.status}.")
        return response

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> http.Response:
        extra: dict[str, Any] = {} if self.sleep is None else {"sleep": self.sleep}
        if self.config.get("auth") == "header":
            extra["secret_headers"] = (str(self.config.get("header_name") or "X-API-Key"),)
        try:
            return http.request(
                method, url, policy=self.policy, headers=headers, body=body, **extra
            )
        except http.OutboundError as exc:
            raise SyncError(str(exc)) from exc

    def _json(self, response: http.Response) -> Any:
        try:
            return response.json()
        except http.OutboundError as exc:
            raise SyncError("The service's answer is not valid JSON.") from exc

    def _auth_headers(self) -> dict[str, str]:
        kind, secret = self.config.get("auth", "none"), self.secret
        if kind == "header":
            return {str(self.config.get("header_name") or "X-API-Key"): secret}
        if kind == "bearer":
            return {"Authorization": f"Bearer {secret}"}
        if kind == "basic":
            pair = f"{self.config.get('username', '')}:{secret}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if kind == "oauth2":
            if not self._token:
                self._token = self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def _fetch_token(self) -> str:
        """OAuth2 client credentials (RFC 6749 4.4): client id and secret by HTTP basic."""
        pair = f"{self.config.get('client_id', '')}:{self.secret}".encode()
        form = {"grant_type": "client_credentials"}
        if self.config.get("scope"):
            form["scope"] = str(self.config["scope"])
        response = self._send(
            "POST",
            str(self.config.get("token_url", "")),
            urlencode(form).encode(),
            {
                "Authorization": "Basic " + base64.b64encode(pair).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        if response.status != 200:
            raise SyncError(
                f"The token endpoint refused the client credentials (HTTP {response.status})."
            )
        token = self._json(response).get("access_token") if response.body else None
        if not isinstance(token, str) or not token:
            raise SyncError("The token endpoint's answer holds no access_token.")
        return token


def _with_params(url: str, params: dict[str, Any] | None) -> str:
    if not params:
        return url
    clean = {k: v for k, v in params.items() if v is not None and v != ""}
    return url + ("&" if "?" in url else "?") + urlencode(clean) if clean else url


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path ("data.items", "properties.amount"); "" is `data` itself.
    Only ASCII digits index a list: "²".isdigit() is true too, but int("²") raises."""
    for part in filter(None, path.split(".")):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isascii() and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data
