"""`dashvault serve` scanned with sslyze (issue 9, item 4): TLS 1.2+ only, no weak cipher suite,
no known TLS flaw, HSTS, and the WSS endpoint on the same certificate.

One real server on loopback for the module, scanned once; each test reads one part of sslyze's
JSON report. sslyze lives in its own venv (.venv-tls, made by `make setup`) because it pins an
older `cryptography` than dashvault's, so it runs as a subprocess. A deliberately weak loopback
server is scanned too, through the same checks, so a clean report is known to mean something.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets import Origin
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.conftest import IN_CI
from tests.live import ROOT, Server, dashvault, running_server

pytestmark = pytest.mark.servers

SSLYZE_PYTHON = ROOT / ".venv-tls" / "bin" / "python"

# sslyze's plugin names, by protocol version.
REFUSED_VERSIONS = [
    "ssl_2_0_cipher_suites",
    "ssl_3_0_cipher_suites",
    "tls_1_0_cipher_suites",
    "tls_1_1_cipher_suites",
]
ACCEPTED_VERSIONS = ["tls_1_2_cipher_suites", "tls_1_3_cipher_suites"]

# What the server may accept. dashvault.server.run configures TLS 1.2 as the floor and the
# OpenSSL cipher string "ECDHE+AESGCM:ECDHE+CHACHA20" for 1.2, so every 1.2 suite must be
# ECDHE (forward secrecy) with AES-GCM or ChaCha20-Poly1305 (AEAD): CBC suites (SHA-1 and
# SHA-2 alike), plain-RSA key exchange, DHE, NULL, EXPORT, RC4, DES/3DES and anonymous suites
# all fall outside this list and are refused on purpose. TLS 1.3 suites are those OpenSSL
# enables by default; CCM_8 (a truncated tag) would be flagged if it ever appeared.
TLS12_SUITE = re.compile(
    r"TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)"
)
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
# Key exchange groups of at least 128-bit security (sslyze counts X25519 as 253 bits).
STRONG_CURVES = {"X25519", "X448", "secp256r1", "secp384r1", "secp521r1"}

SCAN_COMMANDS = [
    "--sslv2",
    "--sslv3",
    "--tlsv1",
    "--tlsv1_1",
    "--tlsv1_2",
    "--tlsv1_3",
    "--elliptic_curves",
    "--compression",  # CRIME
    "--reneg",
    "--heartbleed",
    "--openssl_ccs",
    "--robot",
    "--fallback",
    "--ems",
    "--early_data",
    "--http_headers",
    "--certinfo",
]


def require_sslyze() -> Path:
    """The sslyze venv's Python; skip without it on a developer machine, fail in CI."""
    problem = None
    if not SSLYZE_PYTHON.exists():
        problem = f"{SSLYZE_PYTHON} does not exist"
    else:
        probe = subprocess.run(
            [str(SSLYZE_PYTHON), "-I", "-c", "import sslyze"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode != 0:
            problem = f"sslyze does not import in .venv-tls: {probe.stderr.strip()[-300:]}"
    if problem is not None:
        message = f"the TLS scan needs sslyze in .venv-tls ({problem}): run `make setup`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return SSLYZE_PYTHON


def run_sslyze(
    python: Path, port: int, out: Path, *commands: str, timeout: float = 180
) -> dict[str, Any]:
    """Scan 127.0.0.1:port with `commands`; the one server's result from sslyze's JSON, after
    checking that sslyze reached the server and completed every scan it was asked for (a scan
    that errored would otherwise look like a server that accepts nothing)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    completed = subprocess.run(
        [
            str(python),
            "-I",  # nothing from dashvault's environment on sslyze's import path
            "-m",
            "sslyze",
            "--quiet",
            f"--json_out={out}",
            # Our own checks below; Mozilla's profiles also judge curve lists and public trust.
            "--mozilla_config=disable",
            "--sni=localhost",
            *commands,
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert completed.returncode == 0, f"sslyze failed:\n{completed.stdout}\n{completed.stderr}"
    report = json.loads(out.read_text())
    [server] = report["server_scan_results"]
    assert server["connectivity_status"] == "COMPLETED", server["connectivity_error_trace"]
    assert server["scan_status"] == "COMPLETED"
    for name, attempt in server["scan_result"].items():
        if attempt["status"] != "NOT_SCHEDULED":
            assert attempt["status"] == "COMPLETED", f"{name}: {attempt['error_trace']}"
    return server["scan_result"]


def accepted_suites(scan: dict[str, Any], plugin: str) -> list[dict[str, Any]]:
    return scan[plugin]["result"]["accepted_cipher_suites"]


def weak_suites(scan: dict[str, Any]) -> list[str]:
    """Every accepted suite, of any version scanned, outside the policy above, with why."""
    findings = []
    for plugin in REFUSED_VERSIONS + ACCEPTED_VERSIONS:
        if scan.get(plugin, {}).get("status") != "COMPLETED":
            continue
        version = scan[plugin]["result"]["tls_version_used"]
        for accepted in accepted_suites(scan, plugin):
            suite, key = accepted["cipher_suite"], accepted.get("ephemeral_key")
            name, reasons = suite["name"], []
            if version == "TLS_1_3":
                if name not in TLS13_SUITES:
                    reasons.append("not a TLS 1.3 AEAD suite we expect")
            elif not TLS12_SUITE.fullmatch(name):
                reasons.append("not ECDHE with AES-GCM or ChaCha20-Poly1305")
            if suite["is_anonymous"]:
                reasons.append("anonymous")
            if suite["key_size"] < 128:
                reasons.append(f"{suite['key_size']}-bit key")
            if key is None:
                reasons.append("no ephemeral key exchange (no forward secrecy)")
            elif key["type_name"] == "ECDH" and key["size"] < 253:
                reasons.append(f"{key['size']}-bit ECDH")
            elif key["type_name"] == "DH" and key["size"] < 2048:
                reasons.append(f"{key['size']}-bit DH")
            if reasons:
                findings.append(f"{version} {name}: {', '.join(reasons)}")
    return findings


# -- the server and its scan -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sslyze() -> Path:
    return require_sslyze()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("tls-scan") / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    return data


@pytest.fixture(scope="module")
def server(sslyze: Path, data_dir: Path) -> Iterator[Server]:
    with running_server(data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def scan(sslyze: Path, server: Server, data_dir: Path) -> dict[str, Any]:
    return run_sslyze(
        sslyze,
        server.port,
        data_dir.parent / "sslyze.json",
        *SCAN_COMMANDS,
        # The generated certificate as the trust anchor: the path validation a client that
        # pins it would do (the public trust stores cannot know a self-signed certificate).
        f"--certinfo_ca_file={data_dir / 'tls' / 'cert.pem'}",
    )


@pytest.fixture(scope="module")
def leaf(scan: dict[str, Any]) -> dict[str, Any]:
    """The certificate sslyze received on the HTTPS port."""
    [deployment] = scan["certificate_info"]["result"]["certificate_deployments"]
    return deployment["received_certificate_chain"][0]


def sha256_b64(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint as sslyze writes it."""
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


# -- protocols and suites --------------------------------------------------------------------


@pytest.mark.parametrize("plugin", REFUSED_VERSIONS)
def test_ssl_and_tls_before_1_2_are_refused(scan: dict[str, Any], plugin: str) -> None:
    result = scan[plugin]["result"]
    assert result["is_tls_version_supported"] is False
    assert accepted_suites(scan, plugin) == []
    assert result["rejected_cipher_suites"], "sslyze tried no suite at all"


@pytest.mark.parametrize("plugin", ACCEPTED_VERSIONS)
def test_tls_1_2_and_1_3_are_accepted(scan: dict[str, Any], plugin: str) -> None:
    assert scan[plugin]["result"]["is_tls_version_supported"] is True
    assert accepted_suites(scan, plugin)


def test_every_accepted_suite_is_forward_secret_aead_of_at_least_128_bits(
    scan: dict[str, Any],
) -> None:
    assert weak_suites(scan) == []


def test_key_exchange_uses_only_curves_of_128_bit_security_or_more(scan: dict[str, Any]) -> None:
    curves = scan["elliptic_curves"]["result"]
    supported = {curve["name"] for curve in curves["supported_curves"]}
    assert supported
    assert supported <= STRONG_CURVES


def test_tls_compression_is_off(scan: dict[str, Any]) -> None:
    assert scan["tls_compression"]["result"]["supports_compression"] is False


def test_renegotiation_is_secure_and_clients_cannot_start_it(scan: dict[str, Any]) -> None:
    result = scan["session_renegotiation"]["result"]
    assert result["supports_secure_renegotiation"] is True
    assert result["is_vulnerable_to_client_renegotiation_dos"] is False


def test_it_is_not_vulnerable_to_heartbleed_ccs_injection_or_robot(scan: dict[str, Any]) -> None:
    assert scan["heartbleed"]["result"]["is_vulnerable_to_heartbleed"] is False
    assert scan["openssl_ccs_injection"]["result"]["is_vulnerable_to_ccs_injection"] is False
    assert scan["robot"]["result"]["robot_result"] in {
        "NOT_VULNERABLE_NO_ORACLE",
        "NOT_VULNERABLE_RSA_NOT_SUPPORTED",
    }


def test_downgrades_and_replays_are_prevented(scan: dict[str, Any]) -> None:
    assert scan["tls_fallback_scsv"]["result"]["supports_fallback_scsv"] is True
    assert scan["tls_extended_master_secret"]["result"]["supports_ems_extension"] is True
    # 0-RTT data could be replayed by an attacker: never accepted.
    assert scan["tls_1_3_early_data"]["result"]["supports_early_data"] is False


def test_hsts_is_sent_for_a_year_with_subdomains_and_preload(scan: dict[str, Any]) -> None:
    result = scan["http_headers"]["result"]
    assert result["http_error_trace"] is None
    hsts = result["strict_transport_security_header"]
    assert hsts is not None, "no Strict-Transport-Security header"
    assert hsts["max_age"] >= 31_536_000
    assert hsts["include_subdomains"] is True
    assert hsts["preload"] is True  # the default (DASHVAULT_HSTS_PRELOAD unset)


# -- the certificate -------------------------------------------------------------------------


def test_the_scanned_certificate_is_the_generated_one_with_a_strong_key(
    leaf: dict[str, Any], data_dir: Path
) -> None:
    pem = (data_dir / "tls" / "cert.pem").read_text()
    assert leaf["fingerprint_sha256"] == sha256_b64(ssl.PEM_cert_to_DER_cert(pem))
    assert "localhost" in leaf["subject_alternative_name"]["dns_names"]
    assert "127.0.0.1" in leaf["subject_alternative_name"]["ip_addresses"]
    key = leaf["public_key"]
    minimum = {"ECPublicKey": 256, "RSAPublicKey": 2048}[key["algorithm"]]
    assert key["key_size"] >= minimum
    assert leaf["signature_hash_algorithm"]["name"] in {"sha256", "sha384", "sha512"}
    issued = datetime.datetime.fromisoformat(leaf["not_valid_before"])
    expires = datetime.datetime.fromisoformat(leaf["not_valid_after"])
    assert expires - issued <= datetime.timedelta(days=398)  # browsers' limit for server certs


def test_the_certificate_validates_with_itself_as_the_trust_anchor(
    scan: dict[str, Any], data_dir: Path
) -> None:
    [deployment] = scan["certificate_info"]["result"]["certificate_deployments"]
    anchor = str(data_dir / "tls" / "cert.pem")
    [pinned] = [
        r for r in deployment["path_validation_results"] if r["trust_store"]["path"] == anchor
    ]
    assert pinned["was_validation_successful"], pinned["validation_error"]


# -- the websocket endpoint ------------------------------------------------------------------


def test_the_wss_endpoint_presents_the_certificate_the_scan_saw(
    server: Server, data_dir: Path, leaf: dict[str, Any]
) -> None:
    # dashvault.asgi routes HTTP and websockets from one uvicorn listener, so WSS shares the
    # HTTPS port (and everything scanned above); this checks it on the wire: a TLS connection
    # trusting only the generated certificate for "localhost", then a real websocket handshake
    # to the live endpoint over it (websockets' sans-I/O client: no thread closes the socket
    # before the certificate is read).
    context = ssl.create_default_context(cafile=str(data_dir / "tls" / "cert.pem"))
    url = f"wss://localhost:{server.port}/ws/dashboards/{uuid.uuid4()}/"
    client = ClientProtocol(parse_uri(url), origin=Origin(f"https://localhost:{server.port}"))
    client.send_request(client.connect())
    events: list[Any] = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}
            der = tls.getpeercert(binary_form=True)
            deadline = time.monotonic() + 20
            while client.state is not State.CLOSED and time.monotonic() < deadline:
                for data in client.data_to_send():
                    tls.sendall(data)
                received = tls.recv(65536)
                if received:
                    client.receive_data(received)
                else:
                    client.receive_eof()
                events.extend(client.events_received())
    assert der is not None
    assert sha256_b64(der) == leaf["fingerprint_sha256"]
    # The dashboard endpoint itself answered over it: the handshake (101), then, anonymous,
    # told to sign in and closed with 4401.
    response, *frames = events
    assert response.status_code == 101
    assert client.handshake_exc is None
    texts = [json.loads(frame.data) for frame in frames if frame.opcode is Opcode.TEXT]
    assert texts == [{"type": "closed", "reason": "signed_out"}]
    assert client.close_rcvd is not None and client.close_rcvd.code == 4401


# -- the scan can fail -----------------------------------------------------------------------


class _WeakHandler(socketserver.BaseRequestHandler):
    context: ssl.SSLContext

    def handle(self) -> None:
        self.request.settimeout(10)
        try:
            with self.context.wrap_socket(self.request, server_side=True) as tls:
                tls.recv(1)
        except OSError:
            pass  # sslyze drops most handshakes on purpose


class _WeakServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


def test_the_same_checks_flag_a_deliberately_weak_server(
    sslyze: Path, data_dir: Path, server: Server
) -> None:
    """A loopback server (with the key `server` generated) that accepts TLS 1.0 and CBC-SHA1,
    anonymous and NULL suites besides good ones: the checks above must see each weakness and
    flag nothing else."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 on purpose
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers(
        "ECDHE-ECDSA-AES128-SHA:AECDH-AES128-SHA:ECDHE-ECDSA-NULL-SHA:ECDHE+AESGCM:@SECLEVEL=0"
    )
    handler = type("Handler", (_WeakHandler,), {"context": context})
    with _WeakServer(("127.0.0.1", 0), handler) as weak:
        thread = threading.Thread(target=weak.serve_forever, daemon=True)
        thread.start()
        try:
            scan = run_sslyze(
                sslyze,
                weak.server_address[1],
                data_dir.parent / "sslyze-weak.json",
                "--tlsv1",
                "--tlsv1_2",
                timeout=120,
            )
        finally:
            weak.shutdown()
            thread.join(timeout=10)
    assert scan["tls_1_0_cipher_suites"]["result"]["is_tls_version_supported"] is True
    findings = {finding.split(":")[0] for finding in weak_suites(scan)}
    assert findings == {
        "TLS_1_0 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_1_0 TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
        "TLS_1_0 TLS_ECDHE_ECDSA_WITH_NULL_SHA",
        "TLS_1_2 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_1_2 TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
        "TLS_1_2 TLS_ECDHE_ECDSA_WITH_NULL_SHA",
    }
