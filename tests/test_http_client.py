"""dashvault.lib.http against real servers on loopback (the client itself is not mocked).

Each test starts its own small threaded server (HTTPS with a certificate from a throwaway
`trustme` CA, or plain HTTP) whose answer per path is a Python callable; the server records
every request it receives (method, path, headers, body) and every connection it accepts.

Covered:
- a GET gives status, lower-cased headers and body; `.json()` parses, bad JSON is "malformed";
- TLS: an untrusted CA and a certificate for another name are refused ("tls");
- plain HTTP is refused ("not_https") before any connection, unless the policy allows it;
- SSRF: `check_address` refuses loopback, private, link-local (metadata), shared, unique-local,
  IPv4-mapped, unspecified and multicast addresses, accepts global ones and allowed networks;
  `request` refuses such literal addresses and names resolving to them before connecting;
- redirects: checked again (to the metadata address: refused), followed on the same server,
  303 turns POST into GET, a redirect loop ends with "too_many_redirects";
- retries: Retry-After for 429/503, back-off 1, 2 s for 5xx and refused connections, a capped
  Retry-After; waits go to an injected `sleep` recorder, so nothing really waits;
- size limit with Content-Length, with chunked transfer and with a close-delimited body;
- a server slower than the read timeout ("timeout"); an unresolvable name ("unresolvable");
- caller headers and the Host header reach the server; errors never carry the credential.

`localhost` must resolve to 127.0.0.1 (the servers listen there only); ::1 is allowed as well
in the policy so that a host where `localhost` also has ::1 passes the address check.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from dashvault.lib.http import (
    OutboundError,
    Policy,
    check_address,
    request,
)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
SECRET = "Bearer s3cret-token-do-not-leak"
SLOW_HANDLER_LIMIT = 5.0  # seconds: the longest a "slow" handler holds its thread


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[["Handler"], None]


@dataclass
class Server:
    """A running loopback server: its routes, what it saw, and its address."""

    httpd: ThreadingHTTPServer
    scheme: str
    routes: dict[str, Responder] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def url(self, path: str = "/", host: str = "localhost") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def methods(self) -> list[str]:
        return [s.method for s in self.seen]


class Handler(BaseHTTPRequestHandler):
    """Records each request, then answers with the route for its path (404 when none)."""

    server: _Httpd

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.server.state
        with state.lock:
            state.seen.append(
                Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
        responder = state.routes.get(self.path.split("?", 1)[0])
        if responder is None:
            reply(self, 404, b"not found")
        else:
            responder(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: Server

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self.state.lock:
            self.state.connections += 1
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed handshakes and clients that gave up are expected here


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
    if handler.command != "HEAD":
        handler.wfile.write(body)


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Responder:
    return lambda handler: reply(handler, status, body, headers)


def in_turn(*responders: Responder) -> Responder:
    """The first call gets the first responder, and so on; the last one repeats."""
    calls = iter(range(1_000_000))

    def respond(handler: Handler) -> None:
        responders[min(next(calls), len(responders) - 1)](handler)

    return respond


class Sleeps(list[float]):
    """A `sleep` that records how long it was asked to wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def policy(ca: trustme.CA) -> Policy:
    """Trusts the test CA and lets requests reach loopback."""
    return Policy(ca_pem=ca.cert_pem.bytes().decode(), allowed_networks=LOOPBACK)


ServerFactory = Callable[..., Server]


