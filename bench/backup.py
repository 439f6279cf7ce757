"""Backups: `dashvault backup create` on a 1 GB SQLite database while writes go on, against a
plain sqlite3 backup-API copy of the same database; then verify and restore that backup.

Issue 8: in the same run, on the same 1 GB SQLite database with writes going on, a backup
including compression, encryption and manifest reaches at least 0.25 of the rate of a plain
`sqlite3` backup-API copy of the same database, with no writer blocked for more than 100 ms;
restore plus verification of that backup takes at most 30 s on this machine.

Everything runs against one throwaway data directory under /tmp (embedded mode, SQLite, WAL):

1. The database: `migrate` in this process, an organization with its admin, five metrics, a
   second organization, a data key each. Then raw points bulk-inserted through sqlite3
   (INSERT ... SELECT from a recursive CTE, up to 200,000 rows a transaction, rollback journal and
   synchronous=OFF during the load only) until the file holds ~1 GB (--quick: ~100 MB), and
   their daily rollups. Rows have dashvault's stored shapes: hex UUIDs, naive-UTC text
   timestamps with microseconds spread over a year, random 2-decimal amounts or small counts,
   the sales rep as dimension, external ids on one metric. Built once, used by every phase.
2. Write load: a separate process (this file with --write-load) with its own connection opened
   as dashvault opens one (WAL, synchronous=NORMAL, secure_delete=ON): one point of a "live"
   metric per transaction (BEGIN IMMEDIATE, INSERT, COMMIT) every --write-interval (2 ms, so at
   most 500 writes/s), bounded in count and time. It records each write's latency from BEGIN
   IMMEDIATE to the end of COMMIT, and how much of it the writer spent on a CPU and queued for
   one (/proc schedstat; the rest is sleep: I/O or a lock). A fresh writer runs for each
   phase, starting 1 s before it; a phase counts every write that overlaps its window. The
   slowest writes are shown with the piece of create() that was running at the time.
3. Reference: `source.backup(dest, pages=-1)` of the same database into a file (default
   connection settings), under the write load, before and after step 4; the faster of the two
   is the reference (stricter).
4. dashvault: `snapshot.create()` in this process, under the write load: what
   `dashvault backup create` runs before it prunes (backup-API copy, data keys dropped, gzip,
   age encryption, SHA-256, escrow, ledger copy, manifest). Rate = database bytes / seconds.
   Its pieces are timed by wrapping the functions it calls.
5. Restore + verify, write load stopped: `snapshot.verify()` in this process (SHA-256, decrypt,
   gunzip, integrity_check, schema), then `dashvault backup restore NAME --key FILE` as an
   operator runs it, a process of its own, into a fresh data directory (SHA-256, decrypt,
   gunzip, integrity_check, replace, erasure ledger re-applied, data keys from the escrow).
   The restored database must hold every bulk row and exactly the live rows committed before
   the backup's snapshot (between the counts taken just before and just after create()).
6. --variants (for proposals, no target): copies of create()'s SQLite steps with things
   changed (gzip level; gzip streamed into age with no plain temp file and the SHA-256 taken
   while writing; the temporary copy written without fsync; compression in two threads; the
   deflate libraries isal and zlib-ng, where importable), each under the same write load,
   each output decrypted straight into gunzip again (timed: a streamed restore) and compared
   with the copy it came from. Then integrity_check of the restored database with SQLite's
   default page cache (as check_sqlite runs it) and a larger one, and quick_check.

Targets: create rate >= 0.25 x reference rate; writer max latency during create < 100 ms;
verify + restore <= 30 s (the issue's figure for 1 GB; --quick holds its 100 MB to the same).

    .venv/bin/python bench/backup.py                # ~1 GB database
    .venv/bin/python bench/backup.py --quick        # ~100 MB (trial runs)
    .venv/bin/python bench/backup.py --variants     # also the pipeline experiments
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gzip
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import _common as c

TARGET_RATIO = 0.25  # create rate / plain backup-API copy rate
TARGET_WRITER_MAX = 0.100  # seconds, longest write during create
TARGET_RESTORE = 30.0  # seconds, verify + restore
MB = 1_000_000
BUILD_CHUNK = 200_000  # rows per bulk transaction
ROW_BYTES = 330  # first guess of file bytes per point (row + 4 index entries): spreads the ts
SETTLE = 1.0  # seconds the writer runs before a phase starts
TAIL = 0.3  # and after it ends
BLOCK = 4 * 1024 * 1024  # read size of the streamed variants (and member size with threads)
LIVE = "live"
# (key, name, amounts (else small counts), external ids): the bulk-loaded metrics.
METRICS = (
    ("revenue", "Revenue", True, False),
    ("deals", "Closed deals", True, True),
    ("calls", "Calls", False, False),
    ("visits", "Site visits", False, False),
)
REP_CASE = "CASE n.i % {} {} END".format(  # the rep of row i, as SQL (constant names)
    len(c.REPS), " ".join(f"WHEN {k} THEN '{rep}'" for k, rep in enumerate(c.REPS))
)
BULK_SQL = (
    "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?) "  # noqa: S608  (constant table and names)
    f"INSERT INTO {c.POINT_TABLE} (org_id, metric_id, ts, value, dimension, external_id) "
    "SELECT ?, ?, strftime('%Y-%m-%d %H:%M:%S', us / 1000000, 'unixepoch') "
    "|| printf('.%06d', us % 1000000), "
    "CASE WHEN ? THEN round(5 + (abs(random()) % 199500) / 100.0, 2) "
    "ELSE CAST(1 + abs(random()) % 9 AS REAL) END, "
    "dim, CASE WHEN ? THEN printf('deal-%08d', i) END "
    f"FROM (SELECT n.i AS i, ? + n.i * ? + abs(random()) % ? AS us, {REP_CASE} AS dim FROM n)"
)
LIVE_SQL = (
    f"INSERT INTO {c.POINT_TABLE} (org_id, metric_id, ts, value, dimension, external_id) "  # noqa: S608  (constant table)
    "VALUES (?, ?, ?, ?, ?, NULL)"
)


# --- the database ------------------------------------------------------------------------------


@dataclass
class Built:
    seconds: float
    rows: int
    bytes: int
    org_hex: str
    live_hex: str
    metrics: int
    rollups: int
    data_keys: int


def make_site(data_dir: Path, backup_dir: Path, key_file: Path) -> tuple[str, str, int]:
    """Migrate, two orgs with a data key each, the metrics; the backup key pair (the public key
    in settings.BACKUP_RECIPIENT, the private one in `key_file`). Returns (org hex, live metric
    hex, data keys)."""
    from django.conf import settings
    from django.core.management import call_command

    from dashvault.backups import snapshot
    from dashvault.metrics.models import Metric
    from dashvault.orgs import keys
    from dashvault.orgs.actions import do_create_org
    from dashvault.orgs.models import DataKey

    call_command("migrate", interactive=False, verbosity=0)
    public, private = snapshot.keygen()
    key_file.write_text(f"# public key: {public}\n{private}\n")
    key_file.chmod(0o600)
    settings.BACKUP_RECIPIENT = public  # both read at call time
    settings.BACKUP_DIR = backup_dir
    base = "https://dashvault.example"
    org, _, _ = do_create_org("Bench backups", admin_email="bench@example.com", base_url=base)
    other, _, _ = do_create_org("Other org", admin_email="other@example.com", base_url=base)
    for each in (org, other):  # a data key each: what create() must leave out of the copy
        keys.encrypt_field(each, table="bench", column="note", row_id=each.pk, plaintext="x")
    for key, name, money, _ in METRICS:
        Metric.objects.create(org=org, key=key, name=name, unit="currency" if money else "number")
    live = Metric.objects.create(org=org, key=LIVE, name="Live feed")
    return org.pk.hex, live.pk.hex, DataKey.objects.count()


def build_points(db: Path, target_bytes: int, org_hex: str, max_seconds: float) -> Built:
    """Bulk-load raw points of the METRICS until the file holds `target_bytes`, then their
    rollups; the database is in WAL mode afterwards, as dashvault runs it."""
    started = time.perf_counter()
    con = sqlite3.connect(db, isolation_level=None)
    try:
        metric_ids = {
            key: mid
            for key, mid in con.execute(
                "SELECT key, id FROM metrics_metric WHERE org_id = ?", (org_hex,)
            )
        }
        con.execute("PRAGMA journal_mode=DELETE")  # no GB-sized WAL during the load
        con.execute("PRAGMA synchronous=OFF")  # set-up only
        con.execute("PRAGMA cache_size=-524288")  # 512 MiB
        page = con.execute("PRAGMA page_size").fetchone()[0]

        def size() -> int:
            return int(page * con.execute("PRAGMA page_count").fetchone()[0])

        chunk = max(20_000, min(BUILD_CHUNK, target_bytes // ROW_BYTES // 10))
        per_metric = max(chunk, target_bytes // ROW_BYTES // len(METRICS))
        span_us = 365 * 86_400_000_000
        step_us = span_us // per_metric
        first_us = int(time.time() * 1_000_000) - span_us
        done = dict.fromkeys(metric_ids, 0)
        rows = chunks = 0
        max_chunks = 4 * target_bytes // (chunk * 100) + len(METRICS)  # bounded loop
        while size() < target_bytes and chunks < max_chunks:
            if time.perf_counter() - started > max_seconds:
                raise RuntimeError(f"building the database took over {max_seconds:.0f} s")
            key, _, money, external = METRICS[chunks % len(METRICS)]
            low = done[key]
            con.execute("BEGIN")
            con.execute(
                BULK_SQL,
                (
                    low,
                    low + chunk - 1,
                    org_hex,
                    metric_ids[key],
                    money,
                    external,
                    first_us,
                    step_us,
                    step_us,
                ),
            )
            con.execute("COMMIT")
            done[key] += chunk
            rows += chunk
            chunks += 1
    finally:
        con.close()
    rollups = sum(
        c.build_rollups_utc(db, org_hex, metric_ids[key]) for key, *_ in METRICS if done[key]
    )
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()
    return Built(
        seconds=time.perf_counter() - started,
        rows=rows,
        bytes=db.stat().st_size,
        org_hex=org_hex,
        live_hex="",
        metrics=len(METRICS),
        rollups=rollups,
        data_keys=0,
    )


def count_points(db: Path, metric_hex: str | None = None) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        if metric_hex is None:
            return int(con.execute(f"SELECT COUNT(*) FROM {c.POINT_TABLE}").fetchone()[0])  # noqa: S608  (constant table)
        return int(
            con.execute(
                f"SELECT COUNT(*) FROM {c.POINT_TABLE} WHERE metric_id = ?",  # noqa: S608  (constant table)
                (metric_hex,),
            ).fetchone()[0]
        )
    finally:
        con.close()


# --- the write load (a process of its own: this file with --write-load) -----------------------


def schedstat(fd: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) of the thread behind `fd`, an open
    /proc/.../schedstat; (0, 0) where there is none."""
    if fd < 0:
        return (0, 0)
    fields = os.pread(fd, 128, 0).split()
    return int(fields[0]), int(fields[1])


