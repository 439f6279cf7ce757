"""Find loads from another origin in templates, stylesheets and scripts (issue 9).

dashvault serves everything its pages need itself, and its Content-Security-Policy allows
'self' only. A template or script that fetched a script, style, font, image, frame or API call
from another origin would break under that policy or, were the policy loosened for it, hand
that origin the page. This scanner finds such a load in the source, before a browser does.
`scan(text, kind)` is a pure function; `python -m tests.origin_scan PATH...` walks files and
directories and exits 1 on any finding (`.ci/security-checks` runs it).

What counts, by kind:

- html (Django templates, SVG): attributes that make the browser fetch or send something on
  its own (`src`, `srcset`, `poster`, `background`, `href` on <link>, <base>, <script> and SVG
  <use>/<image>, <form action>, `formaction`, <object data>, `ping`, <html manifest>, a meta
  refresh), inline <style> and `style=` (as CSS), inline <script>, import maps and `on*=` (as
  JavaScript). <a href> is a navigation the person chooses and text is text: neither is a
  load. A load attribute whose host comes from the template context ("https://{{ host }}/")
  counts: nothing of ours writes one. JSON data blocks are data, not code.
- css: `url(...)`, `src(...)`, `@import` and `image-set(...)` values. @namespace URIs are
  names. Comments are skipped.
- js: every string or template literal that is an absolute URL with a host, wherever it is
  used (a script cannot be followed to its sink in general), and HTML or CSS inside a string
  ('<img src="https://...">'). Comments and regular expressions are skipped; the XML namespace
  URIs in NOT_LOADS are names that libraries such as ECharts pass to createElementNS.

A URL names another origin when it carries a host: "https://x.example/a", "//x.example/a",
"/\\x.example/a" (browsers read a backslash as a slash there), "http:x.example". Relative
paths, "https:" or "wss://" alone ("wss://" + location.host is our own origin), data:, blob:,
javascript: and mailto: URLs do not. Not seen: a URL assembled from pieces at run time; the
CSP test in tests/test_origin_scan.py is the backstop for those.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

KINDS = {
    ".html": "html",
    ".htm": "html",
    ".svg": "html",
    ".css": "css",
    ".js": "js",
    ".mjs": "js",
    ".cjs": "js",
}

# Strings that look like URLs but are never fetched: XML namespace names.
NOT_LOADS = frozenset(
    {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
        "http://www.w3.org/1999/xhtml",
        "http://www.w3.org/2000/xmlns/",
        "http://www.w3.org/XML/1998/namespace",
        "http://www.w3.org/1998/Math/MathML",
    }
)


@dataclass(frozen=True)
class Finding:
    line: int
    what: str  # where the URL sits: "<script src>", "CSS url()", "fetch() argument"...
    url: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}: {self.url}"


def scan(text: str, kind: str) -> list[Finding]:
    """Every load from another origin in `text`, a file of `kind` ("html", "css" or "js")."""
    scanners: dict[str, Callable[[str], list[Finding]]] = {
        "html": _scan_html,
        "css": _scan_css,
        "js": _scan_js,
    }
    if kind not in scanners:
        raise ValueError(f"unknown kind {kind!r}: one of {sorted(scanners)}")
    return scanners[kind](text)


def kind_of(path: Path) -> str | None:
    return KINDS.get(path.suffix.lower())


# -- URLs ----------------------------------------------------------------------------------

_URL = re.compile(r"[\x01-\x20]*(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):)?(?P<slashes>[/\\]*)")
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_HOST = re.compile(r"[\w-]+(?:\.[\w-]*)*|\[[0-9A-Fa-f:.]+\]")
_TEMPLATED = ("{{", "{%", "${", "\x00")  # \x00 stands for a JS template literal's ${...}


def names_other_origin(url: str, *, templated_host: bool = False) -> bool:
    """Whether `url` points at another origin: it carries a host of its own. A host that
    starts with a template expression counts only if `templated_host` (templates: yes; a JS
    template literal such as `wss://${location.host}` is how our own origin is written)."""
    match = _URL.match(url)
    assert match is not None  # every group is optional
    scheme = (match["scheme"] or "").lower()
    slashes = match["slashes"]
    rest = url[match.end() :]
    if scheme == "file":
        return True  # a file on the viewer's own machine: never ours to load
    if scheme and scheme not in _SPECIAL_SCHEMES:
        # data:, blob:, javascript:, mailto:, "rows:", ECharts' "path://M0 0L..." symbols:
        # nothing a browser fetches from a host.
        return False
    if not scheme and len(slashes) < 2:
        return False  # a relative or same-origin path
    authority = re.split(r"[/\\?#\s]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith(_TEMPLATED):
        return templated_host
    for marker in _TEMPLATED:  # "cdn.{{ domain }}": the literal part is enough
        host = host.split(marker, 1)[0]
    host = re.sub(r":\d*$", "", host)
    if not _HOST.fullmatch(host):
        return False
    if scheme:
        return True
    # Protocol-relative: a real host name, not a stray "//word" in a script.
    return "." in host or host.startswith("[") or host.lower() == "localhost"


def _clean(url: str) -> str:
    return url.strip().replace("\n", " ")


def _line_at(text: str, pos: int, first_line: int) -> int:
    return first_line + text.count("\n", 0, pos)


# -- CSS -----------------------------------------------------------------------------------

_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_NAMESPACE = re.compile(r"@namespace\b[^;]*;?", re.I)
_CSS_STRING = r""""((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'"""
_CSS_LOADS = [
    ("CSS url()", re.compile(r"\b(?:url|src)\(\s*(?:" + _CSS_STRING + r"""|([^)'"\s]*))""", re.I)),
    ("CSS @import", re.compile(r"@import\s+(?:" + _CSS_STRING + ")", re.I)),
]
_CSS_IMAGE_SET = re.compile(r"\bimage-set\(((?:[^()]|\([^()]*\))*)\)", re.I)
_CSS_STRINGS = re.compile(_CSS_STRING)


