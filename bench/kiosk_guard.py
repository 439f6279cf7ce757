"""Kiosk guessing guard: what a client guessing kiosk links costs the server once it is blocked.

Commit efd1e90: every unknown kiosk token counts a failure against the client's address
(dashvault.policy.guard); after GUARD_FAILURES (10) within GUARD_WINDOW_MINUTES the address is
blocked and GuardMiddleware (first after SecurityMiddleware) answers every /kiosk/ and /api/
request from it with 429 after one cache read and no database query. So a guessing client must
cost the server no more than an ordinary anonymous page: target, server CPU of 1,000 guesses at
most 2x that of 1,000 sign-in page views (CPU(guessing)/CPU(sign-in) < 2.0), and 0 database
queries over 1,000 refused requests.

Server: a real `dashvault serve` (embedded mode, SQLite) on loopback, on a fresh data directory
made with `dashvault migrate` and `dashvault demo`. One client, one keep-alive HTTPS session
(`requests`, the server's self-signed DATA_DIR/tls/cert.pem as the CA), one request at a time:

- reference: GET /accounts/login/ (the sign-in page), N times, before and again after the
  subject run (the ratio uses their mean, so drift shows up as a gap between the two);
- subject: GET /kiosk/<new random dvk_ token> N times: the first GUARD_FAILURES are counted
  failures (404, one database lookup each), every later one is refused with 429. The status of
  every answer is checked, so the run measures what it claims.

Server CPU is user+sys of the server process from /proc/<pid>/stat (every thread; clock ticks,
10 ms here) read before and after each run; wall time and requests/s are for information, and
so is the server's idle CPU over a second before the runs. Before the timed runs the server is
warmed up from another loopback address (127.0.0.2): sign-in pages and enough bad tokens to
block that address, so first-use costs (imports, templates) land in no timed run.

Queries: the server cannot count its own SQL, so the same check runs in this process: Django's
test client against the same data directory, an address blocked with GUARD_FAILURES bad tokens,
then N refused requests inside CaptureQueriesContext (target: 0 queries in total). The query
counts of one sign-in page and of the counted failures are shown for information.

    .venv/bin/python bench/kiosk_guard.py              # 1,000 requests per run
    .venv/bin/python bench/kiosk_guard.py --quick      # 100 requests per run (trial runs)
    .venv/bin/python bench/kiosk_guard.py --profile    # also cProfile both paths in-process
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c
import requests
from requests.adapters import HTTPAdapter

TARGET_CPU_RATIO = 2.0
TARGET_QUERIES = 0
GUARD_FAILURES = 10  # the default, set explicitly for the server and for this process
SIGN_IN = "/accounts/login/"
WARM_ADDRESS = "127.0.0.2"  # loopback too: warming up from it leaves 127.0.0.1 unblocked
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bad_token() -> str:
    """A token shaped like a real kiosk token (dvk_ + 43 characters), so the lookup runs."""
    return "dvk_" + secrets.token_urlsafe(32)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


class SourceAddressAdapter(HTTPAdapter):
    """Connections from a chosen local address (127.0.0.x are all loopback on Linux)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def session_for(cert: Path, address: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    session.verify = str(cert)
    if address:
        session.mount("https://", SourceAddressAdapter(address))
    return session


@dataclass
class Run:
    name: str
    planned: int
    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    cpu_at_mark: float | None = None
    connections: int = 0

    @property
    def done(self) -> int:
        return len(self.statuses)

    @property
    def rate(self) -> float:
        return self.done / self.wall if self.wall else 0.0

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / max(1, self.done)


def load(
    session: requests.Session,
    base: str,
    name: str,
    paths: list[str],
    pid: int,
    max_seconds: float,
    mark: int | None = None,
) -> Run:
    """GET each path in turn on one keep-alive session; server CPU and wall time around it
    (and the CPU of the first `mark` requests)."""
    run = Run(name, len(paths))
    pool = session.get_adapter(base).poolmanager.connection_from_url(base)
    opened = pool.num_connections
    clock = time.perf_counter
    deadline = time.monotonic() + max_seconds
    cpu_before = cpu_seconds(pid)
    started = clock()
    for index, path in enumerate(paths):
        if index == mark:
            run.cpu_at_mark = cpu_seconds(pid) - cpu_before
        if time.monotonic() > deadline:
            break
        sent = clock()
        answer = session.get(base + path, allow_redirects=False, timeout=30)
        run.latencies.append(clock() - sent)
        run.statuses.append(answer.status_code)
    run.wall = clock() - started
    run.cpu = cpu_seconds(pid) - cpu_before
    run.connections = pool.num_connections - opened  # new TLS connections opened in the run
    print(
        f"{name}: {run.done:,} requests in {run.wall:.2f} s ({run.rate:,.0f}/s), server CPU "
        f"{run.cpu:.2f} s ({c.ms(run.cpu_per_request)}/request), statuses "
        f"{dict(sorted(Counter(run.statuses).items()))}, {run.connections} new connection(s)",
        flush=True,
    )
    return run


def warm_up(base: str, cert: Path, requests_each: int) -> dict[int, int]:
    """Sign-in pages and bad tokens (enough to be blocked) from WARM_ADDRESS, untimed."""
    session = session_for(cert, WARM_ADDRESS)
    statuses: Counter[int] = Counter()
    for _ in range(requests_each):
        statuses[session.get(base + SIGN_IN, timeout=30).status_code] += 1
    for _ in range(GUARD_FAILURES + requests_each):
        statuses[session.get(f"{base}/kiosk/{bad_token()}", timeout=30).status_code] += 1
    session.close()
    return dict(statuses)


@dataclass
class InProcess:
    sign_in_queries: int = -1
    failure_queries: list[int] = field(default_factory=list)
    failure_statuses: list[int] = field(default_factory=list)
    refused_queries: int = -1
    refused_statuses: Counter[int] = field(default_factory=Counter)
    refused_seconds: float = 0.0
    sign_in_seconds: float = 0.0
    refused_done: int = 0
    sign_in_done: int = 0
    profiles: dict[str, str] = field(default_factory=dict)


def in_process(data_dir: Path, n: int, max_seconds: float, profile: bool) -> InProcess:
    """Django's test client against `data_dir` in this process: query counts (and optionally
    profiles) of the sign-in page, the counted failures and the refused requests."""
    c.setup_django(data_dir)  # drops the caller's DASHVAULT_* variables: default settings
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    logging.getLogger("django.request").setLevel(logging.ERROR)  # one 4xx line per request
    if settings.GUARD_FAILURES != GUARD_FAILURES:
        raise RuntimeError(f"GUARD_FAILURES is {settings.GUARD_FAILURES}, not {GUARD_FAILURES}")
    cache.clear()
    result = InProcess()
    client = Client(REMOTE_ADDR="127.0.0.1", HTTP_HOST="localhost")

    def get(path: str) -> int:
        return int(client.get(path, secure=True).status_code)

    get(SIGN_IN)  # first use: imports, templates, connection
    with CaptureQueriesContext(connection) as captured:
        status = get(SIGN_IN)
    result.sign_in_queries = len(captured.captured_queries)
    if status != 200:
        raise RuntimeError(f"sign-in page answered {status} in-process")

    for _ in range(GUARD_FAILURES):
        with CaptureQueriesContext(connection) as captured:
            result.failure_statuses.append(get(f"/kiosk/{bad_token()}"))
        result.failure_queries.append(len(captured.captured_queries))

    paths = [f"/kiosk/{bad_token()}" for _ in range(n)]
    deadline = time.monotonic() + max_seconds
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        for path in paths:
            if time.monotonic() > deadline:
                break
            result.refused_statuses[get(path)] += 1
            result.refused_done += 1
        result.refused_seconds = time.perf_counter() - started
    result.refused_queries = len(captured.captured_queries)

    deadline = time.monotonic() + max_seconds
    started = time.perf_counter()
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        get(SIGN_IN)
        result.sign_in_done += 1
    result.sign_in_seconds = time.perf_counter() - started

    if profile:
        for label, path_of in (
            ("refused /kiosk/<bad token> (429)", lambda: f"/kiosk/{bad_token()}"),
            ("sign-in page", lambda: SIGN_IN),
        ):
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(min(n, 300)):
                get(path_of())
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
            result.profiles[label] = out.getvalue()
    connection.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 requests per run")
    parser.add_argument("--requests", type=int, help="requests per run (1,000)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests per path (30)")
    parser.add_argument("--max-seconds", type=float, default=120, help="time cap of each run")
    parser.add_argument("--profile", action="store_true", help="print in-process profiles")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    n = args.requests or (100 if args.quick else 1000)
    if n <= GUARD_FAILURES:
        parser.error(f"--requests must be more than {GUARD_FAILURES}")

    with c.scratch_dir("guard", keep=args.keep) as root:
        data_dir = root / "app"
        c.migrate(data_dir)
        c.dashvault(data_dir, "demo")
        env = {"DASHVAULT_GUARD_FAILURES": str(GUARD_FAILURES)}
        runs: dict[str, Run] = {}
        with c.running_server(data_dir, env=env, redirect=False) as server:
            pid = server.process.pid
            cert = data_dir / "tls" / "cert.pem"
            base = f"https://127.0.0.1:{server.port}"  # in the certificate and ALLOWED_HOSTS
            warm = warm_up(base, cert, args.warmup)
            print(f"warm-up from {WARM_ADDRESS}: statuses {dict(sorted(warm.items()))}", flush=True)
            time.sleep(0.5)
            idle_before = cpu_seconds(pid)
            time.sleep(1.0)
            idle = cpu_seconds(pid) - idle_before

            session = session_for(cert)
            session.get(base + SIGN_IN, timeout=30)  # opens the session's one connection
            runs["sign-in"] = load(
                session, base, "sign-in page", [SIGN_IN] * n, pid, args.max_seconds
            )
            runs["guessing"] = load(
                session,
                base,
                "kiosk guessing",
                [f"/kiosk/{bad_token()}" for _ in range(n)],
                pid,
                args.max_seconds,
                mark=GUARD_FAILURES,
            )
            runs["sign-in again"] = load(
                session, base, "sign-in page again", [SIGN_IN] * n, pid, args.max_seconds
            )
            session.close()
            log_text = server.log.read_text(errors="replace")
        checked = in_process(data_dir, n, args.max_seconds, args.profile)
        return report(n, runs, idle, log_text, checked)


def report(n: int, runs: dict[str, Run], idle: float, log_text: str, checked: InProcess) -> int:
    sign_in, guessing, again = runs["sign-in"], runs["guessing"], runs["sign-in again"]
    print(f"\none client, one keep-alive HTTPS session, {n:,} requests per run")
    c.print_table(
        ("run", "requests", "wall", "req/s", "p50", "p95", "server CPU", "CPU/request"),
        [
            (
                f"{run.name}",
                f"{run.done:,}",
                f"{run.wall:.2f} s",
                f"{run.rate:,.0f}",
                c.ms(c.percentile(run.latencies, 50)),
                c.ms(c.percentile(run.latencies, 95)),
                f"{run.cpu:.2f} s",
                c.ms(run.cpu_per_request),
            )
            for run in runs.values()
        ],
    )
    refused = guessing.statuses[GUARD_FAILURES:]
    if guessing.cpu_at_mark is not None and len(refused) > 0:
        refused_cpu = guessing.cpu - guessing.cpu_at_mark
        print(
            f"server CPU of the {GUARD_FAILURES} counted failures: {guessing.cpu_at_mark:.2f} s; "
            f"of the {len(refused):,} refused: {refused_cpu:.2f} s "
            f"({c.ms(refused_cpu / len(refused))}/request)"
        )
    if len(refused) > 1:
        print(
            f"latency of the {GUARD_FAILURES} counted failures: p50 "
            f"{c.ms(c.percentile(guessing.latencies[:GUARD_FAILURES], 50))}; of the "
            f"{len(refused):,} refused: p50 "
            f"{c.ms(c.percentile(guessing.latencies[GUARD_FAILURES:], 50))}"
        )
    print(
        f"in-process (Django test client, no TLS/server): sign-in page "
        f"{c.ms(checked.sign_in_seconds / max(1, checked.sign_in_done))}/request, refused "
        f"kiosk request {c.ms(checked.refused_seconds / max(1, checked.refused_done))}/request; "
        f"queries: sign-in page {checked.sign_in_queries}, counted failures "
        f"{checked.failure_queries}"
    )
    for label, text in checked.profiles.items():
        print(f"\n-- cProfile, in-process, {label} --\n{text}")

    reference_cpu = (sign_in.cpu + again.cpu) / 2
    cpu_ratio = guessing.cpu / reference_cpu if reference_cpu > 0 else float("inf")
    expected = [404] * GUARD_FAILURES + [429] * (n - GUARD_FAILURES)
    checks = [
        c.Check(
            "server CPU, guessing / sign-in page",
            f"{guessing.cpu:.2f} s",
            f"{reference_cpu:.2f} s",
            c.ratio(cpu_ratio),
            f"< {TARGET_CPU_RATIO}",
            cpu_ratio < TARGET_CPU_RATIO,
        ),
        c.Check(
            f"queries over {checked.refused_done:,} refused requests (in-process)",
            str(checked.refused_queries),
            f"{checked.sign_in_queries}/sign-in page",
            "-",
            str(TARGET_QUERIES),
            checked.refused_queries == TARGET_QUERIES and checked.refused_done == n,
        ),
        c.Check(
            f"guessing: first {GUARD_FAILURES} answer 404, then 429",
            _statuses(guessing.statuses),
            f"{GUARD_FAILURES}x404, {n - GUARD_FAILURES}x429",
            "-",
            "exact",
            guessing.statuses == expected,
        ),
        c.Check(
            "in-process: 404 x failures, then 429",
            _statuses(checked.failure_statuses + list(checked.refused_statuses.elements())),
            f"{GUARD_FAILURES}x404, {n}x429",
            "-",
            "exact",
            checked.failure_statuses == [404] * GUARD_FAILURES
            and checked.refused_statuses == Counter({429: n}),
        ),
        c.Check(
            "sign-in runs: every answer 200",
            f"{_statuses(sign_in.statuses)}; {_statuses(again.statuses)}",
            f"{n}x200 each",
            "-",
            "all 200",
            sign_in.statuses == [200] * n and again.statuses == [200] * n,
        ),
        c.Check(
            "keep-alive: new connections per run",
            ", ".join(str(run.connections) for run in runs.values()),
            "-",
            "-",
            "0 each",
            all(run.connections == 0 for run in runs.values()),
        ),
    ]
    drift = abs(sign_in.cpu - again.cpu) / reference_cpu if reference_cpu > 0 else 0.0
    notes = [
        f"server idle CPU over 1 s before the runs: {idle * 1000:.0f} ms "
        f"(CPU is read in {1000 / CLOCK_TICKS:.0f} ms ticks)",
        f"the two sign-in runs differ by {drift:.0%} in server CPU (ratio uses their mean)",
        f"server log: {len(log_text.encode()):,} bytes, "
        f"{log_text.count('Too Many Requests:'):,} 'Too Many Requests' lines (django.request "
        "logs every 4xx, so each refused request writes one)",
    ]
    return c.finish("kiosk guard", checks, notes)


def _statuses(statuses: list[int]) -> str:
    """Runs of equal statuses in order: '10x404, 990x429'."""
    parts: list[str] = []
    for status in statuses:
        if parts and parts[-1].endswith(f"x{status}"):
            count = int(parts[-1].split("x")[0]) + 1
            parts[-1] = f"{count}x{status}"
        else:
            parts.append(f"1x{status}")
    return ", ".join(parts) or "none"


if __name__ == "__main__":
    sys.exit(main())
