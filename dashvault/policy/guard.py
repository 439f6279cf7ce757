"""The guessing guard: addresses that keep presenting bad kiosk links or API tokens are refused.

Every unknown, revoked or expired kiosk token or API token counts one failure against the
client's address (a token repeated within the window counts once). When an address reaches
GUARD_FAILURES within GUARD_WINDOW_MINUTES it is blocked for GUARD_BLOCK_MINUTES; each further
block within a day of the last one doubles the time, up to GUARD_MAX_BLOCK_HOURS. While
blocked, every kiosk page, kiosk websocket and API request from the address is refused (429)
by `check`, which reads one cache key and nothing else: no database query, so a flood of
refused requests costs next to nothing.

Security contract:
- State lives in Django's cache (Redis in scale-out mode), so every process sees a block the
  moment it starts; counters use atomic `incr`, and exactly one process starts each block and
  writes its audit entry (`cache.add` elects it).
- IPv6 addresses count by their /64 network: one host usually holds a whole /64, and counting
  single addresses would let it guess from 2^64 of them.
- Blocks (and lifts) are audited as platform events holding the address only.
- Correctness does not rest on cache expiry: each entry carries its own times, compared with
  `clock()` (tests replace it), and expiry only cleans up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse

from dashvault import audit
from dashvault.lib.clientip import ip_or_none

DAY = 86400.0
BUCKETS = 10  # the counting window slides in tenths
PREFIX = "dv:guard:"

clock = time.time  # replaced in tests to freeze and move time


class Blocked(Exception):
    """The address is blocked; `retry_after` seconds remain."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def address_key(address: str | None) -> str:
    """What failures count against: the address, or its /64 network for IPv6."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return f"other:{address}"
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        # ::ffff:a.b.c.d is an IPv4 client: its /64 (::/64) would hold every IPv4 address.
        return str(parsed.ipv4_mapped)
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _limits() -> tuple[int, float, float, float]:
    return (
        settings.GUARD_FAILURES,
        settings.GUARD_WINDOW_MINUTES * 60.0,
        settings.GUARD_BLOCK_MINUTES * 60.0,
        settings.GUARD_MAX_BLOCK_HOURS * 3600.0,
    )


def check(address: str | None) -> None:
    """Raise Blocked if the address is blocked now. One cache read; never the database.

    The first request after a block ended writes the audited lift (once, across processes)."""
    key = address_key(address)
    block = cache.get(PREFIX + "block:" + key)
    if block is None:
        return
    now = clock()
    if block["until"] > now:
        raise Blocked(max(1, math.ceil(block["until"] - now)))
    if not block.get("lifted") and cache.add(
        f"{PREFIX}lifted:{key}:{block['level']}:{int(block['until'])}", 1, timeout=DAY
    ):
        audit.record(
            "guard.lifted", actor_kind="anonymous", ip=ip_or_none(address), level=block["level"]
        )
        cache.set(PREFIX + "block:" + key, {**block, "lifted": True}, timeout=_memory(block, now))


def failed(address: str | None, *, source: str, token: str | None = None) -> None:
    """Count one bad token from `address` (`source`: "kiosk", "kiosk_ws" or "api"); start a
    block when the address reaches the threshold. Returns normally: the caller answers the
    failed request as usual, and `check` refuses the next one.

    With `token`, the same bad token from the same address counts once per window: a guesser
    needs a new token for every try, while an office TV whose revoked link reconnects on a
    socket per dashboard must not block every screen on its network."""
    threshold, window, base, ceiling = _limits()
    key = address_key(address)
    now = clock()
    bucket = window / BUCKETS
    index = int(now // bucket)
    if token is not None:
        seen = hashlib.sha256(token.encode()).hexdigest()[:32]
        if not cache.add(
            f"{PREFIX}seen:{key}:{int(now // window)}:{seen}", 1, timeout=int(2 * window) + 1
        ):
            return
    # The window slides in steps of a tenth: failures in the last BUCKETS buckets count, so a
    # failure counts for between 9/10 of the window and all of it, never longer.
    current = f"{PREFIX}fail:{key}:{index}"
    cache.add(current, 0, timeout=int(window + bucket) + 1)
    cache.incr(current)
    counts = cache.get_many(_failure_keys(key, index))
    if sum(counts.values()) < threshold:
        return
    _start_block(key, address, now, base, ceiling, source)


def _start_block(
    key: str, address: str | None, now: float, base: float, ceiling: float, source: str
) -> None:
    last = cache.get(PREFIX + "block:" + key)
    if last is not None and last["until"] > now:
        return  # already blocked (a request that was admitted just before the block began)
    # Escalation: a block starting within a day of the last one's end doubles its length.
    level = last["level"] + 1 if last is not None and now - last["until"] < DAY else 0
    if not cache.add(f"{PREFIX}start:{key}:{level}:{int(now // 60)}", 1, timeout=120):
        return  # another process started this very block
    # The exponent is capped: the ceiling comes long before, and past 2**1023 the float
    # product overflows (an error here would answer 500 and never start the block).
    seconds = min(base * 2 ** min(level, 64), ceiling)
    block = {"until": now + seconds, "level": level}
    cache.set(PREFIX + "block:" + key, block, timeout=_memory(block, now))
    _forget_failures(key, now)
    audit.record(
        "guard.blocked",
        actor_kind="anonymous",
        ip=ip_or_none(address),
        source=source,
        minutes=round(seconds / 60),
        level=level,
    )


def lift(address: str, *, acting: object = None, ip: str | None = None) -> bool:
    """End an address's block now (operators: `dashvault guard lift`); True if it was blocked.
    Its escalation level is kept, so a lifted address that guesses again is blocked longer."""
    key = address_key(address)
    block = cache.get(PREFIX + "block:" + key)
    now = clock()
    if block is None or block["until"] <= now:
        return False
    ended = {**block, "until": now, "lifted": True}
    cache.set(PREFIX + "block:" + key, ended, timeout=_memory(ended, now))
    audit.record(
        "guard.lifted", actor=acting, ip=ip, blocked_ip=ip_or_none(address), level=block["level"]
    )
    return True


def blocked_until(address: str) -> float | None:
    """When the address's block ends (clock() seconds), or None when it is not blocked."""
    block = cache.get(PREFIX + "block:" + address_key(address))
    if block is None or block["until"] <= clock():
        return None
    return float(block["until"])