def open_schedstat(path: str = "/proc/thread-self/schedstat") -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return -1


def write_load(
    db: Path,
    out: Path,
    org_hex: str,
    metric_hex: str,
    interval: float,
    max_writes: int,
    max_seconds: float,
) -> int:
    """One point per transaction every `interval` until out.stop appears (or the bounds);
    writes each write's start, latency, and the part of it spent on a CPU and waiting for
    one (the rest: sleeping on I/O or a lock), and the errors, to `out` as JSON."""
    stop_file = out.with_suffix(".stop")
    con = sqlite3.connect(db, isolation_level=None, timeout=20)
    con.execute("PRAGMA journal_mode=WAL")  # dashvault's connection settings
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA secure_delete=ON")
    clock = time.monotonic  # system-wide: the parent's phase windows use the same clock
    sched = open_schedstat()
    starts: list[float] = []
    latencies: list[float] = []
    on_cpu: list[float] = []
    waiting: list[float] = []
    errors: list[str] = []
    reps = c.REPS
    out.with_suffix(".ready").touch()
    deadline = clock() + max_seconds
    next_at = clock()
    i = 0
    while i < max_writes and not stop_file.exists():
        now = clock()
        if now > deadline:
            break
        ts = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        if len(ts) == 19:
            ts += ".000000"
        row = (org_hex, metric_hex, ts, float(i % 1000) + 0.25, reps[i % len(reps)])
        cpu0, wait0 = schedstat(sched)
        t0 = clock()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute(LIVE_SQL, row)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            errors.append(str(exc))
            if con.in_transaction:
                con.execute("ROLLBACK")
        latencies.append(clock() - t0)
        cpu1, wait1 = schedstat(sched)
        starts.append(t0)
        on_cpu.append((cpu1 - cpu0) / 1e9)
        waiting.append((wait1 - wait0) / 1e9)
        i += 1
        next_at = max(next_at + interval, clock() - interval)  # paced; no burst after a stall
        pause = next_at - clock()
        if pause > 0:
            time.sleep(pause)
    con.close()
    result = {
        "starts": starts,
        "latencies": latencies,
        "on_cpu": on_cpu,
        "waiting": waiting,
        "errors": errors,
    }
    part = out.with_suffix(".part")
    part.write_text(json.dumps(result))
    part.rename(out)
    return 0


