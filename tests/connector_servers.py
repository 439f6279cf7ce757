"""Fake services for the connector tests: small threaded HTTPS servers on loopback that speak
the public API shapes of a generic JSON REST API, a CSV export, HubSpot, Pipedrive and
Salesforce.

A `FakeService` is one server (HTTPS with a certificate from a throwaway `trustme` CA, or plain
HTTP): it records every request (method, path and query, headers, body) and every connection it
accepts, and answers each request with, in order: the first matching rule (`when`), the next
scripted one-shot answer for the path (`script`), the route for the path (`route`), or 404.
The API classes (`RestApi`, `CsvFile`, `HubSpotApi`, `PipedriveApi`, `SalesforceApi`) install
their routes on a service and check authentication the way the real service does.

Slow answers wait for the service's `release` event, at most `SLOW_LIMIT` seconds; `Services`
stops every server and sets every event at teardown.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import trustme

SLOW_LIMIT = 3.0  # seconds: the longest a slow answer holds its thread


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    target: str  # the path and query as sent
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        pairs = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        return {key: values[-1] for key, values in pairs.items()}

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        pairs = parse_qs(self.body.decode(), keep_blank_values=True)
        return {key: values[-1] for key, values in pairs.items()}


Responder = Callable[["Handler", Seen], None]
Predicate = Callable[[Seen], bool]


class Handler(BaseHTTPRequestHandler):
    """Records each request and lets its service answer it."""

    server: _Httpd

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.service.dispatch(self, Seen(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    service: FakeService

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self.service.lock:
            self.service.connections += 1
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed handshakes and clients that gave up (timeouts) are expected here


class FakeService:
    """One running loopback server: its routes, rules and scripted answers, what it saw."""

    def __init__(self, httpd: _Httpd, scheme: str) -> None:
        self.httpd, self.scheme = httpd, scheme
        self.routes: dict[str, Responder] = {}
        self.prefix_routes: dict[str, Responder] = {}
        self.rules: list[tuple[Predicate, Responder]] = []
        self.scripted: dict[str, deque[Responder]] = {}
        self.seen: list[Seen] = []
        self.connections = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def origin(self, host: str = "localhost") -> str:
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str = "/", host: str = "localhost") -> str:
        return self.origin(host) + path

    def route(self, path: str, responder: Responder, *, prefix: bool = False) -> None:
        (self.prefix_routes if prefix else self.routes)[path] = responder

    def when(self, predicate: Predicate, responder: Responder) -> None:
        """Answer every request matching `predicate` with `responder` (before anything else)."""
        self.rules.append((predicate, responder))

    def script(self, path: str, *responders: Responder) -> None:
        """The next requests to `path` get these answers, one each, before its route does."""
        self.scripted.setdefault(path, deque()).extend(responders)

    def requests(self, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if path is None or s.path == path]

    def dispatch(self, handler: Handler, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)
            responder = next((r for p, r in self.rules if p(seen)), None)
            queue = self.scripted.get(seen.path)
            if responder is None and queue:
                responder = queue.popleft()
        if responder is None:
            responder = self.routes.get(seen.path)
        if responder is None:
            matches = [p for p in self.prefix_routes if seen.path.startswith(p)]
            responder = self.prefix_routes[max(matches, key=len)] if matches else None
        (responder or answer(404, b"not found"))(handler, seen)


class Services:
    """Starts services on 127.0.0.1 and stops them all (freeing slow answers) on `close`."""

    def __init__(self, ca: trustme.CA) -> None:
        self.ca = ca
        self.started: list[tuple[FakeService, threading.Thread]] = []

    def start(
        self, *, tls: bool = True, names: tuple[str, ...] = ("localhost", "127.0.0.1")
    ) -> FakeService:
        httpd = _Httpd(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(*names).configure_cert(context)
            # The handshake happens in the handler's thread, not in the accept loop.
            httpd.socket = context.wrap_socket(
                httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        service = FakeService(httpd, "https" if tls else "http")
        httpd.service = service
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self.started.append((service, thread))
        return service

    def close(self) -> None:
        for service, _ in self.started:
            service.release.set()
        for service, thread in self.started:
            service.httpd.shutdown()
            service.httpd.server_close()
            thread.join(timeout=5)


# -- answers -----------------------------------------------------------------------------------


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    """A complete answer with Content-Length."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def reply_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    data: Any,
    headers: dict[str, str] | None = None,
) -> None:
    body = json.dumps(data).encode()
    reply(handler, status, body, {"Content-Type": "application/json", **(headers or {})})


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Responder:
    return lambda handler, _seen: reply(handler, status, body, headers)


