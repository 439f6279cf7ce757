"""The job queue (huey) and its consumer.

Embedded mode: a SQLite file of its own (DATA_DIR/jobs.sqlite3, never the main database) whose
consumer runs as threads inside `dashvault serve`. Scale-out mode: Redis, consumed by
`dashvault worker` processes, exactly one of which runs the periodic scheduler
(`dashvault worker --scheduler`, held by a Redis lock). settings.JOBS_IMMEDIATE runs each task
at once in the caller (tests).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from huey import MemoryHuey, RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

logger = logging.getLogger(__name__)


def _make() -> Huey:
    if settings.JOBS_IMMEDIATE:
        return MemoryHuey("dashvault", immediate=True, utc=True)
    if settings.REDIS_URL:
        return RedisHuey("dashvault", url=settings.REDIS_URL, utc=True)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("dashvault", filename=str(settings.DATA_DIR / "jobs.sqlite3"), utc=True)


huey = _make()


@huey.pre_execute()
def _fresh_connections(task: Any) -> None:
    # Worker threads hold their own database connections: fresh ones for each job (unless
    # jobs run in the caller, as in tests), closed after it.
    if not huey.immediate:
        close_old_connections()


@huey.post_execute()
def _close_connections(task: Any, task_value: Any, exc: BaseException | None) -> None:
    if not huey.immediate:
        close_old_connections()


class InProcessConsumer(Consumer):  # type: ignore[misc]  # huey ships no type hints
    """A consumer that runs beside the web server: signal handlers belong to the server's main
    thread (huey's would raise there, NOTES 7); the server stops it on shutdown."""

    def _set_signal_handlers(self) -> None:
        pass


_running: list[InProcessConsumer] = []
_lock = threading.Lock()


def start_in_process(workers: int = 2) -> None:
    """Start the consumer (with the periodic scheduler) inside this process, once."""
    with _lock:
        if _running or huey.immediate:
            return
        consumer = InProcessConsumer(huey, workers=workers, periodic=True, worker_type="thread")
        consumer.start()
        _running.append(consumer)
        logger.info("jobs: consumer started in process (%d workers)", workers)


def stop_in_process() -> None:
    with _lock:
        while _running:
            _running.pop().stop(graceful=True)


def enqueue(task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue `task` once the current transaction commits (at once outside one)."""
    from django.db import transaction

    transaction.on_commit(lambda: task(*args, **kwargs))
