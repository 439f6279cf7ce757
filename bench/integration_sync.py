"""Integration sync: records from a loopback REST service against the same points pushed.

Issue 7: syncing 100,000 records from a loopback server reaches at least 0.3 of the rate of
pushing the same points through the push API (same run).

The data: N records (100,000; --quick 20,000), a year of closed deals in time order, each with
a timestamp, a value, a dimension (the sales rep) and an external id. Both ways store them in
one fresh data directory (embedded mode, SQLite, WAL), each into its own metric of the same
organization (time zone UTC), so both pay for the external-id check and the rollups alike.

1. Reference, the push API as a real client uses it (as bench/ingest.py does): a real
   `dashvault serve` (HTTPS, uvicorn + a2wsgi) on loopback, one keep-alive `requests` client,
   `POST /api/v1/datapoints` with a push token and an Idempotency-Key, request after request,
   in batches of the most points a request may hold (api.schemas.MAX_POINTS, 10,000). Request
   bodies are serialised before the clock starts; everything the server does is timed (TLS,
   parsing and validation, do_ingest, the idempotency record and the audit entry, one
   transaction per request). Warm-up pushes into another metric first, untimed.
2. Sync: a fake service of the generic REST connector's shape in a subprocess (HTTPS with a
   certificate from a throwaway trustme CA, tests/connector_servers.py's server, bearer
   token, `data.items` pages of --page-size records, 1,000 by default, `links.next` absolute
   next-page links). It runs in its own process so that its work (TLS, sending) does not hold
   this process's GIL while the client runs: a real service runs on another machine. Its pages
   are rendered to bytes before the clock starts, as the push bodies are. The organization,
   metric and integration are made in this process (actions.do_create_integration, the CA
   PEM, settings.OUTBOUND_ALLOWED_NETWORKS allowing loopback), after the `dashvault serve` of
   phase 1 stopped (its job scheduler would otherwise run the due integration itself). After an
   untimed warm-up sync of one small page into another metric, `sync.run(integration.pk)` is
   timed end to end: the claim, every page fetched (a new HTTPS connection each, as lib.http
   makes them), the mapping, the one-transaction ingest and the run record.
   The pieces are timed by wrapping the functions sync.run calls (lib.http.request,
   Response.json, mapping.points, do_ingest and the ingest helpers it calls): microseconds
   per call, a few hundred calls in all.

Ratio: sync rate / push rate (points per second), target >= 0.3. Push runs first: the sync
inserts into a table already holding the pushed points (stricter for the sync). Afterwards
both metrics must hold all N points, the same ones (time, value, dimension per external id),
the SyncRun must be ok with N records, and every rollup must equal a recomputation.

    .venv/bin/python bench/integration_sync.py            # 100,000 records
    .venv/bin/python bench/integration_sync.py --quick    # 20,000 records
    .venv/bin/python bench/integration_sync.py --profile  # also cProfile of a second sync
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import functools
import io
import json
import pstats
import random
import re
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c
import requests

TARGET_RATIO = 0.3
ITEMS = "/api/v1/items"
WARMUP = "/api/v1/warmup"
WARMUP_RECORDS = 200
SECRET = "bench-service-token-4fK9qT2mVx7Lp"  # noqa: S105  (the fake service's bearer token)
ADMIN = "bench@example.com"
PUSHED, SYNCED = "pushed", "synced"
LOOPBACK = ("127.0.0.0/8", "::1/128")
JSON_HEADERS = {"Content-Type": "application/json"}
MAPPING = {"timestamp": "closed_at", "value": "amount", "dimension": "rep", "id": "id"}


# --- the data ----------------------------------------------------------------------------------


def make_records(n: int, last_day: dt.date, seed: int = 7) -> list[dict[str, Any]]:
    """A year of closed deals ending on `last_day`, in time order."""
    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)
    start = dt.datetime.combine(last_day - dt.timedelta(days=364), dt.time(), dt.UTC)
    step_us = 365 * 86_400_000_000 // n
    records = []
    for i in range(n):
        ts = start + dt.timedelta(microseconds=i * step_us + rng.randrange(1, step_us))
        records.append(
            {
                "id": f"deal-{i:07d}",
                "closed_at": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "amount": round(rng.uniform(5, 2000), 2),
                "rep": rng.choice(c.REPS),
            }
        )
    return records


def push_bodies(records: list[dict[str, Any]], batch: int) -> list[bytes]:
    """The same records as push API requests of `batch` points each."""
    bodies = []
    for start in range(0, len(records), batch):
        points = [
            {
                "metric": PUSHED,
                "ts": r["closed_at"],
                "value": r["amount"],
                "dimension": r["rep"],
                "external_id": r["id"],
            }
            for r in records[start : start + batch]
        ]
        bodies.append(json.dumps({"points": points}, separators=(",", ":")).encode())
    return bodies


# --- the fake REST service (a subprocess: this file with --serve) -----------------------------


def render_pages(origin: str, records: list[dict[str, Any]], size: int) -> dict[str, bytes]:
    """Each page's answer by its `offset`, as tests.connector_servers.RestApi shapes them."""
    pages = {}
    for offset in range(0, len(records), size):
        following = offset + size
        link = f"{origin}{ITEMS}?offset={following}" if following < len(records) else None
        body = {"data": {"items": records[offset:following]}, "links": {"next": link}}
        pages[str(offset)] = json.dumps(body, separators=(",", ":")).encode()
    return pages