def answer_json(status: int, data: Any, headers: dict[str, str] | None = None) -> Responder:
    return lambda handler, _seen: reply_json(handler, status, data, headers)


def slow_answer(body: bytes = b"{}") -> Responder:
    """Waits for the service's release (at most SLOW_LIMIT seconds), then answers."""

    def respond(handler: Handler, _seen: Seen) -> None:
        handler.server.service.release.wait(timeout=SLOW_LIMIT)
        reply(handler, 200, body, {"Content-Type": "application/json"})

    return respond


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    return int(text.removeprefix("offset:"))


# -- a generic JSON REST API -------------------------------------------------------------------


class RestApi:
    """GET ITEMS answers {"data": {"items": [...]}, ...} with the records, filtered by
    `since_param` (records whose `since_field` is >= it), paged as `pagination` says:
    - "none": all at once;
    - "next_link": `links.next` holds the next page's URL (absolute or relative, `?offset=`);
    - "cursor": `meta.next_cursor` holds an opaque cursor, sent back as `?cursor=`;
    - "page": `?page=` from 1 and `?per_page=`; a short page is the last.
    Authentication by `auth`: "header" (X-API-Key), "bearer", "basic" (username:secret) or
    "oauth2": client credentials at TOKEN (HTTP basic client_id:secret, grant_type), each token
    good for `token_uses` API requests, then 401 until a new one is fetched."""

    ITEMS = "/api/v1/items"
    TOKEN = "/oauth/token"

    def __init__(
        self,
        service: FakeService,
        records: list[dict[str, Any]],
        *,
        secret: str,
        auth: str = "header",
        pagination: str = "none",
        page_size: int = 2,
        next_link: str = "absolute",
        username: str = "reporting",
        client_id: str = "dashvault-client",
        token_uses: int = 1000,
    ) -> None:
        self.service, self.records, self.secret = service, records, secret
        self.auth, self.pagination, self.page_size = auth, pagination, page_size
        self.next_link, self.username, self.client_id = next_link, username, client_id
        self.token_uses = token_uses
        self.tokens: dict[str, int] = {}  # token -> API requests left
        self.issued = 0
        self.lock = threading.Lock()
        service.route(self.ITEMS, self._items)
        service.route(self.TOKEN, self._token)

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The integration settings that read this API."""
        config: dict[str, Any] = {
            "url": self.service.url(self.ITEMS),
            "records_path": "data.items",
            "pagination": self.pagination,
            "next_path": "links.next",
            "cursor_path": "meta.next_cursor",
            "cursor_param": "cursor",
            "page_param": "page",
            "page_size_param": "per_page",
            "page_size": self.page_size,
            "auth": self.auth,
            "username": self.username,
            "client_id": self.client_id,
            "token_url": self.service.url(self.TOKEN),
            "mapping": {"timestamp": "day", "value": "amount", "dimension": "region", "id": "id"},
        }
        return {**config, **overrides}

    def api_requests(self) -> list[Seen]:
        return self.service.requests(self.ITEMS)

    def _authorized(self, seen: Seen) -> bool:
        given = seen.headers.get("authorization", "")
        if self.auth == "header":
            return seen.headers.get("x-api-key") == self.secret
        if self.auth == "bearer":
            return given == f"Bearer {self.secret}"
        if self.auth == "basic":
            return given == basic(self.username, self.secret)
        if self.auth == "oauth2":
            token = given.removeprefix("Bearer ")
            with self.lock:
                if self.tokens.get(token, 0) <= 0:
                    return False
                self.tokens[token] -= 1
            return True
        return True

    def _token(self, handler: Handler, seen: Seen) -> None:
        if seen.method != "POST":
            reply_json(handler, 405, {"error": "invalid_request"})
        elif seen.headers.get("authorization") != basic(self.client_id, self.secret):
            reply_json(
                handler,
                401,
                {"error": "invalid_client"},
                {"WWW-Authenticate": 'Basic realm="token"'},
            )
        elif seen.form().get("grant_type") != "client_credentials":
            reply_json(handler, 400, {"error": "unsupported_grant_type"})
        else:
            with self.lock:
                self.issued += 1
                token = f"at-{self.issued}-{'x' * 24}"
                self.tokens[token] = self.token_uses
            reply_json(
                handler, 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            )

    def _items(self, handler: Handler, seen: Seen) -> None:
        if not self._authorized(seen):
            reply_json(
                handler, 401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="x"'}
            )
            return
        query = seen.query
        since = query.get("updated_since")
        records = [r for r in self.records if not since or str(r["updated_at"]) >= since]
        size = self.page_size
        if self.pagination == "none":
            reply_json(handler, 200, {"data": {"items": records}})
        elif self.pagination == "next_link":
            offset = int(query.get("offset", "0"))
            following = None
            if offset + size < len(records):
                params = {"offset": offset + size, **({"updated_since": since} if since else {})}
                following = f"{self.ITEMS}?{urlencode(params)}"
                if self.next_link == "absolute":
                    following = self.service.origin() + following
            reply_json(
                handler,
                200,
                {"data": {"items": records[offset : offset + size]}, "links": {"next": following}},
            )
        elif self.pagination == "cursor":
            offset = _offset(query["cursor"]) if query.get("cursor") else 0
            more = offset + size < len(records)
            reply_json(
                handler,
                200,
                {
                    "data": {"items": records[offset : offset + size]},
                    "meta": {"next_cursor": _cursor(offset + size) if more else None},
                },
            )
        else:  # page
            page, per_page = int(query.get("page", "1")), int(query.get("per_page", "10"))
            start = (page - 1) * per_page
            reply_json(handler, 200, {"data": {"items": records[start : start + per_page]}})


# -- a CSV file by URL -------------------------------------------------------------------------


class CsvFile:
    """GET PATH answers the file as text/csv."""

    PATH = "/exports/sales.csv"

    def __init__(self, service: FakeService, text: str, *, bom: bool = False) -> None:
        self.service = service
        body = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
        service.route(self.PATH, answer(200, body, {"Content-Type": "text/csv; charset=utf-8"}))

    def url(self) -> str:
        return self.service.url(self.PATH)


# -- HubSpot -----------------------------------------------------------------------------------


def iso_millis(when: str) -> int:
    return int(dt.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() * 1000)


class HubSpotApi:
    """CRM v3 search: POST SEARCH with {"limit", "properties", "sorts", "after",
    "filterGroups"} and a private app token (bearer). Answers {"total", "results": [{"id",
    "properties", "createdAt", "updatedAt", "archived"}], "paging": {"next": {"after"}}}; at
    most `page_size` results a page (HubSpot's own cap is 200). Filters on
    hs_lastmodifieddate take milliseconds (GTE, GT, LTE, LT)."""

    SEARCH = "/crm/v3/objects/deals/search"
    ALWAYS = ("hs_object_id", "createdate", "hs_lastmodifieddate")

    def __init__(
        self, service: FakeService, deals: list[dict[str, Any]], *, token: str, page_size: int = 2
    ) -> None:
        self.service, self.deals, self.token, self.page_size = service, deals, token, page_size
        service.route(self.SEARCH, self._search)

    def searches(self) -> list[Seen]:
        return self.service.requests(self.SEARCH)

    def _search(self, handler: Handler, seen: Seen) -> None:
        if seen.method != "POST":
            reply_json(handler, 405, {"status": "error", "message": "Method not allowed"})
            return
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            reply_json(
                handler,
                401,
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "category": "INVALID_AUTHENTICATION",
                },
            )
            return
        try:
            body = seen.json()
        except ValueError:
            reply_json(handler, 400, {"status": "error", "category": "VALIDATION_ERROR"})
            return
        deals = [d for d in self.deals if self._matches(d, body.get("filterGroups") or [])]
        for sort in reversed(body.get("sorts") or []):
            name = sort["propertyName"]
            key = (
                (lambda d, n=name: iso_millis(d["properties"][n]))
                if name.startswith("hs_lastmodifieddate")
                else (lambda d, n=name: str(d["properties"].get(n) or ""))
            )
            deals.sort(key=key, reverse=sort.get("direction") == "DESCENDING")
        limit = min(int(body.get("limit", 10)), 200, self.page_size)
        offset = int(body.get("after") or 0)
        wanted = list(body.get("properties") or []) + list(self.ALWAYS)
        results = [
            {
                "id": deal["id"],
                "properties": {name: deal["properties"].get(name) for name in wanted},
                "createdAt": deal["properties"]["createdate"],
                "updatedAt": deal["properties"]["hs_lastmodifieddate"],
                "archived": False,
            }
            for deal in deals[offset : offset + limit]
        ]
        data: dict[str, Any] = {"total": len(deals), "results": results}
        if offset + limit < len(deals):
            after = str(offset + limit)
            data["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        reply_json(handler, 200, data)

    @staticmethod
    def _matches(deal: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
        if not groups:
            return True
        for group in groups:  # groups are ORed, filters inside one ANDed
            ok = True
            for flt in group.get("filters") or []:
                modified = iso_millis(deal["properties"]["hs_lastmodifieddate"])
                value = int(flt["value"])
                ok = (
                    ok
                    and {
                        "GTE": modified >= value,
                        "GT": modified > value,
                        "LTE": modified <= value,
                        "LT": modified < value,
                    }[flt["operator"]]
                )
            if ok:
                return True
        return False


# -- Pipedrive ---------------------------------------------------------------------------------


class PipedriveApi:
    """API v2: GET DEALS with the token in the x-api-token header, `limit`, `cursor`,
    `updated_since` (RFC 3339, update_time >= it), `status`, `sort_by`, `sort_direction`.
    Answers {"success": true, "data": [...], "additional_data": {"next_cursor": ...}}; at most
    `page_size` deals a page (Pipedrive's own cap is 500)."""

    DEALS = "/api/v2/deals"

    def __init__(
        self, service: FakeService, deals: list[dict[str, Any]], *, token: str, page_size: int = 2
    ) -> None:
        self.service, self.deals, self.token, self.page_size = service, deals, token, page_size
        service.route(self.DEALS, self._deals)

    def deal_requests(self) -> list[Seen]:
        return self.service.requests(self.DEALS)

    def _deals(self, handler: Handler, seen: Seen) -> None:
        if seen.headers.get("x-api-token") != self.token:
            reply_json(
                handler,
                401,
                {"success": False, "error": "unauthorized access", "errorCode": 401},
            )
            return
        query = seen.query
        deals = list(self.deals)
        if query.get("updated_since"):
            deals = [d for d in deals if d["update_time"] >= query["updated_since"]]
        if query.get("status"):
            deals = [d for d in deals if d["status"] == query["status"]]
        if query.get("sort_by"):
            deals.sort(
                key=lambda d: str(d.get(query["sort_by"]) or ""),
                reverse=query.get("sort_direction") == "desc",
            )
        limit = min(int(query.get("limit", "100")), 500, self.page_size)
        offset = _offset(query["cursor"]) if query.get("cursor") else 0
        more = offset + limit < len(deals)
        reply_json(
            handler,
            200,
            {
                "success": True,
                "data": deals[offset : offset + limit],
                "additional_data": {"next_cursor": _cursor(offset + limit) if more else None},
            },
        )


# -- Salesforce --------------------------------------------------------------------------------


class SalesforceApi:
    """OAuth2 client credentials at TOKEN (HTTP basic client_id:secret), then SOQL at QUERY
    (?q=SELECT ...) with the bearer token: {"totalSize", "done", "nextRecordsUrl", "records":
    [{"attributes": {...}, ...}]}, `batch` records a page; the rest at the nextRecordsUrl
    (QUERY/01gXX-<offset>) until done is true."""

    TOKEN = "/services/oauth2/token"
    QUERY = "/services/data/v62.0/query"

    def __init__(
        self,
        service: FakeService,
        records: list[dict[str, Any]],
        *,
        client_id: str,
        secret: str,
        batch: int = 2,
    ) -> None:
        self.service, self.records, self.batch = service, records, batch
        self.client_id, self.secret = client_id, secret
        self.tokens: set[str] = set()
        service.route(self.TOKEN, self._token)
        service.route(self.QUERY, self._query)
        service.route(self.QUERY + "/", self._more, prefix=True)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "url": self.service.origin(),
            "query": "SELECT Id, Amount, CloseDate, StageName FROM Opportunity WHERE IsWon = true",
            "client_id": self.client_id,
            "mapping": {
                "timestamp": "CloseDate",
                "value": "Amount",
                "dimension": "StageName",
                "id": "Id",
            },
            **overrides,
        }

    def _token(self, handler: Handler, seen: Seen) -> None:
        form = seen.form()
        if seen.method != "POST" or form.get("grant_type") != "client_credentials":
            reply_json(handler, 400, {"error": "unsupported_grant_type"})
        elif seen.headers.get("authorization") != basic(self.client_id, self.secret):
            reply_json(
                handler,
                400,
                {"error": "invalid_client", "error_description": "invalid client credentials"},
            )
        else:
            token = f"00DXX0000001abc!AQ{len(self.tokens) + 1:04d}"
            self.tokens.add(token)
            reply_json(
                handler,
                200,
                {
                    "access_token": token,
                    "signature": "c2lnbmF0dXJl",
                    "scope": "api",
                    "instance_url": self.service.origin(),
                    "id": self.service.url("/id/00DXX0000001abc/005XX0000001abc"),
                    "token_type": "Bearer",
                    "issued_at": "1767348000000",
                },
            )

    def _authorized(self, handler: Handler, seen: Seen) -> bool:
        if seen.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens:
            return True
        reply_json(
            handler,
            401,
            [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
        )
        return False

    def _page(self, handler: Handler, offset: int) -> None:
        chunk = self.records[offset : offset + self.batch]
        done = offset + self.batch >= len(self.records)
        data: dict[str, Any] = {
            "totalSize": len(self.records),
            "done": done,
            "records": [
                {
                    "attributes": {
                        "type": "Opportunity",
                        "url": f"/services/data/v62.0/sobjects/Opportunity/{r['Id']}",
                    },
                    **r,
                }
                for r in chunk
            ],
        }
        if not done:
            data["nextRecordsUrl"] = f"{self.QUERY}/01gXX-{offset + self.batch}"
        reply_json(handler, 200, data)

    def _query(self, handler: Handler, seen: Seen) -> None:
        if not self._authorized(handler, seen):
            return
        if not seen.query.get("q", "").upper().startswith("SELECT "):
            reply_json(
                handler, 400, [{"message": "unexpected token", "errorCode": "MALFORMED_QUERY"}]
            )
            return
        self._page(handler, 0)

    def _more(self, handler: Handler, seen: Seen) -> None:
        if not self._authorized(handler, seen):
            return
        locator = seen.path.rsplit("/", 1)[-1]
        self._page(handler, int(locator.rsplit("-", 1)[-1]))
