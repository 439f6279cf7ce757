"""The demo organization "Acme": three people, two groups, three dashboards."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.db import transaction

from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Dashboard
from dashvault.orgs.models import Group, Organization

DEMO_ORG = "Acme"
PEOPLE = [
    ("admin@acme.example", Role.ADMIN),
    ("editor@acme.example", Role.EDITOR),
    ("viewer@acme.example", Role.VIEWER),
]
DASHBOARDS = ["Sales overview", "Pipeline", "Customer support"]
GROUPS = {
    # group: (members, dashboards)
    "Sales": (["editor@acme.example", "viewer@acme.example"], ["Sales overview", "Pipeline"]),
    "Support": (["editor@acme.example"], ["Customer support"]),
}


def credentials_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-sign-ins.txt"


def create_demo() -> bool:
    """Create Acme once (False when it exists). Passwords are random, written mode 0600."""
    if Organization.objects.filter(name=DEMO_ORG).exists():
        return False
    lines = []
    with transaction.atomic():
        org = Organization.objects.create(name=DEMO_ORG, time_zone="Europe/Helsinki")
        users = {}
        for email, role in PEOPLE:
            password = secrets.token_urlsafe(12)
            users[email] = User.objects.create_user(email, password, org=org, role=role)
            lines.append(f"{role.label:<7} {email:<22} {password}")
        dashboards = {t: Dashboard.objects.create(org=org, title=t) for t in DASHBOARDS}
        for name, (members, granted) in GROUPS.items():
            group = Group.objects.create(org=org, name=name)
            group.members.set(users[m] for m in members)
            group.dashboards.set(dashboards[t] for t in granted)
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")
    return True
