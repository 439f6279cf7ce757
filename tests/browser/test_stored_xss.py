"""Stored XSS: every text people (or the systems they connect) store and dashvault shows stays
text, in Chromium.

Runs against a real `dashvault serve` with the demo org Acme. Payloads that would call `alert`
in different contexts (element content, double- and single-quoted attributes, <title> and
<textarea>, <script>, JSON embedded with json_script, javascript: URLs, template syntax) are
stored the way each text gets in: through the pages (dashboard, widget and group names, text
widgets, members, kiosk links, API tokens, integrations, SSO, organization settings), the push
API (metric names, dimensions), an integration's remote service (its records) and a browser's
User-Agent (the Sessions page); a staff member's grant ticket refuses them. Every payload
carries its own number, so a dialog says which text got through.

Then every page that shows them is opened twice:

- with the page's CSP bypassed (Playwright's `bypass_csp`): escaping alone must hold, so an
  unescaped payload really runs and opens a dialog;
- with the CSP enforced, as people get it: nothing may be reported as a CSP violation.

Each time the page must open no dialog, hold no element a payload would create (an `on…`
attribute, an inline script, a `javascript:` URL) and show its payloads literally, so that a
page that failed to show them cannot pass. Dashboards and the TV are checked once board.js has
drawn every widget and ECharts its charts, and their embedded JSON must give the payloads back
exactly. The JSON exports that hold the payloads must come as downloads a browser never renders.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import APIRequestContext, Browser, BrowserContext, Dialog, Page, expect

from tests.browser.conftest import CSP_REPORTER, Credentials, PageProblems, read_credentials
from tests.browser.test_integrations_browser import SERVER_ENV
from tests.browser.test_signin_browser import fresh_code, sign_in
from tests.live import Server, dashvault, running_server
from tests.test_integrations_pages import DealService, start_deal_service, stop_deal_service

pytestmark = pytest.mark.browser

WAIT_MS = 20_000

# Each vector aims at one context; "{n}" becomes the payload's own number. All fit in 120
# characters (most text fields) with room to combine two or three.
VECTORS: dict[str, str] = {
    "script": "<script>alert({n})</script>",
    "attribute": '"><img src=x onerror=alert({n})>',
    "single-quote": "' autofocus onfocus=alert({n}) x='",
    "js-string": "'-alert({n})-'",
    "raw-text": "</script></title></textarea><script>alert({n})</script>",
    "svg": "<svg onload=alert({n})>",
    "js-url": "javascript:alert({n})",
    "json": '"}]}\u2028</script><img src=x onerror=alert({n})><!--<script>-->',
    "template": "{{7*7}} {% now 'Y' %} ${7*7} <%= 7*7 %> #{n}",
}

# Elements, attributes and URLs that only an injected payload would put into a page: the CSP
# allows no inline script or handler, so dashvault's own pages have none.
INJECTED_JS = """() => {
  const found = [];
  const urlAttributes = ["href", "src", "action", "formaction", "xlink:href", "data", "poster"];
  for (const element of document.querySelectorAll("*")) {
    const tag = element.tagName.toLowerCase();
    const show = () => element.outerHTML.slice(0, 160);
    if (tag === "script" && !element.hasAttribute("src") && element.type !== "application/json") {
      found.push("inline script: " + show());
    }
    if (["iframe", "object", "embed"].includes(tag)) found.push("embedded: " + show());
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      const value = attribute.value.replace(/[\\s\\u0000-\\u001f]/g, "").toLowerCase();
      if (name.startsWith("on") || name === "srcdoc") found.push("handler: " + show());
      else if (urlAttributes.includes(name) && value.startsWith("javascript:")) {
        found.push("javascript: URL: " + show());
      }
    }
  }
  return found;
}"""

# Resolves once every image has loaded or failed (an injected <img onerror> has fired) and two
# frames have passed (autofocus has moved focus, firing an injected onfocus).
SETTLED_JS = """async () => {
  const pending = [...document.images].filter((image) => !image.complete);
  await Promise.all(pending.map((image) => new Promise((done) => {
    image.addEventListener("load", done, {once: true});
    image.addEventListener("error", done, {once: true});
  })));
  for (let frame = 0; frame < 2; frame++) {
    await new Promise((done) => requestAnimationFrame(() => done()));
  }
}"""

# What a person reads on the page: its title, text (hidden boards of a TV too, not scripts)
# and form fields' values.
SHOWN_TEXT_JS = """() => {
  const parts = [document.title];
  const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent && parent.closest("script, style, title")) continue;
    parts.push(walker.currentNode.data);
  }
  for (const input of document.querySelectorAll("input, textarea")) parts.push(input.value);
  return parts.join("\\n");
}"""

# Every string in the JSON a board draws from (json_script elements), and the series names
# ECharts holds (drawn on canvas, so not in the DOM).
BOARD_STRINGS_JS = """() => {
  const strings = [];
  const walk = (value) => {
    if (typeof value === "string") strings.push(value);
    else if (value && typeof value === "object") Object.values(value).forEach(walk);
  };
  for (const node of document.querySelectorAll('script[type="application/json"]')) {
    walk(JSON.parse(node.textContent));
  }
  const series = [];
  for (const box of document.querySelectorAll(".chart")) {
    const chart = echarts.getInstanceByDom(box);
    if (chart) for (const one of chart.getOption().series || []) series.push(one.name);
  }
  return {json: strings, series: series};
}"""


@dataclass(frozen=True)
class Payload:
    n: int
    where: str  # the stored field, e.g. "dashboard title"
    vectors: tuple[str, ...]
    text: str


class Payloads:
    """Numbered payloads, so that a dialog's message ("123") names the field that let it out."""

    def __init__(self) -> None:
        self.all: list[Payload] = []

    def make(self, where: str, *vectors: str, text: str = "") -> str:
        n = 101 + len(self.all)
        text = text.replace("{n}", str(n)) or " ".join(
            VECTORS[vector].replace("{n}", str(n)) for vector in vectors
        )
        self.all.append(Payload(n, where, vectors, text))
        return text

    def named(self, message: str) -> str:
        for payload in self.all:
            if str(payload.n) == message.strip():
                return f"payload {payload.n} ({payload.where}, {'+'.join(payload.vectors)})"
        return "no stored payload"


