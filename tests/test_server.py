"""`dashvault serve` as a client meets it: HTTPS only, hardened headers, modern TLS, private keys.

One real server process on loopback for the whole module; requests go over the network stack.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.live import Server, dashvault, running_server

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("server") / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    # Makes the master keyring file (embedded mode) and rewrites it once: both must stay 0600.
    dashvault(data, "keys", "rotate")
    return data


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[Server]:
    with running_server(data_dir) as running:
        yield running


@pytest.fixture
def https(data_dir: Path) -> requests.Session:
    """A client that trusts only the server's own generated certificate (and no proxy)."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE / *_PROXY from the environment stay out
    session.verify = str(data_dir / "tls" / "cert.pem")
    return session


def csp_directives(header: str) -> dict[str, set[str]]:
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = set(sources)
    return directives


def test_sign_in_page_is_served_over_https_with_hardening_headers(
    server: Server, https: requests.Session
) -> None:
    # The certificate verifies for "localhost" against itself: the generated pair is usable.
    response = https.get(f"{server.url}/accounts/login/", allow_redirects=False)
    assert response.status_code == 200
    assert 'name="password"' in response.text

    hsts = [p.strip() for p in response.headers["Strict-Transport-Security"].split(";")]
    max_age = int(next(p for p in hsts if p.startswith("max-age=")).removeprefix("max-age="))
    assert max_age >= 31_536_000
    assert "includeSubDomains" in hsts

    csp = csp_directives(response.headers["Content-Security-Policy"])
    assert csp["default-src"] == {"'none'"}
    assert csp["script-src"] == {"'self'"}
    assert csp["style-src"] == {"'self'"}
    assert csp["frame-ancestors"] == {"'none'"}
    assert csp["object-src"] == {"'none'"}
    assert csp["base-uri"] == {"'none'"}
    assert not any("unsafe" in s for sources in csp.values() for s in sources)

    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "uvicorn" not in response.headers.get("Server", "").lower()

    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("__Host-dv_csrf=")
    attributes = {a.strip().split("=")[0].lower() for a in set_cookie.split(";")[1:]}
    assert {"secure", "httponly", "path"} <= attributes
    assert "domain" not in attributes  # __Host- cookies must not carry a Domain


def plain_http(
    port: int, method: str, path: str, host: str | None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request to the plain-HTTP port with exactly the Host header given (None: no Host)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        if body:
            connection.putheader("Content-Type", "application/x-www-form-urlencoded")
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/metrics"), ("POST", "/api/v1/datapoints")]
)
def test_plain_http_refuses_api_calls_instead_of_redirecting(
    server: Server, method: str, path: str
) -> None:
    status, headers, content = plain_http(
        server.redirect_port, method, path, f"localhost:{server.redirect_port}"
    )
    assert status == 403 and "location" not in headers
    assert b"HTTPS only" in content and b"Revoke its token" in content


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/", b""),
        ("GET", "/accounts/login/?next=/dashboards/&x=a%20b", b""),
        ("HEAD", "/static/dashvault/app.css", b""),
        ("POST", "/accounts/login/?x=1", b"login=a%40b.example&password=secret"),
        ("GET", "/dashboards/%7Bweird%7D/path;p?q=%2F&&r", b""),
        ("GET", "//evil.example/%2e%2e/", b""),  # stays a path on our host, not a new host
    ],
)
def test_plain_http_only_redirects_to_https_keeping_path_and_query(
    server: Server, method: str, path: str, body: bytes
) -> None:
    status, headers, content = plain_http(
        server.redirect_port, method, path, f"localhost:{server.redirect_port}", body
    )
    assert status == 308  # 308 keeps the method and body, unlike 301/302
    assert headers["location"] == f"https://localhost:{server.port}{path}"
    assert content == b""
    assert "set-cookie" not in headers


