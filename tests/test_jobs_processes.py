"""Background jobs with real processes: a queued sync reaches a consumer in another process.

Embedded mode: `dashvault serve` (SQLite data directory, no Redis) runs huey's consumer in its
own process; a "sync now" requested by another process (`dashvault shell`) goes into huey's own
SQLite file (DATA_DIR/jobs.sqlite3, never the main database) and the server runs it against a
loopback HTTPS service (tests/connector_servers.py). The periodic job (`queue_due_syncs`) is
registered for every minute and queues due integrations the same way.

Scale-out mode (DASHVAULT_REDIS_URL, its own Redis database; the data directory's SQLite is
enough): `dashvault worker` refuses to start without Redis, only one worker holds the scheduler
(and, once stopped cleanly, hands it to the next), and a plain worker runs a sync
requested by another process.

Stopping: `dashvault serve` exits on SIGTERM and SIGINT; on either its consumer lets a running
sync finish, leaving no claim behind.

Every wait is bounded; every process is stopped in a `finally` or a fixture.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
import redis
import trustme

from tests.conftest import require_service
from tests.connector_servers import RestApi, Services, slow_answer
from tests.live import ROOT, Server, dashvault, running_server, server_env, stop

pytestmark = pytest.mark.servers

SECRET = "sk-live-Jb8wQ3nV6tRz2KpL9mXc"
LOOPBACK = {"DASHVAULT_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128"}
REDIS_URL = "redis://127.0.0.1:6379/10"  # a database of its own, flushed around each test
SCALE_OUT = {**LOOPBACK, "DASHVAULT_REDIS_URL": REDIS_URL}
SCHEDULER_LOCK = "dashvault:jobs:scheduler"  # dashvault.jobs.management.commands.worker
WAIT_SECONDS = 30  # the longest any job may take to show up
SYNC_TASK = "dashvault.integrations.jobs.sync_integration"

T = TypeVar("T")

# Run through `dashvault shell`: an org, a metric and a REST integration reading the fake
# service. No next run: the scheduler leaves it alone until a test makes it due.
CREATE = """
import json
from dashvault.integrations.actions import do_create_integration
from dashvault.integrations.models import Integration
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization
spec = json.loads({spec!r})
org = Organization.objects.create(name=spec["org"])
metric = Metric.objects.create(org=org, key="sales.won", name="Won deals")
integration = do_create_integration(
    org, acting=None, ip=None, name="Deals", kind="rest", metric=metric,
    config=spec["config"], secret=spec["secret"], ca_pem=spec["ca_pem"],
)
Integration.objects.filter(pk=integration.pk).update(next_run_at=None)
print(json.dumps({{"integration": str(integration.pk), "metric": str(metric.pk)}}))
"""

# "Sync now", as the integration's page does it; prints what the queue is and what this
# process did with the task (nothing: it only queued it).
REQUEST_SYNC = """
import json
from dashvault.integrations.actions import do_request_sync
from dashvault.integrations.models import Integration, SyncRun
from dashvault.jobs.queue import huey
integration = Integration.objects.get(pk="{integration}")
do_request_sync(integration, acting=None, ip=None)
print(json.dumps({{
    "queue": type(huey).__name__,
    "file": getattr(huey.storage, "filename", None),
    "immediate": huey.immediate,
    "runs_here": SyncRun.objects.filter(integration=integration).count(),
}}))
"""

# The periodic job as registered, then run once here: the integration is made due and queued
# in one transaction, so the server's own scheduler (which also runs every minute) cannot queue
# it first; prints how many it queued.
QUEUE_DUE = """
import datetime as dt
import json
from django.db import transaction
from django.utils import timezone
from dashvault.integrations.jobs import queue_due_syncs
from dashvault.integrations.models import Integration
from dashvault.jobs.queue import huey
every_minute = [
    now for now in (dt.datetime(2026, 3, 1, 12, minute) for minute in (0, 17, 59))
    if any(isinstance(task, queue_due_syncs.task_class) for task in huey.read_periodic(now))
]
with transaction.atomic():
    Integration.objects.filter(pk="{integration}").update(
        next_run_at=timezone.now() - dt.timedelta(seconds=1)
    )
    queued = queue_due_syncs.call_local()
