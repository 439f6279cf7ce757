from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from dashvault.orgs.demo import create_demo, credentials_file, kiosk_file


class Command(BaseCommand):
    help = "Create the demo organization Acme (once) and print its sign-ins and kiosk link."

    def handle(self, *args: Any, **options: Any) -> None:
        created = create_demo()
        path = credentials_file()
        self.stdout.write(
            "Created the demo organization Acme." if created else "Demo organization Acme exists."
        )
        if path.exists():
            self.stdout.write(f"Demo sign-ins (role, e-mail, password; from {path}):")
            self.stdout.write(path.read_text().rstrip())
        kiosk = kiosk_file()
        if kiosk.exists():
            self.stdout.write(f"Demo kiosk link for a TV (from {kiosk}):")
            self.stdout.write(kiosk.read_text().rstrip())