def test_plain_http_redirect_keeps_an_allowed_ip_host(server: Server) -> None:
    for host, expected in [
        (f"127.0.0.1:{server.redirect_port}", "127.0.0.1"),
        (f"[::1]:{server.redirect_port}", "[::1]"),
        ("localhost", "localhost"),
    ]:
        status, headers, _ = plain_http(server.redirect_port, "GET", "/x?y=1", host)
        assert status == 308
        assert headers["location"] == f"https://{expected}:{server.port}/x?y=1"


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:80",
        "localhost.evil.example",
        "localhost@evil.example",
        "evil.example#localhost",
        "[::1]evil.example",
        "",
        None,
    ],
)
def test_plain_http_never_reflects_a_host_it_does_not_serve(
    server: Server, host: str | None
) -> None:
    status, headers, content = plain_http(server.redirect_port, "GET", "/a?b=c", host)
    assert status == 308  # to the configured public host name
    assert headers["location"] == f"https://localhost:{server.port}/a?b=c"
    assert "evil" not in headers["location"]
    assert content == b""


def test_https_refuses_a_host_it_does_not_serve(server: Server, https: requests.Session) -> None:
    response = https.get(
        f"{server.url}/accounts/login/", headers={"Host": "evil.example"}, allow_redirects=False
    )
    assert response.status_code == 400
    assert "evil.example" not in response.text
    assert "evil.example" not in response.headers.get("Location", "")


def tls_context(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the protocol version is under test, not the cert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 on purpose
        context.minimum_version = version
        context.maximum_version = version
    # Security level 0 lets OpenSSL 3 offer TLS 1.0/1.1 and their SHA-1 suites at all.
    context.set_ciphers(ciphers or "ALL:@SECLEVEL=0")
    return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[str | None, str]:
    """Negotiated (protocol, cipher) with 127.0.0.1:port; raises ssl.SSLError when refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            cipher = tls.cipher()
            return tls.version(), cipher[0] if cipher else ""


def client_can_speak(version: ssl.TLSVersion, data_dir: Path) -> bool:
    """Whether this machine's OpenSSL will negotiate `version` at all: against a permissive
    loopback server with the same key. Without this, a refusal could be our own client's."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    server_context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def accept() -> None:
            try:
                connection, _ = listener.accept()
                with server_context.wrap_socket(connection, server_side=True):
                    pass
            except OSError:
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            negotiated, _ = handshake(listener.getsockname()[1], tls_context(version))
        except OSError:
            negotiated = None
        thread.join(timeout=10)
    return negotiated == {ssl.TLSVersion.TLSv1: "TLSv1", ssl.TLSVersion.TLSv1_1: "TLSv1.1"}[version]


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
def test_tls_before_1_2_is_refused(server: Server, data_dir: Path, version: ssl.TLSVersion) -> None:
    if not client_can_speak(version, data_dir):
        # Then nothing can be learnt about the server here; the 1.2/1.3 test still runs.
        pytest.skip(f"this machine's OpenSSL will not offer {version.name} even at SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(server.port, tls_context(version))


@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
    ids=["TLSv1.2", "TLSv1.3"],
)
def test_tls_1_2_and_1_3_are_accepted_with_strong_suites(
    server: Server, version: ssl.TLSVersion, name: str
) -> None:
    negotiated, cipher = handshake(server.port, tls_context(version))
    assert negotiated == name
    if version is ssl.TLSVersion.TLSv1_2:
        # Forward secrecy and an AEAD suite, even for a client that offers everything.
        assert cipher.startswith("ECDHE-")
        assert "GCM" in cipher or "CHACHA20" in cipher


def test_tls_1_2_without_an_aead_forward_secret_suite_is_refused(server: Server) -> None:
    legacy = "AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(server.port, tls_context(ssl.TLSVersion.TLSv1_2, legacy))


def test_generated_keys_are_readable_by_the_owner_only(server: Server, data_dir: Path) -> None:
    key_files = [data_dir / "tls" / "key.pem", *sorted((data_dir / "keys").iterdir())]
    names = {path.name for path in key_files}
    assert {"key.pem", "secret_key", "master.keys"} <= names
    for path in key_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (data_dir / "tls", data_dir / "keys"):
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0, folder


def test_static_css_is_served_under_a_content_hashed_name(
    server: Server, https: requests.Session
) -> None:
    page = https.get(f"{server.url}/accounts/login/")
    match = re.search(
        r'<link rel="stylesheet" href="(/static/dashvault/app\.[0-9a-f]{12}\.css)">', page.text
    )
    assert match, "the sign-in page links no hashed stylesheet"
    css = https.get(server.url + match.group(1))
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    # The name changes with the content, so browsers may keep it for good.
    assert "immutable" in css.headers["Cache-Control"]
    assert "max-age=" in css.headers["Cache-Control"]
    assert ".topbar" in css.text