@dataclass
class World:
    """The served org after the payloads were stored: what to open and what it must show."""

    server: Server
    payloads: Payloads
    org_id: str
    org_name: str = ""
    board_id: str = ""  # the dashboard with every kind of widget
    board_title: str = ""
    dashboards: dict[str, str] = field(default_factory=dict)  # id -> title (payload ones)
    widget_titles: list[str] = field(default_factory=list)  # as shown (metric name if blank)
    kpi_id: str = ""
    kpi_title: str = ""
    text_id: str = ""
    text_title: str = ""
    texts: list[str] = field(default_factory=list)  # the text widget's lines
    metric_names: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)  # the integration's service's records
    group_names: list[str] = field(default_factory=list)
    group_id: str = ""
    member_email: str = ""
    member_id: str = ""
    kiosk_name: str = ""
    kiosk_id: str = ""
    kiosk_url: str = ""
    token_name: str = ""
    token: str = ""
    integrations: dict[str, str] = field(default_factory=dict)  # id -> name
    integration_fields: list[str] = field(default_factory=list)  # in the failing one's form
    sync_error: str = ""  # a payload field name, quoted in the failing one's run error
    sso_client_id: str = ""
    claim_value: str = ""
    ticket: str = ""
    user_agent: str = ""
    key_name: str = ""
    contexts: dict[str, BrowserContext] = field(default_factory=dict)  # "admin/CSP", …
    setup_problems: list[str] = field(default_factory=list)

    def integration(self, index: int) -> tuple[str, str]:
        return list(self.integrations.items())[index]


# -- looking at a page ----------------------------------------------------------------------------


@dataclass
class Watch:
    """A page, with its dialogs (recorded, then dismissed) and problems from before it loads."""

    page: Page
    payloads: Payloads
    dialogs: list[str] = field(default_factory=list)
    problems: PageProblems = field(default_factory=PageProblems)

    def __post_init__(self) -> None:
        self.page.on("dialog", self._dialog)
        self.problems.watch(self.page)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(
            f"{dialog.type} dialog {dialog.message!r} on {self.page.url}: "
            f"{self.payloads.named(dialog.message)}"
        )
        dialog.dismiss()


def watched(context: BrowserContext, world: World) -> Watch:
    return Watch(context.new_page(), world.payloads)


def inert_problems(watch: Watch, shown: list[str], label: str) -> list[str]:
    """What is wrong with the page now: dialogs, injected elements, CSP violations, broken
    loads, and the payloads of `shown` that it does not show as text."""
    page = watch.page
    page.evaluate(SETTLED_JS)
    problems = [f"{label}: {dialog}" for dialog in watch.dialogs]
    problems += [f"{label}: injected {item}" for item in page.evaluate(INJECTED_JS)]
    text = page.evaluate(SHOWN_TEXT_JS)
    problems += [f"{label}: not shown as text: {p!r}" for p in shown if p not in text]
    problems += [f"{label}: {line}" for line in watch.problems.csp + watch.problems.broken]
    return problems


def board_problems(page: Page, world: World, titles: list[str]) -> list[str]:
    """Once board.js has drawn the board's widgets (charts by ECharts): its embedded JSON must
    give back `titles`, the text widget's text and the dimensions exactly as stored, and the
    line and bar charts must have a series named by each dimension."""
    for kind in ("line", "bar", "gauge"):
        expect(page.locator(f".tile.kind-{kind} .chart canvas").first).to_be_attached()
    leaders = page.locator(".tile.kind-leaderboard .leader")
    expect(leaders).to_have_count(len(world.dimensions))
    expect(page.locator(".tile.kind-text .text-widget")).to_have_count(1)
    found = page.evaluate(BOARD_STRINGS_JS)
    stored = [*titles, *world.dimensions]
    problems = [
        f"not in the embedded JSON as stored: {p!r}" for p in stored if p not in found["json"]
    ]
    # The browser sent the text widget's lines with CRLF: each line must be there as typed.
    problems += [
        f"not in the embedded JSON: {line!r}"
        for line in world.texts
        if not any(line in text for text in found["json"])
    ]
    problems += [
        f"no chart series named {p!r}" for p in world.dimensions if p not in found["series"]
    ]
    return problems


