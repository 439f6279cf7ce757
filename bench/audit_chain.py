"""Audit hash chain: append overhead, verify speed and checkpoint cadence, all in one run.

Issue 6 (bench requirements): the chain adds at most 10% to the time of the identical insert
without hashing; at least 1,000 appends/s with a commit per event on SQLite; `audit verify`
over 1 million entries at least 0.5 of the speed of a bare HMAC loop over the same records
(about 6 s or less here); a signed checkpoint at least every hour or every 10,000 entries.

Everything runs in this process against one fresh data directory (embedded mode, SQLite, WAL,
synchronous=NORMAL, IMMEDIATE transactions: dashvault's own connection settings):
DASHVAULT_DATA_DIR is set before django.setup() and `migrate` runs through call_command.

1. Append overhead. The same event (a role change: org, actor, target user, address, one detail)
   written four ways, one transaction and one commit per event, interleaved in rounds (the
   order rotates each round) so machine noise hits every variant alike:
   - chain: `audit.record(...)` as the product calls it (its own atomic block is the
     transaction): the chain's head (its newest entry), HMAC, insert, commit;
   - reference, the issue's "identical insert without hashing": the same `audit.record(...)`
     call with `chain.append` swapped for the same function without the HMAC: the same
     conversions, the head read the same way, the same row numbered and linked the same way,
     a fixed MAC;
   - no chain (for information): as the reference, without reading the head either (a fixed
     seq/prev): what the numbering costs on its own, and the chain against an audit log with
     no chain at all;
   - bare ORM insert (for information): the row built by hand from ready values and saved,
     without audit.record's checks of its arguments (which run with or without a chain).
   Targets: chain time <= 1.10 x reference time, chain >= 1,000 appends/s. Per-call costs of
   the pieces (HMAC over the canonical bytes, the head read, ...) are measured too, and
   a small run with synchronous=FULL (an fsync per commit) shows how the ratio moves when the
   commit is durable to the disk.
2. Verify speed. N entries of one chain (1,000,000; --quick 100,000) are bulk-inserted with
   correct chain fields computed in Python through hashchain.mac (not through audit.record),
   the chain head is set and a checkpoint signed. Then `dashvault.audit.chain.verify(org)` is
   timed against a bare loop over the same `chain.records()` generator computing HMAC-SHA256
   over each record's canonical bytes (two rounds each, interleaved; best of each). Targets:
   verify speed >= 0.5 x bare loop, and verify <= 6 s per million entries (the issue's "about
   6 s"). For information: reading `records()` alone, and HMAC alone over records in memory.
3. Checkpoint cadence. 10,000 entries of a new chain through audit.record must leave exactly
   one new checkpoint file in settings.AUDIT_CHECKPOINT_DIR, signing that chain at seq 10,000;
   the hourly writer must run at least hourly. The time of one checkpoint write is reported
   (with a small and with a 1M-entry table, and per existing checkpoint file).

    .venv/bin/python bench/audit_chain.py             # 20,000 events per variant, 1M entries
    .venv/bin/python bench/audit_chain.py --quick     # 2,000 events, 100,000 entries
    .venv/bin/python bench/audit_chain.py --profile   # also cProfile of append and verify
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import functools
import hashlib
import hmac
import inspect
import io
import itertools
import json
import pstats
import random
import re
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c

TARGET_OVERHEAD = 1.10  # chain time / reference time
TARGET_APPENDS = 1000.0  # appends/s, commit per event
TARGET_VERIFY_RATIO = 0.5  # verify speed / bare HMAC loop speed
TARGET_VERIFY_PER_MILLION = 6.0  # seconds per 1,000,000 entries
HOUR = 3600.0
CHAIN, REFERENCE = "chain (audit.record)", "reference: no HMAC"
NO_CHAIN, BARE = "no chain: fixed seq/prev", "bare ORM insert"

ACTIONS = ("user.role", "dashboard.view", "signin", "token.create", "group.create")
ROLES = ("viewer", "editor", "admin")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


@dataclass
class Variant:
    name: str
    run: Callable[[int], None]
    wall: float = 0.0
    cpu: float = 0.0
    done: int = 0
    round_walls: list[float] = field(default_factory=list)

    context: Callable[[], Any] = contextlib.nullcontext

    @property
    def rate(self) -> float:
        return self.done / self.wall if self.wall else 0.0


# --- part 1: append overhead ------------------------------------------------------------------


def placed(n: int, plus: int = 0) -> uuid.UUID:
    """Org ids in a fixed order: n-th sixteenth of the id space (plus a little)."""
    return uuid.UUID(int=(n << 124) + plus)


class AppendBench:
    """The variants of one event, each writing its own chain."""

    def __init__(self) -> None:
        from django.db import transaction
        from django.utils import timezone

        from dashvault import audit
        from dashvault.accounts.models import User
        from dashvault.audit import chain as chain_mod
        from dashvault.audit.models import AuditEntry
        from dashvault.lib import hashchain

        self.transaction, self.timezone, self.chain_mod = transaction, timezone, chain_mod
        self.audit, self.AuditEntry = audit, AuditEntry
        # Each variant's organization (its chain: str(org)), in the same place of the indexes.
        self.org, self.ref_org, self.head_org, self.bare_org = (placed(n) for n in range(1, 5))
        self.ref_chain, self.head_chain = str(self.ref_org), str(self.head_org)
        self.actor = uuid.uuid4()
        self.target = User(id=uuid.uuid4())  # never saved: audit.record reads its pk and kind
        self.ip = "192.0.2.17"
        self.fixed_prev = hashchain.GENESIS
        self.fixed_mac = "f" * 64
        self.ref_seq = self.bare_seq = 0
        self.bare_chain = str(self.bare_org)
        # Right after each variant's org and chain in the (org, id) and (chain, ...) indexes, an
        # org with one entry: every variant appends just before a neighbour, as a customer's
        # org does. With random ids, where a variant's range fell (at the right edge, or before
        # a range that grows) made its inserts up to 10% cheaper or dearer than another's.
        for n in range(1, 5):
            audit.record("bench.fence", org=placed(n, 1))

    def chain(self, i: int) -> None:
        self.audit.record(
            "user.role",
            org=self.org,
            actor=self.actor,
            target=self.target,
            ip=self.ip,
            role=ROLES[i % 3],
        )

    def reference(self, i: int) -> None:
        self.audit.record(
            "user.role",
            org=self.ref_org,
            actor=self.actor,
            target=self.target,
            ip=self.ip,
            role=ROLES[i % 3],
        )

    def reference_with_head(self, i: int) -> None:
        self.audit.record(
            "user.role",
            org=self.head_org,
            actor=self.actor,
            target=self.target,
            ip=self.ip,
            role=ROLES[i % 3],
        )

    @contextlib.contextmanager
    def chain_off(self, head: bool) -> Iterator[None]:
        """audit.record calls chain.append by name at each call: swap it for `unchained`."""
        real = self.chain_mod.append
        self.chain_mod.append = functools.partial(self.unchained, head)
        try:
            yield
        finally:
            self.chain_mod.append = real

    def unchained(
        self,
        head: bool,
        *,
        org_id: object,
        action: str,
        actor_kind: str,
        actor_id: object,
        target_type: str,
        target_id: str,
        ip: str | None,
        detail: dict[str, Any],
    ) -> Any:
        """chain.append, line for line, without the chain: no HMAC; a fixed seq, prev and MAC
        (`head`: the seq and prev after the chain's head, read as append does)."""
        m = self.chain_mod
        org = m._uuid(org_id)
        actor = m._uuid(actor_id)
        chain = m.chain_of(org)
        ip = m._canonical_ip(ip)
        db = self.transaction.get_connection()
        with self.transaction.atomic():
            if head:
                seq, prev = m._locked_head(db, chain)
                seq += 1
            else:
                self.ref_seq += 1
                seq, prev = self.ref_seq, self.fixed_prev
            entry = self.AuditEntry(
                org_id=org,
                at=self.timezone.now(),
                action=action,
                actor_kind=actor_kind,
                actor_id=actor,
                target_type=target_type,
                target_id=target_id,
                ip=ip,
                detail=detail,
                chain=chain,
                seq=seq,
                prev=prev,
                mac=self.fixed_mac,
            )
            entry.save(force_insert=True)
            if head:
                m._appended(db, seq)
        return entry

    def row(self, chain: str, org: uuid.UUID, seq: int, i: int) -> Any:
        """The row `append` stores for the same event, with fixed chain fields."""
        return self.AuditEntry(
            org_id=org,
            at=self.timezone.now(),
            action="user.role",
            actor_kind="user",
            actor_id=self.actor,
            target_type="user",
            target_id=str(self.target.pk),
            ip=self.ip,
            detail={"role": ROLES[i % 3]},
            chain=chain,
            seq=seq,
            prev=self.fixed_prev,
            mac=self.fixed_mac,
        )

    def bare(self, i: int) -> None:
        self.bare_seq += 1
        with self.transaction.atomic():
            self.row(self.bare_chain, self.bare_org, self.bare_seq, i).save(force_insert=True)


def run_rounds(
    variants: list[Variant], per_round: int, rounds: int, max_seconds: float
) -> tuple[int, bool]:
    """Interleaved rounds (the order rotates); stops after a round once time is up. Returns
    the rounds done and whether every planned round ran."""
    deadline = time.monotonic() + max_seconds
    clock, cpu_clock = time.perf_counter, time.process_time
    counter = 0
    for r in range(rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for variant in order:
            run = variant.run
            with variant.context():
                cpu0, t0 = cpu_clock(), clock()
                for _ in range(per_round):
                    run(counter)
                    counter += 1
                wall = clock() - t0
            variant.wall += wall
            variant.cpu += cpu_clock() - cpu0
            variant.done += per_round
            variant.round_walls.append(wall)
        if time.monotonic() > deadline and r + 1 < rounds:
            return r + 1, False
    return rounds, True


def per_call(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Best-of-`repeats` seconds per call of `fn` over `n` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


@dataclass
class AppendResult:
    variants: dict[str, Variant]
    rounds: int
    complete: bool
    per_round: int
    pieces: list[tuple[str, float, str]]
    queries: dict[str, list[str]]
    full_sync: dict[str, Variant]
    profile: str = ""


def append_overhead(events: int, rounds: int, max_seconds: float, profile: bool) -> AppendResult:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from dashvault.audit import chain as chain_mod
    from dashvault.audit.models import AuditEntry
    from dashvault.lib import hashchain

    bench = AppendBench()
    variants = [
        Variant(CHAIN, bench.chain),
        Variant(
            REFERENCE, bench.reference_with_head, context=functools.partial(bench.chain_off, True)
        ),
        Variant(NO_CHAIN, bench.reference, context=functools.partial(bench.chain_off, False)),
        Variant(BARE, bench.bare),
    ]
    for variant in variants:  # warm-up: first queries, the chain's head, imports
        with variant.context():
            for i in range(50):
                variant.run(i)

    queries: dict[str, list[str]] = {}
    for variant in variants:
        with CaptureQueriesContext(connection) as captured, variant.context():
            variant.run(0)
        queries[variant.name] = [_statement(q["sql"]) for q in captured.captured_queries]

    per_round = max(1, events // rounds)
    done_rounds, complete = run_rounds(variants, per_round, rounds, max_seconds)
    by_name = {v.name: v for v in variants}

    # What the pieces cost, call by call (best of 5 x 1,000 or 2,000 calls).
    key = chain_mod.audit_key()
    entry = AuditEntry.objects.filter(chain=str(bench.org)).order_by("-seq").first()
    record = chain_mod.fields_of(entry)
    name = str(bench.org)
    pieces: list[tuple[str, float, str]] = []
    pieces.append(
        (
            "fields_of + hashchain.mac (HMAC-SHA256 of canonical JSON)",
            per_call(lambda: hashchain.mac(key, chain_mod.fields_of(entry)), 2000),
            "chain",
        )
    )
    pieces.append(
        (
            "  of which hashchain.canonical",
            per_call(lambda: hashchain.canonical(record), 2000),
            "chain",
        )
    )
    pieces.append(
        (
            "_canonical_ip (address check)",
            per_call(lambda: chain_mod._canonical_ip("192.0.2.17"), 2000),
            "chain",
        )
    )
    with transaction.atomic():  # no commit inside the loops
        db = transaction.get_connection()
        pieces.append(
            (
                "head read as append does (raw sqlite3)",
                per_call(lambda: chain_mod._locked_head(db, name), 2000),
                "chain",
            )
        )
        pieces.append(
            (
                "(comparison) the same read through Django's cursor: chain.head()",
                per_call(lambda: chain_mod.head(name), 1000),
                "-",
            )
        )
        counter = itertools.count(10_000_000)
        pieces.append(
            (
                "entry insert: save(force_insert=True), no commit",
                per_call(
                    lambda: bench.row(bench.bare_chain, bench.bare_org, next(counter), 0).save(
                        force_insert=True
                    ),
                    1000,
                ),
                "both",
            )
        )
        transaction.set_rollback(True)  # leave none of these rows

    def empty_transaction() -> None:
        with transaction.atomic():
            pass

    pieces.append(
        ("empty transaction: BEGIN IMMEDIATE + COMMIT", per_call(empty_transaction, 1000), "both")
    )

    # The same comparison with an fsync per commit (synchronous=FULL), briefly.
    full = [
        Variant(CHAIN, bench.chain),
        Variant(
            REFERENCE, bench.reference_with_head, context=functools.partial(bench.chain_off, True)
        ),
    ]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=FULL")
    try:
        full_events = max(200, events // 20)
        run_rounds(full, max(1, full_events // 4), 4, max_seconds / 4)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=NORMAL")

    profile_text = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(1000):
            bench.chain(i)
        profiler.disable()
        profile_text = _profile_text(profiler, 30)
    return AppendResult(
        by_name,
        done_rounds,
        complete,
        per_round,
        pieces,
        queries,
        {v.name: v for v in full},
        profile_text,
    )


def _statement(sql: str) -> str:
    """'SELECT audit_auditchainhead' from a query's SQL (the verb and its table)."""
    verb = sql.split(" ", 1)[0]
    table = re.search(r'(?:FROM|INTO|UPDATE) "?(\w+)"?', sql)
    return f"{verb} {table.group(1)}" if table else verb


def _profile_text(profiler: cProfile.Profile, lines: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --- part 2: verify speed --------------------------------------------------------------------


def chain_rows(
    key: bytes, org: uuid.UUID, n: int, first_at: dt.datetime, seed: int = 6
) -> Iterator[tuple[Any, ...]]:
    """`n` rows of one organization's chain in stored form (columns of audit_auditentry),
    each MAC computed with hashchain.mac over the record exactly as fields_of will read it
    back. The last row's (seq, mac) is left in `chain_rows.head`."""
    from dashvault.lib import hashchain

    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)
    chain = str(org)
    org_hex = org.hex
    actors = [uuid.uuid4() for _ in range(40)]
    targets = [uuid.uuid4() for _ in range(200)]
    ips = [f"192.0.2.{i}" for i in range(1, 60)] + [f"2001:db8::{i:x}" for i in range(1, 20)]
    step = dt.timedelta(seconds=30)
    prev = hashchain.GENESIS
    at = first_at
    for seq in range(1, n + 1):
        at += step + dt.timedelta(microseconds=rng.randrange(1_000_000))
        action = ACTIONS[seq % len(ACTIONS)]
        actor = actors[rng.randrange(len(actors))]
        target = targets[rng.randrange(len(targets))]
        if action == "user.role":
            target_type, detail = "user", {"role": ROLES[seq % 3]}
        elif action == "dashboard.view":
            target_type, detail = "dashboard", {}
        elif action == "token.create":
            target_type, detail = "pushtoken", {"scope": "push"}
        else:
            target_type, detail = "", {}
        target_id = str(target) if target_type else ""
        ip = ips[rng.randrange(len(ips))]
        record = {
            "chain": chain,
            "seq": seq,
            "prev": prev,
            "at": at.isoformat(timespec="microseconds"),
            "action": action,
            "actor_kind": "user",
            "actor_id": str(actor),
            "target_type": target_type,
            "target_id": target_id,
            "ip": ip,
            "detail": detail,
        }
        mac = hashchain.mac(key, record)
        yield (
            org_hex,
            c.db_datetime(at),
            action,
            "user",
            actor.hex,
            target_type,
            target_id,
            ip,
            json.dumps(detail),
            chain,
            seq,
            prev,
            mac,
        )
        prev = mac
    chain_rows.head = (n, prev)  # type: ignore[attr-defined]


def bulk_insert_chain(db_path: Path, rows: Iterator[tuple[Any, ...]]) -> int:
    """One executemany in one transaction (set-up only: no fsync), then the chain head."""
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")  # no GB-sized WAL during the load
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-524288")
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO audit_auditentry (org_id, at, action, actor_kind, actor_id, "
            "target_type, target_id, ip, detail, chain, seq, prev, mac) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")  # as dashvault runs it
        return int(con.execute("SELECT COUNT(*) FROM audit_auditentry").fetchone()[0])
    finally:
        con.close()


@dataclass
class VerifyResult:
    entries: int
    build_seconds: float
    verify_runs: list[float]
    bare_runs: list[float]
    bare_bad: int
    lengths_ok: bool
    problems: list[str]
    complete: bool
    read_seconds: float
    read_count: int
    canonical_hmac_rate: float
    bytes_hmac_rate: float
    checkpoint_seconds: float
    query_plan: str
    profile: str = ""


def verify_speed(entries: int, max_seconds: float, profile: bool) -> VerifyResult:
    """Build one chain of `entries`, then time verify against the bare loop (interleaved,
    two rounds; the second is skipped once half of `max_seconds` is spent)."""
    from django.conf import settings
    from django.db import connections

    from dashvault.audit import chain as chain_mod
    from dashvault.audit import checkpoints
    from dashvault.audit.models import AuditEntry
    from dashvault.lib import hashchain

    key = chain_mod.audit_key()
    org = uuid.uuid4()
    name = str(org)
    db_path = Path(settings.DATABASES["default"]["NAME"])
    connections.close_all()  # the load switches the journal mode: no other connection open
    t0 = time.perf_counter()
    first_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=31 * entries)
    bulk_insert_chain(db_path, chain_rows(key, org, entries, first_at))
    build_seconds = time.perf_counter() - t0
    print(f"  built {entries:,} chained entries in {build_seconds:.1f} s", flush=True)

    t0 = time.perf_counter()
    checkpoints.write_checkpoint()  # signs the new chain's head, as the periodic job would
    checkpoint_seconds = time.perf_counter() - t0
    plan = AuditEntry.objects.filter(chain=name, id__gt=0).order_by("id")[:5000].explain()

    def bare(deadline: float) -> tuple[float, int, bool]:
        """The bare loop: the same records() generator, HMAC-SHA256 over canonical bytes."""
        bad = count = 0
        t0 = time.perf_counter()
        for record in chain_mod.records(name):
            digest = hmac.new(key, hashchain.canonical(record), hashlib.sha256).hexdigest()
            if digest != record["mac"]:
                bad += 1
            count += 1
            if count % 10_000 == 0 and time.monotonic() > deadline:
                break
        return time.perf_counter() - t0, bad, count == entries

    phase_start = time.monotonic()
    deadline = phase_start + max_seconds
    verify_runs: list[float] = []
    bare_runs: list[float] = []
    bare_bad = 0
    complete = lengths_ok = True
    problems: list[str] = []
    for round_number in range(2):
        if round_number and time.monotonic() - phase_start > max_seconds / 2:
            print("  (second round skipped: half the time budget spent)", flush=True)
            break
        seconds, bad, whole = bare(deadline)
        bare_runs.append(seconds)
        bare_bad += bad
        complete &= whole
        print(f"  bare loop, records() + HMAC: {seconds:.2f} s", flush=True)
        if not whole:
            break
        t0 = time.perf_counter()
        lengths, found = chain_mod.verify(org)  # one call over the whole chain: bounded by N
        verify_runs.append(time.perf_counter() - t0)
        print(f"  chain.verify(org): {verify_runs[-1]:.2f} s", flush=True)
        lengths_ok &= lengths == {name: entries}
        problems += [str(p) for p in found]

    # For information: reading alone (a prefix of at most 200,000 records), and HMAC alone
    # over up to 100,000 records already in memory: with the canonical JSON, and over
    # precomputed canonical bytes (HMAC-SHA256 and nothing else).
    read_count = 0
    t0 = time.perf_counter()
    for _record in itertools.islice(chain_mod.records(name), min(entries, 200_000)):
        read_count += 1
    read_seconds = time.perf_counter() - t0
    sample = list(itertools.islice(chain_mod.records(name), min(entries, 100_000)))
    t0 = time.perf_counter()
    for record in sample:
        hmac.new(key, hashchain.canonical(record), hashlib.sha256).hexdigest()
    canonical_hmac_rate = len(sample) / (time.perf_counter() - t0)
    encoded = [hashchain.canonical(record) for record in sample]
    del sample
    t0 = time.perf_counter()
    for data in encoded:
        hmac.new(key, data, hashlib.sha256).hexdigest()
    bytes_hmac_rate = len(encoded) / (time.perf_counter() - t0)
    del encoded

    profile_text = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        hashchain.verify_chain(key, name, itertools.islice(chain_mod.records(name), 50_000))
        profiler.disable()
        profile_text = _profile_text(profiler, 30)
    return VerifyResult(
        entries=entries,
        build_seconds=build_seconds,
        verify_runs=verify_runs,
        bare_runs=bare_runs,
        bare_bad=bare_bad,
        lengths_ok=lengths_ok,
        problems=problems,
        complete=complete,
        read_seconds=read_seconds,
        read_count=read_count,
        canonical_hmac_rate=canonical_hmac_rate,
        bytes_hmac_rate=bytes_hmac_rate,
        checkpoint_seconds=checkpoint_seconds,
        query_plan=plan,
        profile=profile_text,
    )


# --- part 3: checkpoint cadence ---------------------------------------------------------------


@dataclass
class CadenceResult:
    appended: int
    files_before: int
    files_after: int
    newest_seq: int | None
    call_median: float
    call_at_checkpoint: float
    write_times: list[float]
    load_seconds: float
    files_at_load: int
    hourly: float
    serve_starts_hourly: bool


def checkpoint_cadence() -> CadenceResult:
    from dashvault.audit import chain as chain_mod
    from dashvault.audit import checkpoints
    from dashvault.server.management.commands import serve

    every = chain_mod.CHECKPOINT_EVERY
    folder = checkpoints.directory()

    def files() -> int:
        return len(list(folder.glob("checkpoint-*.json"))) if folder.exists() else 0

    org, actor = uuid.uuid4(), uuid.uuid4()
    before = files()
    latencies = []
    clock = time.perf_counter
    for i in range(every):
        t0 = clock()
        record_view(org, actor, i)
        latencies.append(clock() - t0)
    after = files()
    newest = checkpoints.load()[-1] if after else None
    newest_seq = newest.chains.get(str(org), {}).get("seq") if newest else None

    write_times = []
    for i in range(3):
        record_view(org, actor, every + i)  # something new to sign
        t0 = clock()
        written = checkpoints.write_checkpoint()
        write_times.append(clock() - t0)
        if written is None:
            raise RuntimeError("write_checkpoint wrote nothing after a new entry")
    t0 = clock()
    loaded = checkpoints.load()
    load_seconds = clock() - t0
    return CadenceResult(
        every,
        before,
        after,
        newest_seq,
        statistics.median(latencies[:-1]),
        latencies[-1],
        write_times,
        load_seconds,
        len(loaded),
        checkpoints.HOURLY,
        "start_hourly()" in inspect.getsource(serve.Command.handle),
    )


def record_view(org: uuid.UUID, actor: uuid.UUID, i: int) -> None:
    from dashvault import audit

    audit.record("dashboard.view", org=org, actor=actor, ip="198.51.100.7", n=i)


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 events, 100,000 entries")
    parser.add_argument("--events", type=int, help="events per append variant (20,000)")
    parser.add_argument("--entries", type=int, help="entries of the verify chain (1,000,000)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved append rounds (10)")
    parser.add_argument(
        "--max-seconds", type=float, default=1200, help="time budget of each phase (1200)"
    )
    parser.add_argument("--profile", action="store_true", help="print cProfile of append/verify")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    events = args.events or (2_000 if args.quick else 20_000)
    entries = args.entries or (100_000 if args.quick else 1_000_000)
    if events < args.rounds or entries < 1:
        parser.error("need at least one event per round and one entry")

    with c.scratch_dir("audit", keep=args.keep) as root:
        data_dir = root / "app"
        c.setup_django(data_dir)  # DASHVAULT_DATA_DIR set before django.setup()
        from django.core.management import call_command
        from django.db import connection

        from dashvault.audit import checkpoints

        call_command("migrate", interactive=False, verbosity=0)
        with connection.cursor() as cursor:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            sync = cursor.execute("PRAGMA synchronous").fetchone()[0]
        print(
            f"SQLite {sqlite3.sqlite_version}, journal_mode={mode}, synchronous={sync} "
            f"(1 = NORMAL); data dir {data_dir}",
            flush=True,
        )
        print(f"1. append: {events:,} events per variant, {args.rounds} rounds", flush=True)
        appended = append_overhead(events, args.rounds, args.max_seconds, args.profile)
        print("3. checkpoint cadence: 10,000 appends of one chain", flush=True)
        cadence = checkpoint_cadence()
        print(f"2. verify: one chain of {entries:,} entries", flush=True)
        verified = verify_speed(entries, args.max_seconds, args.profile)
        t0 = time.perf_counter()
        unchanged = checkpoints.write_checkpoint()  # nothing new: load + newest of every chain
        big_checkpoint = time.perf_counter() - t0
        if unchanged is not None:
            raise RuntimeError("a checkpoint was written although no chain moved")
        connection.close()
    return report(args, appended, verified, cadence, big_checkpoint)


def report(
    args: argparse.Namespace,
    appended: AppendResult,
    verified: VerifyResult,
    cadence: CadenceResult,
    big_checkpoint: float,
) -> int:
    v = appended.variants
    chain, ref, bare = v[CHAIN], v[REFERENCE], v[BARE]
    nochain = v[NO_CHAIN]
    per_ref, per_nochain, per_chain = (x.wall / x.done for x in (ref, nochain, chain))
    print(
        f"\n-- 1. append, one transaction and commit per event: {appended.rounds} interleaved "
        f"rounds of {appended.per_round:,} events per variant --"
    )
    c.print_table(
        (
            "variant",
            "events",
            "wall",
            "appends/s",
            "per event",
            "CPU/event",
            "x reference",
            "statements per event",
        ),
        [
            (
                x.name,
                f"{x.done:,}",
                f"{x.wall:.2f} s",
                fmt_rate(x.rate),
                us(x.wall / x.done),
                us(x.cpu / x.done),
                f"{x.wall / ref.wall:.2f}",
                ", ".join(appended.queries[x.name]),
            )
            for x in (chain, ref, nochain, bare)
        ],
    )
    round_ratios = [a / b for a, b in zip(chain.round_walls, ref.round_walls, strict=True)]
    fchain, fref = appended.full_sync[CHAIN], appended.full_sync[REFERENCE]
    print(
        f"per event: no chain {us(per_nochain)}; reading the head adds "
        f"{us(per_ref - per_nochain)} ({(per_ref - per_nochain) / per_nochain:+.0%}); the HMAC "
        f"adds {us(per_chain - per_ref)} ({(per_chain - per_ref) / per_ref:+.0%})"
    )
    print(
        f"chain / no chain: {chain.wall / nochain.wall:.2f}; per-round chain/"
        f"reference {min(round_ratios):.2f}-{max(round_ratios):.2f} (median "
        f"{statistics.median(round_ratios):.2f}); on CPU time alone: chain "
        f"{fmt_rate(chain.done / chain.cpu)}, reference {fmt_rate(ref.done / ref.cpu)}"
    )
    print(
        f"with synchronous=FULL (an fsync per commit), {fchain.done:,} events each: chain "
        f"{fmt_rate(fchain.rate)}, reference {fmt_rate(fref.rate)}, chain/reference "
        f"{fchain.wall / fref.wall:.2f}"
    )
    print("\nwhat the pieces cost (best of 5, per call):")
    c.print_table(
        ("piece", "per call", "vs reference event", "part of"),
        [(name, us(s), f"{s / per_ref:.0%}", where) for name, s, where in appended.pieces],
    )

    n = verified.entries
    best_verify = min(verified.verify_runs) if verified.verify_runs else float("inf")
    best_bare = min(verified.bare_runs)
    print(f"\n-- 2. verify: one chain of {n:,} entries --")
    c.print_table(
        ("run", "rounds", "best", "entries/s", f"time for {n:,}"),
        [
            (
                "chain.verify(org)",
                ", ".join(f"{s:.2f} s" for s in verified.verify_runs),
                f"{best_verify:.2f} s",
                fmt_rate(n / best_verify),
                f"{best_verify:.2f} s",
            ),
            (
                "bare loop: records() + HMAC of canonical bytes",
                ", ".join(f"{s:.2f} s" for s in verified.bare_runs),
                f"{best_bare:.2f} s",
                fmt_rate(n / best_bare),
                f"{best_bare:.2f} s",
            ),
            (
                f"records() alone, first {verified.read_count:,} (no HMAC)",
                "1",
                f"{verified.read_seconds:.2f} s",
                fmt_rate(verified.read_count / verified.read_seconds),
                f"{n * verified.read_seconds / verified.read_count:.2f} s (projected)",
            ),
            (
                "in memory: canonical JSON + HMAC (no read)",
                "1",
                "-",
                fmt_rate(verified.canonical_hmac_rate),
                f"{n / verified.canonical_hmac_rate:.2f} s (projected)",
            ),
            (
                "in memory: HMAC-SHA256 of precomputed bytes",
                "1",
                "-",
                fmt_rate(verified.bytes_hmac_rate),
                f"{n / verified.bytes_hmac_rate:.2f} s (projected)",
            ),
        ],
    )
    print(f"chain built in {verified.build_seconds:.1f} s (hashchain.mac + one executemany)")
    print("records() batch query plan: " + " | ".join(verified.query_plan.splitlines()))

    print("\n-- 3. checkpoints --")
    per_file = cadence.load_seconds / max(1, cadence.files_at_load)
    c.print_table(
        ("measure", "value"),
        [
            (
                f"checkpoint files before / after {cadence.appended:,} appends of one chain",
                f"{cadence.files_before} / {cadence.files_after}",
            ),
            ("newest checkpoint signs that chain at seq", f"{cadence.newest_seq}"),
            (
                f"audit.record: median call / the {cadence.appended:,}th (checkpoint on commit)",
                f"{cadence.call_median * 1000:.2f} ms / {cadence.call_at_checkpoint * 1000:.2f} ms",
            ),
            (
                "write_checkpoint(), tens of thousands of entries (3 runs)",
                ", ".join(f"{s * 1000:.1f} ms" for s in cadence.write_times),
            ),
            (
                f"write_checkpoint() signing the new {n:,}-entry chain",
                f"{verified.checkpoint_seconds * 1000:.1f} ms",
            ),
            (
                f"write_checkpoint() with {n:,}+ entries, nothing new",
                f"{big_checkpoint * 1000:.1f} ms",
            ),
            (
                f"checkpoints.load() of {cadence.files_at_load} files (every write and verify)",
                f"{cadence.load_seconds * 1000:.1f} ms ({per_file * 1000:.2f} ms/file; "
                f"8,760 files, a year of hourly ones: ~{per_file * 8760:.1f} s)",
            ),
            (
                "hourly writer: interval; started by `dashvault serve`",
                f"{cadence.hourly:.0f} s; {'yes' if cadence.serve_starts_hourly else 'NO'}",
            ),
        ],
    )
    if appended.profile:
        print(f"\n-- cProfile: 1,000 audit.record calls --\n{appended.profile}")
    if verified.profile:
        print(
            f"\n-- cProfile: verify_chain over the first 50,000 of records() --\n{verified.profile}"
        )

    overhead = chain.wall / ref.wall
    verify_ratio = best_bare / best_verify  # verify speed / bare loop speed
    verify_limit = TARGET_VERIFY_PER_MILLION * n / 1_000_000
    new_files = cadence.files_after - cadence.files_before
    checks = [
        c.Check(
            f"append time, chain / identical insert ({chain.done:,} each)",
            f"{chain.wall:.2f} s",
            f"{ref.wall:.2f} s",
            f"{overhead:.2f}",
            f"<= {TARGET_OVERHEAD:.2f}",
            overhead <= TARGET_OVERHEAD,
        ),
        c.Check(
            "appends/s, commit per event",
            fmt_rate(chain.rate),
            fmt_rate(ref.rate),
            c.ratio(chain.rate / ref.rate),
            f">= {TARGET_APPENDS:,.0f}/s",
            chain.rate >= TARGET_APPENDS,
        ),
        c.Check(
            f"verify speed / bare HMAC loop ({n:,} entries)",
            f"{best_verify:.2f} s",
            f"{best_bare:.2f} s",
            c.ratio(verify_ratio),
            f">= {TARGET_VERIFY_RATIO}",
            verify_ratio >= TARGET_VERIFY_RATIO,
        ),
        c.Check(
            f"verify time, {n:,} entries",
            f"{best_verify:.2f} s",
            f"{TARGET_VERIFY_PER_MILLION:.0f} s per 1M",
            c.ratio(best_verify / verify_limit),
            f"<= {verify_limit:.2f} s",
            best_verify <= verify_limit,
        ),
        c.Check(
            "verify: clean chain, whole length, no problem",
            f"{len(verified.problems)} problems, {verified.bare_bad} bad MACs",
            f"{n:,} entries",
            "-",
            "clean",
            verified.lengths_ok
            and not verified.problems
            and verified.bare_bad == 0
            and verified.complete
            and bool(verified.verify_runs),
        ),
        c.Check(
            f"checkpoint after {cadence.appended:,} entries of one chain",
            f"{new_files} new, at seq {cadence.newest_seq}",
            f"1 new, at seq {cadence.appended}",
            "-",
            "exactly 1",
            new_files == 1 and cadence.newest_seq == cadence.appended,
        ),
        c.Check(
            "hourly checkpoint writer",
            f"every {cadence.hourly:.0f} s" + ("" if cadence.serve_starts_hourly else ", unused"),
            "-",
            "-",
            f"<= {HOUR:.0f} s, in serve",
            cadence.hourly <= HOUR and cadence.serve_starts_hourly,
        ),
    ]
    notes = [
        f"append: {appended.rounds} of {args.rounds} planned rounds"
        + ("" if appended.complete else " (time budget reached)")
        + "; audit.record runs in autocommit mode, its own atomic block is the transaction; "
        "every 10,000th append of the chain writes a checkpoint on commit, inside the timed run",
        "reference: the same audit.record call and AuditEntry row, the head read and the row "
        "numbered and linked as chain.append does, without the HMAC (a fixed MAC); against no "
        f"chain at all (fixed seq/prev, no head read) the chain takes "
        f"{chain.wall / nochain.wall:.2f}x, against the bare ORM insert "
        f"{chain.wall / bare.wall:.2f}x",
        "the machine is shared (other test suites run on its 2 CPUs): wall times move "
        "between runs; CPU/event is shown next to them",
        *verified.problems[:5],
    ]
    return c.finish("audit chain", checks, notes)


if __name__ == "__main__":
    sys.exit(main())
