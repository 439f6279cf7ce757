from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.orgs.actions import do_set_org_networks
from dashvault.orgs.queries import org_by_ref


class Command(BaseCommand):
    help = (
        "Show or set an organization's IP filter (the staff page does the same). "
        "`networks ORG` shows it; `networks ORG --set CIDR [CIDR ...]` replaces it; "
        "`networks ORG --clear` turns it off. Changes are audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("org", help="organization id, or its exact name")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--set", nargs="+", metavar="CIDR", help="the networks to allow")
        group.add_argument("--clear", action="store_true", help="turn the filter off")

    def handle(self, *args: Any, **options: Any) -> None:
        org = org_by_ref(options["org"])
        if org is None:
            raise CommandError(f"No single organization matches {options['org']!r}.")
        given = [part for item in options["set"] or () for part in item.split(",") if part.strip()]
        if options["set"] is not None and not given:
            # An empty value (e.g. an unset shell variable) must not turn the filter off.
            raise CommandError("--set needs at least one network; --clear turns the filter off.")
        if options["set"] or options["clear"]:
            try:
                saved = do_set_org_networks(org, options["set"] or [], acting=None, ip=None)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.message_dict["networks"])) from None
            org.allowed_networks = saved
        if not org.allowed_networks:
            self.stdout.write(f"{org.pk}: IP filter off (every address admitted).")
            return
        self.stdout.write(f"{org.pk}: admitted only from:")
        for network in org.allowed_networks:
            self.stdout.write(f"  {network}")