@dataclass
class Window:
    """One timed phase: its clock window and the writes that overlapped it."""

    name: str
    t0: float = 0.0
    t1: float = 0.0
    latencies: list[float] = field(default_factory=list)
    # Per write in the window: (start, latency, on a CPU, waiting for a CPU), slowest first.
    slowest: list[tuple[float, float, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    all_writes: int = 0
    # This process's main thread during the window: seconds on a CPU, waiting for one.
    own_cpu: float = 0.0
    own_wait: float = 0.0
    load: float = 0.0  # 1-minute load average at the end

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def worst(self) -> float:
        return max(self.latencies) if self.latencies else float("nan")

    def p(self, q: float) -> float:
        return c.percentile(self.latencies, q) if self.latencies else float("nan")


@dataclass
class Load:
    db: Path
    folder: Path
    org_hex: str
    metric_hex: str
    interval: float
    max_seconds: float
    runs: int = 0

    @contextmanager
    def running(self, name: str) -> Iterator[Window]:
        """A fresh writer process for the block; the block's duration is the window."""
        self.runs += 1
        out = self.folder / f"writes-{self.runs}.json"
        window = Window(name)
        args = [
            sys.executable,
            __file__,
            "--write-load",
            str(self.db),
            "--out",
            str(out),
            "--org",
            self.org_hex,
            "--metric",
            self.metric_hex,
            "--write-interval",
            str(self.interval),
            "--max-seconds",
            str(self.max_seconds),
        ]
        log = out.with_suffix(".log")
        os.sync()  # no dirty data of an earlier phase is written back in this one
        with open(log, "w") as sink:
            process = subprocess.Popen(args, cwd=c.ROOT, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603  (this file)
        try:
            deadline = time.monotonic() + 60
            while not out.with_suffix(".ready").exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the writer did not start:\n{log.read_text()}")
                time.sleep(0.02)
            time.sleep(SETTLE)
            own = open_schedstat()
            cpu0, wait0 = schedstat(own)
            window.t0 = time.monotonic()
            yield window
            window.t1 = time.monotonic()
            cpu1, wait1 = schedstat(own)
            if own >= 0:
                os.close(own)
            window.own_cpu, window.own_wait = (cpu1 - cpu0) / 1e9, (wait1 - wait0) / 1e9
            window.load = os.getloadavg()[0]
            time.sleep(TAIL)
            out.with_suffix(".stop").touch()
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                c.stop(process)
        if not out.exists():
            raise RuntimeError(f"the writer left no results:\n{log.read_text()}")
        data = json.loads(out.read_text())
        window.all_writes = len(data["starts"])
        inside = []
        for write in zip(
            data["starts"], data["latencies"], data["on_cpu"], data["waiting"], strict=True
        ):
            if write[0] < window.t1 and write[0] + write[1] > window.t0:
                window.latencies.append(write[1])
                inside.append(write)
        window.slowest = sorted(inside, key=lambda w: -w[1])[:5]
        window.errors = data["errors"]


# --- timing the functions a product call makes -------------------------------------------------


@dataclass
class Piece:
    calls: int = 0
    seconds: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)  # time.monotonic


@dataclass
class Timers:
    pieces: dict[str, Piece] = field(default_factory=dict)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        piece = self.pieces.setdefault(name, Piece())
        clock = time.monotonic

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = clock()
                piece.calls += 1
                piece.seconds += t1 - t0
                piece.spans.append((t0, t1))

        return timed

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        """Time a block as the piece `name`."""
        piece = self.pieces.setdefault(name, Piece())
        t0 = time.monotonic()
        try:
            yield
        finally:
            t1 = time.monotonic()
            piece.calls += 1
            piece.seconds += t1 - t0
            piece.spans.append((t0, t1))

    def at(self, when: float) -> str:
        """The innermost timed piece running at `when` (time.monotonic), or "-"."""
        running = [
            (end - start, name)
            for name, piece in self.pieces.items()
            for start, end in piece.spans
            if start <= when <= end
        ]
        return min(running)[1] if running else "-"

    @contextmanager
    def installed(self, targets: list[tuple[Any, str, str]]) -> Iterator[None]:
        """Each (owner, attribute) replaced by its timed wrapper where callers look it up."""
        saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]
        for owner, attr, name in targets:
            setattr(owner, attr, self.wrap(name, getattr(owner, attr)))
        try:
            yield
        finally:
            for owner, attr, original in saved:
                setattr(owner, attr, original)

    def seconds(self, name: str) -> float:
        return self.pieces[name].seconds if name in self.pieces else 0.0


SNAPSHOT = "_sqlite_snapshot: copy, keys dropped, gzip"
DROP = "_drop_data_keys"
PACK = "shutil.copyfileobj (gzip, gunzip)"
ENCRYPT = "pyrage.encrypt_io"
DECRYPT = "pyrage.decrypt_io"
FSYNC = "os.fsync"
SHA = "_sha256"
ESCROW = "escrow.write"
MIRROR = "ledger.mirror"
SCHEMA = "_schema"
RMTREE = "shutil.rmtree (the temp dir)"
CHECK = "check_sqlite (integrity_check, schema)"


def create_targets() -> list[tuple[Any, str, str]]:
    import pyrage

    from dashvault.backups import escrow, snapshot
    from dashvault.privacy import ledger

    return [
        (snapshot, "_sqlite_snapshot", SNAPSHOT),
        (snapshot, "_drop_data_keys", DROP),
        (shutil, "copyfileobj", PACK),
        (pyrage, "encrypt_io", ENCRYPT),
        (os, "fsync", FSYNC),
        (snapshot, "_sha256", SHA),
        (escrow, "write", ESCROW),
        (ledger, "mirror", MIRROR),
        (snapshot, "_schema", SCHEMA),
        (shutil, "rmtree", RMTREE),
    ]


def verify_targets() -> list[tuple[Any, str, str]]:
    import pyrage

    from dashvault.backups import snapshot

    return [
        (snapshot, "_sha256", SHA),
        (pyrage, "decrypt_io", DECRYPT),
        (shutil, "copyfileobj", PACK),
        (snapshot, "check_sqlite", CHECK),
    ]


# --- the phases ----------------------------------------------------------------------------------


@dataclass
class Copied:
    window: Window
    bytes: int
    cpu: float


def plain_copy(db: Path, dest: Path, load: Load, name: str) -> Copied:
    """The reference: SQLite's backup API in one step into a file, nothing else."""
    size = db.stat().st_size
    with load.running(name) as window:
        cpu0 = time.process_time()
        source = sqlite3.connect(db)
        destination = sqlite3.connect(dest)
        try:
            source.backup(destination, pages=-1)
        finally:
            destination.close()
            source.close()
        cpu = time.process_time() - cpu0
    dest.unlink()
    return Copied(window, size, cpu)


@dataclass
class Created:
    window: Window
    bytes: int
    cpu: float
    backup: Any
    timers: Timers
    live_before: int
    live_after: int


def dashvault_create(db: Path, load: Load) -> Created:
    from dashvault.backups import snapshot

    live_before = count_points(db, load.metric_hex)
    size = db.stat().st_size
    timers = Timers()
    with timers.installed(create_targets()), load.running("dashvault create") as window:
        cpu0 = time.process_time()
        backup = snapshot.create()
        cpu = time.process_time() - cpu0
    live_after = count_points(db, load.metric_hex)
    return Created(window, size, cpu, backup, timers, live_before, live_after)


@dataclass
class Restored:
    verify_seconds: float
    verify_tables: int
    verify_timers: Timers
    restore_seconds: float
    restore_out: str
    restore_ok: bool
    db: Path
    rows: int
    live_rows: int
    keys_back: int


def restore_and_verify(
    backup: Any, key_file: Path, backup_dir: Path, restored_dir: Path, live_hex: str, timeout: float
) -> Restored:
    from dashvault.backups import snapshot

    identity = snapshot.identity_from(key_file)
    timers = Timers()
    with timers.installed(verify_targets()):
        t0 = time.perf_counter()
        tables = snapshot.verify(backup, identity)
        verify_seconds = time.perf_counter() - t0
    command = [
        sys.executable,
        "-m",
        "dashvault.cli",
        "backup",
        "restore",
        backup.name,
        "--key",
        str(key_file),
    ]
    env = c.server_env(restored_dir, {"DASHVAULT_BACKUP_DIR": str(backup_dir)})
    t0 = time.perf_counter()
    done = subprocess.run(  # noqa: S603  (our own command)
        command, cwd=c.ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    restore_seconds = time.perf_counter() - t0
    out = (done.stdout + done.stderr).strip()
    db = restored_dir / "dashvault.sqlite3"
    ok = done.returncode == 0 and db.exists()
    keys = re.search(r"(\d+) data key\(s\) taken from the escrow", out)
    return Restored(
        verify_seconds,
        tables,
        timers,
        restore_seconds,
        out,
        ok,
        db,
        count_points(db) if ok else -1,
        count_points(db, live_hex) if ok else -1,
        int(keys.group(1)) if keys else -1,
    )


# --- variants of create()'s SQLite pipeline (experiments for proposals) ------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    codec: str  # zlib | isal | zlib-ng | none
    level: int
    stream: bool  # compressed straight into age (no plain temp file), SHA-256 while writing
    threads: int = 1  # >1: independent gzip members of BLOCK bytes, compressed in threads
    synced_copy: bool = True  # False: the temporary copy written with synchronous=OFF


def codec_module(codec: str) -> Any:
    """zlib, or a drop-in deflate library (isal, zlib-ng) when importable; None otherwise."""
    name = {"zlib": "zlib", "isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng"}[codec]
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class Compressed(io.RawIOBase):
    """A readable stream of the gzip (wbits 31) of `raw`: one member, or members of BLOCK
    bytes compressed by `threads` threads (the deflate libraries release the GIL)."""

    def __init__(self, raw: BinaryIO, module: Any, level: int, threads: int) -> None:
        self.raw, self.module, self.level = raw, module, level
        self.buf = memoryview(b"")
        self.done = False
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.inflight: deque[Future[bytes]] = deque()
        self.threads = threads
        self.one: Any = None if self.pool or module is None else self.make()

    def make(self) -> Any:
        return self.module.compressobj(self.level, self.module.DEFLATED, 31)

    def member(self, data: bytes) -> bytes:
        packer = self.make()
        return bytes(packer.compress(data) + packer.flush())

    def readable(self) -> bool:
        return True

    def next_block(self) -> bytes | None:
        if self.pool is not None:
            while not self.done and len(self.inflight) < 2 * self.threads:
                data = self.raw.read(BLOCK)
                if not data:
                    self.done = True
                    break
                self.inflight.append(self.pool.submit(self.member, data))
            return self.inflight.popleft().result() if self.inflight else None
        if self.done:
            return None
        data = self.raw.read(BLOCK)
        if self.module is None:  # no compression
            self.done = not data
            return data or None
        if not data:
            self.done = True
            return bytes(self.one.flush())
        return bytes(self.one.compress(data))

    def readinto(self, target: Any) -> int:
        while not self.buf:
            block = self.next_block()
            if block is None:
                return 0
            self.buf = memoryview(block)
        n = min(len(target), len(self.buf))
        target[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        super().close()


class Hashing:
    """A sink for pyrage that writes to `handle` and takes the SHA-256 of what it writes."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


class Unpacking:
    """A sink for pyrage.decrypt_io: gunzips (every member) into `handle`, hashing the
    plain bytes: a restore without the decrypted temp file."""

    def __init__(self, handle: BinaryIO, module: Any) -> None:
        self.handle, self.module = handle, module
        self.digest = hashlib.sha256()
        self.unpacker: Any = module.decompressobj(31) if module else None
        self.fed = False

    def write(self, data: bytes) -> int:
        size = len(data)
        if self.unpacker is None:
            self.emit(data)
            return size
        while data:
            self.fed = True
            self.emit(self.unpacker.decompress(data))
            if self.unpacker.eof:
                data = self.unpacker.unused_data
                self.unpacker = self.module.decompressobj(31)
                self.fed = False
            else:
                data = b""
        return size

    def emit(self, plain: bytes) -> None:
        if plain:
            self.digest.update(plain)
            self.handle.write(plain)

    def flush(self) -> None:
        self.handle.flush()

    def complete(self) -> bool:
        return self.unpacker is None or not self.fed


@dataclass
class VariantResult:
    variant: Variant
    window: Window | None
    seconds: float = 0.0
    copy_seconds: float = 0.0
    cpu: float = 0.0
    out_bytes: int = 0
    restore_seconds: float = 0.0
    same: bool = False
    skipped: str = ""
    timers: Timers = field(default_factory=Timers)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def run_variant(
    db: Path, folder: Path, variant: Variant, load: Load, identity: Any
) -> VariantResult:
    """create()'s SQLite steps with one thing changed (no escrow, ledger or manifest: those
    take milliseconds); then the output decrypted and unpacked again and compared."""
    import pyrage

    from dashvault.backups import snapshot

    module = None if variant.codec == "none" else codec_module(variant.codec)
    if variant.codec != "none" and module is None:
        return VariantResult(variant, None, skipped=f"{variant.codec} is not importable")
    key = snapshot.recipient()
    scratch = Path(tempfile.mkdtemp(prefix="variant-", dir=folder))
    copy, plain, part = scratch / "copy.sqlite3", scratch / "payload", scratch / "backup.age"
    result = VariantResult(variant, None)
    span = result.timers.span
    try:
        with load.running(variant.name) as window:
            cpu0, t0 = time.process_time(), time.perf_counter()
            with span("backup-API copy"):
                source, destination = sqlite3.connect(db), sqlite3.connect(copy)
                try:
                    if not variant.synced_copy:  # a scratch file, deleted soon: no fsync
                        destination.execute("PRAGMA synchronous=OFF")
                    source.backup(destination, pages=-1)
                finally:
                    destination.close()
                    source.close()
            with span("_drop_data_keys"):
                snapshot._drop_data_keys(copy)
            result.copy_seconds = time.perf_counter() - t0
            if variant.stream:
                with open(copy, "rb") as raw, open(part, "wb") as sink:
                    hashing = Hashing(sink)
                    packed = Compressed(raw, module, variant.level, variant.threads)
                    try:
                        with span("compress + encrypt + hash"):
                            pyrage.encrypt_io(packed, hashing, [key])
                    finally:
                        packed.close()
                    sink.flush()
                    with span("fsync"):
                        os.fsync(sink.fileno())
                hashing.digest.hexdigest()
            else:
                with span("gzip into the plain temp file"):
                    with open(copy, "rb") as raw, gzip.open(plain, "wb", variant.level) as gz:
                        shutil.copyfileobj(raw, gz, snapshot.CHUNK)
                with open(plain, "rb") as packed_in, open(part, "wb") as sink:
                    with span("encrypt"):
                        pyrage.encrypt_io(packed_in, sink, [key])
                    sink.flush()
                    with span("fsync"):
                        os.fsync(sink.fileno())
                with span("SHA-256 pass"):
                    snapshot._sha256(part)
            result.seconds = time.perf_counter() - t0
            result.cpu = time.process_time() - cpu0
        result.window = window
        result.out_bytes = part.stat().st_size
        plain.unlink(missing_ok=True)
        expected = sha256_file(copy)
        copy.unlink()
        # The restore side, streamed: decrypt straight into gunzip, into the database file.
        t0 = time.perf_counter()
        with open(part, "rb") as encrypted, open(copy, "wb") as out:
            unpacking = Unpacking(out, module)
            pyrage.decrypt_io(encrypted, unpacking, [identity])
            out.flush()
            os.fsync(out.fileno())
        result.restore_seconds = time.perf_counter() - t0
        result.same = unpacking.complete() and unpacking.digest.hexdigest() == expected
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def variants_to_run() -> list[Variant]:
    return [
        Variant("copy of create(): gzip 6, plain temp file, SHA-256 pass", "zlib", 6, False),
        Variant("gzip 1, otherwise as create()", "zlib", 1, False),
        Variant("gzip 6 streamed into age, SHA-256 while writing", "zlib", 6, True),
        Variant("gzip 1 streamed into age, SHA-256 while writing", "zlib", 1, True),
        Variant("gzip 1 streamed, 2 threads (4 MiB gzip members)", "zlib", 1, True, 2),
        Variant("gzip 1 streamed, copy unsynced", "zlib", 1, True, synced_copy=False),
        Variant("isal 1 streamed (python-isal igzip)", "isal", 1, True),
        Variant("isal 2 streamed (python-isal igzip)", "isal", 2, True),
        Variant("zlib-ng 1 streamed", "zlib-ng", 1, True),
        Variant("no compression: age streamed over the copy", "none", 0, True),
    ]


@dataclass
class Checked:
    name: str
    seconds: float
    cpu: float
    queued: float
    result: str


def integrity_variants(db: Path) -> list[Checked]:
    """What check_sqlite's integrity_check costs (twice: the machine is shared), with a larger
    page cache, and quick_check (no cross-check of indexes against tables), on the restored
    database."""
    out = []
    default = "integrity_check, default cache (as check_sqlite)"
    big = ("cache_size=-262144",)
    for name, pragmas, check in (
        (default, (), "integrity_check"),
        ("integrity_check, cache_size=-262144 (256 MiB)", big, "integrity_check"),
        (default + ", again", (), "integrity_check"),
        ("quick_check, default cache", (), "quick_check"),
    ):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        own = open_schedstat()
        try:
            for pragma in pragmas:
                con.execute(f"PRAGMA {pragma}")
            _, wait0 = schedstat(own)
            cpu0, t0 = time.process_time(), time.perf_counter()
            found = con.execute(f"PRAGMA {check}").fetchone()[0]
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            _, wait1 = schedstat(own)
            out.append(Checked(name, seconds, cpu, (wait1 - wait0) / 1e9, found))
        finally:
            con.close()
            if own >= 0:
                os.close(own)
    return out


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="~100 MB database")
    parser.add_argument("--db-mb", type=int, help="database size in MB (1,000)")
    parser.add_argument(
        "--write-interval", type=float, default=0.002, help="seconds between writes (0.002)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="time cap of each phase and the build"
    )
    parser.add_argument("--variants", action="store_true", help="also the pipeline experiments")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--write-load", type=Path, help=argparse.SUPPRESS)  # the writer
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--org", help=argparse.SUPPRESS)
    parser.add_argument("--metric", help=argparse.SUPPRESS)
    parser.add_argument("--max-writes", type=int, default=2_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_load:
        return write_load(
            args.write_load,
            args.out,
            args.org,
            args.metric,
            args.write_interval,
            args.max_writes,
            args.max_seconds,
        )
    target_bytes = (args.db_mb or (100 if args.quick else 1000)) * MB
    if target_bytes < 10 * MB or args.write_interval <= 0:
        parser.error("need at least 10 MB and a positive write interval")

    with c.scratch_dir("backup", keep=args.keep) as root:
        data_dir, backup_dir = root / "app", root / "backups"
        key_file = root / "backup-key.txt"
        c.setup_django(data_dir)
        from django.db import connection

        org_hex, live_hex, data_keys = make_site(data_dir, backup_dir, key_file)
        db = Path(connection.settings_dict["NAME"])
        connection.close()  # the build switches the journal mode: no other connection
        print(
            f"SQLite {sqlite3.sqlite_version}; building a ~{target_bytes / MB:,.0f} MB database "
            f"in {data_dir}; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        built = build_points(db, target_bytes, org_hex, args.max_seconds)
        built.live_hex, built.data_keys = live_hex, data_keys
        print(
            f"built: {built.bytes / MB:,.0f} MB, {built.rows:,} points, {built.rollups:,} "
            f"rollups in {built.seconds:.1f} s",
            flush=True,
        )
        load = Load(db, root, org_hex, live_hex, args.write_interval, args.max_seconds)

        print("1. reference: plain backup-API copy, under the write load", flush=True)
        ref_before = plain_copy(db, root / "plain-copy.sqlite3", load, "reference (before)")
        print(f"   {ref_before.window.seconds:.2f} s", flush=True)
        print("2. dashvault: snapshot.create(), under the write load", flush=True)
        created = dashvault_create(db, load)
        print(f"   {created.window.seconds:.2f} s", flush=True)
        print("3. reference again", flush=True)
        ref_after = plain_copy(db, root / "plain-copy.sqlite3", load, "reference (after)")
        print(f"   {ref_after.window.seconds:.2f} s", flush=True)
        print("4. verify (in this process) and `dashvault backup restore` (a process)", flush=True)
        restored = restore_and_verify(
            created.backup, key_file, backup_dir, root / "restored", live_hex, args.max_seconds
        )
        print(
            f"   verify {restored.verify_seconds:.2f} s, restore {restored.restore_seconds:.2f} s",
            flush=True,
        )
        variants: list[VariantResult] = []
        checks: list[Checked] = []
        if args.variants:
            from dashvault.backups import snapshot

            identity = snapshot.identity_from(key_file)
            folder = root / "variants"
            folder.mkdir()
            for variant in variants_to_run():
                print(f"5. variant: {variant.name}", flush=True)
                variants.append(run_variant(db, folder, variant, load, identity))
            if restored.restore_ok:
                print("6. integrity checks of the restored database", flush=True)
                checks = integrity_variants(restored.db)
        connection.close()
    return report(args, built, ref_before, ref_after, created, restored, variants, checks)


def mbps(size: int, seconds: float) -> str:
    return f"{size / MB / seconds:,.0f} MB/s" if seconds > 0 else "-"


def writes(window: Window | None) -> tuple[str, str, str]:
    if window is None or not window.latencies:
        return ("-", "-", "-")
    return (f"{len(window.latencies):,}", c.ms(window.p(99)), worst(window))


def worst(window: Window) -> str:
    """The longest write, and how much of it the writer spent waiting for a CPU."""
    if not window.slowest:
        return "-"
    _, latency, _, waiting = window.slowest[0]
    return f"{latency * 1000:.1f} ms ({waiting * 1000:.0f} queued)"


def slow_writes(window: Window, timers: Timers | None) -> list[tuple[str, ...]]:
    return [
        (
            window.name,
            f"{start - window.t0:+.2f} s",
            c.ms(latency),
            c.ms(cpu),
            c.ms(waiting),
            c.ms(max(0.0, latency - cpu - waiting)),
            timers.at(start) if timers else "-",
        )
        for start, latency, cpu, waiting in window.slowest[:3]
    ]


def report(
    args: argparse.Namespace,
    built: Built,
    ref_before: Copied,
    ref_after: Copied,
    created: Created,
    restored: Restored,
    variants: list[VariantResult],
    checks: list[Checked],
) -> int:
    reference = min((ref_before, ref_after), key=lambda r: r.window.seconds)
    ref_rate = reference.bytes / reference.window.seconds
    create_rate = created.bytes / created.window.seconds
    rate_ratio = create_rate / ref_rate
    backup = created.backup
    print(
        f"\n-- database: {built.bytes / MB:,.1f} MB, {built.rows:,} bulk points in "
        f"{built.metrics} metrics, {built.rollups:,} rollups, {built.data_keys} data keys; "
        f"built in {built.seconds:.1f} s --"
    )
    print(
        f"write load: a separate process, one point per transaction every "
        f"{args.write_interval * 1000:g} ms (WAL, synchronous=NORMAL); latency = BEGIN "
        "IMMEDIATE .. COMMIT"
    )
    c.print_table(
        (
            "phase",
            "seconds",
            "rate",
            "CPU",
            "queued",
            "load",
            "output",
            "writes",
            "p99",
            "max (queued for a CPU)",
        ),
        [
            (
                "reference: backup-API copy (before)",
                f"{ref_before.window.seconds:.2f}",
                mbps(ref_before.bytes, ref_before.window.seconds),
                f"{ref_before.cpu:.2f} s",
                f"{ref_before.window.own_wait:.2f} s",
                f"{ref_before.window.load:.1f}",
                f"{ref_before.bytes / MB:,.0f} MB",
                *writes(ref_before.window),
            ),
            (
                "dashvault: snapshot.create()",
                f"{created.window.seconds:.2f}",
                mbps(created.bytes, created.window.seconds),
                f"{created.cpu:.2f} s",
                f"{created.window.own_wait:.2f} s",
                f"{created.window.load:.1f}",
                f"{backup.size / MB:,.0f} MB",
                *writes(created.window),
            ),
            (
                "reference: backup-API copy (after)",
                f"{ref_after.window.seconds:.2f}",
                mbps(ref_after.bytes, ref_after.window.seconds),
                f"{ref_after.cpu:.2f} s",
                f"{ref_after.window.own_wait:.2f} s",
                f"{ref_after.window.load:.1f}",
                f"{ref_after.bytes / MB:,.0f} MB",
                *writes(ref_after.window),
            ),
            (
                "verify (in process, no load)",
                f"{restored.verify_seconds:.2f}",
                mbps(created.bytes, restored.verify_seconds),
                "-",
                "-",
                "-",
                f"{restored.verify_tables} tables",
                "-",
                "-",
                "-",
            ),
            (
                "`dashvault backup restore` (a process, no load)",
                f"{restored.restore_seconds:.2f}",
                mbps(created.bytes, restored.restore_seconds),
                "-",
                "-",
                "-",
                f"{restored.rows:,} points",
                "-",
                "-",
                "-",
            ),
        ],
    )
    print(
        f"backup {backup.file}: {backup.size / MB:,.1f} MB "
        f"({backup.size / created.bytes:.0%} of the database); CPU: this process's CPU time; "
        "queued: its main thread's time runnable but waiting for a CPU; load: 1-minute load "
        "average at the phase's end"
    )
    print("\n-- the slowest writes (offset from the phase's start; the rest: I/O or lock) --")
    c.print_table(
        ("phase", "at", "latency", "on a CPU", "queued for a CPU", "the rest", "create was in"),
        [
            *slow_writes(ref_before.window, None),
            *slow_writes(created.window, created.timers),
            *slow_writes(ref_after.window, None),
        ],
    )

    t = created.timers
    snap, drop, pack = t.seconds(SNAPSHOT), t.seconds(DROP), t.seconds(PACK)
    parts = [
        ("backup-API copy (_sqlite_snapshot less the two below)", snap - drop - pack),
        ("  data keys dropped (_drop_data_keys)", drop),
        ("  gzip level 6 into the plain temp file (copyfileobj)", pack),
        ("age encryption of the gzip file (pyrage.encrypt_io)", t.seconds(ENCRYPT)),
        ("fsync of the .part file", t.seconds(FSYNC)),
        ("SHA-256 pass over the .part file (_sha256)", t.seconds(SHA)),
        ("escrow, ledger copy, schema", t.seconds(ESCROW) + t.seconds(MIRROR) + t.seconds(SCHEMA)),
        ("temp dir removal: the copy and the gzip file (rmtree)", t.seconds(RMTREE)),
    ]
    rest = created.window.seconds - sum(s for _, s in parts)
    parts.append(("the rest: manifest, put_file", rest))
    print(f"\n-- where create()'s {created.window.seconds:.2f} s went --")
    c.print_table(
        ("piece", "seconds", "share", "rate over the database size"),
        [
            (name, f"{s:.2f}", f"{s / created.window.seconds:.0%}", mbps(created.bytes, s))
            for name, s in parts
        ],
    )
    v = restored.verify_timers
    vparts = [
        ("SHA-256 of the stored file (_sha256)", v.seconds(SHA)),
        ("age decryption into a .dec file (pyrage.decrypt_io)", v.seconds(DECRYPT)),
        ("gunzip into the scratch database (copyfileobj)", v.seconds(PACK)),
        ("integrity_check + schema (check_sqlite)", v.seconds(CHECK)),
    ]
    vparts.append(("the rest: temp dirs", restored.verify_seconds - sum(s for _, s in vparts)))
    print(f"\n-- where verify()'s {restored.verify_seconds:.2f} s went (restore repeats it) --")
    c.print_table(
        ("piece", "seconds", "share"),
        [(n, f"{s:.2f}", f"{s / restored.verify_seconds:.0%}") for n, s in vparts],
    )

    if variants:
        print("\n-- variants of create()'s SQLite steps, each under the same write load --")
        c.print_table(
            (
                "variant",
                "seconds",
                "rate",
                "x reference",
                "copy+keys",
                "CPU",
                "output",
                "writes",
                "p99",
                "max",
                "streamed restore",
                "round trip",
            ),
            [
                (r.variant.name, "skipped: " + r.skipped, *["-"] * 10)
                if r.skipped
                else (
                    r.variant.name,
                    f"{r.seconds:.2f}",
                    mbps(created.bytes, r.seconds),
                    c.ratio(created.bytes / r.seconds / ref_rate),
                    f"{r.copy_seconds:.2f}",
                    f"{r.cpu:.2f}",
                    f"{r.out_bytes / MB:,.0f} MB",
                    *writes(r.window),
                    f"{r.restore_seconds:.2f} s",
                    "same" if r.same else "DIFFERS",
                )
                for r in variants
            ],
        )
        print(
            "copy+keys: the backup-API copy and _drop_data_keys; copy unsynced: the temporary "
            "copy written with PRAGMA synchronous=OFF (no fsync of a file deleted minutes "
            "later); streamed restore: decrypt straight into gunzip into the database file "
            "(fsync), no .dec temp file, with the variant's own library; compare with verify's "
            f"decrypt + gunzip: {v.seconds(DECRYPT) + v.seconds(PACK):.2f} s"
        )
        print("\n-- the slowest writes during the variants --")
        c.print_table(
            ("variant", "at", "latency", "on a CPU", "queued for a CPU", "the rest", "step"),
            [
                row
                for r in variants
                if r.window is not None
                for row in slow_writes(r.window, r.timers)[:2]
            ],
        )
    if checks:
        print("\n-- integrity checks of the restored database --")
        c.print_table(
            ("check", "seconds", "CPU", "queued", "result"),
            [
                (x.name, f"{x.seconds:.2f}", f"{x.cpu:.2f}", f"{x.queued:.2f}", x.result)
                for x in checks
            ],
        )

    window = created.window
    restore_total = restored.verify_seconds + restored.restore_seconds
    bulk_ok = restored.rows - restored.live_rows == built.rows
    live_ok = created.live_before <= restored.live_rows <= created.live_after
    checks_out = [
        c.Check(
            f"create rate / backup-API copy rate ({created.bytes / MB:,.0f} MB)",
            mbps(created.bytes, window.seconds),
            mbps(reference.bytes, reference.window.seconds),
            c.ratio(rate_ratio),
            f">= {TARGET_RATIO}",
            rate_ratio >= TARGET_RATIO,
        ),
        c.Check(
            "longest write during create (BEGIN IMMEDIATE..COMMIT)",
            c.ms(window.worst),
            c.ms(reference.window.worst),
            "-",
            f"< {TARGET_WRITER_MAX * 1000:.0f} ms",
            bool(window.latencies) and window.worst < TARGET_WRITER_MAX and not window.errors,
        ),
        c.Check(
            "writes went on during create",
            f"{len(window.latencies):,} writes, {len(window.errors)} errors",
            f"{window.seconds / args.write_interval:,.0f} planned",
            "-",
            "> 0, no errors",
            bool(window.latencies) and not window.errors,
        ),
        c.Check(
            "verify + restore",
            f"{restore_total:.2f} s",
            f"{restored.verify_seconds:.2f} + {restored.restore_seconds:.2f} s",
            "-",
            f"<= {TARGET_RESTORE:.0f} s",
            restore_total <= TARGET_RESTORE and restored.restore_ok,
        ),
        c.Check(
            "restored: every bulk point, live points up to the snapshot",
            f"{restored.rows - restored.live_rows:,} + {restored.live_rows:,}",
            f"{built.rows:,} + {created.live_before:,}..{created.live_after:,}",
            "-",
            "all, consistent",
            restored.restore_ok and bulk_ok and live_ok,
        ),
        c.Check(
            "restored: data keys back from the escrow",
            f"{restored.keys_back}",
            f"{built.data_keys}",
            "-",
            "all",
            restored.keys_back == built.data_keys,
        ),
    ]
    failed_variants = [r.variant.name for r in variants if not r.skipped and not r.same]
    if variants:
        checks_out.append(
            c.Check(
                "variants decrypt and unpack to their copy",
                f"{len(failed_variants)} differ",
                f"{sum(1 for r in variants if not r.skipped)} run",
                "-",
                "all same",
                not failed_variants,
            )
        )
    notes = [
        f"reference: the faster of the two plain copies ({ref_before.window.seconds:.2f} s, "
        f"{ref_after.window.seconds:.2f} s); both under the same write load",
        f"writes during the reference: p99 {c.ms(reference.window.p(99))}, max "
        f"{c.ms(reference.window.worst)}; during create: p50 {c.ms(window.p(50))}",
        "verify runs in this process; restore is the `dashvault backup restore` command into a "
        "fresh data directory (its time includes the process start and finish_restore)",
        "the machine is shared (2 CPUs): other work on it moves the figures between runs",
        *([f"restore said: {restored.restore_out[-400:]}"] if not restored.restore_ok else []),
        *[f"writer error: {e}" for e in window.errors[:3]],
    ]
    return c.finish("backups", checks_out, notes)


if __name__ == "__main__":
    sys.exit(main())
