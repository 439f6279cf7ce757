"""Warm reads of a dashboard's data without a trip through Django.

`GET /dashboards/<id>/data/` asked again and again by the same signed-in browser (a screen
polling, a page reloading) costs Django's whole request path each time: session, user,
middleware, an ORM-compiled access check. Once that path has admitted a session to a
dashboard, this per-process cache lets the ASGI router answer the same session, from the same
address, for the same dashboard, with the cached JSON and the headers Django sent, for at most
ADMISSION_SECONDS.

Security contract:
- Only Django's full path creates an admission (dashboards.views, after access_dashboard).
- An admission ends on exactly the events that close live screens, in every process: a
  session or user ending (sign-out, password change, deactivation, "sign out other sessions")
  and access re-checks (grants, groups, roles, required MFA, deletions). `publish.emit`
  applies them here synchronously in this process before anything else sees them; other
  processes get them from their Redis subscription, and with Redis configured a process
  serves warm reads only while its subscription is up (otherwise Django answers).
- Entries expire after ADMISSION_SECONDS and never outlive the session's absolute lifetime,
  so Django's path (which also refreshes the idle timeout) runs at least that often.
- Keys are the session digest (never the key), the dashboard id and the client address.
- Only where every serving process hears every event: embedded mode (one process) or with
  Redis; a production server without Redis always asks Django. When a process's Redis
  subscription (re)starts, every admission it holds is dropped.
- Bounded staleness, by design: changes that close no live screen either (an authenticator
  removed, the idle timeout passing) reach warm reads within ADMISSION_SECONDS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

ADMISSION_SECONDS = 30.0
TEXT_SECONDS = 60.0  # like dashboards.datacache's TTL


@dataclass(frozen=True, slots=True)
class Admission:
    owner: str
    expires: float  # time.monotonic()


class Admissions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str], Admission] = {}
        self._texts: dict[str, tuple[float, bytes]] = {}  # dashboard id → (expires, JSON)
        self.headers: list[tuple[bytes, bytes]] | None = None  # as Django sent them

    def admit(
        self, digest: str, dashboard_id: str, address: str, owner: str, text: str, ttl: float
    ) -> None:
        """Record that Django's path let this session see this dashboard's data now."""
        now = time.monotonic()
        with self._lock:
            key = (digest, dashboard_id, address)
            self._entries[key] = Admission(owner, now + min(ttl, ADMISSION_SECONDS))
            self._texts[dashboard_id] = (now + TEXT_SECONDS, text.encode())

    def lookup(self, digest: str, dashboard_id: str, address: str) -> bytes | None:
        """The JSON to answer with, or None when Django must answer."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get((digest, dashboard_id, address))
            if entry is None or entry.expires <= now:
                return None
            text = self._texts.get(dashboard_id)
            if text is None or text[0] <= now:
                return None
            return text[1]

    # -- invalidation: the events that close live screens -------------------------------------

    def end(self, owner: str, *, only: str | None = None, keep: str | None = None) -> None:
        with self._lock:
            for key, entry in list(self._entries.items()):
                digest = key[0]
                if (
                    entry.owner == owner
                    and (only is None or digest == only)
                    and (keep is None or digest != keep)
                ):
                    del self._entries[key]

    def recheck(self, dashboards: frozenset[str], owners: frozenset[str]) -> None:
        with self._lock:
            for key, entry in list(self._entries.items()):
                if key[1] in dashboards or entry.owner in owners:
                    del self._entries[key]

    def update_text(self, dashboard_id: str, text: str) -> None:
        with self._lock:
            if dashboard_id in self._texts:
                self._texts[dashboard_id] = (time.monotonic() + TEXT_SECONDS, text.encode())

    def forget_text(self, dashboard_id: str) -> None:
        with self._lock:
            self._texts.pop(dashboard_id, None)

    def apply(self, kind: str, header: dict[str, object], body: str = "") -> None:
        """An event of the live bus (publish.emit / the Redis subscription)."""
        if kind == "end":
            self.end(str(header["o"]), only=_opt(header.get("only")), keep=_opt(header.get("keep")))
        elif kind == "recheck":
            dashboards = header.get("d") or ()
            owners = header.get("o") or ()
            assert isinstance(dashboards, list | tuple) and isinstance(owners, list | tuple)
            self.recheck(frozenset(map(str, dashboards)), frozenset(map(str, owners)))
        elif kind == "data" and body:
            # A data event's body is {"type":"data", ...dashboard_data}; the endpoint answers
            # the dashboard_data object itself.
            self.update_text(str(header["d"]), "{" + body[len('{"type":"data",') :])

    def forget_all(self) -> None:
        """Drop every admission and text (events may have been missed)."""
        with self._lock:
            self._entries.clear()
            self._texts.clear()

    def clear(self) -> None:
        self.forget_all()
        self.headers = None


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


admissions = Admissions()
