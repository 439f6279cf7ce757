"""The per-process registry of open dashboard screens, and the fan-out to them.

One `Hub` per process (`hub` below), owned by the event loop the server runs. Everything that
touches the registry runs on that loop; other threads reach it only through `Hub.post`
(`call_soon_threadsafe`), and a Redis subscription (one per process) feeds it in scale-out.

Fan-out design, measured against `websockets.broadcast()` by bench/fanout.py:
- An update arrives already serialized: `publish` builds the JSON text once per dashboard, in
  the thread where the data committed. The hub wraps it in ONE ASGI message shared by every
  screen of that dashboard; no per-recipient copy, queue or serialization.
- Each screen is written through the server's own ASGI `send` (uvicorn's protocol), not through
  a channel layer: stock Channels groups cost 0.3-0.45 ms per recipient here, and the in-memory
  layer is quadratic.
- One slow client never blocks the loop or the others: a screen has at most one write in
  flight (its own task), and updates arriving meanwhile replace each other. Every update is a
  full snapshot of the dashboard, so only the newest matters and a stuck client holds one
  pending message, never a growing queue.

Security contract: the hub never decides access. A screen is registered only after the
consumer's policy check passed; the hub closes screens when told a session, a user or their
access ended (`end`, `recheck`), and at the session's absolute expiry (`add(expires_in=...)`).
Such events are remembered for a while, so a screen whose check ran before the event but
which registers after it is closed too (`add(authorized_at=...)`). The hub holds hashes of
session keys, never the keys. Events arriving over Redis are trusted like the Redis cache
itself: whoever can publish there can already forge throttling counters.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.connection import parse_url

from dashvault.live.admission import admissions

logger = logging.getLogger(__name__)

CHANNEL = "dashvault:live"  # the pub/sub channel every process subscribes to (per Redis db)

# Close codes the page acts on (the browser sees them after the handshake).
RECONNECT = 4000  # access may have changed: reconnect now, the policy check runs again
SIGNED_OUT = 4401  # the session or user ended: sign in again
FORBIDDEN = 4403  # signed in, but not allowed yet (e.g. MFA enrolment required)
NOT_FOUND = 4404  # no such dashboard for this principal (also another org's, or not granted)
LINK_ENDED = 4410  # the kiosk link is unknown, revoked, rotated or expired
TOO_MANY = 4429  # the address is blocked for guessing (policy.guard)
RELOAD = 4001  # a kiosk link's settings changed: load the page again
UNAVAILABLE = 1011  # the server failed to compute the dashboard's data

SNAPSHOT_TTL = 2.0  # seconds a computed snapshot serves new screens (reconnect storms)
TOMBSTONE_SECONDS = 120.0  # how long closing events are remembered for screens in flight
SUBSCRIBE_WAIT = 5.0  # seconds a connecting screen waits for the Redis subscription

Send = Callable[[dict[str, Any]], Awaitable[None]]
Message = dict[str, Any]


def channel_for(url: str) -> str:
    """The channel for a Redis URL. Pub/sub ignores database numbers, so the number goes into
    the name: installations sharing a Redis server on separate databases stay apart."""
    return f"{CHANNEL}:{parse_url(url).get('db', 0)}"


def client_name() -> str:
    """How this process's subscription shows in Redis' CLIENT LIST."""
    return f"dashvault-live-{os.getpid()}"


def closed_text(reason: str) -> str:
    return json.dumps({"type": "closed", "reason": reason})


def session_digest(session_key: str | None) -> str | None:
    """What the hub and the bus know of a session: a hash, never the key (a bearer secret)."""
    if not session_key:
        return None
    return hashlib.sha256(b"dashvault.live:" + session_key.encode()).hexdigest()


def user_owner(user_id: object) -> str:
    """The owner key of a signed-in user's screens."""
    return f"user:{user_id}"


def kiosk_owner(link_id: object) -> str:
    """The owner key of the screens open on a kiosk link."""
    return f"kiosk:{link_id}"


