from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.accounts.actions import do_create_staff, public_base_url


class Command(BaseCommand):
    help = "Create a platform staff member (MFA enforced at first sign-in); prints a one-time link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="the staff member's e-mail address")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user, link = do_create_staff(options["email"], base_url=public_base_url())
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Created staff member {user.pk}.")
        self.stdout.write(f"One-time set-password link (shown once):\n{link}")