print(json.dumps({{
    "periodic": len(every_minute), "queued": queued, "queue": type(huey).__name__,
    "immediate": huey.immediate,
}}))
"""

# The outcome of the integration's runs and the points its metric holds, through the ORM.
OUTCOME = """
import json
from dashvault.integrations.models import Integration, SyncRun
from dashvault.metrics.models import DataPoint
integration = Integration.objects.get(pk="{integration}")
runs = SyncRun.objects.filter(integration=integration).order_by("started_at")
points = DataPoint.objects.filter(metric_id=integration.metric_id).order_by("external_id")
print(json.dumps({{
    "runs": [[r.ok, r.records, r.error, r.finished_at is not None] for r in runs],
    "points": [[p.external_id.split(":", 1)[1], p.value, p.dimension] for p in points],
    "running": integration.running_since is not None,
    "next_run": integration.next_run_at is not None,
}}))
"""


def records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r-{i}",
            "day": f"2026-01-{i:02d}T09:30:00Z",
            "amount": 100 * i + 0.5,
            "region": "north" if i % 2 else "south",
        }
        for i in range(1, count + 1)
    ]


def expected_points(count: int) -> list[list[Any]]:
    return [[r["id"], r["amount"], r["region"]] for r in records(count)]


def shell(data_dir: Path, script: str, env: dict[str, str] | None = None) -> Any:
    """Run `script` in `dashvault shell` on `data_dir`; its last output line, as JSON."""
    done = dashvault(data_dir, "shell", "-c", script, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for(check: Callable[[], T | None], what: str, seconds: float = WAIT_SECONDS) -> T:
    """Poll `check` until it returns something truthy; fail after `seconds` (and a bounded
    number of tries)."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.25) + 1):
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    pytest.fail(f"{what}: not within {seconds:.0f} s")


def finished_runs(data_dir: Path, integration: str) -> list[tuple[bool, int, str]]:
    """The integration's finished sync runs, read straight from the main SQLite database."""
    db = data_dir / "dashvault.sqlite3"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT ok, records, error FROM integrations_syncrun"
            " WHERE integration_id = ? AND finished_at IS NOT NULL ORDER BY started_at",
            (uuid.UUID(integration).hex,),
        ).fetchall()
    return [(bool(ok), count, error) for ok, count, error in rows]


def tables(db: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}


def server_log_has(server: Server, text: str) -> bool:
    return text in server.log.read_text()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def services(ca: trustme.CA) -> Iterator[Services]:
    pool = Services(ca)
    yield pool
    pool.close()


class Feed(NamedTuple):
    api: RestApi
    ids: dict[str, str]


def make_feed(
    data_dir: Path,
    services: Services,
    ca: trustme.CA,
    count: int = 3,
    env: dict[str, str] | None = None,
) -> Feed:
    """A fake REST service with `count` records, and an integration reading it on `data_dir`."""
    api = RestApi(services.start(), records(count), secret=SECRET)
    spec = {
        "org": f"Org {uuid.uuid4().hex[:8]}",
        "config": api.config(),
        "secret": SECRET,
        "ca_pem": ca.cert_pem.bytes().decode(),
    }
    return Feed(api, shell(data_dir, CREATE.format(spec=json.dumps(spec)), env=env))


def migrated(data_dir: Path, env: dict[str, str] | None = None) -> Path:
    dashvault(data_dir, "migrate", "--no-input", "--verbosity", "0", env=env)
    return data_dir


# -- embedded mode: `dashvault serve` runs the jobs ------------------------------------------


class Embedded(NamedTuple):
    server: Server
    data_dir: Path


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    data = migrated(tmp_path_factory.mktemp("embedded") / "data")
    with running_server(data, env=LOOPBACK) as server:
        wait_for(
            lambda: server_log_has(server, "jobs: consumer started in process"),
            "the server starts its job consumer",
        )
        yield Embedded(server, data)


