from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.lib.crypto import DecryptionError, KeyringError
from dashvault.orgs.keys import rotate_master_key


class Command(BaseCommand):
    help = "Manage encryption keys. `keys rotate`: add a master key, re-wrap every data key."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("rotate", help="add a new master key version and re-wrap all data keys")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version, count = rotate_master_key()
        except (KeyringError, DecryptionError, OSError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Master key version {version} is now current; re-wrapped {count} data key(s). "
            "Older versions stay in the keyring for existing backups."
        )