class Screen:
    """One open websocket showing one dashboard. Slots only: thousands of these stay idle."""

    __slots__ = (
        "send",
        "dashboard",
        "owner",
        "session",
        "busy",
        "pending",
        "closing",
        "closed",
        "task",
        "timer",
    )

    def __init__(self, send: Send, dashboard: str, owner: str, session: str | None) -> None:
        self.send = send
        self.dashboard = dashboard
        self.owner = owner
        self.session = session
        # Busy from birth: the consumer writes the first snapshot itself (`run`), and updates
        # arriving before it is out wait in `pending`, so the screen never goes back in time.
        self.busy = True
        self.pending: Message | None = None
        self.closing: tuple[int, str] | None = None
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    async def run(self, message: Message | None) -> None:
        """Write `message`, then whatever arrived meanwhile, then the close if one is due.

        The screen's only writer: a new task per burst (`Hub.deliver`), or the consumer itself
        for the first snapshot.
        """
        try:
            while True:
                if self.closing is not None:
                    code, text = self.closing
                    await self.send({"type": "websocket.send", "text": text})
                    await self.send({"type": "websocket.close", "code": code})
                    return
                if message is None:
                    return
                await self.send(message)
                message, self.pending = self.pending, None
        except Exception:  # the client left mid-write (uvicorn's ClientDisconnected and kin)
            self.closed = True
            hub.discard(self)
        finally:
            self.busy = False
            self.task = None