@pytest.fixture
def make_server(ca: trustme.CA) -> Iterator[ServerFactory]:
    """Starts servers on 127.0.0.1; stops them all (and frees slow handlers) at teardown."""
    started: list[tuple[Server, threading.Thread]] = []

    def make(
        routes: dict[str, Responder] | None = None,
        *,
        tls: bool = True,
        names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    ) -> Server:
        httpd = _Httpd(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(*names).configure_cert(context)
            # The handshake happens in the handler's thread, not in the accept loop.
            httpd.socket = context.wrap_socket(
                httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        server = Server(httpd=httpd, scheme="https" if tls else "http", routes=dict(routes or {}))
        httpd.state = server
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        started.append((server, thread))
        return server

    yield make
    for server, thread in started:
        server.release.set()
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)


def refused_port() -> int:
    """A loopback port nothing listens on (bound then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def error_texts(exc: BaseException) -> str:
    """The message of an error and of everything it was raised from."""
    texts: list[str] = []
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            break
        texts.append(f"{current!s} {current!r}")
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


# 1. a plain GET and JSON


def test_get_returns_status_lower_case_headers_and_body(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server(
        {"/data": answer(200, b'{"rows": [1, 2]}', {"Content-Type": "application/json"})}
    )

    response = request("GET", server.url("/data?x=1"), policy=policy)

    assert response.status == 200
    assert response.url == server.url("/data?x=1")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == "16"
    assert all(name == name.lower() for name in response.headers)
    assert response.body == b'{"rows": [1, 2]}'
    assert response.json() == {"rows": [1, 2]}
    assert [(s.method, s.path) for s in server.seen] == [("GET", "/data?x=1")]


def test_malformed_json_body_is_malformed(make_server: ServerFactory, policy: Policy) -> None:
    server = make_server({"/": answer(200, b"<html>not json", {"Content-Type": "text/html"})})

    response = request("GET", server.url("/"), policy=policy)

    with pytest.raises(OutboundError) as caught:
        response.json()
    assert caught.value.kind == "malformed"


# 2. TLS


def test_server_from_untrusted_ca_is_refused_as_tls(make_server: ServerFactory) -> None:
    server = make_server({"/": answer(200, b"ok")})

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/"), policy=Policy(ca_pem="", allowed_networks=LOOPBACK))

    assert caught.value.kind == "tls"
    assert server.seen == []


def test_certificate_for_another_name_is_refused_as_tls(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server({"/": answer(200, b"ok")}, names=("other.example",))

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/"), policy=policy)

    assert caught.value.kind == "tls"
    assert server.seen == []


# 3. plain HTTP


def test_http_url_is_refused_before_any_connection(make_server: ServerFactory) -> None:
    plain = make_server({"/": answer(200, b"plain")}, tls=False)

    with pytest.raises(OutboundError) as caught:
        request("GET", plain.url("/"), policy=Policy(allowed_networks=LOOPBACK))

    assert caught.value.kind == "not_https"
    assert plain.seen == []
    assert plain.connections == 0


def test_http_url_works_when_policy_allows_http(make_server: ServerFactory) -> None:
    plain = make_server({"/": answer(200, b"plain")}, tls=False)

    response = request(
        "GET", plain.url("/"), policy=Policy(allow_http=True, allowed_networks=LOOPBACK)
    )

    assert (response.status, response.body) == (200, b"plain")
    assert plain.methods == ["GET"]


def test_other_schemes_are_refused_as_not_https() -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "https:///no-host"):
        with pytest.raises(OutboundError) as caught:
            request("GET", url)
        assert caught.value.kind == "not_https", url


# 4. SSRF


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "0.0.0.0",  # noqa: S104 - an address under test, nothing binds to it
        "224.0.0.1",
        "ff02::1",
    ],
)
def test_check_address_refuses_non_global_addresses(address: str) -> None:
    with pytest.raises(OutboundError) as caught:
        check_address(ipaddress.ip_address(address), Policy())

    assert caught.value.kind == "refused_address"
    assert address.split(":")[-1] in str(caught.value)


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "1.1.1.1"])
def test_check_address_accepts_global_addresses(address: str) -> None:
    check_address(ipaddress.ip_address(address), Policy())


def test_check_address_lets_allowed_networks_through() -> None:
    policy = Policy(
        allowed_networks=(
            ipaddress.ip_network("10.20.0.0/16"),
            ipaddress.ip_network("fd00:1::/64"),
        )
    )

    check_address(ipaddress.ip_address("10.20.3.4"), policy)
    check_address(ipaddress.ip_address("::ffff:10.20.3.4"), policy)
    check_address(ipaddress.ip_address("fd00:1::5"), policy)
    for outside in ("10.21.0.1", "192.168.0.1", "fd00:2::5", "127.0.0.1"):
        with pytest.raises(OutboundError) as caught:
            check_address(ipaddress.ip_address(outside), policy)
        assert caught.value.kind == "refused_address", outside


def test_loopback_address_literal_is_refused_before_connecting(
    make_server: ServerFactory,
) -> None:
    server = make_server({"/": answer(200, b"ok")})

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/", host="127.0.0.1"))

    assert caught.value.kind == "refused_address"
    assert server.seen == []
    assert server.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://[::ffff:169.254.169.254]/latest/meta-data/",
        "https://0.0.0.0/",
    ],
)
def test_internal_address_literals_are_refused(url: str) -> None:
    sleeps = Sleeps()

    with pytest.raises(OutboundError) as caught:
        request("GET", url, sleep=sleeps)

    assert caught.value.kind == "refused_address"
    assert sleeps == []  # refused, not retried


def test_name_resolving_to_loopback_is_refused_by_default(make_server: ServerFactory) -> None:
    server = make_server({"/": answer(200, b"ok")})

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/"))

    assert caught.value.kind == "refused_address"
    assert server.seen == []
    assert server.connections == 0


# 5. redirects


def test_redirect_to_metadata_address_is_refused(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server(
        {"/": answer(302, headers={"Location": "https://169.254.169.254/latest/meta-data/"})}
    )

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/"), policy=policy)

    assert caught.value.kind == "refused_address"
    assert server.methods == ["GET"]


def test_redirect_to_plain_http_is_refused(make_server: ServerFactory, policy: Policy) -> None:
    plain = make_server({"/": answer(200, b"plain")}, tls=False)
    server = make_server({"/": answer(302, headers={"Location": plain.url("/")})})

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/"), policy=policy)

    assert caught.value.kind == "not_https"
    assert plain.connections == 0


def test_redirect_on_the_same_server_is_followed(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server(
        {"/old": answer(302, headers={"Location": "/new"}), "/new": answer(200, b"moved here")}
    )

    response = request("GET", server.url("/old"), policy=policy)

    assert (response.status, response.body) == (200, b"moved here")
    assert response.url == server.url("/new")
    assert [(s.method, s.path) for s in server.seen] == [("GET", "/old"), ("GET", "/new")]


def test_303_turns_post_into_get(make_server: ServerFactory, policy: Policy) -> None:
    server = make_server(
        {"/form": answer(303, headers={"Location": "/done"}), "/done": answer(200, b"done")}
    )

    response = request("POST", server.url("/form"), policy=policy, body=b"a=1")

    assert response.status == 200
    assert [(s.method, s.path, s.body) for s in server.seen] == [
        ("POST", "/form", b"a=1"),
        ("GET", "/done", b""),
    ]


def test_307_keeps_method_and_body(make_server: ServerFactory, policy: Policy) -> None:
    server = make_server(
        {"/form": answer(307, headers={"Location": "/done"}), "/done": answer(200, b"done")}
    )

    request("POST", server.url("/form"), policy=policy, body=b"a=1")

    assert [(s.method, s.body) for s in server.seen] == [("POST", b"a=1"), ("POST", b"a=1")]


def test_more_redirects_than_allowed_is_too_many_redirects(
    make_server: ServerFactory, ca: trustme.CA
) -> None:
    server = make_server({"/loop": answer(302, headers={"Location": "/loop"})})
    policy = Policy(ca_pem=ca.cert_pem.bytes().decode(), allowed_networks=LOOPBACK, max_redirects=3)

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/loop"), policy=policy)

    assert caught.value.kind == "too_many_redirects"
    assert len(server.seen) == 4  # the first request and 3 redirects followed


def test_redirect_to_another_host_does_not_forward_authorization(
    make_server: ServerFactory, policy: Policy
) -> None:
    other = make_server({"/": answer(200, b"other host")})
    server = make_server({"/": answer(302, headers={"Location": other.url("/", "127.0.0.1")})})

    response = request("GET", server.url("/"), policy=policy, headers={"Authorization": SECRET})

    assert response.status == 200
    assert server.seen[0].headers["authorization"] == SECRET
    assert "authorization" not in other.seen[0].headers


# 6. retries


def test_429_waits_for_retry_after_then_succeeds(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server(
        {"/": in_turn(answer(429, headers={"Retry-After": "2"}), answer(200, b"ok"))}
    )
    sleeps = Sleeps()

    response = request("GET", server.url("/"), policy=policy, sleep=sleeps)

    assert response.status == 200
    assert sleeps == [2.0]
    assert len(server.seen) == 2


def test_503_without_retry_after_waits_one_second(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server({"/": in_turn(answer(503), answer(200, b"ok"))})
    sleeps = Sleeps()

    response = request("GET", server.url("/"), policy=policy, sleep=sleeps)

    assert response.status == 200
    assert sleeps == [1.0]


def test_500s_back_off_one_then_two_seconds(make_server: ServerFactory, policy: Policy) -> None:
    server = make_server({"/": in_turn(answer(500), answer(500), answer(200, b"ok"))})
    sleeps = Sleeps()

    response = request("GET", server.url("/"), policy=policy, sleep=sleeps)

    assert (response.status, response.body) == (200, b"ok")
    assert sleeps == [1.0, 2.0]
    assert len(server.seen) == 3


def test_persistent_500_returns_the_last_response_after_retries(
    make_server: ServerFactory, ca: trustme.CA
) -> None:
    server = make_server({"/": answer(500, b"broken")})
    policy = Policy(ca_pem=ca.cert_pem.bytes().decode(), allowed_networks=LOOPBACK, retries=2)
    sleeps = Sleeps()

    response = request("GET", server.url("/"), policy=policy, sleep=sleeps)

    assert (response.status, response.body) == (500, b"broken")
    assert sleeps == [1.0, 2.0]
    assert len(server.seen) == 3


def test_429_with_retry_after_over_the_cap_is_returned_without_waiting(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server(
        {"/": in_turn(answer(429, headers={"Retry-After": "61"}), answer(200, b"ok"))}
    )
    sleeps = Sleeps()

    response = request("GET", server.url("/"), policy=policy, sleep=sleeps)

    assert response.status == 429
    assert response.headers["retry-after"] == "61"
    assert sleeps == []
    assert len(server.seen) == 1


def test_503_with_retry_after_over_the_cap_is_returned_without_waiting(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server(
        {"/": in_turn(answer(503, headers={"Retry-After": "3600"}), answer(200, b"ok"))}
    )
    sleeps = Sleeps()

    response = request("GET", server.url("/"), policy=policy, sleep=sleeps)

    assert response.status == 503
    assert sleeps == []
    assert len(server.seen) == 1


def test_refused_connection_is_retried_with_back_off(ca: trustme.CA) -> None:
    policy = Policy(ca_pem=ca.cert_pem.bytes().decode(), allowed_networks=LOOPBACK, retries=2)
    sleeps = Sleeps()

    with pytest.raises(OutboundError):
        request("GET", f"https://localhost:{refused_port()}/", policy=policy, sleep=sleeps)

    assert sleeps == [1.0, 2.0]


def test_refused_connection_is_kind_connection(ca: trustme.CA) -> None:
    policy = Policy(ca_pem=ca.cert_pem.bytes().decode(), allowed_networks=LOOPBACK, retries=0)

    with pytest.raises(OutboundError) as caught:
        request("GET", f"https://localhost:{refused_port()}/", policy=policy, sleep=Sleeps())

    assert caught.value.kind == "connection"


# 7. size limit


def _large_with_length(handler: Handler) -> None:
    reply(handler, 200, b"x" * 5000)


def _large_chunked(handler: Handler) -> None:
    handler.protocol_version = "HTTP/1.1"
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("Connection", "close")
    handler.end_headers()
    for _ in range(5):
        handler.wfile.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
    handler.wfile.write(b"0\r\n\r\n")
    handler.close_connection = True


def _large_until_close(handler: Handler) -> None:
    handler.send_response(200)  # HTTP/1.0, no Content-Length: the body ends when it closes
    handler.end_headers()
    handler.wfile.write(b"x" * 5000)
    handler.close_connection = True


@pytest.mark.parametrize(
    "responder",
    [_large_with_length, _large_chunked, _large_until_close],
    ids=["content-length", "chunked", "until-close"],
)
def test_body_over_max_bytes_is_too_large(
    make_server: ServerFactory, ca: trustme.CA, responder: Responder
) -> None:
    server = make_server({"/big": responder, "/small": answer(200, b"y" * 1000)})
    policy = Policy(ca_pem=ca.cert_pem.bytes().decode(), allowed_networks=LOOPBACK, max_bytes=1000)

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/big"), policy=policy)
    assert caught.value.kind == "too_large"

    assert request("GET", server.url("/small"), policy=policy).body == b"y" * 1000


# 8. slow server


def test_server_slower_than_read_timeout_is_timeout(
    make_server: ServerFactory, ca: trustme.CA
) -> None:
    def slow(handler: Handler) -> None:
        handler.server.state.release.wait(timeout=SLOW_HANDLER_LIMIT)  # freed at teardown
        reply(handler, 200, b"too late")

    server = make_server({"/": slow})
    policy = Policy(
        ca_pem=ca.cert_pem.bytes().decode(),
        allowed_networks=LOOPBACK,
        read_timeout=0.3,
        retries=1,
    )
    sleeps = Sleeps()

    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/"), policy=policy, sleep=sleeps)

    assert caught.value.kind == "timeout"
    assert sleeps == [1.0]
    assert len(server.seen) == 2


# 9. names that do not resolve


def test_unresolvable_name_is_unresolvable() -> None:
    with pytest.raises(OutboundError) as caught:
        request("GET", "https://no-such-host.invalid/", sleep=Sleeps())

    assert caught.value.kind == "unresolvable"


def test_malformed_url_is_an_outbound_error() -> None:
    with pytest.raises(OutboundError) as caught:
        request("GET", "https://[::1/")

    assert caught.value.kind == "not_https"


# 10. headers and credentials


def test_caller_headers_and_host_header_reach_the_server(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server({"/": answer(200, b"ok")})

    request(
        "GET",
        server.url("/"),
        policy=policy,
        headers={"Authorization": SECRET, "X-Request-Id": "abc-123"},
    )

    (seen,) = server.seen
    assert seen.headers["authorization"] == SECRET
    assert seen.headers["x-request-id"] == "abc-123"
    assert seen.headers["host"] == f"localhost:{server.port}"
    assert seen.headers["user-agent"] == "dashvault"


def test_error_messages_never_contain_the_credential(
    make_server: ServerFactory, ca: trustme.CA
) -> None:
    server = make_server({"/": answer(200, b"ok")}, names=("other.example",))
    failures = [
        (server.url("/"), Policy(ca_pem="", allowed_networks=LOOPBACK), "tls"),
        (
            server.url("/"),
            Policy(ca_pem=ca.cert_pem.bytes().decode(), allowed_networks=LOOPBACK),
            "tls",
        ),
        ("https://169.254.169.254/latest/meta-data/", Policy(), "refused_address"),
        ("http://example.com/", Policy(), "not_https"),
    ]
    for url, policy, kind in failures:
        with pytest.raises(OutboundError) as caught:
            request("GET", url, policy=policy, headers={"Authorization": SECRET})
        assert caught.value.kind == kind
        assert "s3cret" not in error_texts(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:5",  # local-use NAT64 of 10.0.0.5
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fefe",  # Teredo carrying 127.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
    ],
)
def test_ipv4_addresses_wrapped_in_ipv6_are_checked_as_ipv4(text: str) -> None:
    with pytest.raises(OutboundError) as caught:
        check_address(ipaddress.ip_address(text), Policy())
    assert caught.value.kind == "refused_address"


def test_a_wrapped_public_ipv4_address_passes() -> None:
    check_address(ipaddress.ip_address("64:ff9b::808:808"), Policy())  # NAT64 of 8.8.8.8


def test_an_origin_with_the_default_port_written_out_is_the_same_origin() -> None:
    from dashvault.lib.http import origin

    assert origin("https://h.example/a") == origin("https://H.example:443/b")
    assert origin("http://h.example/") == origin("http://h.example:80/")
    assert origin("https://h.example/") != origin("http://h.example/")


def test_a_header_value_http_refuses_is_an_error_without_the_value(
    make_server: ServerFactory, policy: Policy
) -> None:
    server = make_server({"/": answer(200, b"{}")})
    with pytest.raises(OutboundError) as caught:
        request("GET", server.url("/"), policy=policy, headers={"Authorization": "Bearer sk_abc\n"})
    assert caught.value.kind == "invalid_header"
    assert "sk_abc" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert server.seen == []
