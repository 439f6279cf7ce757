from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from dashvault.orgs.demo import create_demo, credentials_file


class Command(BaseCommand):
    help = "Create the demo organization Acme (once) and print its sign-ins."

    def handle(self, *args: Any, **options: Any) -> None:
        created = create_demo()
        path = credentials_file()
        self.stdout.write(
            "Created the demo organization Acme." if created else "Demo organization Acme exists."
        )
        if path.exists():
            self.stdout.write(f"Demo sign-ins (role, e-mail, password; from {path}):")
            self.stdout.write(path.read_text().rstrip())
