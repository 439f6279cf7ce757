"""Shared helpers of the benchmarks (files starting with "_" are helpers, not benchmarks).

Every benchmark makes its own throwaway data directory, talks to loopback only, bounds each
load loop in count and time, prints a table (measured, reference, ratio, target, PASS/FAIL)
and exits non-zero when a target is missed or a run was not valid.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.live (the real-server helper of the test suite)

from tests.live import (  # noqa: E402, F401  (re-exported)
    dashvault,
    free_port,
    running_server,
    server_env,
    stop,
    wait_for_port,
)

# Sales reps: the dimension of every generated metric.
REPS = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana")
POINT_TABLE = "metrics_datapoint"
ROLLUP_TABLE = "metrics_rollup"


# --- reporting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of the result table."""

    name: str
    measured: str
    reference: str
    ratio: str
    target: str
    ok: bool


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))


def finish(title: str, checks: Sequence[Check], notes: Sequence[str] = ()) -> int:
    """Print the checks; 0 when every one passed, 1 otherwise."""
    print(f"\n== {title} ==")
    print_table(
        ("check", "dashvault", "reference", "ratio", "target", "result"),
        [
            (c.name, c.measured, c.reference, c.ratio, c.target, "PASS" if c.ok else "FAIL")
            for c in checks
        ],
    )
    for note in notes:
        print(f"note: {note}")
    failed = [c.name for c in checks if not c.ok]
    print(f"{title}: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}", flush=True)
    return 1 if failed else 0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def ratio(value: float) -> str:
    """A ratio with enough digits to tell a small one from zero."""
    return f"{value:.2f}" if value >= 0.1 else f"{value:.4f}"


# --- data directories, Django, servers --------------------------------------------------------


@contextmanager
def scratch_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A throwaway directory, removed afterwards unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=f"dashvault-bench-{prefix}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def migrate(data_dir: Path) -> Path:
    """`dashvault migrate` into `data_dir`; returns the SQLite database path."""
    dashvault(data_dir, "migrate", "--no-input", "--verbosity", "0")
    return data_dir / "dashvault.sqlite3"


def setup_django(data_dir: Path) -> None:
    """Configure dashvault in this process against `data_dir` (embedded mode, SQLite), with
    no other DASHVAULT_* variable of the caller's environment (e.g. a PostgreSQL URL)."""
    for name in [n for n in os.environ if n.startswith("DASHVAULT_")]:
        del os.environ[name]
    os.environ.update(server_env(data_dir))
    os.environ["DJANGO_SETTINGS_MODULE"] = "dashvault.settings"
    import django

    django.setup()


