"""Browser fixtures: Debian Chromium driven by Playwright's sync API, and a served demo org.

Never `playwright install`: the pip wheel carries the driver only, and the browser is the
distribution's (`apt-get install -y chromium`). Without it the tests skip on a developer
machine and fail in CI, where they must run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

from tests.live import ROOT, Server, dashvault, running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"  # gitignored: screenshots for people to look at
IN_CI = os.environ.get("CI") == "true"

# Runs in every page before its own code. Playwright injects it through the DevTools protocol,
# so the page's CSP does not block it; it turns each violation into one precise console line.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(
    "CSP violation: " + event.effectiveDirective + " blocked " + (event.blockedURI || "inline")
    + " at " + (event.sourceFile || document.location.href) + ":" + event.lineNumber
  );
});
"""


class Credentials(NamedTuple):
    email: str
    password: str


class PageProblems:
    """What went wrong in a page while a test drove it: CSP violations, script errors, loads."""

    def __init__(self) -> None:
        self.csp: list[str] = []
        self.broken: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.broken.append(f"{page.url}: page error: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        if "Content Security Policy" in text or text.startswith("CSP violation:"):
            self.csp.append(f"{page.url}: {text}")
        elif text.startswith("Failed to load resource"):
            pass  # the response listener reports the URL and status; documents are asserted
        else:
            self.broken.append(f"{page.url}: console error: {text}")

    def _request_failed(self, request: Request) -> None:
        if request.failure == "net::ERR_ABORTED":
            return  # the page navigated away before the load finished (a test moving on)
        self.broken.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        # Pages (documents) are checked by the tests, which expect a 404 now and then; every
        # stylesheet, script or image a page pulls in must load.
        if response.request.resource_type != "document" and response.status >= 400:
            self.broken.append(f"subresource {response.url} answered {response.status}")

    def assert_clean(self) -> None:
        assert not self.csp, "CSP violations:\n" + "\n".join(self.csp)
        assert not self.broken, "broken page:\n" + "\n".join(self.broken)


OpenPage = Callable[[], tuple[Page, PageProblems]]


# Module scope: the sync API keeps an event loop running on the main thread while it is
# open, which would stop later tests (test_live_processes) from running asyncio themselves.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Opens a page in a fresh context (its own cookies: one person) with problems recorded."""
    contexts = []

    def open_() -> tuple[Page, PageProblems]:
        # The server's certificate is self-signed; nothing else about TLS is relaxed.
        context = browser.new_context(ignore_https_errors=True)
        context.set_default_timeout(15_000)
        context.add_init_script(CSP_REPORTER)
        contexts.append(context)
        page = context.new_page()
        problems = PageProblems()
        problems.watch(page)
        return page, problems

    yield open_
    for context in contexts:
        context.close()


def read_credentials(path: Path) -> dict[str, Credentials]:
    """`demo-sign-ins.txt` lines (`Role  email  password`) as role (lowercase) → credentials."""
    credentials = {}
    for line in path.read_text().splitlines():
        if line.strip():
            role, email, password = line.split()
            credentials[role.lower()] = Credentials(email, password)
    return credentials


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[Server, dict[str, Credentials]]]:
    """A real `dashvault serve` on loopback with the demo org Acme; its sign-ins by role."""
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "demo")
    credentials = read_credentials(data / "demo-sign-ins.txt")
    assert set(credentials) == {"admin", "editor", "viewer"}
    with running_server(data) as server:
        yield server, credentials


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