def serve_records(folder: Path, page_size: int, lifetime: float) -> int:
    """The child process: serve folder/records.json until terminated (or `lifetime` is up);
    writes folder/ready.json (port, origin, CA PEM) once it accepts connections."""
    import trustme

    from tests.connector_servers import Handler, Seen, Services, reply

    records = json.loads((folder / "records.json").read_bytes())
    ca = trustme.CA()
    services = Services(ca)
    service = services.start()
    pages = render_pages(service.origin(), records, page_size)
    warmup = json.dumps(
        {"data": {"items": records[:WARMUP_RECORDS]}, "links": {"next": None}}
    ).encode()

    def authorized(handler: Handler, seen: Seen) -> bool:
        if seen.headers.get("authorization") == f"Bearer {SECRET}":
            return True
        reply(handler, 401, b'{"error":"invalid_token"}', JSON_HEADERS)
        return False

    def items(handler: Handler, seen: Seen) -> None:
        if authorized(handler, seen):
            body = pages.get(seen.query.get("offset", "0"))
            if body is None:
                reply(handler, 404, b'{"error":"no such page"}', JSON_HEADERS)
            else:
                reply(handler, 200, body, JSON_HEADERS)

    def warm(handler: Handler, seen: Seen) -> None:
        if authorized(handler, seen):
            reply(handler, 200, warmup, JSON_HEADERS)

    service.route(ITEMS, items)
    service.route(WARMUP, warm)
    ready = {
        "origin": service.origin(),
        "ca_pem": ca.cert_pem.bytes().decode(),
        "pages": len(pages),
        "page_bytes": sum(map(len, pages.values())),
    }
    (folder / "ready.tmp").write_text(json.dumps(ready))
    (folder / "ready.tmp").rename(folder / "ready.json")
    threading.Event().wait(lifetime)  # SIGTERM from the parent normally ends it first
    services.close()
    return 0