def test_serve_runs_a_sync_requested_by_another_process_from_its_own_sqlite_queue(
    embedded: Embedded, services: Services, ca: trustme.CA
) -> None:
    data = embedded.data_dir
    feed = make_feed(data, services, ca, count=3)
    integration = feed.ids["integration"]

    queued = shell(data, REQUEST_SYNC.format(integration=integration))

    # The shell only queued the task, in huey's SQLite file beside (not inside) the database.
    assert queued["queue"] == "SqliteHuey" and queued["immediate"] is False
    assert queued["file"] == str(data / "jobs.sqlite3")
    assert queued["runs_here"] == 0
    runs = wait_for(lambda: finished_runs(data, integration), "the server runs the sync")
    assert runs == [(True, 3, "")]
    outcome = shell(data, OUTCOME.format(integration=integration))
    assert outcome["points"] == expected_points(3)
    assert outcome["running"] is False and outcome["next_run"] is True
    # The server process ran it, against the service, with the sealed credential opened.
    assert server_log_has(embedded.server, f"Executing {SYNC_TASK}: ")
    (seen,) = feed.api.api_requests()
    assert seen.headers["x-api-key"] == SECRET
    # Two files: huey's tables never in the main database, the app's never in the queue's.
    assert (data / "jobs.sqlite3").is_file() and (data / "dashvault.sqlite3").is_file()
    queue_tables, main_tables = tables(data / "jobs.sqlite3"), tables(data / "dashvault.sqlite3")
    assert "task" in queue_tables and "integrations_syncrun" not in queue_tables
    assert "task" not in main_tables and "integrations_syncrun" in main_tables


def test_the_every_minute_job_queues_due_integrations_for_the_server(
    embedded: Embedded, services: Services, ca: trustme.CA
) -> None:
    data = embedded.data_dir
    feed = make_feed(data, services, ca, count=2)
    integration = feed.ids["integration"]

    due = shell(data, QUEUE_DUE.format(integration=integration))

    assert due["periodic"] == 3  # registered with the queue, for any minute of the hour
    assert due["queue"] == "SqliteHuey" and due["immediate"] is False
    assert due["queued"] == 1
    runs = wait_for(lambda: finished_runs(data, integration), "the server runs the queued sync")
    assert runs == [(True, 2, "")]
    outcome = shell(data, OUTCOME.format(integration=integration))
    assert outcome["points"] == expected_points(2)
    assert outcome["next_run"] is True  # moved on: the next minute's job will not queue it again


# -- stopping ------------------------------------------------------------------------------


SIGNALS = [signal.SIGTERM, signal.SIGINT]
STOP_SECONDS = 15  # tests.live.stop()'s bound before it kills


def wait_for_exit(process: subprocess.Popen[str], why: str) -> int:
    try:
        return process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_SECONDS} s after {why}")


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_serve_with_its_job_consumer_exits_on_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    data = migrated(tmp_path / "data")
    with running_server(data, env=LOOPBACK) as server:
        wait_for(
            lambda: server_log_has(server, "jobs: consumer started in process"),
            "the server starts its job consumer",
        )

        server.process.send_signal(signum)

        assert wait_for_exit(server.process, signum.name) != -signal.SIGKILL


@pytest.mark.parametrize(
    "signum",
    [
        pytest.param(signal.SIGTERM, id="SIGTERM"),
        pytest.param(signal.SIGINT, id="SIGINT"),
    ],
)
def test_serve_lets_a_running_sync_finish_when_it_stops(
    tmp_path: Path, services: Services, ca: trustme.CA, signum: signal.Signals
) -> None:
    data = migrated(tmp_path / "data")
    feed = make_feed(data, services, ca, count=2)
    integration = feed.ids["integration"]
    # The service holds its answer (at most SLOW_LIMIT = 3 s): the sync is running meanwhile.
    body = json.dumps({"data": {"items": records(2)}}).encode()
    feed.api.service.script(RestApi.ITEMS, slow_answer(body))
    with running_server(data, env=LOOPBACK) as server:
        shell(data, REQUEST_SYNC.format(integration=integration))
        wait_for(feed.api.api_requests, "the server's sync asks the service")

        server.process.send_signal(signum)

        assert wait_for_exit(server.process, signum.name) != -signal.SIGKILL
    outcome = shell(data, OUTCOME.format(integration=integration))
    assert outcome["runs"] == [[True, 2, "", True]]
    assert outcome["points"] == expected_points(2)
    assert outcome["running"] is False  # no claim left behind: the next sync can run
    log = server.log.read_text()
    assert "All workers have stopped." in log, log[-2000:]


