from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.metrics.ingest import rebuild_rollups
from dashvault.orgs.models import Organization
from dashvault.orgs.queries import org_by_ref


class Command(BaseCommand):
    help = (
        "Rollups are kept exact on every write; `rollups rebuild` recomputes them from raw points."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rebuild = sub.add_parser("rebuild", help="drop and recompute rollups from raw points")
        rebuild.add_argument("--org", help="organization id or exact name (default: every org)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["org"]:
            org = org_by_ref(options["org"])
            if org is None:
                raise CommandError(f"No single organization with id or name {options['org']!r}.")
            orgs = [org]
        else:
            orgs = list(Organization.objects.all())
        for org in orgs:
            written = rebuild_rollups(org)
            self.stdout.write(f"{org.pk}: {written} rollup rows rebuilt")