@dataclass(frozen=True)
class Surface:
    """A page that shows stored text: who opens it, where, and what it must show."""

    name: str
    who: str  # "admin", "staff" or "anonymous" (contexts of World)
    path: Callable[[World], str]
    shown: Callable[[World], list[str]]
    board: str = ""  # "dashboard" or "kiosk": wait until drawn, check its JSON and charts


class PageBroken(AssertionError):
    """A surface did not answer 200, so its texts could not be checked."""


def look(world: World, surface: Surface) -> list[str]:
    """Open the surface with the CSP bypassed, then enforced; every problem found."""
    problems: list[str] = []
    for mode in ("no CSP", "CSP"):
        label = f"{surface.name} ({mode})"
        watch = watched(world.contexts[f"{surface.who}/{mode}"], world)
        page = watch.page
        try:
            url = surface.path(world)
            response = page.goto(url if url.startswith("https:") else world.server.url + url)
            if response is None or response.status != 200:
                status = response.status if response else "nothing"
                raise PageBroken(f"{label}: {url} answered {status}")
            if surface.board == "dashboard":
                expect(page.locator("#board")).to_have_attribute("data-rendered", "1")
            elif surface.board == "kiosk":
                expect(page.locator("body")).to_have_attribute("data-kiosk-state", "live")
                for section in page.locator("section.kiosk-board").all():
                    expect(section).to_have_attribute("data-rendered", "1")
            if surface.board:
                problems += [
                    f"{label}: {p}" for p in board_problems(page, world, world.widget_titles)
                ]
            problems += inert_problems(watch, surface.shown(world), label)
        finally:
            page.close()
    return problems


def board_texts(w: World) -> list[str]:
    return [w.board_title, *w.widget_titles, *w.texts, *w.dimensions]


SURFACES = [
    Surface(
        "dashboard list", "admin", lambda w: "/dashboards/", lambda w: [*w.dashboards.values()]
    ),
    Surface("dashboard", "admin", lambda w: f"/dashboards/{w.board_id}/", board_texts, "dashboard"),
    Surface(
        "dashboard editor",
        "admin",
        lambda w: f"/dashboards/{w.board_id}/edit/",
        board_texts,
        "dashboard",
    ),
    Surface(
        "text widget form",
        "admin",
        lambda w: f"/dashboards/{w.board_id}/widgets/{w.text_id}/",
        lambda w: [w.board_title, w.text_title, *w.texts, *w.metric_names],
    ),
    Surface(
        "widget removal",
        "admin",
        lambda w: f"/dashboards/{w.board_id}/widgets/{w.kpi_id}/delete/",
        lambda w: [w.board_title, w.kpi_title],
    ),
    Surface(
        "dashboard removal",
        "admin",
        lambda w: f"/dashboards/{w.board_id}/delete/",
        lambda w: [w.board_title],
    ),
    Surface(
        "members", "admin", lambda w: "/org/members/", lambda w: [w.member_email, *w.group_names]
    ),
    Surface(
        "member", "admin", lambda w: f"/org/members/{w.member_id}/", lambda w: [w.member_email]
    ),
    Surface(
        "member erasure",
        "admin",
        lambda w: f"/org/members/{w.member_id}/erase/",
        lambda w: [w.member_email],
    ),
    Surface("groups", "admin", lambda w: "/org/groups/", lambda w: w.group_names),
    Surface(
        "group",
        "admin",
        lambda w: f"/org/groups/{w.group_id}/",
        lambda w: [w.group_names[0], *w.dashboards.values()],
    ),
    Surface(
        "kiosk links",
        "admin",
        lambda w: "/org/kiosks/",
        lambda w: [w.kiosk_name, *w.dashboards.values()],
    ),
    Surface(
        "kiosk link",
        "admin",
        lambda w: f"/org/kiosks/{w.kiosk_id}/",
        lambda w: [w.kiosk_name, *w.dashboards.values()],
    ),
    Surface("API tokens", "admin", lambda w: "/org/tokens/", lambda w: [w.token_name]),
    Surface(
        "integrations",
        "admin",
        lambda w: "/org/integrations/",
        lambda w: [*w.integrations.values(), w.metric_names[1], w.sync_error],
    ),
    Surface(
        "synced integration",
        "admin",
        lambda w: f"/org/integrations/{w.integration(0)[0]}/",
        lambda w: [w.integration(0)[1], *w.metric_names],
    ),
    Surface(
        "failing integration",
        "admin",
        lambda w: f"/org/integrations/{w.integration(1)[0]}/",
        lambda w: [w.integration(1)[1], *w.metric_names, *w.integration_fields, w.sync_error],
    ),
    Surface(
        "integration removal",
        "admin",
        lambda w: f"/org/integrations/{w.integration(0)[0]}/delete/",
        lambda w: [w.integration(0)[1]],
    ),
    Surface("SSO", "admin", lambda w: "/org/sso/", lambda w: [w.claim_value, *w.group_names]),
    Surface("SSO provider", "admin", lambda w: "/org/sso/google/", lambda w: [w.sso_client_id]),
    Surface("settings", "admin", lambda w: "/org/settings/", lambda w: [w.org_name]),
    Surface("organization deletion", "admin", lambda w: "/org/delete/", lambda w: [w.org_name]),
    Surface("provider access", "admin", lambda w: "/org/access/", lambda w: [w.ticket]),
    Surface("sessions", "admin", lambda w: "/accounts/sessions/", lambda w: [w.user_agent]),
    Surface("security keys", "admin", lambda w: "/accounts/2fa/webauthn/", lambda w: [w.key_name]),
    Surface(
        "kiosk TV",
        "anonymous",
        lambda w: w.kiosk_url,
        lambda w: [w.kiosk_name, *w.dashboards.values(), *board_texts(w)],
        "kiosk",
    ),
    Surface("SSO sign-in page", "anonymous", lambda w: f"/sso/{w.org_id}/", lambda w: [w.org_name]),
    Surface("staff home", "staff", lambda w: "/staff/", lambda w: [w.org_name]),
    Surface(
        "staff access grant",
        "staff",
        lambda w: f"/staff/orgs/{w.org_id}/access/",
        lambda w: [w.org_name, w.ticket],
    ),
    Surface(
        "staff dashboard list",
        "staff",
        lambda w: f"/staff/orgs/{w.org_id}/dashboards/",
        lambda w: [w.org_name, *w.dashboards.values()],
    ),
    Surface(
        "staff dashboard",
        "staff",
        lambda w: f"/staff/orgs/{w.org_id}/dashboards/{w.board_id}/",
        lambda w: [w.org_name, *board_texts(w)],
        "dashboard",
    ),
    Surface(
        "staff IP filter",
        "staff",
        lambda w: f"/staff/orgs/{w.org_id}/networks/",
        lambda w: [w.org_name],
    ),
    Surface(
        "staff integrations",
        "staff",
        lambda w: f"/staff/orgs/{w.org_id}/integrations/",
        lambda w: [w.org_name, *w.integrations.values()],
    ),
]


