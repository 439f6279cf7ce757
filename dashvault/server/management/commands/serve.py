from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.audit import checkpoints
from dashvault.integrations.models import Integration
from dashvault.jobs import queue
from dashvault.lib.crypto import KeyringError
from dashvault.orgs.keys import keyring
from dashvault.privacy import erasure, ledger
from dashvault.server.run import serve


class Command(BaseCommand):
    help = (
        "Serve dashvault over HTTPS (a self-signed certificate is generated in embedded mode). "
        "A second, plain-HTTP port only redirects to HTTPS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
        )
        parser.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
        parser.add_argument(
            "--redirect-port",
            type=int,
            default=8080,
            help="plain-HTTP port that redirects to HTTPS (default 8080; 0 turns it off)",
        )
        parser.add_argument(
            "--no-migrate", action="store_true", help="do not apply migrations first"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EMBEDDED and not (settings.TLS_CERT and settings.TLS_KEY):
            # Before anything starts (the job consumer, collectstatic), not after.
            raise CommandError(
                "DASHVAULT_TLS_CERT and DASHVAULT_TLS_KEY are required in production"
            )
        try:
            keyring()  # fail at start-up, not at the first encrypted read
        except (OSError, KeyringError) as exc:
            raise CommandError(f"Cannot load the master keyring: {exc}") from None
        if settings.EMBEDDED and not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        try:
            checkpoints.load()  # the signing key and the checkpoints must be in order
        except (OSError, checkpoints.CheckpointError) as exc:
            raise CommandError(f"Audit checkpoints: {exc}") from None
        try:
            # Erasures recorded but not in this database (a restore, or a crash between the
            # ledger and the commit) are carried out before anyone is served.
            erasure.reapply(ledger.entries())
        except ledger.LedgerError as exc:
            raise CommandError(f"Erasure ledger: {exc}") from None
        call_command("collectstatic", interactive=False, verbosity=0)
        checkpoints.start_hourly()
        # Embedded mode runs the background jobs (integration syncs) in this process; in
        # scale-out mode `dashvault worker` processes do.
        if not settings.REDIS_URL:
            # This process is the only one running jobs here: a claim left by the last one
            # (killed mid-sync) is stale, and would hold the integration for an hour.
            Integration.objects.exclude(running_since=None).update(running_since=None)
            queue.start_in_process()
        # Running jobs finish (graceful) before the process ends, on SIGTERM as on Ctrl-C.
        serve(
            options["host"],
            options["port"],
            options["redirect_port"] or None,
            on_shutdown=queue.stop_in_process,
        )
