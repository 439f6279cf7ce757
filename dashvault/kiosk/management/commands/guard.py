from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.policy import guard


class Command(BaseCommand):
    help = (
        "The guessing guard for kiosk links and API tokens. `guard status ADDRESS` tells "
        "whether an address is blocked; `guard lift ADDRESS` ends its block now (audited)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "lift"])
        parser.add_argument("address", help="an IPv4 or IPv6 address (IPv6 counts per /64)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "Without DASHVAULT_REDIS_URL the guard's state lives in the server process's "
                "memory, out of this command's reach; restarting the server clears every block."
            )
        address = options["address"]
        key = guard.address_key(address)
        if options["action"] == "lift":
            if guard.lift(address):
                self.stdout.write(f"{key}: block lifted.")
            else:
                self.stdout.write(f"{key}: not blocked.")
            return
        until = guard.blocked_until(address)
        if until is None:
            self.stdout.write(f"{key}: not blocked.")
        else:
            end = dt.datetime.fromtimestamp(until, dt.UTC).isoformat(timespec="seconds")
            self.stdout.write(f"{key}: blocked until {end}.")