# Surfaces with a known problem, by name: (reason, what it raises: PageBroken when the page
# fails, AssertionError for an XSS finding). Strict, so a fix shows up as XPASS here.
KNOWN_BROKEN: dict[str, tuple[str, type[AssertionError]]] = {}


def surface_params() -> list[Any]:
    params = []
    for surface in SURFACES:
        marks = []
        if surface.name in KNOWN_BROKEN:
            reason, raises = KNOWN_BROKEN[surface.name]
            marks.append(pytest.mark.xfail(raises=raises, strict=True, reason=reason))
        params.append(pytest.param(surface, id=surface.name, marks=marks))
    return params


# -- storing the payloads -------------------------------------------------------------------------

STAFF = Credentials("staff@provider.example", "staff-Passw0rd-for-the-xss-test")
STAFF_TOTP = pyotp.random_base32()
STAFF_SCRIPT = f"""
from allauth.mfa.totp.internal.auth import TOTP
from dashvault.accounts.models import User
from dashvault.orgs.models import Organization
user = User.objects.create_user({STAFF.email!r}, {STAFF.password!r}, is_platform_staff=True)
TOTP.activate(user, {STAFF_TOTP!r})
print(Organization.objects.get(name="Acme").pk)
"""
UUID_AT_END = re.compile(r"/([0-9a-f-]{36})/(#.*)?$")


def last_id(page: Page) -> str:
    """The id a form's answer landed on (`/…/<uuid>/`)."""
    match = UUID_AT_END.search(page.url)
    assert match, page.url
    return match[1]


def check_answer(at: Watch, world: World, shown: list[str], label: str) -> None:
    """The page a form answered with, checked like the surfaces."""
    world.setup_problems += inert_problems(at, shown, label)
    at.dialogs.clear()
    at.problems.csp.clear()
    at.problems.broken.clear()


def submit(page: Page, button: str, message: str = "") -> None:
    page.get_by_role("button", name=button, exact=True).click()
    if message:
        expect(page.get_by_text(message).first).to_be_visible()


def api_post(api: APIRequestContext, world: World, path: str, data: dict[str, Any]) -> None:
    response = api.post(
        world.server.url + path, headers={"Authorization": f"Bearer {world.token}"}, data=data
    )
    assert response.status == 201, response.text()