@contextlib.contextmanager
def fake_service(
    folder: Path, records: list[dict[str, Any]], page_size: int, lifetime: float
) -> Iterator[dict[str, Any]]:
    """Start the fake service in a subprocess; yields its ready.json; stops it afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.json").write_text(json.dumps(records))
    log = folder / "service.log"
    args = [sys.executable, __file__, "--serve", str(folder), "--page-size", str(page_size)]
    with open(log, "w") as out:
        process = subprocess.Popen(  # noqa: S603  (this file, fixed arguments)
            [*args, "--lifetime", str(lifetime)],
            cwd=c.ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (folder / "ready.json").exists():
            if process.poll() is not None:
                raise RuntimeError(f"fake service exited:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake service did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield json.loads((folder / "ready.json").read_text())
    finally:
        c.stop(process)


# --- 1. the push API -------------------------------------------------------------------------


@dataclass
class PushResult:
    seconds: float
    pushed: int
    requests: int
    statuses: dict[int, int]
    request_times: list[float]
    body_bytes: int
    planned: int


def push_phase(data_dir: Path, token: str, bodies: list[bytes], max_seconds: float) -> PushResult:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    session.verify = str(data_dir / "tls" / "cert.pem")
    session.headers["Authorization"] = f"Bearer {token}"
    statuses: dict[int, int] = {}
    times: list[float] = []
    pushed = 0
    try:
        with c.dashvault_server(data_dir) as url:
            for spec in ({"key": PUSHED, "name": "Pushed deals"}, {"key": "push-warmup"}):
                answer = session.post(
                    f"{url}/api/v1/metrics", json={"name": "Warm-up", **spec}, timeout=30
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"creating metric: {answer.status_code} {answer.text}")
            # Warm-up (lazy imports, first connection, caches): a few small pushes, not timed.
            for i in range(3):
                warm: list[dict[str, Any]] = [
                    {"metric": "push-warmup", "ts": f"2020-01-0{i + 1}T00:00:00Z", "value": 1.0}
                ] * 100
                answer = session.post(f"{url}/api/v1/datapoints", json={"points": warm}, timeout=60)
                if answer.status_code != 201:
                    raise RuntimeError(f"warm-up push: {answer.status_code} {answer.text}")
            clock = time.perf_counter
            deadline = time.monotonic() + max_seconds
            started = clock()
            for body in bodies:
                if time.monotonic() > deadline:
                    break
                t0 = clock()
                answer = session.post(
                    f"{url}/api/v1/datapoints",
                    data=body,
                    headers={**JSON_HEADERS, "Idempotency-Key": str(uuid.uuid4())},
                    timeout=(10, 300),
                )
                times.append(clock() - t0)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 201:
                    pushed += answer.json()["stored"]
            seconds = clock() - started
    finally:
        session.close()
    return PushResult(
        seconds, pushed, len(times), statuses, times, sum(map(len, bodies)), len(bodies)
    )


# --- 2. the sync ---------------------------------------------------------------------------------


@dataclass
class Piece:
    calls: int = 0
    seconds: float = 0.0
    durations: list[float] = field(default_factory=list)


@dataclass
class SyncTimers:
    """Wall time spent in the functions sync.run calls, by name, and when phases began."""

    pieces: dict[str, Piece] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)

    def wrap(self, name: str, fn: Callable[..., Any], mark: str = "") -> Callable[..., Any]:
        piece = self.pieces.setdefault(name, Piece())
        clock = time.perf_counter

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            if mark:
                self.marks.setdefault(mark, t0)
            try:
                return fn(*args, **kwargs)
            finally:
                piece.calls += 1
                piece.durations.append(clock() - t0)
                piece.seconds += piece.durations[-1]
                if mark:
                    self.marks[mark + " end"] = clock()

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Each function replaced by its timed wrapper where its caller looks it up."""
        from dashvault.integrations import mapping, sync
        from dashvault.lib import http
        from dashvault.metrics import ingest

        targets: list[tuple[Any, str, str, str]] = [
            (http, "request", "HTTPS requests (lib.http.request)", ""),
            (http.Response, "json", "JSON decoding (Response.json)", ""),
            (mapping, "points", "mapping (mapping.points)", "mapping"),
            (sync, "do_ingest", "ingest (do_ingest)", "ingest"),
            (ingest, "_delete_replaced", "external-id lookups (_delete_replaced)", ""),
            (ingest, "_insert_points", "insert (_insert_points, executemany)", ""),
            (ingest, "_aggregate", "rollup aggregation (_aggregate, local days)", ""),
            (ingest, "_upsert_increments", "rollup upserts (_upsert_increments)", ""),
            (ingest, "_recompute", "rollup recompute (_recompute)", ""),
            (sync, "_finish", "run record (_finish)", "finish"),
        ]
        saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _, _ in targets]
        for owner, attr, name, mark in targets:
            setattr(owner, attr, self.wrap(name, getattr(owner, attr), mark))
        try:
            yield
        finally:
            for owner, attr, original in saved:
                setattr(owner, attr, original)


@dataclass
class SyncResult:
    seconds: float
    cpu: float
    run_ok: bool
    run_records: int
    run_error: str
    timers: SyncTimers
    started: float
    ended: float
    warm_seconds: float
    context_seconds: float  # one TLS context as lib.http._pool makes it for each request