@contextmanager
def process_server(
    args: Sequence[str], port: int, log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[Any]]:
    """Run a server process until the block ends; stop it (this process only) afterwards."""
    with open(log, "w") as out:
        process = subprocess.Popen(  # noqa: S603  (our own fixed command)
            list(args), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(process, port, log)
        yield process
    finally:
        stop(process)


@contextmanager
def dashvault_server(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `dashvault serve` on a free loopback port (no redirect port); yields its URL."""
    with running_server(data_dir, env=env, redirect=False) as server:
        yield server.url


# --- generated data ---------------------------------------------------------------------------


def db_datetime(ts: dt.datetime) -> str:
    """How Django stores an aware datetime in SQLite: naive UTC text, with microseconds."""
    return ts.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def year_of_points(
    org_hex: str,
    metric_hex: str,
    n: int,
    last_day: dt.date,
    *,
    days: int = 365,
    dims: Sequence[str] = REPS,
    scale: float = 100.0,
    seed: int = 1,
) -> Iterator[tuple[str, str, str, float, str, None]]:
    """`n` raw rows (org_id, metric_id, ts, value, dimension, external_id) of one metric in
    the shape of metrics_datapoint: spread evenly over the UTC days ending on `last_day` and
    over `dims`, in time order within each (day, dimension). Values vary by rep and weekday."""
    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)
    cells = days * len(dims)
    base, extra = divmod(n, cells)
    first = last_day - dt.timedelta(days=days - 1)

    def times_of_day(k: int) -> list[str]:
        if k == 0:
            return []
        step = 86_400_000_000 // k
        out = []
        for i in range(k):
            us = i * step + step // 2 + (i * 7919) % max(1, step // 2)  # spread, deterministic
            seconds, micro = divmod(us, 1_000_000)
            out.append(
                f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{micro:06d}"
            )
        return out

    tods = {base: times_of_day(base), base + 1: times_of_day(base + 1)}
    rep_factor = {dim: 0.6 + 0.1 * index for index, dim in enumerate(dims)}
    rnd = rng.random
    cell = 0
    for d in range(days):
        day = first + dt.timedelta(days=d)
        prefix = day.isoformat() + " "
        weekday = 0.5 if day.weekday() >= 5 else 1.0
        for dim in dims:
            k = base + (1 if cell < extra else 0)
            cell += 1
            factor = scale * rep_factor[dim] * weekday
            yield from [
                (org_hex, metric_hex, prefix + t, round(factor * (0.5 + rnd()), 2), dim, None)
                for t in tods[k]
            ]


def bulk_insert_points(db_path: Path, rows: Iterable[tuple[Any, ...]]) -> int:
    """Insert raw point rows with one executemany in one transaction (fast set-up only: no
    fsync); returns how many rows the table holds afterwards."""
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")  # no multi-GB WAL file during the load
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-524288")  # 512 MiB
        con.execute("BEGIN")
        con.executemany(
            f"INSERT INTO {POINT_TABLE} (org_id, metric_id, ts, value, dimension, external_id) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")  # as dashvault runs it
        return int(con.execute(f"SELECT COUNT(*) FROM {POINT_TABLE}").fetchone()[0])  # noqa: S608
    finally:
        con.close()


def build_rollups_utc(db_path: Path, org_hex: str, metric_hex: str) -> int:
    """Daily rollups of one metric computed from its raw points in SQL, as
    dashvault.metrics.ingest.rebuild_rollups would for an organization in UTC (local day =
    the date part of the stored UTC timestamp; latest: the greatest ts, the later-stored row
    on ties). Returns how many rollups were written."""
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        con.execute("PRAGMA cache_size=-524288")
        con.execute("BEGIN")
        con.execute(
            f"DELETE FROM {ROLLUP_TABLE} WHERE org_id = ? AND metric_id = ?",  # noqa: S608
            (org_hex, metric_hex),
        )
        con.execute(
            f"INSERT INTO {ROLLUP_TABLE} (org_id, metric_id, day, dimension, total, count, "  # noqa: S608
            "minimum, maximum, latest_ts, latest_value) "
            "SELECT org_id, metric_id, substr(ts, 1, 10), dimension, SUM(value), COUNT(*), "
            "MIN(value), MAX(value), MAX(ts), 0 "
            f"FROM {POINT_TABLE} WHERE org_id = ? AND metric_id = ? "
            "GROUP BY substr(ts, 1, 10), dimension",
            (org_hex, metric_hex),
        )
        con.execute(
            f"UPDATE {ROLLUP_TABLE} AS r SET latest_value = ("  # noqa: S608
            f"SELECT p.value FROM {POINT_TABLE} AS p WHERE p.org_id = r.org_id "
            "AND p.metric_id = r.metric_id AND p.ts = r.latest_ts AND p.dimension = r.dimension "
            "ORDER BY p.id DESC LIMIT 1) WHERE r.org_id = ? AND r.metric_id = ?",
            (org_hex, metric_hex),
        )
        con.execute("COMMIT")
        return int(
            con.execute(
                f"SELECT COUNT(*) FROM {ROLLUP_TABLE} WHERE org_id = ? AND metric_id = ?",  # noqa: S608
                (org_hex, metric_hex),
            ).fetchone()[0]
        )
    finally:
        con.close()


def rollup_snapshot(db_path: Path, org_hex: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """Every rollup of an org by (metric, day, dimension)."""
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute(
            f"SELECT metric_id, day, dimension, total, count, minimum, maximum, latest_ts, "  # noqa: S608
            f"latest_value FROM {ROLLUP_TABLE} WHERE org_id = ?",
            (org_hex,),
        ).fetchall()
    finally:
        con.close()
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


def snapshot_differences(
    got: dict[tuple[str, str, str], tuple[Any, ...]],
    expected: dict[tuple[str, str, str], tuple[Any, ...]],
) -> list[str]:
    """Rollups that differ (totals compared with a relative tolerance: summation order)."""
    problems = [f"missing {k}" for k in expected.keys() - got.keys()]
    problems += [f"unexpected {k}" for k in got.keys() - expected.keys()]
    for key in expected.keys() & got.keys():
        (t1, c1, lo1, hi1, ts1, v1), (t2, c2, lo2, hi2, ts2, v2) = got[key], expected[key]
        if not (
            abs(t1 - t2) <= 1e-9 * max(1.0, abs(t2))
            and (c1, lo1, hi1, v1) == (c2, lo2, hi2, v2)
            and _when(ts1) == _when(ts2)
        ):
            problems.append(f"{key}: {got[key]} != {expected[key]}")
    return problems


def _when(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value))


def rollups_from_points(db_path: Path, org_hex: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """What every rollup of a UTC organization must hold, recomputed from its raw points."""
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute(
            "SELECT a.metric_id, a.day, a.dimension, a.total, a.count, a.minimum, a.maximum, "
            "a.latest_ts, (SELECT p.value FROM metrics_datapoint AS p WHERE p.org_id = ? "
            "AND p.metric_id = a.metric_id AND p.ts = a.latest_ts AND p.dimension = a.dimension "
            "ORDER BY p.id DESC LIMIT 1) "
            "FROM (SELECT metric_id, substr(ts, 1, 10) AS day, dimension, SUM(value) AS total, "
            "COUNT(*) AS count, MIN(value) AS minimum, MAX(value) AS maximum, MAX(ts) AS latest_ts "
            "FROM metrics_datapoint WHERE org_id = ? GROUP BY metric_id, day, dimension) AS a",
            (org_hex, org_hex),
        ).fetchall()
    finally:
        con.close()
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}