def store_token_and_metrics(at: Watch, world: World, api: APIRequestContext) -> None:
    page, make = at.page, world.payloads.make
    world.token_name = make("API token name", "attribute", "single-quote")
    page.goto(world.server.url + "/org/tokens/")
    page.get_by_label("Name").fill(world.token_name)
    submit(page, "Create token")
    world.token = page.locator("#new-token").input_value()
    assert world.token.startswith("dv")
    # The names of two metrics; one dimension per vector (the leaderboard's rows and the line
    # and bar charts' series).
    world.metric_names = [make("metric name", "svg", "js-string")]
    world.metric_names.append(make("metric name", "attribute", "template"))
    for key, name in zip(("xss_deals", "xss_visits"), world.metric_names, strict=True):
        api_post(api, world, "/api/v1/metrics", {"key": key, "name": name, "aggregation": "sum"})
    world.dimensions = [make("dimension", vector) for vector in VECTORS]
    now = dt.datetime.now(dt.UTC).isoformat()
    points: list[dict[str, Any]] = [
        {"metric": "xss_deals", "ts": now, "value": 10 + index, "dimension": dimension}
        for index, dimension in enumerate(world.dimensions)
    ]
    points.append({"metric": "xss_visits", "ts": now, "value": 40})
    api_post(api, world, "/api/v1/datapoints", {"points": points})


def store_dashboards(at: Watch, world: World) -> None:
    page, make = at.page, world.payloads.make
    world.board_title = make("dashboard title", "raw-text", "attribute")
    titles = [world.board_title]
    titles += [
        make("dashboard title", vector)
        for vector in ("script", "single-quote", "js-string", "svg", "js-url", "json", "template")
    ]
    for title in titles:
        page.goto(world.server.url + "/dashboards/new/")
        page.get_by_label("Title").fill(title)
        submit(page, "Create")
        page.wait_for_url(UUID_AT_END)
        world.dashboards[last_id(page)] = title
    world.board_id = next(iter(world.dashboards))


def add_widget(at: Watch, world: World, kind: str, title: str, **options: str) -> str:
    """Add a widget to the board through its form; returns the widget's id."""
    page = at.page
    page.goto(f"{world.server.url}/dashboards/{world.board_id}/widgets/new/")
    form = page.locator("form.widget-form")
    form.locator("[name=kind]").select_option(kind)
    form.locator("[name=title]").fill(title)
    for name, value in options.items():
        option = form.locator(f"[name={name}]")
        if name == "metric":
            option.select_option(label=value)
        elif name in ("period", "bucket"):
            option.select_option(value)
        elif name == "by_dimension":
            option.check()
        else:
            option.fill(value)
    submit(page, "Add widget", "Widget added.")
    expect(page.locator("#board")).to_have_attribute("data-rendered", "1")
    match = re.search(r"#w-([0-9a-f-]{36})$", page.url)
    assert match, page.url
    return match[1]


def store_widgets(at: Watch, world: World) -> None:
    make = world.payloads.make
    deals, visits = (
        f"{name} ({key})"
        for name, key in zip(world.metric_names, ("xss_deals", "xss_visits"), strict=True)
    )
    world.kpi_title = make("widget title", "script")
    world.kpi_id = add_widget(at, world, "kpi", world.kpi_title, metric=deals, period="today")
    line_title = make("widget title", "attribute")
    add_widget(at, world, "line", line_title, metric=deals, period="last_7_days", by_dimension="1")
    # No title: the tile shows the metric's name.
    add_widget(at, world, "bar", "", metric=deals, period="last_7_days", by_dimension="1")
    leaders_title = make("widget title", "svg")
    add_widget(at, world, "leaderboard", leaders_title, metric=deals, period="today", top_n="20")
    add_widget(at, world, "gauge", "", metric=visits, period="today", target="100")
    world.text_title = make("widget title", "json")
    world.texts = [make("text widget", vector) for vector in VECTORS]
    world.text_id = add_widget(at, world, "text", world.text_title, text="\n".join(world.texts))
    quotes_title = make("widget title", "single-quote", "js-string", "template")
    add_widget(at, world, "kpi", quotes_title, metric=visits, period="today")
    world.widget_titles = [world.kpi_title, line_title, world.metric_names[0], leaders_title]
    world.widget_titles += [world.metric_names[1], world.text_title, quotes_title]
    check_answer(at, world, board_texts(world), "dashboard editor after adding widgets")


def store_member_and_groups(at: Watch, world: World) -> None:
    page, make = at.page, world.payloads.make
    # A quoted local part may hold <, > and = (RFC 5321), and Django's validator accepts it.
    quoted = '"<svg/onload=alert({n})>"@example.com'
    world.member_email = make("member e-mail", "quoted", text=quoted)
    page.goto(world.server.url + "/org/members/new/")
    page.get_by_label("Email").fill(world.member_email)
    # Chromium's own check of type=email refuses quoted local parts; the server decides.
    page.locator("main form").evaluate("(form) => { form.noValidate = true; }")
    submit(page, "Add")
    expect(page.get_by_role("heading", name="One-time set-password link")).to_be_visible()
    check_answer(at, world, [world.member_email], "set-password link page")
    back = page.get_by_role("link", name="Back to the member").get_attribute("href") or ""
    world.member_id = back.strip("/").rsplit("/", 1)[1]

    world.group_names = [make("group name", "script", "single-quote")]
    world.group_names.append(make("group name", "svg", "template"))
    for name in world.group_names:
        page.goto(world.server.url + "/org/groups/new/")
        page.get_by_label("Name").fill(name)
        page.locator(f"input[name=members][value='{world.member_id}']").check()
        for dashboard_id in world.dashboards:
            page.locator(f"input[name=dashboards][value='{dashboard_id}']").check()
        submit(page, "Save", "Group saved.")
        world.group_id = world.group_id or last_id(page)