class Hub:
    """This process's screens by dashboard and by owner, and what they are sent."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.screens: dict[str, set[Screen]] = {}  # by dashboard id
        self.owners: dict[str, set[Screen]] = {}  # by owner key
        self.latest: dict[str, tuple[float, str]] = {}  # newest text per watched dashboard
        self.deliveries: dict[str, int] = {}  # updates delivered per dashboard
        self.computing: dict[str, asyncio.Task[str]] = {}
        self.subscriber: asyncio.Task[None] | None = None
        self.subscribed: asyncio.Event | None = None
        # Recent closing events (monotonic time, code, reason, which screens): see `add`.
        self.tombstones: deque[tuple[float, int, str, Callable[[Screen], bool]]] = deque()

    # -- registry (event loop only) ---------------------------------------------------------

    def add(
        self,
        screen: Screen,
        *,
        authorized_at: float | None = None,
        expires_in: float | None = None,
        expiry: tuple[int, str] = (SIGNED_OUT, "expired"),
    ) -> None:
        """Register an admitted screen. `authorized_at` (time.monotonic() taken before the
        policy check read the database) closes the race with a sign-out or a grant removal
        that commits after that read but reaches the hub before the screen registers: such a
        screen is closed as if it had been open when the event came. After `expires_in`
        seconds the screen is closed with `expiry` (code, reason)."""
        loop = self.bind()
        self.screens.setdefault(screen.dashboard, set()).add(screen)
        self.owners.setdefault(screen.owner, set()).add(screen)
        if expires_in is not None:
            screen.timer = loop.call_later(expires_in, self.close, screen, *expiry)
        if authorized_at is None:
            return
        if time.monotonic() - authorized_at > TOMBSTONE_SECONDS:
            self.close(screen, RECONNECT, "access_changed")  # too old to vouch for: re-check
            return
        for when, code, reason, matches in self.tombstones:
            if when >= authorized_at and matches(screen):
                self.close(screen, code, reason)
                return

    def bind(self) -> asyncio.AbstractEventLoop:
        """Adopt the running loop (event loop only)."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            # A new loop (first screen, or a test's fresh loop): state from another is dead.
            self.reset()
            self.loop = loop
        return loop

    def listening(self) -> bool:
        """Whether this process's Redis subscription is up (scale-out mode)."""
        return self.subscribed is not None and self.subscribed.is_set()

    def _remember(self, code: int, reason: str, matches: Callable[[Screen], bool]) -> None:
        now = time.monotonic()
        while self.tombstones and self.tombstones[0][0] < now - TOMBSTONE_SECONDS:
            self.tombstones.popleft()
        self.tombstones.append((now, code, reason, matches))

    def discard(self, screen: Screen) -> None:
        if screen.timer is not None:
            screen.timer.cancel()
            screen.timer = None
        for index, key in ((self.screens, screen.dashboard), (self.owners, screen.owner)):
            group = index.get(key)
            if group is not None:
                group.discard(screen)
                if not group:
                    del index[key]
        if screen.dashboard not in self.screens:
            # Nobody watches it here any more: a cached snapshot would only go stale.
            self.latest.pop(screen.dashboard, None)
            self.deliveries.pop(screen.dashboard, None)

    def watching(self, dashboard_id: str) -> bool:
        """Whether this process shows the dashboard anywhere. Safe from any thread: a racy
        read only errs towards a screen that registers now, and that one computes its own
        snapshot after registering, so it misses nothing."""
        return dashboard_id in self.screens

    def reset(self) -> None:
        """Forget every screen and stop the subscription (tests; a new event loop)."""
        if self.subscriber is not None and self.loop is not None and not self.loop.is_closed():
            self.subscriber.cancel()
        self._clear()  # in place: other modules hold `hub`

    # -- events (event loop only; other threads use `post`) ---------------------------------

    def post(self, kind: str, header: dict[str, Any], body: str = "") -> None:
        """Hand an event to the loop from any thread (embedded mode: no Redis)."""
        loop = self.loop
        if loop is None:
            return  # no screen ever opened in this process: nobody to tell
        if loop.is_closed():
            return  # the server stopped: its screens are gone with its loop
        loop.call_soon_threadsafe(self.dispatch, kind, header, body)

    def dispatch(self, kind: str, header: dict[str, Any], body: str = "") -> None:
        if kind == "data":
            self.deliver(header["d"], body)
        elif kind == "end":
            self.end(
                header["o"],
                only=header.get("only"),
                keep=header.get("keep"),
                code=int(header.get("c", SIGNED_OUT)),
                reason=str(header.get("r", "signed_out")),
            )
        elif kind == "recheck":
            self.recheck(header.get("d", ()), header.get("o", ()))
        else:
            logger.warning("live: unknown event kind %r ignored", kind)

    def dispatch_raw(self, raw: bytes) -> None:
        """An event from the Redis channel: a JSON header line, a newline, then the body."""
        head, _, body = raw.partition(b"\n")
        header = json.loads(head)
        kind, text = header.pop("k"), body.decode()
        admissions.apply(kind, header, text)  # warm data reads end with the screens
        self.dispatch(kind, header, text)

    def deliver(self, dashboard_id: str, text: str) -> None:
        """Send `text` (a serialized update) to every screen of the dashboard in this process."""
        screens = self.screens.get(dashboard_id)
        if not screens or self.loop is None:
            return
        self.latest[dashboard_id] = (self.loop.time(), text)
        self.deliveries[dashboard_id] = self.deliveries.get(dashboard_id, 0) + 1
        message = {"type": "websocket.send", "text": text}  # shared by every screen
        spawn = self.loop.create_task
        for screen in screens:
            if screen.busy:
                screen.pending = message  # newest wins; the writer in flight picks it up
            elif not screen.closed:
                screen.busy = True
                screen.task = spawn(screen.run(message))

    def end(
        self,
        owner: str,
        *,
        only: str | None = None,
        keep: str | None = None,
        code: int = SIGNED_OUT,
        reason: str = "signed_out",
    ) -> None:
        """Close the owner's screens (4401, or `code` with `reason`: a kiosk link ending): all,
        only one session's, or all but one's."""

        def matches(screen: Screen) -> bool:
            return (
                screen.owner == owner
                and (only is None or screen.session == only)
                and (keep is None or screen.session != keep)
            )

        self._remember(code, reason, matches)
        for screen in [s for s in self.owners.get(owner, ()) if matches(s)]:
            self.close(screen, code, reason)

    def recheck(self, dashboards: Iterable[str], owners: Iterable[str]) -> None:
        """Close screens whose access may have changed (4000): they reconnect through the
        policy check, which lets back exactly those still allowed."""
        dashboard_ids, owner_keys = frozenset(dashboards), frozenset(owners)

        def matches(screen: Screen) -> bool:
            return screen.dashboard in dashboard_ids or screen.owner in owner_keys

        self._remember(RECONNECT, "access_changed", matches)
        doomed: set[Screen] = set()
        for dashboard_id in dashboard_ids:
            doomed.update(self.screens.get(dashboard_id, ()))
        for owner in owner_keys:
            doomed.update(self.owners.get(owner, ()))
        for screen in doomed:
            self.close(screen, RECONNECT, "access_changed")

    def close(self, screen: Screen, code: int, reason: str) -> None:
        """Send {"type": "closed", "reason": ...} and close with `code`; no data after that."""
        if screen.closed:
            return
        screen.closed = True
        screen.pending = None
        screen.closing = (code, closed_text(reason))
        self.discard(screen)
        if not screen.busy and self.loop is not None:
            screen.busy = True
            screen.task = self.loop.create_task(screen.run(None))

    # -- snapshots for new screens ------------------------------------------------------------

    async def snapshot(self, dashboard_id: str, compute: Callable[[], Awaitable[str]]) -> str:
        """The dashboard's current text: the newest one seen here if younger than
        SNAPSHOT_TTL, else computed once however many screens ask at the same time (a
        thousand screens reconnecting to one dashboard compute it once, not a thousand times).
        """
        assert self.loop is not None  # callers registered a screen first
        latest = self.latest.get(dashboard_id)
        if latest is not None and self.loop.time() - latest[0] < SNAPSHOT_TTL:
            return latest[1]
        task = self.computing.get(dashboard_id)
        if task is None:
            task = self.loop.create_task(self._compute(dashboard_id, compute))
            self.computing[dashboard_id] = task
        # shield: one screen leaving mid-computation must not cancel it for the others
        return await asyncio.shield(task)

    async def _compute(self, dashboard_id: str, compute: Callable[[], Awaitable[str]]) -> str:
        assert self.loop is not None
        seen = self.deliveries.get(dashboard_id, 0)
        try:
            text = await compute()
        finally:
            self.computing.pop(dashboard_id, None)
        if self.deliveries.get(dashboard_id, 0) != seen:
            # An update was delivered while we computed: it is at least as new as ours.
            return self.latest[dashboard_id][1] if dashboard_id in self.latest else text
        if dashboard_id in self.screens:
            self.latest[dashboard_id] = (self.loop.time(), text)
        return text

    # -- the Redis subscription (scale-out) ---------------------------------------------------

    async def subscribe(self, url: str, resync: Callable[[list[str]], Awaitable[None]]) -> None:
        """Start this process's one subscription (once) and wait until it listens, so a screen
        that registered before it cannot miss an update published in between."""
        if self.subscriber is None or self.subscribed is None:
            self.subscribed = asyncio.Event()
            self.subscriber = asyncio.get_running_loop().create_task(self._listen(url, resync))
        try:
            await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBE_WAIT)
        except TimeoutError:
            # Redis is down: the screen still gets its snapshot; when the subscription comes
            # back, `resync` sends every watched dashboard afresh.
            logger.warning("live: Redis subscription not ready; screens will resync")

    async def _listen(self, url: str, resync: Callable[[list[str]], Awaitable[None]]) -> None:
        assert self.subscribed is not None
        delay, first = 0.5, True
        while True:  # the process's lifetime; cancelled by `reset`
            client = aioredis.Redis.from_url(
                url, health_check_interval=30, socket_keepalive=True, client_name=client_name()
            )
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(channel_for(url))
                # Events published before this moment never reached this process: admissions
                # made meanwhile cannot vouch for themselves any more.
                admissions.forget_all()
                self.subscribed.set()
                if not first:
                    # Updates published while we were away are lost: send fresh snapshots.
                    await resync(list(self.screens))
                first, delay = False, 0.5
                async for message in pubsub.listen():
                    try:
                        self.dispatch_raw(message["data"])
                    except Exception:  # one bad event must not end the subscription
                        logger.exception("live: bad event ignored")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: retry with backoff
                self.subscribed.clear()
                logger.warning("live: Redis subscription lost (%s); retrying", type(exc).__name__)
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


hub = Hub()
