"""The one client for requests dashvault makes to other services (connectors, issue 7).

Security contract:
- HTTPS only, the certificate always verified against the host name (the system's CAs, plus an
  org's own CA when it gave one). Plain HTTP only when `Policy.allow_http` is set, which is
  platform staff's per-integration exception.
- SSRF: the host name is resolved here and every address checked; the connection then goes to
  that checked address (so a second DNS answer cannot swap it), with the name kept for SNI, the
  certificate check and the Host header. Addresses that are not globally routable (private,
  loopback, link-local and so the cloud metadata address, shared, reserved, multicast, IPv4
  mapped into IPv6 of any of those) are refused unless an operator-allowed network holds them.
  Every redirect is checked again the same way.
- Bounded: connect and read timeouts, a response size limit, a few retries: 429 and 503 wait
  for Retry-After (capped), other 5xx and connection failures back off 1, 2, 4 s.
Errors are OutboundError with a sentence for people; never the credential, never the body.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import itertools
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
REDIRECTS = (301, 302, 303, 307, 308)
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
READ_DEADLINE = 120.0  # seconds for a whole answer (the read timeout is per read)
MAX_RETRY_WAIT = 60.0  # seconds: a Retry-After longer than this is not waited for


class OutboundError(Exception):
    """A request that did not give a usable response. `kind`: not_https, refused_address,
    unresolvable, tls, timeout, connection, too_large, too_many_redirects, invalid_header,
    malformed."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.status = kind, status


@dataclass(frozen=True)
class Policy:
    allow_http: bool = False  # staff's exception for one integration
    allowed_networks: tuple[Network, ...] = ()  # settings.OUTBOUND_ALLOWED_NETWORKS
    ca_pem: str = ""  # the org's own CA, trusted besides the system's
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 3
    max_redirects: int = 5


@dataclass
class Response:
    status: int
    url: str
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""

    def json(self) -> Any:
        # RecursionError: nesting deeper than the stack allows (an answer may be 20 MB of "[").
        try:
            value = json.loads(self.body)
        except (ValueError, RecursionError) as exc:
            raise OutboundError("malformed", "The response is not valid JSON.") from exc
        # A lone surrogate ("\ud800") parses but is no text: it cannot be sent back in a URL
        # or stored in a text column.
        if not _all_utf8(value):
            raise OutboundError("malformed", "The response is not valid JSON.")
        return value


def _all_utf8(value: Any) -> bool:
    """Whether every string and key in parsed JSON is text: no lone surrogate."""
    # A loop, not recursion: the nesting may be as deep as json.loads allows.
    stack: list[Any] = [[value]]
    while stack:
        item = stack.pop()
        for child in itertools.chain(item, item.values()) if isinstance(item, dict) else item:
            if isinstance(child, str) and not child.isascii():
                try:
                    child.encode("utf-8")
                except UnicodeEncodeError:
                    return False
            elif isinstance(child, dict | list):
                stack.append(child)
    return True


def check_address(address: Address, policy: Policy) -> None:
    """Refuse an address a request must not reach (see the module's contract)."""
    if any(address in network for network in policy.allowed_networks):
        return
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        address = embedded
        if any(address in network for network in policy.allowed_networks):
            return
    if not address.is_global or address.is_multicast:
        raise OutboundError(
            "refused_address",
            f"Refused: {address} is a private, loopback, link-local or reserved address.",
        )


NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64, IPv4-compatible):
    a NAT64 gateway or tunnel would deliver to it, so it is the one to check."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in NAT64) or int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(host: str, port: int, policy: Policy) -> list[Address]:
    """Every address `host` resolves to, each checked; refused if any is refused (a name that
    also points inside the network is not used at all)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError("unresolvable", f"The host name {host} does not resolve.") from exc
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        check_address(address, policy)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundError("unresolvable", f"The host name {host} does not resolve.")
    return addresses


def request(
    method: str,
    url: str,
    *,
    policy: Policy = Policy(),
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    sleep: Callable[[float], None] = time.sleep,
    secret_headers: tuple[str, ...] = (),
) -> Response:
    """One request with the module's rules; follows redirects (GET after 303), retries.
    `secret_headers` names more headers that hold credentials (an API key header): like
    Authorization and Cookie, they are not sent on to another origin after a redirect."""
    headers = dict(headers or {})
    secret = CREDENTIAL_HEADERS + tuple(name.lower() for name in secret_headers)
    for _ in range(policy.max_redirects + 1):
        response = _with_retries(method, url, policy, headers, body, sleep)
        if response.status not in REDIRECTS or "location" not in response.headers:
            return response
        try:
            target = urljoin(url, response.headers["location"])
        except ValueError as exc:
            raise OutboundError("not_https", "A redirect to an invalid address.") from exc
        if origin(target) != origin(url):
            # As browsers, requests and curl do: credentials stay with the host given them.
            headers = {k: v for k, v in headers.items() if k.lower() not in secret}
        url = target
        if response.status == 303:
            method, body = "GET", None
    raise OutboundError("too_many_redirects", "Too many redirects.")


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL: where credentials may go."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def _with_retries(
    method: str,
    url: str,
    policy: Policy,
    headers: dict[str, str],
    body: bytes | None,
    sleep: Callable[[float], None],
) -> Response:
    for attempt in range(policy.retries + 1):
        last_try = attempt == policy.retries
        try:
            response = _once(method, url, policy, headers, body)
        except OutboundError as exc:
            if exc.kind not in ("timeout", "connection") or last_try:
                raise
            sleep(2.0**attempt)
            continue
        if response.status in (429, 503) and not last_try:
            wait = _retry_after(response.headers.get("retry-after"))
            if wait is None or wait > MAX_RETRY_WAIT:
                return response  # "come back much later": the next scheduled run will
            sleep(wait)
            continue
        if response.status >= 500 and not last_try:
            sleep(2.0**attempt)
            continue
        return response
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(value: str | None) -> float | None:
    if not value:
        return 1.0
    if value.strip().isascii() and value.strip().isdigit():  # "²".isdigit() is true too
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _once(
    method: str, url: str, policy: Policy, headers: dict[str, str], body: bytes | None
) -> Response:
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError as exc:
        raise OutboundError("not_https", "Not a valid web address.") from exc
    if scheme not in ("https", "http") or not host:
        raise OutboundError("not_https", f"Not a web address: {parts.scheme}://…")
    if scheme == "http" and not policy.allow_http:
        raise OutboundError(
            "not_https", "Plain HTTP is refused: use https:// (staff can allow an exception)."
        )
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundError("not_https", "The address has an invalid port.") from exc
    address = resolve(host, port, policy)[0]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    pool = _pool(scheme, host, address, port, policy)
    send = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "dashvault", **headers}
    try:
        raw = pool.urlopen(
            method,
            path,
            body=body,
            headers=send,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
    except urllib3.exceptions.SSLError as exc:
        raise OutboundError("tls", f"The TLS certificate of {host} was not accepted.") from exc
    except urllib3.exceptions.NewConnectionError as exc:
        # Before TimeoutError: urllib3 makes a refused connection a kind of connect timeout.
        raise OutboundError("connection", f"Could not connect to {host}.") from exc
    except urllib3.exceptions.TimeoutError as exc:
        raise OutboundError("timeout", f"{host} did not answer in time.") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise OutboundError("connection", f"Could not connect to {host}.") from exc
    except (ValueError, UnicodeError):
        # http.client names the offending header value (a credential) in its message: none
        # of it may reach a log line.
        raise OutboundError(
            "invalid_header", "A request header holds characters HTTP does not allow."
        ) from None
    try:
        data = _read_limited(raw, policy.max_bytes, host)
    finally:
        raw.release_conn()
        pool.close()
    return Response(
        status=raw.status,
        url=url,
        headers={k.lower(): v for k, v in raw.headers.items()},
        body=data,
    )


def _pool(
    scheme: str, host: str, address: Address, port: int, policy: Policy
) -> urllib3.HTTPConnectionPool:
    timeout = urllib3.Timeout(connect=policy.connect_timeout, read=policy.read_timeout)
    if scheme == "http":
        return urllib3.HTTPConnectionPool(str(address), port, timeout=timeout, maxsize=1)
    context = _tls_context(policy.ca_pem)
    return urllib3.HTTPSConnectionPool(
        str(address),
        port,
        timeout=timeout,
        maxsize=1,
        ssl_context=context,
        server_hostname=host,  # SNI and the certificate check use the name, not the address
        assert_hostname=host,
        cert_reqs="CERT_REQUIRED",
    )


@functools.lru_cache(maxsize=64)
def _tls_context(ca_pem: str) -> ssl.SSLContext:
    """The system's CAs (plus `ca_pem`), loaded once: loading the bundle took 17-36 ms, ten
    times a TLS handshake, on every page of a sync (bench/integration_sync.py). Changes to the
    system's CA store take effect at the next start."""
    context = ssl.create_default_context()
    if ca_pem:
        try:
            context.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise OutboundError(
                "tls", "The CA certificate is not a valid PEM certificate."
            ) from exc
    return context


def _read_limited(raw: Any, limit: int, host: str) -> bytes:
    declared = raw.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise OutboundError("too_large", f"The response from {host} is larger than allowed.")
    chunks, total = [], 0
    deadline = time.monotonic() + READ_DEADLINE
    try:
        for chunk in raw.stream(65536):
            if time.monotonic() > deadline:
                raise OutboundError("timeout", f"{host} took too long to send its answer.")
            total += len(chunk)
            if total > limit:
                raise OutboundError(
                    "too_large", f"The response from {host} is larger than allowed."
                )
            chunks.append(chunk)
    except urllib3.exceptions.TimeoutError as exc:
        raise OutboundError("timeout", f"{host} did not answer in time.") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise OutboundError("connection", f"The connection to {host} broke off.") from exc
    return b"".join(chunks)