def store_kiosk_link(at: Watch, world: World) -> None:
    page = at.page
    world.kiosk_name = world.payloads.make("kiosk link name", "raw-text", "js-url")
    page.goto(world.server.url + "/org/kiosks/new/")
    page.get_by_label("Name").fill(world.kiosk_name)
    for position, dashboard_id in enumerate(world.dashboards, start=1):
        page.locator(f"input[name=show_{dashboard_id}]").check()
        page.locator(f"input[name=order_{dashboard_id}]").fill(str(position))
    submit(page, "Create kiosk link")
    world.kiosk_url = page.locator("input#kiosk-url").input_value()
    check_answer(at, world, [world.kiosk_name], "kiosk link created page")
    page.goto(world.server.url + "/org/kiosks/")
    row = page.locator("table.kiosk-links tr[data-link]").first
    world.kiosk_id = row.get_attribute("data-link") or ""


def store_integrations(at: Watch, world: World, service: DealService) -> None:
    """Two JSON REST integrations of the deal service: the first syncs (its connection test
    shows the service's records), the second names a time field the records lack, so its run
    fails with an error that quotes the name."""
    page, make = at.page, world.payloads.make
    synced = make("integration name", "script", "js-url")
    failing = make("integration name", "svg", "attribute")
    time_field = make("integration field", "attribute")
    world.integration_fields = [time_field, make("integration field", "single-quote")]
    world.sync_error = time_field
    mappings = {
        synced: {"map_timestamp": "closed", "map_dimension": "rep", "map_id": "id"},
        failing: {
            "map_timestamp": time_field,
            "map_dimension": world.integration_fields[1],
            "map_id": "id",
        },
    }
    for name, mapping in mappings.items():
        page.goto(world.server.url + "/org/integrations/new/")
        form = page.locator("form.integration-form")
        form.locator("[name=name]").fill(name)
        form.locator("[name=metric]").select_option(label=f"{world.metric_names[1]} (xss_visits)")
        form.locator("[name=url]").fill(service.url)
        form.locator("[name=records_path]").fill("data")
        form.locator("[name=map_value]").fill("amount")
        for key, value in mapping.items():
            form.locator(f"[name={key}]").fill(value)
        form.locator("[name=ca_pem]").fill(service.ca_pem)
        if name == synced:
            submit(page, "Test connection")
            expect(page.locator(".preview-ok")).to_contain_text("Connected: 2 records")
            check_answer(at, world, [name, *world.remote], "integration connection test")
        submit(page, "Save", "Integration added.")
        world.integrations[last_id(page)] = name
        submit(page, "Sync now", "Sync requested.")
        outcome = "OK" if name == synced else "has no time"
        expect(page.locator("table.sync-runs tbody tr").first).to_contain_text(outcome)


def store_sso_and_settings(at: Watch, world: World) -> None:
    page, make = at.page, world.payloads.make
    world.sso_client_id = make("SSO client id", "attribute", "single-quote")
    page.goto(world.server.url + "/org/sso/google/")
    page.get_by_label("Client id (application id)").fill(world.sso_client_id)
    page.get_by_label("Client secret").fill("xss-test-client-secret")
    submit(page, "Save", "Google saved.")
    world.claim_value = make("SSO claim value", "script", "svg")
    page.get_by_label("Claim value").fill(world.claim_value)
    page.locator("form.sso-mapping-form [name=group]").select_option(label=world.group_names[0])
    submit(page, "Add mapping")
    expect(page.locator("table.sso-mappings")).to_contain_text(world.claim_value)

    world.org_name = make("organization name", "raw-text", "attribute")
    page.goto(world.server.url + "/org/settings/")
    page.get_by_label("Name").fill(world.org_name)
    submit(page, "Save", "Settings saved.")


def store_security_key(at: Watch, world: World, admin: Credentials) -> None:
    """The admin adds a WebAuthn security key named with a payload (Chromium's virtual
    authenticator answers allauth's page)."""
    page = at.page
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    authenticator = {
        "protocol": "ctap2",
        "transport": "usb",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
    }
    devtools.send("WebAuthn.addVirtualAuthenticator", {"options": authenticator})
    world.key_name = world.payloads.make("security key name", "script", "attribute")
    page.goto(world.server.url + "/accounts/2fa/webauthn/add/")
    page.wait_for_url(lambda url: "/accounts/reauthenticate/" in url)
    page.get_by_label("Password").fill(admin.password)
    submit(page, "Confirm")
    page.wait_for_url(f"{world.server.url}/accounts/2fa/webauthn/add/")
    page.get_by_label("Name").fill(world.key_name)
    submit(page, "Add")
    page.wait_for_url(lambda url: "/webauthn/add/" not in url)