def _blank(match: re.Match[str]) -> str:
    """Replace a skipped stretch by spaces, keeping its newlines (and so every line number)."""
    return re.sub(r"[^\n]", " ", match.group())


def _scan_css(text: str, first_line: int = 1) -> list[Finding]:
    code = _CSS_NAMESPACE.sub(_blank, _CSS_COMMENT.sub(_blank, text))
    found: list[tuple[int, str, str]] = []
    for what, pattern in _CSS_LOADS:
        for match in pattern.finditer(code):
            url = next(group for group in match.groups() if group is not None)
            found.append((match.start(), what, url))
    for match in _CSS_IMAGE_SET.finditer(code):
        for string in _CSS_STRINGS.finditer(match.group(1)):
            url = string.group(1) if string.group(1) is not None else string.group(2)
            found.append((match.start(), "CSS image-set()", url))
    return [
        Finding(_line_at(code, pos, first_line), what, _clean(url))
        for pos, what, url in sorted(found)
        if _clean(url) not in NOT_LOADS and names_other_origin(url)
    ]


# -- JavaScript ----------------------------------------------------------------------------

_JS_CODE = re.compile(r"[^\"'`/]+")  # a run of code holding no string, comment or regex
_JS_STRING = {
    '"': re.compile(r'"(?:[^"\\\n]|\\.|\\\n)*"'),
    "'": re.compile(r"'(?:[^'\\\n]|\\.|\\\n)*'"),
    "`": re.compile(r"`(?:[^`\\]|\\.)*`", re.S),
}
_JS_REGEX = re.compile(r"/(?:[^/\\\[\n]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[A-Za-z]*")
# After these words a "/" starts a regular expression, not a division.
_JS_EXPRESSION_KEYWORDS = frozenset(
    "return typeof instanceof in of new delete void throw case do else yield await".split()
)
_JS_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u\{([0-9A-Fa-f]+)\}|u([0-9A-Fa-f]{4})|(.))", re.S)
_JS_SINKS = [
    (
        re.compile(
            r"\b(fetch|WebSocket|EventSource|Worker|SharedWorker|importScripts|import"
            r"|sendBeacon|Image|Audio|open|setAttribute|register)\s*\((?:\s*S\s*,)?\s*$"
        ),
        "{}() argument",
    ),
    (re.compile(r"\b(src|href|action|data|poster|srcset|location)\s*=\s*$"), "{} ="),
    (re.compile(r"\b(from|import)\s*$"), "{}"),
]


