from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.accounts.actions import public_base_url
from dashvault.orgs.actions import do_create_org


class Command(BaseCommand):
    help = (
        "Create an organization and its first admin; prints the admin's one-time set-password link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the organization's name")
        parser.add_argument(
            "--admin-email", required=True, help="e-mail address of its first admin"
        )
        parser.add_argument(
            "--time-zone", default="UTC", help="IANA time zone, e.g. Europe/Helsinki"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            org, _admin, link = do_create_org(
                options["name"],
                admin_email=options["admin_email"],
                time_zone=options["time_zone"],
                base_url=public_base_url(),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Created organization {org.pk}.")
        self.stdout.write(f"One-time set-password link for its admin (shown once):\n{link}")