def store_grant(at: Watch, world: World) -> None:
    """Platform staff sign in (password and TOTP) and open an access grant with a ticket."""
    page = at.page
    sign_in(page, world.server, STAFF)
    page.wait_for_url(f"{world.server.url}/accounts/2fa/authenticate/")
    _, code = fresh_code(pyotp.TOTP(STAFF_TOTP))
    page.locator("input[name=code]").fill(code)
    submit(page, "Sign In")
    page.wait_for_url(f"{world.server.url}/staff/")
    page.goto(f"{world.server.url}/staff/orgs/{world.org_id}/access/")
    page.get_by_label("Reason").select_option("support")
    # A ticket reference is refused unless it looks like one: a payload cannot be stored.
    page.get_by_label("Ticket reference").fill(VECTORS["svg"].replace("{n}", "0"))
    submit(page, "Open access grant", "Enter the ticket reference (letters, digits")
    world.ticket = "INC-4711/xss#1"
    page.get_by_label("Ticket reference").fill(world.ticket)
    submit(page, "Open access grant", "Access grant open")


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    # The server's certificate is self-signed; nothing else about TLS is relaxed.
    context = browser.new_context(ignore_https_errors=True, **options)
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(CSP_REPORTER)
    return context


@pytest.fixture(scope="module")
def world(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo org, served, with payloads stored in every text that is shown; contexts for
    the admin, the staff member and anonymous visitors, each with and without the CSP."""
    data = tmp_path_factory.mktemp("stored-xss") / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "demo")
    org_id = dashvault(data, "shell", "-c", STAFF_SCRIPT).stdout.split()[-1]
    people = read_credentials(data / "demo-sign-ins.txt")
    payloads = Payloads()
    remote = [payloads.make("remote record", vector) for vector in ("script", "attribute")]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    deals = [
        {
            "id": f"d{n}",
            "closed": (now - dt.timedelta(seconds=n)).isoformat(),
            "amount": 100 * n,
            "rep": rep,
        }
        for n, rep in enumerate(remote, start=1)
    ]
    service, thread = start_deal_service(deals)
    contexts: list[BrowserContext] = []

    def context(**options: Any) -> BrowserContext:
        contexts.append(new_context(browser, **options))
        return contexts[-1]

    try:
        with running_server(data, env=SERVER_ENV) as server:
            world = World(server, payloads, org_id, remote=remote)
            admin = watched(context(), world)
            sign_in(admin.page, server, people["admin"])
            admin.page.wait_for_url(f"{server.url}/dashboards/")
            store_token_and_metrics(admin, world, context().request)
            store_dashboards(admin, world)
            store_widgets(admin, world)
            store_member_and_groups(admin, world)
            store_kiosk_link(admin, world)
            store_integrations(admin, world, service)
            store_sso_and_settings(admin, world)
            # The admin signs in once more, from a browser whose User-Agent is a payload.
            world.user_agent = payloads.make("user agent", "script", "attribute")
            other = watched(context(user_agent=world.user_agent), world)
            sign_in(other.page, server, people["admin"])
            other.page.wait_for_url(f"{server.url}/dashboards/")
            store_security_key(admin, world, people["admin"])
            staff = watched(context(), world)
            store_grant(staff, world)
            for at in (admin, other, staff):
                world.setup_problems += at.dialogs + at.problems.csp + at.problems.broken

            # Each person's cookies in a context with the CSP bypassed and one with it
            # enforced (one sign-in each: a TOTP code works once).
            for who, signed_in in (("admin", admin), ("staff", staff), ("anonymous", None)):
                state = signed_in.page.context.storage_state() if signed_in else None
                for mode in ("no CSP", "CSP"):
                    world.contexts[f"{who}/{mode}"] = context(
                        bypass_csp=mode == "no CSP", storage_state=state
                    )
            yield world
    finally:
        for made in contexts:
            made.close()
        stop_deal_service(service, thread)


# -- the tests ------------------------------------------------------------------------------------


def test_the_checks_catch_an_unescaped_payload(world: World) -> None:
    """The harness itself: markup put into a served page as an unescaped text would be opens a
    dialog with the CSP bypassed, is reported as a CSP violation with it enforced, and is found
    as injected and as not shown as text either way."""
    payload = VECTORS["attribute"].replace("{n}", "999")
    for mode in ("no CSP", "CSP"):
        watch = watched(world.contexts[f"admin/{mode}"], world)
        watch.page.goto(world.server.url + "/org/tokens/")
        watch.page.evaluate(
            "(html) => document.body.insertAdjacentHTML('beforeend', html)", payload
        )
        problems = inert_problems(watch, [payload], mode)
        watch.page.close()
        assert any("injected handler: <img" in problem for problem in problems), problems
        assert any(f"not shown as text: {payload!r}" in problem for problem in problems), problems
        dialogs = [problem for problem in problems if "alert dialog '999'" in problem]
        violations = [problem for problem in problems if "CSP violation" in problem]
        if mode == "no CSP":
            assert dialogs and not violations, problems
        else:
            assert violations and not dialogs, problems


def test_storing_the_payloads_opened_no_dialog_and_forms_answered_with_text(world: World) -> None:
    """Every page on the way, and those the forms answered with: the dashboard editor, the
    set-password link, the new kiosk link, and the integration's connection test showing the
    remote service's records."""
    assert len(world.payloads.all) > 40
    assert not world.setup_problems, "\n".join(world.setup_problems)


@pytest.mark.parametrize("surface", surface_params())
def test_stored_text_is_shown_as_text_and_runs_nothing(world: World, surface: Surface) -> None:
    problems = look(world, surface)
    assert not problems, "\n".join(problems)


def test_every_stored_payload_is_looked_for_on_some_page(world: World) -> None:
    """So that a field stored above cannot silently go unchecked."""
    looked_for = {text for surface in SURFACES for text in surface.shown(world)}
    looked_for |= set(world.remote)  # checked on the connection test's page
    later = {"dimension (live)", "audit filter (typed)"}  # checked by their own tests
    unchecked = [p for p in world.payloads.all if p.text not in looked_for and p.where not in later]
    assert not unchecked, unchecked


def test_a_live_update_draws_new_text_inert(world: World) -> None:
    """A point pushed while the dashboard is open brings a new dimension over the websocket:
    board.js draws it as text (a leaderboard row, a chart series) and it runs nothing."""
    dimension = world.payloads.make("dimension (live)", "attribute", "svg")
    watch = watched(world.contexts["admin/no CSP"], world)
    page = watch.page
    page.goto(f"{world.server.url}/dashboards/{world.board_id}/")
    expect(page.locator("#board")).to_have_attribute("data-live-state", "live")
    page.evaluate("window.__sameDocument = true")
    point = {"metric": "xss_deals", "ts": dt.datetime.now(dt.UTC).isoformat(), "value": 1000}
    api = world.contexts["anonymous/CSP"].request
    api_post(api, world, "/api/v1/datapoints", {"points": [point | {"dimension": dimension}]})
    world.dimensions.append(dimension)  # stored now: the surfaces expect it too
    leaders = page.locator(".tile.kind-leaderboard .leader-name")
    expect(leaders.first).to_have_text(dimension)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    page.wait_for_function(
        """(name) => [...document.querySelectorAll(".chart")].some((box) => {
            const chart = echarts.getInstanceByDom(box);
            return chart && (chart.getOption().series || []).some((s) => s.name === name);
        })""",
        arg=dimension,
    )
    problems = inert_problems(watch, [dimension, *world.widget_titles], "live update")
    page.close()
    assert not problems, "\n".join(problems)


def test_the_audit_logs_show_no_stored_text_and_echo_a_typed_filter_as_text(world: World) -> None:
    """The logs hold ids only: no stored text appears in them. A payload typed into the
    action filter comes back in the form, as text."""
    typed = world.payloads.make("audit filter (typed)", "attribute")  # the field takes 64
    stored = [p.text for p in world.payloads.all if p.text != typed]
    problems: list[str] = []
    for who, path in (("admin", "/org/audit/"), ("staff", "/staff/audit/")):
        for mode in ("no CSP", "CSP"):
            watch = watched(world.contexts[f"{who}/{mode}"], world)
            page = watch.page
            page.goto(world.server.url + path)
            expect(page.locator("table.audit-log tr[data-entry]").first).to_be_visible()
            content = page.evaluate(SHOWN_TEXT_JS)
            problems += [f"{path} shows stored text {text!r}" for text in stored if text in content]
            shown = []
            if who == "admin":
                page.locator("form#audit-filter [name=action]").fill(typed)
                with page.expect_navigation():
                    page.locator("form#audit-filter").get_by_role("button", name="Filter").click()
                shown = [typed]
            problems += inert_problems(watch, shown, f"{path} ({mode})")
            page.close()
    assert not problems, "\n".join(problems)


def json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in json_strings(item)]