def _unescape_js(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        hex_code = match.group(1) or match.group(2) or match.group(3)
        if hex_code:
            return chr(int(hex_code, 16))
        return "" if match.group(4) == "\n" else match.group(4)

    return _JS_ESCAPE.sub(one, body)


def _regex_may_start(code_before: str) -> bool:
    """Whether a "/" here starts a regular expression (after an operator, an opening
    bracket, a keyword) rather than a division (after a value)."""
    tail = code_before.rstrip()
    if not tail:
        return True
    last = tail[-1]
    if last in ")]" or last in "\"'`":
        return False
    if last.isalnum() or last in "_$":
        word = re.search(r"[A-Za-z_$][\w$]*$", tail)
        return word is not None and word.group() in _JS_EXPRESSION_KEYWORDS
    return True


def _sink(code_before: str) -> str:
    for pattern, label in _JS_SINKS:
        match = pattern.search(code_before)
        if match:
            return label.format(match.group(1))
    return "string literal"


def _js_string_findings(value: str, line: int) -> list[Finding]:
    """The loads in one string literal; the literal itself as a URL gets an empty `what`,
    filled in by the caller (which knows what the string is passed to)."""
    findings = []
    if value.strip() not in NOT_LOADS and names_other_origin(value):
        findings.append(Finding(line, "", _clean(value)))
    # Markup or CSS built in a string: its loads are loads too.
    if "<" in value:
        findings += [
            Finding(f.line, f"{f.what} in a string", f.url) for f in _scan_html(value, line, True)
        ]
    elif re.search(r"url\(|@import|image-set\(", value, re.I):
        findings += [
            Finding(f.line, f"{f.what} in a string", f.url) for f in _scan_css(value, line)
        ]
    return findings


def _scan_js(text: str, first_line: int = 1) -> list[Finding]:
    findings: list[Finding] = []
    code_before = ""  # the code just before the current position; strings stand as "S"
    pos, end = 0, len(text)
    while pos < end:
        code = _JS_CODE.match(text, pos)
        if code:
            code_before = (code_before + code.group())[-200:]
            pos = code.end()
            continue
        char = text[pos]
        if char == "/":
            if text.startswith("//", pos):
                newline = text.find("\n", pos)
                pos = end if newline < 0 else newline
            elif text.startswith("/*", pos):
                close = text.find("*/", pos + 2)
                pos = end if close < 0 else close + 2
            elif _regex_may_start(code_before) and (regex := _JS_REGEX.match(text, pos)):
                code_before += "R"  # a value: a "/" after it divides
                pos = regex.end()
            else:
                code_before += "/"
                pos += 1
            continue
        string = _JS_STRING[char].match(text, pos)
        if not string:  # an unterminated string: step over the quote
            code_before += char
            pos += 1
            continue
        body = string.group()[1:-1]
        if char == "`":
            body = re.sub(r"\$\{[^}]*\}", "\x00", body)
        value = _unescape_js(body)
        found = _js_string_findings(value, 0)
        if found:  # (counting lines for every string would cost seconds in a minified file)
            line = _line_at(text, pos, first_line)
            findings += [Finding(line + f.line, f.what or _sink(code_before), f.url) for f in found]
        code_before += "S"
        pos = string.end()
    return findings


# -- HTML ----------------------------------------------------------------------------------

_TEMPLATE_COMMENTS = re.compile(r"\{#.*?#\}|\{%\s*comment\b.*?%\}.*?\{%\s*endcomment\s*%\}", re.S)
_HREF_LOADS = frozenset({"link", "base", "script", "image", "use", "feimage"})
_URL_ATTRS = frozenset({"src", "poster", "background", "formaction", "lowsrc", "dynsrc"})
_JSON_TYPES = frozenset({"application/json", "application/ld+json"})
_MARKUP_TYPES = frozenset({"text/html", "text/template", "text/x-template"})


def _srcset_urls(value: str) -> list[str]:
    return [candidate.split()[0] for candidate in re.split(r",\s+", value) if candidate.split()]


def _refresh_url(value: str) -> list[str]:
    match = re.search(r"url\s*=\s*['\"]?([^'\"]+)", value, re.I)
    return [match.group(1)] if match else []


class _Markup(HTMLParser):
    def __init__(self, first_line: int, in_string: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.first_line = first_line
        self.in_string = in_string  # markup inside a JS string: no template expressions
        self.findings: list[Finding] = []
        self.inline: tuple[str, str, int] | None = None  # (tag, kind, first line)
        self.inline_text: list[str] = []

    def line(self) -> int:
        return self.first_line + self.getpos()[0] - 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        line = self.line()
        for name, value in values.items():
            self.attribute(tag, name, value, values, line)
        if tag in ("script", "style") and "src" not in values:
            kind = "css" if tag == "style" else self.script_kind(values.get("type", ""))
            if kind:
                # The element's text starts after its start tag, which may span lines.
                start = line + (self.get_starttag_text() or "").count("\n")
                self.inline, self.inline_text = (tag, kind, start), []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.inline = None

    def handle_data(self, data: str) -> None:
        if self.inline:
            self.inline_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self.inline and self.inline[0] == tag:
            _, kind, start = self.inline
            self.inline = None
            inner = {"css": _scan_css, "js": _scan_js, "html": _scan_html}[kind](
                "".join(self.inline_text), start
            )
            what = "<style>" if tag == "style" else "<script>"
            self.findings += [Finding(f.line, f"{what} {f.what}", f.url) for f in inner]

    @staticmethod
    def script_kind(script_type: str) -> str | None:
        script_type = script_type.strip().lower()
        if script_type in _JSON_TYPES:
            return None  # data for a script, not code (import maps are code: scanned)
        return "html" if script_type in _MARKUP_TYPES else "js"

    def attribute(self, tag: str, name: str, value: str, attrs: dict[str, str], line: int) -> None:
        urls: list[str] = []
        if name in _URL_ATTRS:
            urls = [value]
        elif name in ("srcset", "imagesrcset"):
            urls = _srcset_urls(value)
        elif name == "ping":
            urls = value.split()
        elif name in ("href", "xlink:href") and tag in _HREF_LOADS:
            urls = [value]
        elif (tag, name) in (("form", "action"), ("object", "data"), ("html", "manifest")):
            urls = [value]
        elif tag == "meta" and name == "content":
            if attrs.get("http-equiv", "").lower() == "refresh":
                urls = _refresh_url(value)
        elif name == "style":
            self.findings += [
                Finding(line, f"<{tag} style> {f.what}", f.url) for f in _scan_css(value)
            ]
        elif name.startswith("on"):
            self.findings += [
                Finding(line, f"<{tag} {name}> {f.what}", f.url) for f in _scan_js(value)
            ]
        elif tag == "iframe" and name == "srcdoc":
            self.findings += [
                Finding(line, f"<iframe srcdoc> {f.what}", f.url) for f in _scan_html(value)
            ]
        for url in urls:
            if names_other_origin(url, templated_host=not self.in_string):
                self.findings.append(Finding(line, f"<{tag} {name}>", _clean(url)))


def _scan_html(text: str, first_line: int = 1, in_string: bool = False) -> list[Finding]:
    parser = _Markup(first_line, in_string)
    parser.feed(_TEMPLATE_COMMENTS.sub(_blank, text))
    parser.close()
    return parser.findings


# -- files ---------------------------------------------------------------------------------


def files_under(paths: Iterable[Path]) -> list[Path]:
    """The scannable files (by suffix) among `paths`, directories walked, in a stable order."""
    found: list[Path] = []
    for path in paths:
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        found += [p for p in candidates if p.is_file() and kind_of(p)]
    return found


def scan_file(path: Path) -> list[Finding]:
    kind = kind_of(path)
    if kind is None:
        raise ValueError(f"{path}: not a template, stylesheet or script")
    return scan(path.read_text(encoding="utf-8", errors="replace"), kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.origin_scan",
        description="Fail when a template, stylesheet or script loads from another origin.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories to scan")
    args = parser.parse_args(argv)
    missing = [path for path in args.paths if not path.exists()]
    if missing:
        print(f"origin scan: no such file or directory: {', '.join(map(str, missing))}")
        return 2
    files = files_under(args.paths)
    total = 0
    for path in files:
        for finding in scan_file(path):
            print(f"{path}:{finding.line}: {finding.what}: {finding.url}")
            total += 1
    counts = {kind: sum(kind_of(p) == kind for p in files) for kind in ("html", "css", "js")}
    summary = f"{counts['html']} HTML/SVG, {counts['css']} CSS, {counts['js']} JavaScript"
    print(f"origin scan: {len(files)} files ({summary}): ", end="")
    print(f"{total} load(s) from another origin" if total else "no load from another origin")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
