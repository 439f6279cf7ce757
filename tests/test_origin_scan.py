"""Nothing loads from another origin: the source scan (tests/origin_scan.py) catches each way a
template, stylesheet or script could, stays quiet on what is not a load, passes our real tree
(ECharts included), and the pages the app serves send a CSP and markup naming no other origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.sso.actions import do_save_provider
from tests import origin_scan
from tests.conftest import PASSWORD, SecureClient, make_client
from tests.origin_scan import Finding, scan

ROOT = Path(__file__).resolve().parent.parent
ECHARTS = ROOT / "dashvault" / "static" / "vendor" / "echarts.min.js"
TENANT = "6f1c2b7e-1d7a-4c1e-9a55-0d3a3f9b2c11"


def urls(findings: list[Finding]) -> list[str]:
    return [finding.url for finding in findings]


# -- what the scanner catches ----------------------------------------------------------------


CDN = "https://cdn.example.com"


@pytest.mark.parametrize(
    ("html", "what", "url"),
    [
        (f'<script src="{CDN}/echarts.js"></script>', "<script src>", f"{CDN}/echarts.js"),
        (
            '<script src="//cdn.example.com/e.js" defer></script>',
            "<script src>",
            "//cdn.example.com/e.js",
        ),
        (
            '<script src=" HTTPS://CDN.EXAMPLE.COM/e.js"></script>',
            "<script src>",
            "HTTPS://CDN.EXAMPLE.COM/e.js",
        ),
        (
            '<script src="https://{{ cdn_host }}/e.js"></script>',
            "<script src>",
            "https://{{ cdn_host }}/e.js",
        ),
        (
            '<link rel="stylesheet" href="https://fonts.googleapis.com/css">',
            "<link href>",
            "https://fonts.googleapis.com/css",
        ),
        (
            '<link rel="preconnect" href="https://fonts.gstatic.com">',
            "<link href>",
            "https://fonts.gstatic.com",
        ),
        (
            '<iframe src="https://evil.example/frame"></iframe>',
            "<iframe src>",
            "https://evil.example/frame",
        ),
        (
            '<img src="http://tracker.example/p.gif" alt="">',
            "<img src>",
            "http://tracker.example/p.gif",
        ),
        ('<img src="/\\evil.example/p.gif" alt="">', "<img src>", "/\\evil.example/p.gif"),
        (
            '<img src="http://localhost:8000/logo.png" alt="">',
            "<img src>",
            "http://localhost:8000/logo.png",
        ),
        (
            f'<img srcset="/logo.png 1x, {CDN}/logo@2x.png 2x">',
            "<img srcset>",
            f"{CDN}/logo@2x.png",
        ),
        (
            '<form method="post" action="https://collect.example/post">',
            "<form action>",
            "https://collect.example/post",
        ),
        (
            '<button formaction="https://collect.example/p">Send</button>',
            "<button formaction>",
            "https://collect.example/p",
        ),
        (f'<video poster="{CDN}/poster.jpg"></video>', "<video poster>", f"{CDN}/poster.jpg"),
        (f'<object data="{CDN}/movie.swf"></object>', "<object data>", f"{CDN}/movie.swf"),
        ('<base href="https://evil.example/">', "<base href>", "https://evil.example/"),
        (
            '<a href="/dashboards/" ping="https://t.example/ping">Dashboards</a>',
            "<a ping>",
            "https://t.example/ping",
        ),
        (f'<svg><use href="{CDN}/icons.svg#gear"/></svg>', "<use href>", f"{CDN}/icons.svg#gear"),
        (f'<svg><image xlink:href="{CDN}/a.png"/></svg>', "<image xlink:href>", f"{CDN}/a.png"),
        (
            '<meta http-equiv="refresh" content="0; url=https://evil.example/">',
            "<meta content>",
            "https://evil.example/",
        ),
        (
            f'<div style="background: url({CDN}/bg.png)"></div>',
            "<div style> CSS url()",
            f"{CDN}/bg.png",
        ),
        (f"<style>@import '{CDN}/theme.css';</style>", "<style> CSS @import", f"{CDN}/theme.css"),
        (
            '<script>fetch("https://api.example.com/data")</script>',
            "<script> fetch() argument",
            "https://api.example.com/data",
        ),
        (
            f'<script type="module">import x from "{CDN}/m.js";</script>',
            "<script> from",
            f"{CDN}/m.js",
        ),
        (
            f'<script type="importmap">{{"imports": {{"e": "{CDN}/e.js"}}}}</script>',
            "<script> string literal",
            f"{CDN}/e.js",
        ),
        (
            "<button onclick=\"location='https://evil.example/'\">Go</button>",
            "<button onclick> location =",
            "https://evil.example/",
        ),
        (
            "<iframe srcdoc=\"<img src='https://t.example/p.gif'>\"></iframe>",
            "<iframe srcdoc> <img src>",
            "https://t.example/p.gif",
        ),
    ],
)
def test_it_catches_loads_in_templates(html, what, url):
    assert scan("{% load static %}\n" + html, "html") == [Finding(2, what, url)]


def test_it_reports_where_a_template_load_is_and_what_makes_it():
    template = """{% extends "base.html" %}
{% block extra_head %}
  <link rel="stylesheet" href="{% static 'dashvault/dashboard.css' %}">
  <script src="https://cdn.jsdelivr.net/npm/echarts@6/dist/echarts.min.js"></script>
{% endblock %}
"""
    assert scan(template, "html") == [
        Finding(4, "<script src>", "https://cdn.jsdelivr.net/npm/echarts@6/dist/echarts.min.js")
    ]


@pytest.mark.parametrize(
    ("css", "what", "url"),
    [
        (
            '@import url("https://fonts.googleapis.com/css?family=Inter");',
            "CSS url()",
            "https://fonts.googleapis.com/css?family=Inter",
        ),
        (
            "@import 'https://cdn.example.com/theme.css' screen;",
            "CSS @import",
            "https://cdn.example.com/theme.css",
        ),
        (
            "@font-face { font-family: X; src: url(//fonts.gstatic.com/x.woff2) format('woff2'); }",
            "CSS url()",
            "//fonts.gstatic.com/x.woff2",
        ),
        (
            ".a { background:url( 'http://cdn.example.com/a.png' ) }",
            "CSS url()",
            "http://cdn.example.com/a.png",
        ),
        (
            '.a { background: image-set("https://cdn.example.com/a.avif" type("image/avif")) }',
            "CSS image-set()",
            "https://cdn.example.com/a.avif",
        ),
        (
            ".a { cursor: URL(https://cdn.example.com/c.cur), auto }",
            "CSS url()",
            "https://cdn.example.com/c.cur",
        ),
    ],
)
def test_it_catches_loads_in_stylesheets(css, what, url):
    assert scan(".x { color: red }\n" + css, "css") == [Finding(2, what, url)]


@pytest.mark.parametrize(
    ("js", "what", "url"),
    [
        (
            'fetch("https://api.example.com/v1/data", {credentials: "include"});',
            "fetch() argument",
            "https://api.example.com/v1/data",
        ),
        (
            "const xhr = new XMLHttpRequest(); xhr.open('GET', 'https://api.example.com/x');",
            "open() argument",
            "https://api.example.com/x",
        ),
        (
            'const socket = new WebSocket("wss://live.example.com/ws/");',
            "WebSocket() argument",
            "wss://live.example.com/ws/",
        ),
        (
            'new EventSource("https://push.example.com/stream");',
            "EventSource() argument",
            "https://push.example.com/stream",
        ),
        (
            'const m = await import("https://cdn.example.com/module.js");',
            "import() argument",
            "https://cdn.example.com/module.js",
        ),
        (
            'import { init } from "https://cdn.example.com/echarts.esm.js";',
            "from",
            "https://cdn.example.com/echarts.esm.js",
        ),
        (
            'importScripts("//cdn.example.com/worker-lib.js");',
            "importScripts() argument",
            "//cdn.example.com/worker-lib.js",
        ),
        (
            'navigator.sendBeacon("https://t.example/beacon", data);',
            "sendBeacon() argument",
            "https://t.example/beacon",
        ),
        (
            'const s = document.createElement("script"); s.src = "https://cdn.example.com/x.js";',
            "src =",
            "https://cdn.example.com/x.js",
        ),
        (
            'img.setAttribute("src", "https://t.example/p.gif");',
            "setAttribute() argument",
            "https://t.example/p.gif",
        ),
        (
            'const API = "https://api.example.com"; fetch(API + "/x");',
            "string literal",
            "https://api.example.com",
        ),
        (
            'const u = "https:\\/\\/cdn.example.com\\/x.js";',
            "string literal",
            "https://cdn.example.com/x.js",
        ),
        (
            "const u = `https://cdn.example.com/${name}.js`;",
            "string literal",
            "https://cdn.example.com/\x00.js",
        ),
        (
            "el.innerHTML = '<img src=\"https://t.example/p.gif\">';",
            "<img src> in a string",
            "https://t.example/p.gif",
        ),
        (
            "el.style.cssText = 'background: url(https://t.example/bg.png)';",
            "CSS url() in a string",
            "https://t.example/bg.png",
        ),
        # A division before the string and a regex with quotes and slashes: still in step.
        (
            'var a = b / c, r = /["\'\\/]+\\/\\//g; fetch("https://api.example.com/x");',
            "fetch() argument",
            "https://api.example.com/x",
        ),
    ],
)
def test_it_catches_loads_in_scripts(js, what, url):
    assert scan("// dashvault\n" + js, "js") == [Finding(2, what, url)]


def test_it_finds_a_load_hidden_at_the_end_of_the_minified_echarts():
    """The tokenizer stays in step through 1 MB of minified code on one line: a fetch added at
    its very end (not on a line of its own) is found."""
    if not ECHARTS.exists():
        pytest.fail(f"{ECHARTS} is missing: run `make setup` (it copies ECharts from npm)")
    text = ECHARTS.read_text()
    end = text.rstrip("\n") + 'fetch("https://cdn.example.com/x.js");\n'
    last_line = end.count("\n")
    assert scan(end, "js") == [
        Finding(last_line, "fetch() argument", "https://cdn.example.com/x.js")
    ]


# -- what is not a load --------------------------------------------------------------------


def test_it_leaves_links_text_and_namespaces_in_templates_alone():
    template = """{% load static %}
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"></svg>
<p>Register dashvault at https://portal.azure.com and <a href="https://console.cloud.google.com/">Google</a>.</p>
<a href="mailto:security@dashvault.example">Report</a> <a href="javascript:void(0)">x</a>
<script src="{% static 'vendor/echarts.min.js' %}" defer></script>
<link rel="stylesheet" href="/static/dashvault/app.css">
<form method="post" action="{{ url }}">{% csrf_token %}</form>
<img src="data:image/png;base64,iVBORw0KGgo=" alt="QR code">
<script type="application/json" id="board">{"help": "https://docs.example.com/"}</script>
{# <script src="https://cdn.example.com/old.js"></script> #}
{% comment %}
<script src="https://cdn.example.com/older.js"></script>
{% endcomment %}
<!-- <script src="https://cdn.example.com/oldest.js"></script> -->
"""  # noqa: E501  (a template's lines as written)
    assert scan(template, "html") == []


def test_it_leaves_same_origin_sockets_namespaces_and_comments_in_scripts_alone():
    script = """
    // Docs: https://echarts.apache.org/en/option.html
    /* Licensed under http://www.apache.org/licenses/LICENSE-2.0 */
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + "/ws/dashboards/1/");
    const other = new WebSocket(`wss://${window.location.host}/ws/kiosk/`);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttributeNS("http://www.w3.org/2000/xmlns/", "xmlns:xlink", "http://www.w3.org/1999/xlink");
    const symbol = "path://M0 0L10 10Z", picture = "image://";
    const half = width / 2, again = "//", slashes = path.replace(/\\/\\//g, "/");
    fetch("/dashboards/1/data/", { credentials: "same-origin" });
    """  # noqa: E501  (a script's lines as written)
    assert scan(script, "js") == []


def test_it_leaves_inline_data_fragments_and_namespaces_in_stylesheets_alone():
    css = """@namespace svg url(http://www.w3.org/2000/svg);
/* was: @import url("https://fonts.googleapis.com/css?family=Inter"); */
.logo { background: url("/static/dashvault/logo.svg") no-repeat; }
.dot { background-image: url(data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=); }
.chart { fill: url(#gradient); }
"""
    assert scan(css, "css") == []


@pytest.mark.parametrize(
    ("url", "other"),
    [
        ("https://cdn.example.com/x.js", True),
        ("//cdn.example.com/x.js", True),
        ("\\\\cdn.example.com/x.js", True),
        ("http:cdn.example.com/x.js", True),
        ("wss://live.example.com", True),
        ("https://user@cdn.example.com:8443/x", True),
        ("https://[2001:db8::1]/x", True),
        ("file:///etc/passwd", True),
        ("/static/x.js", False),
        ("static/x.js", False),
        ("?page=2", False),
        ("https:", False),
        ("wss://", False),
        ("//", False),
        ("// a comment", False),
        ("data:image/png;base64,AAAA", False),
        ("blob:https://dashvault.example/1f2e", False),
        ("mailto:a@b.example", False),
        ("path://M0 0L1 1", False),
    ],
)
def test_what_names_another_origin(url, other):
    assert origin_scan.names_other_origin(url) is other


def test_a_template_expression_as_host_counts_only_in_templates():
    assert origin_scan.names_other_origin("https://{{ host }}/x.js", templated_host=True)
    assert not origin_scan.names_other_origin("https://{{ host }}/x.js", templated_host=False)
    assert origin_scan.names_other_origin("https://cdn.{{ domain }}/x.js")


# -- our tree ------------------------------------------------------------------------------


def test_our_templates_stylesheets_and_scripts_load_nothing_from_another_origin():
    if not ECHARTS.exists():
        pytest.fail(f"{ECHARTS} is missing: run `make setup` (it copies ECharts from npm)")
    files = origin_scan.files_under(
        [ROOT / "dashvault" / "templates", ROOT / "dashvault" / "static"]
    )
    assert ECHARTS in files  # the vendored library is scanned like our own code
    assert {origin_scan.kind_of(path) for path in files} == {"html", "css", "js"}
    assert {
        str(path): origin_scan.scan_file(path) for path in files if origin_scan.scan_file(path)
    } == {}


def test_the_command_fails_on_a_finding_and_says_where(tmp_path, capsys):
    (tmp_path / "ok.html").write_text('<script src="/static/x.js"></script>\n')
    (tmp_path / "notes.txt").write_text("https://cdn.example.com/x.js\n")  # not scanned
    assert origin_scan.main([str(tmp_path)]) == 0
    assert "1 files (1 HTML/SVG, 0 CSS, 0 JavaScript): no load" in capsys.readouterr().out
    (tmp_path / "bad.css").write_text("\n@import 'https://cdn.example.com/x.css';\n")
    assert origin_scan.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'bad.css'}:2: CSS @import: https://cdn.example.com/x.css" in out
    assert "1 load(s) from another origin" in out
    assert origin_scan.main([str(tmp_path / "missing")]) == 2


# -- what the app sends ----------------------------------------------------------------------

# Source expressions that name no origin: keywords ('self', 'none', ...) and inline data.
NOT_ORIGINS = ("data:", "blob:")


def other_origins(csp: str) -> dict[str, set[str]]:
    """The sources of each CSP directive that name another origin: a host, a scheme such as
    https: (every host), or *."""
    found: dict[str, set[str]] = {}
    for directive in csp.split(";"):
        name, *sources = directive.split()
        if name in ("sandbox", "trusted-types", "require-trusted-types-for"):
            continue  # their values are tokens, not sources
        others = {s for s in sources if not s.startswith("'") and s not in NOT_ORIGINS}
        if others:
            found[name] = others
    return found


def test_other_origins_sees_hosts_schemes_and_wildcards():
    csp = "default-src 'none'; img-src 'self' data: https:; script-src * ; connect-src wss://x.example"
    assert other_origins(csp) == {
        "img-src": {"https:"},
        "script-src": {"*"},
        "connect-src": {"wss://x.example"},
    }


def served(client: SecureClient, path: str) -> tuple[str, str]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.get("Location"))
    return response["Content-Security-Policy"], response.content.decode()


def reauthenticated(user: Any) -> SecureClient:
    """Signed in and just re-entered the password: allauth's MFA set-up pages open."""
    client = make_client(user)
    assert client.post("/accounts/reauthenticate/", {"password": PASSWORD}).status_code == 302
    return client


def test_pages_send_a_policy_and_markup_naming_no_other_origin(admin_a, dashboards_a, staff):
    sales = dashboards_a["sales"]
    _, kiosk_token = do_create_kiosk_link(sales.org, name="TV", dashboards=[sales], acting=None)
    pages = {
        make_client(): [
            "/accounts/login/",
            "/accounts/password/reset/",
            "/sso/",
            f"/kiosk/{kiosk_token}",
        ],
        reauthenticated(admin_a): [
            "/dashboards/",
            f"/dashboards/{sales.pk}/",
            f"/dashboards/{sales.pk}/edit/",
            f"/dashboards/{sales.pk}/widgets/new/",
            "/org/members/",
            "/org/kiosks/new/",
            "/org/sso/",
            "/org/integrations/new/",
            "/org/audit/",
            "/accounts/2fa/",
            "/accounts/2fa/totp/activate/",  # the QR code: a data: image
            "/accounts/2fa/webauthn/add/",  # allauth's WebAuthn script
            "/accounts/sessions/",
            "/account/data/",
            "/org/delete/",
            "/api/v1/openapi.json",
        ],
        make_client(staff): ["/staff/", "/staff/audit/"],
    }
    checked = 0
    for client, paths in pages.items():
        for path in paths:
            csp, body = served(client, path)
            assert other_origins(csp) == {}, (path, csp)
            if "html" in body[:200].lower():
                assert scan(body, "html") == [], path
                checked += 1
    assert checked >= 15  # the HTML pages above were scanned as rendered, not skipped


def test_the_sso_page_lets_its_form_reach_the_identity_provider_and_nothing_else(admin_a):
    """The one exception, by design (dashvault/sso/views.py allow_form_action): an org's SSO
    page may post to its identity provider's origin. form-action is a navigation the person
    starts, not a load; no fetch directive names another origin."""
    do_save_provider(
        admin_a.org,
        "azure",
        client_id="dashvault-a",
        client_secret="s3cret",
        tenant_id=TENANT,
        acting=admin_a,
        ip=None,
    )
    csp, body = served(make_client(), f"/sso/{admin_a.org_id}/")
    assert other_origins(csp) == {"form-action": {"https://login.microsoftonline.com"}}
    assert scan(body, "html") == []  # the button posts to our own /accounts/oidc/... first


def test_the_api_docs_page_that_would_load_from_a_cdn_is_not_served(client, db):
    assert client.get("/api/v1/docs").status_code == 404