def test_the_json_exports_holding_the_texts_download_and_never_render(world: World) -> None:
    """A member's and the organization's exports hold the payloads as JSON strings, come as
    attachments typed application/json with nosniff, and the page that asked stays put."""
    exports = [
        (
            f"/org/members/{world.member_id}/erase/",
            "Download their data (JSON)",
            [world.member_email],
        ),
        ("/org/delete/", "Download all data (JSON)", [world.org_name, *world.dashboards.values()]),
    ]
    problems: list[str] = []
    for path, button, expected in exports:
        watch = watched(world.contexts["admin/no CSP"], world)
        page = watch.page
        page.goto(world.server.url + path)
        with (
            page.expect_response(lambda r: r.request.method == "POST") as answer,
            page.expect_download() as download,
        ):
            page.get_by_role("button", name=button).click()
        headers = answer.value.all_headers()
        assert headers["content-type"].startswith("application/json"), headers
        assert headers["content-disposition"].startswith("attachment;"), headers
        assert headers["x-content-type-options"] == "nosniff", headers
        body = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        held = json_strings(body)
        problems += [
            f"{path}: not in the export: {text!r}" for text in expected if text not in held
        ]
        assert page.url == world.server.url + path
        problems += inert_problems(watch, expected[:1], f"{path} after the download")
        page.close()
    assert not problems, "\n".join(problems)