def setup_integration(
    org: Any, admin: Any, metric_key: str, service: dict[str, Any], path: str, paged: bool
) -> Any:
    from dashvault.integrations.actions import do_create_integration
    from dashvault.metrics.models import Metric

    metric = Metric.objects.create(org=org, key=metric_key, name=f"Deals ({metric_key})")
    config = {
        "url": service["origin"] + path,
        "records_path": "data.items",
        "pagination": "next_link" if paged else "none",
        "next_path": "links.next",
        "auth": "bearer",
        "mapping": MAPPING,
    }
    return do_create_integration(
        org,
        acting=admin,
        ip="127.0.0.1",
        name=f"Bench feed ({metric_key})",
        kind="rest",
        metric=metric,
        config=config,
        secret=SECRET,
        ca_pem=service["ca_pem"],
    )


def sync_phase(org: Any, admin: Any, service: dict[str, Any]) -> SyncResult:
    from dashvault.integrations import sync

    warm = setup_integration(org, admin, "sync-warmup", service, WARMUP, paged=False)
    t0 = time.perf_counter()
    warm_run = sync.run(warm.pk)
    warm_seconds = time.perf_counter() - t0
    if warm_run is None or not warm_run.ok or warm_run.records != WARMUP_RECORDS:
        raise RuntimeError(f"warm-up sync failed: {warm_run and warm_run.error}")

    integration = setup_integration(org, admin, SYNCED, service, ITEMS, paged=True)
    timers = SyncTimers()
    with timers.installed():
        cpu0, started = time.process_time(), time.perf_counter()
        record = sync.run(integration.pk)
        ended = time.perf_counter()
        cpu = time.process_time() - cpu0
    if record is None:
        raise RuntimeError("the integration was claimed by another run")
    return SyncResult(
        ended - started,
        cpu,
        record.ok,
        record.records,
        record.error,
        timers,
        started,
        ended,
        warm_seconds,
        tls_context_cost(service["ca_pem"]),
    )


