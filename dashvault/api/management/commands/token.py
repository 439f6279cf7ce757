from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from dashvault.api.actions import do_create_token
from dashvault.api.models import Scope
from dashvault.orgs.queries import org_by_ref


class Command(BaseCommand):
    help = "Manage org API tokens. `token create --org ORG --scope push`: prints the token once."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print it (shown only once)")
        create.add_argument("--org", required=True, help="organization id or exact name")
        create.add_argument(
            "--scope",
            action="append",
            choices=Scope.values,
            required=True,
            help=f"one of {', '.join(Scope.values)}; repeat for more",
        )
        create.add_argument("--name", default="CLI token", help="a label to recognise it by")
        create.add_argument("--expires-days", type=int, help="expire after this many days")

    def handle(self, *args: Any, **options: Any) -> None:
        org = org_by_ref(options["org"])
        if org is None:
            raise CommandError(f"No single organization with id or name {options['org']!r}.")
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be at least 1")
        expires = timezone.now() + dt.timedelta(days=days) if days else None
        try:
            token, secret = do_create_token(
                org, options["name"], options["scope"], expires_at=expires, acting=None
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(
            f"Created token {token.prefix}… for {org.name} ({', '.join(token.scopes)})."
        )
        self.stdout.write(secret)