# -- scale-out mode: `dashvault worker` with Redis -----------------------------------------


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    require_service("Redis", "127.0.0.1", 6379)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@contextmanager
def worker(data_dir: Path, *args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A running `dashvault worker` process (its output in the data directory), stopped after."""
    log = data_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dashvault.cli", "worker", *args],
            cwd=ROOT,
            env=server_env(data_dir, {**env, "PYTHONUNBUFFERED": "1"}),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield process
    finally:
        stop(process)


def test_worker_refuses_to_start_without_redis(tmp_path: Path) -> None:
    done = dashvault(tmp_path / "data", "worker", env=LOOPBACK, check=False)

    assert done.returncode != 0
    assert "dashvault worker needs DASHVAULT_REDIS_URL (scale-out mode)" in done.stderr


@pytest.mark.redis
def test_only_one_worker_runs_the_scheduler(tmp_path: Path, redis_db: redis.Redis) -> None:
    data = migrated(tmp_path / "data")
    with worker(data, "--scheduler", env=SCALE_OUT) as first:
        wait_for(lambda: redis_db.get(SCHEDULER_LOCK), "the first worker takes the lock")

        second = dashvault(data, "worker", "--scheduler", env=SCALE_OUT, check=False)

        assert second.returncode != 0
        assert "Another worker runs the scheduler" in second.stderr
        assert first.poll() is None  # the first one keeps running (and holding the lock)
        assert redis_db.get(SCHEDULER_LOCK)


@pytest.mark.redis
def test_a_plain_worker_runs_a_sync_requested_by_another_process(
    tmp_path: Path, redis_db: redis.Redis, services: Services, ca: trustme.CA
) -> None:
    data = migrated(tmp_path / "data", env=SCALE_OUT)
    feed = make_feed(data, services, ca, count=4, env=SCALE_OUT)
    integration = feed.ids["integration"]
    with worker(data, env=SCALE_OUT) as process:
        queued = shell(data, REQUEST_SYNC.format(integration=integration), env=SCALE_OUT)

        assert queued["queue"] == "RedisHuey" and queued["immediate"] is False
        assert queued["runs_here"] == 0
        runs = wait_for(lambda: finished_runs(data, integration), "the worker runs the sync")
        assert runs == [(True, 4, "")]
        assert process.poll() is None
    outcome = shell(data, OUTCOME.format(integration=integration), env=SCALE_OUT)
    assert outcome["points"] == expected_points(4)
    assert not (data / "jobs.sqlite3").exists()  # scale-out mode queues in Redis only
    assert redis_db.get(SCHEDULER_LOCK) is None  # a plain worker never takes the lock


@pytest.mark.redis
def test_a_stopped_scheduler_worker_hands_the_lock_to_the_next_one(
    tmp_path: Path, redis_db: redis.Redis
) -> None:
    data = migrated(tmp_path / "data", env=SCALE_OUT)
    with worker(data, "--scheduler", env=SCALE_OUT) as first:
        wait_for(lambda: redis_db.get(SCHEDULER_LOCK), "the first worker takes the lock")
        first.send_signal(signal.SIGTERM)
        assert wait_for_exit(first, "SIGTERM") == 0  # a clean stop

    assert redis_db.get(SCHEDULER_LOCK) is None
    with worker(data, "--scheduler", env=SCALE_OUT) as restarted:
        wait_for(lambda: redis_db.get(SCHEDULER_LOCK), "the restarted worker takes the lock")
        assert restarted.poll() is None
