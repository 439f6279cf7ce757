"""`dashvault worker`: run background jobs in scale-out mode (Redis)."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.jobs import queue

SCHEDULER_LOCK = "dashvault:jobs:scheduler"
LOCK_SECONDS = 60  # held while the worker lives: renewed every LOCK_SECONDS / 3


class Command(BaseCommand):
    help = (
        "Run background jobs (integration syncs) from the Redis queue. Start any number; "
        "exactly one with --scheduler also queues the periodic jobs (a second one refuses "
        "to start while the first holds the scheduler lock). Embedded mode needs no worker: "
        "`dashvault serve` runs the jobs itself."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers", type=int, default=2, help="job threads in this process (default 2)"
        )
        parser.add_argument(
            "--scheduler",
            action="store_true",
            help="also run the periodic scheduler (exactly one worker of a deployment)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "dashvault worker needs DASHVAULT_REDIS_URL (scale-out mode); in embedded mode "
                "`dashvault serve` runs the jobs."
            )
        if not 1 <= options["workers"] <= 64:
            raise CommandError("--workers must be between 1 and 64")
        stop = threading.Event()
        release = _hold_scheduler_lock(stop) if options["scheduler"] else None
        # SIGTERM (systemd, Docker) lets running syncs finish, as SIGINT does; huey's default
        # would cut them off and leave their integrations claimed for an hour.
        consumer = queue.huey.create_consumer(
            workers=options["workers"],
            periodic=options["scheduler"],
            worker_type="thread",
            graceful_signal="TERM",
        )
        self.stdout.write(
            f"dashvault worker: {options['workers']} job thread(s)"
            + (", running the scheduler" if options["scheduler"] else ""),
        )
        try:
            consumer.run()  # until SIGINT / SIGTERM
        finally:
            stop.set()
            if release is not None:
                release()  # here, not in the renewing thread: daemon threads die unfinished


def _hold_scheduler_lock(stop: threading.Event) -> Callable[[], None]:
    """Take the deployment's scheduler lock in Redis (or refuse to start) and keep renewing it
    while this process runs; a crashed scheduler's lock lapses after LOCK_SECONDS."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    me = uuid.uuid4().hex
    if not client.set(SCHEDULER_LOCK, me, nx=True, ex=LOCK_SECONDS):
        raise CommandError(
            "Another worker runs the scheduler (Redis key dashvault:jobs:scheduler); "
            "start this one without --scheduler, or wait a minute if that worker has stopped."
        )

    def renew() -> None:
        while not stop.wait(LOCK_SECONDS / 3):
            try:
                held = client.get(SCHEDULER_LOCK) == me.encode()
                if held:
                    client.expire(SCHEDULER_LOCK, LOCK_SECONDS)
            except redis.RedisError:
                held = False  # cannot renew: the lock lapses, so stop scheduling
            if not held:
                # Lost it (Redis restarted, another took it): stop rather than run a second
                # scheduler; the process supervisor's restart then shows the refusal.
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def release() -> None:
        try:
            if client.get(SCHEDULER_LOCK) == me.encode():
                client.delete(SCHEDULER_LOCK)
        except redis.RedisError:
            pass  # it lapses on its own within LOCK_SECONDS

    threading.Thread(target=renew, name="scheduler-lock", daemon=True).start()
    return release
