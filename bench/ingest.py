"""Ingest: 1 million points through the real push API, rollups included, against a bare insert.

Issue 3: pushing 1,000,000 points in 10,000-point requests runs at no less than a quarter of
the rate of a bare sqlite3 `executemany` of the same rows on the same kind of database.

dashvault: a real `dashvault serve` (HTTPS, uvicorn + a2wsgi, as in production) on loopback,
fed by one keep-alive `requests` client, request after request: `POST /api/v1/datapoints`
with a push token and an Idempotency-Key, as a careful client sends them. The data is a year
of backfill in time order, two metrics, eight reps (each request covers ~3.7 days, so about
60 rollups move per request). Request bodies are serialised before the clock starts, so
the client's JSON encoding is not counted; everything the server does is (TLS, parsing and
validation, the insert, rollup upserts, the idempotency record and the audit entry, one
transaction per request).

Reference: the same rows, already in stored form, inserted with `executemany` into the same
table of a fresh `dashvault migrate` database (same indexes, WAL, synchronous=NORMAL as
dashvault opens it), one transaction per 10,000 rows, as the requests commit. It runs before
and after the server phase on fresh databases; the faster run is the reference (stricter).

Afterwards the server's database is checked: every point stored, every rollup equal to a
recomputation from the raw points.

    .venv/bin/python bench/ingest.py           # 1,000,000 points
    .venv/bin/python bench/ingest.py --quick   # 200,000 points (trial runs)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common as c
import requests

TARGET_RATIO = 0.25
BATCH = 10_000
METRICS = {
    "revenue": {"key": "revenue", "name": "Revenue", "unit": "currency", "currency": "EUR"},
    "calls": {"key": "calls", "name": "Calls", "unit": "number", "aggregation": "sum"},
}


def make_points(
    n: int, last_day: dt.date, seed: int = 3
) -> list[tuple[str, dt.datetime, float, str]]:
    """A year of backfill ending on `last_day`, in time order: (metric key, ts, value, rep)."""
    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)
    start = dt.datetime.combine(last_day - dt.timedelta(days=364), dt.time(), dt.UTC)
    step_us = 365 * 86_400_000_000 // n
    keys = list(METRICS)
    points = []
    for i in range(n):
        ts = start + dt.timedelta(microseconds=i * step_us + rng.randrange(1, step_us))
        key = keys[0] if rng.random() < 0.7 else keys[1]
        value = round(rng.uniform(5, 2000), 2) if key == "revenue" else float(rng.randint(1, 9))
        points.append((key, ts, value, rng.choice(c.REPS)))
    return points


def request_bodies(points: list[tuple[str, dt.datetime, float, str]]) -> list[bytes]:
    bodies = []
    for start in range(0, len(points), BATCH):
        batch = [
            {
                "metric": key,
                "ts": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "value": value,
                "dimension": rep,
            }
            for key, ts, value, rep in points[start : start + BATCH]
        ]
        bodies.append(json.dumps({"points": batch}, separators=(",", ":")).encode())
    return bodies


def stored_rows(
    points: list[tuple[str, dt.datetime, float, str]], org_hex: str, metric_hex: dict[str, str]
) -> list[tuple[str, str, str, float, str, None]]:
    """The rows exactly as dashvault stores the points (columns of metrics_datapoint)."""
    return [
        (org_hex, metric_hex[key], c.db_datetime(ts), value, rep, None)
        for key, ts, value, rep in points
    ]


def reference_insert(data_dir: Path, rows: Sequence[tuple[object, ...]]) -> float:
    """Seconds for bare executemany inserts of `rows` in BATCH-row transactions."""
    db = c.migrate(data_dir)
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")  # dashvault's connection settings
        con.execute("PRAGMA synchronous=NORMAL")
        sql = (
            f"INSERT INTO {c.POINT_TABLE} (org_id, metric_id, ts, value, dimension, external_id) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            con.execute("BEGIN IMMEDIATE")
            con.executemany(sql, rows[start : start + BATCH])
            con.execute("COMMIT")
        elapsed = time.perf_counter() - started
        stored = con.execute(f"SELECT COUNT(*) FROM {c.POINT_TABLE}").fetchone()[0]  # noqa: S608
    finally:
        con.close()
    if stored != len(rows):
        raise RuntimeError(f"reference stored {stored} rows, not {len(rows)}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200,000 points")
    parser.add_argument("--points", type=int, help="points to push (1,000,000; multiple of 10,000)")
    parser.add_argument(
        "--max-seconds", type=float, default=1200, help="time cap of the push phase"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    n = args.points or (200_000 if args.quick else 1_000_000)
    if n % BATCH or n <= 0:
        parser.error(f"--points must be a positive multiple of {BATCH}")

    with c.scratch_dir("ingest", keep=args.keep) as root:
        server_dir = root / "server"
        db = c.migrate(server_dir)
        created = c.dashvault(
            server_dir,
            "createorg",
            "Bench ingest",
            "--admin-email",
            "bench@example.com",
            "--time-zone",
            "UTC",
        )
        match = re.search(r"Created organization ([0-9a-f-]{36})", created.stdout)
        if not match:
            raise RuntimeError(f"createorg said: {created.stdout} {created.stderr}")
        org_id = uuid.UUID(match.group(1))
        token = c.dashvault(
            server_dir, "token", "create", "--org", str(org_id), "--scope", "push"
        ).stdout.strip()

        today = dt.datetime.now(dt.UTC).date()
        points = make_points(n, today)
        bodies = request_bodies(points)
        print(
            f"{n:,} points in {len(bodies)} requests of {BATCH:,} "
            f"(~{len(bodies[0]) / 1e6:.1f} MB each)",
            flush=True,
        )

        session = requests.Session()
        session.trust_env = False  # loopback only: no proxy from the environment
        session.verify = str(server_dir / "tls" / "cert.pem")
        session.headers["Authorization"] = f"Bearer {token}"
        statuses: dict[int, int] = {}
        pushed = 0
        with c.dashvault_server(server_dir) as url:
            for spec in [*METRICS.values(), {"key": "warmup", "name": "Warm-up"}]:
                answer = session.post(f"{url}/api/v1/metrics", json=spec, timeout=30)
                if answer.status_code != 201:
                    raise RuntimeError(
                        f"creating metric {spec['key']}: {answer.status_code} {answer.text}"
                    )
            # Warm-up (lazy imports, first connection, caches): a few small pushes, not timed.
            for i in range(3):
                warm: list[dict[str, Any]] = [
                    {"metric": "warmup", "ts": f"2020-01-0{i + 1}T00:00:00Z", "value": 1.0}
                ] * 100
                answer = session.post(f"{url}/api/v1/datapoints", json={"points": warm}, timeout=60)
                if answer.status_code != 201:
                    raise RuntimeError(f"warm-up push: {answer.status_code} {answer.text}")
            deadline = time.monotonic() + args.max_seconds
            started = time.perf_counter()
            for body in bodies:
                if time.monotonic() > deadline:
                    break
                answer = session.post(
                    f"{url}/api/v1/datapoints",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                    timeout=(10, 300),
                )
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 201:
                    pushed += answer.json()["stored"]
            push_seconds = time.perf_counter() - started
        session.close()

        # What the server stored (read after it stopped).
        con = sqlite3.connect(db)
        try:
            metric_hex = dict(
                con.execute(
                    "SELECT key, id FROM metrics_metric WHERE org_id = ?", (org_id.hex,)
                ).fetchall()
            )
            warmup_hex = metric_hex.pop("warmup")
            in_db = con.execute(
                "SELECT COUNT(*) FROM metrics_datapoint WHERE org_id = ? AND metric_id != ?",
                (org_id.hex, warmup_hex),
            ).fetchone()[0]
        finally:
            con.close()
        expected = c.rollups_from_points(db, org_id.hex)
        differences = c.snapshot_differences(c.rollup_snapshot(db, org_id.hex), expected)

        rows = stored_rows(points, org_id.hex, metric_hex)
        reference_runs = [reference_insert(root / f"reference-{i}", rows) for i in range(2)]
        print("reference runs: " + ", ".join(f"{n / s:,.0f} points/s" for s in reference_runs))

    reference_seconds = min(reference_runs)
    dash_rate = pushed / push_seconds if push_seconds else 0.0
    ref_rate = n / reference_seconds
    ratio = dash_rate / ref_rate
    checks = [
        c.Check(
            f"ingest rate, {n:,} points in {BATCH:,}-point requests",
            f"{dash_rate:,.0f} points/s",
            f"{ref_rate:,.0f} points/s",
            f"{ratio:.2f}",
            f">= {TARGET_RATIO}",
            ratio >= TARGET_RATIO and pushed == n,
        ),
        c.Check(
            "requests answered 201",
            str(statuses.get(201, 0)),
            str(len(bodies)),
            "-",
            "all",
            statuses.get(201, 0) == len(bodies),
        ),
        c.Check("points stored", f"{in_db:,}", f"{n:,}", "-", "all", in_db == n),
        c.Check(
            "rollups equal a recomputation",
            f"{len(differences)} differ",
            f"{len(expected):,} rollups",
            "-",
            "0 differ",
            not differences and len(expected) > 0,
        ),
    ]
    notes = [
        f"push phase {push_seconds:.1f} s "
        f"({push_seconds / max(1, sum(statuses.values())) * 1000:.0f} ms per request); "
        f"reference {reference_seconds:.2f} s (best of {len(reference_runs)})",
        f"status counts: {statuses}",
        *differences[:5],
    ]
    return c.finish("ingest", checks, notes)


if __name__ == "__main__":
    sys.exit(main())