def _failure_keys(key: str, index: int) -> list[str]:
    return [f"{PREFIX}fail:{key}:{i}" for i in range(index - BUCKETS + 1, index + 1)]


def _forget_failures(key: str, now: float) -> None:
    index = int(now // (_limits()[1] / BUCKETS))
    cache.delete_many(_failure_keys(key, index))


def _memory(block: dict[str, float], now: float) -> int:
    """How long the cache keeps a block entry: its rest plus a day (escalation memory)."""
    return max(1, int(block["until"] - now + DAY))


GUARDED_PREFIXES = ("/kiosk/", "/api/")


class GuardMiddleware:
    """Refuses blocked addresses on the guarded paths before anything else runs (first after
    SecurityMiddleware): no session, no user, no database query for a refused request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(GUARDED_PREFIXES):
            try:
                check(request.META.get("REMOTE_ADDR"))
            except Blocked as exc:
                return refused(request, exc.retry_after)
        return self.get_response(request)


def refused(request: HttpRequest, retry_after: int) -> HttpResponse:
    """The 429 answer to a blocked address: the TV page's message, or JSON for the API."""
    if request.path.startswith("/kiosk/"):
        from dashvault.kiosk.views import blocked_response, with_kiosk_headers

        return with_kiosk_headers(blocked_response(request, retry_after))
    response = JsonResponse(
        {"detail": "Too many invalid tokens from this address. Try again later."}, status=429
    )
    response["Retry-After"] = str(retry_after)
    return response