def tls_context_cost(ca_pem: str, calls: int = 10, repeats: int = 5) -> float:
    """Best-of-`repeats` seconds per call of what lib.http._pool does for every request
    before connecting: a default context (the system's CAs loaded from disk), plus the CA."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            context = ssl.create_default_context()
            context.load_verify_locations(cadata=ca_pem)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def profile_sync(org: Any, admin: Any, service: dict[str, Any]) -> str:
    """cProfile of one more full sync into a fresh metric (not the timed run)."""
    from dashvault.integrations import sync

    integration = setup_integration(org, admin, "sync-profiled", service, ITEMS, paged=True)
    profiler = cProfile.Profile()
    profiler.enable()
    record = sync.run(integration.pk)
    profiler.disable()
    if record is None or not record.ok:
        raise RuntimeError(f"profiled sync failed: {record and record.error}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(35)
    return out.getvalue()


# --- checks on the stored data ---------------------------------------------------------------


@dataclass
class Stored:
    pushed: int
    synced: int
    same: int  # synced points equal to the pushed point of the same external id
    rollup_differences: list[str]
    rollups: int


def stored(db: Path, org_hex: str) -> Stored:
    con = sqlite3.connect(db)
    try:
        ids = dict(con.execute("SELECT key, id FROM metrics_metric WHERE org_id = ?", (org_hex,)))
        count = "SELECT COUNT(*) FROM metrics_datapoint WHERE metric_id = ?"
        pushed = con.execute(count, (ids[PUSHED],)).fetchone()[0]
        synced = con.execute(count, (ids[SYNCED],)).fetchone()[0]
        same = con.execute(
            "SELECT COUNT(*) FROM metrics_datapoint AS s JOIN metrics_datapoint AS p "
            # A synced point's id carries its integration's prefix ("<integration id>:").
            "ON p.metric_id = ? AND p.external_id = substr(s.external_id, 38) "
            "WHERE s.metric_id = ? AND p.ts = s.ts AND p.value = s.value "
            "AND p.dimension = s.dimension",
            (ids[PUSHED], ids[SYNCED]),
        ).fetchone()[0]
    finally:
        con.close()
    expected = c.rollups_from_points(db, org_hex)
    differences = c.snapshot_differences(c.rollup_snapshot(db, org_hex), expected)
    return Stored(pushed, synced, same, differences, len(expected))


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 records")
    parser.add_argument("--records", type=int, help="records both ways (100,000)")
    parser.add_argument("--page-size", type=int, default=1000, help="records a page (1,000)")
    parser.add_argument(
        "--max-seconds", type=float, default=600, help="time cap of the push loop (600)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile of a second sync")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the fake service
    parser.add_argument("--lifetime", type=float, default=3600, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve_records(args.serve, args.page_size, args.lifetime)
    n = args.records or (20_000 if args.quick else 100_000)
    if n < 1 or not 1 <= args.page_size <= 10_000:
        parser.error("need at least one record and 1 to 10,000 records a page")

    with c.scratch_dir("sync", keep=args.keep) as root:
        data_dir = root / "app"
        db = c.migrate(data_dir)
        created = c.dashvault(
            data_dir, "createorg", "Bench sync", "--admin-email", ADMIN, "--time-zone", "UTC"
        )
        match = re.search(r"Created organization ([0-9a-f-]{36})", created.stdout)
        if not match:
            raise RuntimeError(f"createorg said: {created.stdout} {created.stderr}")
        org_id = uuid.UUID(match.group(1))
        token = c.dashvault(
            data_dir, "token", "create", "--org", str(org_id), "--scope", "push"
        ).stdout.strip()
        c.setup_django(data_dir)  # this process: the sync phase, against the same database
        from django.conf import settings
        from django.db import connection

        from dashvault.accounts.models import User
        from dashvault.api.schemas import MAX_POINTS
        from dashvault.lib.clientip import parse_networks
        from dashvault.orgs.models import Organization

        records = make_records(n, dt.datetime.now(dt.UTC).date())
        bodies = push_bodies(records, MAX_POINTS)
        print(
            f"{n:,} records; push: {len(bodies)} requests of up to {MAX_POINTS:,} points; "
            f"sync: pages of {args.page_size:,} records; data dir {data_dir}",
            flush=True,
        )

        print("1. push API: dashvault serve, one keep-alive client", flush=True)
        pushed = push_phase(data_dir, token, bodies, args.max_seconds)

        print("2. sync: sync.run against the fake REST service (a subprocess)", flush=True)
        # Read at call time by sync.policy_for: the operator allows loopback.
        settings.OUTBOUND_ALLOWED_NETWORKS = parse_networks(LOOPBACK)
        org = Organization.objects.get(pk=org_id)
        admin = User.objects.get(email=ADMIN)
        lifetime = 2 * args.max_seconds + 600
        with fake_service(root / "service", records, args.page_size, lifetime) as service:
            synced = sync_phase(org, admin, service)
            profile = profile_sync(org, admin, service) if args.profile else ""
        connection.close()
        result = stored(db, org_id.hex)
    return report(n, args.page_size, service, pushed, synced, result, profile)


def report(
    n: int,
    page_size: int,
    service: dict[str, Any],
    pushed: PushResult,
    synced: SyncResult,
    result: Stored,
    profile: str,
) -> int:
    t, marks = synced.timers.pieces, synced.timers.marks
    sync_rate = synced.run_records / synced.seconds if synced.seconds else 0.0
    push_rate = pushed.pushed / pushed.seconds if pushed.seconds else 0.0
    ratio = sync_rate / push_rate if push_rate else 0.0

    fetch = marks.get("mapping", synced.ended) - synced.started
    https, decode = t["HTTPS requests (lib.http.request)"], t["JSON decoding (Response.json)"]
    ingest = t["ingest (do_ingest)"]
    helpers = [
        name for name in t if name.startswith(("external-id", "insert", "rollup")) and t[name].calls
    ]
    in_helpers = sum(t[name].seconds for name in helpers)
    commit = marks.get("finish", synced.ended) - marks.get("ingest end", synced.ended)
    finish = t["run record (_finish)"]
    mapping = t["mapping (mapping.points)"]
    accounted = fetch + mapping.seconds + ingest.seconds + commit + finish.seconds

    def row(name: str, seconds: float, calls: int | str = "") -> tuple[str, ...]:
        share = seconds / synced.seconds if synced.seconds else 0.0
        per_point = seconds / n * 1e6
        return (name, str(calls), f"{seconds:.3f} s", f"{share:.0%}", f"{per_point:.1f} us")

    print(f"\n-- where the sync's {synced.seconds:.2f} s went ({n:,} records) --")
    c.print_table(
        ("piece", "calls", "wall", "share", "per record"),
        [
            row("sync.run end to end", synced.seconds, 1),
            row("fetch: claim, run record, every page (until mapping starts)", fetch),
            row("  HTTPS requests: connect, TLS, wait, read", https.seconds, https.calls),
            row("  JSON decoding of the pages", decode.seconds, decode.calls),
            row(
                "  the rest: claim, credential, connector loop",
                fetch - https.seconds - decode.seconds,
            ),
            row("mapping: records to points", mapping.seconds, mapping.calls),
            row("ingest: do_ingest (all points, one call)", ingest.seconds, ingest.calls),
            *[row(f"  {name}", t[name].seconds, t[name].calls) for name in helpers],
            row(
                "  the rest: metric lock, external-id dict, kept list", ingest.seconds - in_helpers
            ),
            row("commit and cursor update", commit),
            row("run record", finish.seconds, finish.calls),
            row("unaccounted", synced.seconds - accounted),
        ],
    )
    print(
        f"sync CPU time in this process {synced.cpu:.2f} s of {synced.seconds:.2f} s wall; "
        f"{service['pages']} pages, {service['page_bytes'] / 1e6:.1f} MB of JSON; "
        f"warm-up sync of {WARMUP_RECORDS} records took {synced.warm_seconds * 1000:.0f} ms"
    )
    if https.durations:
        per_context = synced.context_seconds
        print(
            f"per HTTPS request: median {c.ms(c.percentile(https.durations, 50))}, slowest "
            f"{c.ms(max(https.durations))}; of which a new TLS context as lib.http._pool makes "
            f"one for every request (ssl.create_default_context() loads the system's CAs, plus "
            f"the CA PEM): {c.ms(per_context)} (best of 5), ~{per_context * https.calls:.2f} s "
            f"of this sync"
        )
    times = pushed.request_times
    print(f"\n-- push API: {pushed.requests} requests, {pushed.body_bytes / 1e6:.1f} MB --")
    if times:
        print(
            f"{pushed.seconds:.2f} s; per request: median {c.ms(c.percentile(times, 50))}, "
            f"slowest {c.ms(max(times))}; statuses {pushed.statuses}"
        )
    if profile:
        print(f"\n-- cProfile: a second sync of the same {n:,} records --\n{profile}")

    run_ok = synced.run_ok and synced.run_records == n
    checks = [
        c.Check(
            f"sync rate / push API rate ({n:,} points)",
            f"{sync_rate:,.0f} points/s",
            f"{push_rate:,.0f} points/s",
            c.ratio(ratio),
            f">= {TARGET_RATIO}",
            ratio >= TARGET_RATIO and run_ok and pushed.pushed == n,
        ),
        c.Check(
            "sync run ok, records stored",
            f"{'ok' if synced.run_ok else 'failed'}, {synced.run_records:,}",
            f"{n:,}",
            "-",
            "ok, all",
            run_ok and result.synced == n,
        ),
        c.Check(
            "push requests answered 201, points stored",
            f"{pushed.statuses.get(201, 0)}, {result.pushed:,}",
            f"{pushed.planned}, {n:,}",
            "-",
            "all",
            pushed.statuses.get(201, 0) == pushed.requests == pushed.planned and result.pushed == n,
        ),
        c.Check(
            "both ways stored the same points",
            f"{result.same:,} equal",
            f"{n:,}",
            "-",
            "all",
            result.same == n,
        ),
        c.Check(
            "rollups equal a recomputation",
            f"{len(result.rollup_differences)} differ",
            f"{result.rollups:,} rollups",
            "-",
            "0 differ",
            not result.rollup_differences and result.rollups > 0,
        ),
    ]
    notes = [
        f"sync {synced.seconds:.2f} s, push {pushed.seconds:.2f} s (push ran first, into an "
        "empty table; the sync into one holding the pushed points)",
        f"sync pages of {page_size:,} records from a subprocess over HTTPS (a new connection a "
        "page, as lib.http makes them); push bodies serialised before the clock started",
        *([f"sync error: {synced.run_error}"] if synced.run_error else []),
        *result.rollup_differences[:5],
    ]
    return c.finish("integration sync", checks, notes)


if __name__ == "__main__":
    sys.exit(main())
