"""The demo organization "Acme": three people, two groups, a year of sales and support data,
and dashboards that use every widget type."""

from __future__ import annotations

import datetime as dt
import math
import random
import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.dashboards.widgets import validate_config
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.metrics.ingest import PointIn, do_ingest
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Group, Organization

DEMO_ORG = "Acme"
TIME_ZONE = "Europe/Helsinki"
PEOPLE = [
    ("admin@acme.example", Role.ADMIN),
    ("editor@acme.example", Role.EDITOR),
    ("viewer@acme.example", Role.VIEWER),
]
REPS = ["Aino", "Ben", "Carla", "Deniz", "Eero"]
METRICS = [
    # key, name, unit, currency, aggregation
    ("deals_won", "Deals won", "number", "", "sum"),
    ("revenue", "Revenue", "currency", "EUR", "sum"),
    ("pipeline", "Open pipeline", "currency", "EUR", "latest"),
    ("calls", "Sales calls", "number", "", "sum"),
    ("tickets_solved", "Tickets solved", "number", "", "sum"),
    ("first_response", "First response time", "duration", "", "average"),
]
# dashboard title → widgets: (kind, title, metric key or None, config, (x, y, w, h))
DASHBOARDS: dict[
    str, list[tuple[str, str, str | None, dict[str, Any], tuple[int, int, int, int]]]
] = {
    "Sales overview": [
        (
            "kpi",
            "Revenue this month",
            "revenue",
            {"period": "this_month", "target": 600_000},
            (0, 0, 4, 2),
        ),
        (
            "kpi",
            "Deals won this month",
            "deals_won",
            {"period": "this_month", "target": 130},
            (4, 0, 4, 2),
        ),
        (
            "gauge",
            "Quarter revenue vs target",
            "revenue",
            {"period": "this_quarter", "target": 1_800_000},
            (8, 0, 4, 2),
        ),
        (
            "line",
            "Revenue by month",
            "revenue",
            {"period": "last_12_months", "bucket": "month"},
            (0, 2, 8, 4),
        ),
        (
            "leaderboard",
            "Top reps this quarter",
            "revenue",
            {"period": "this_quarter", "top_n": 5},
            (8, 2, 4, 4),
        ),
        (
            "bar",
            "Deals per week by rep",
            "deals_won",
            {"period": "last_90_days", "bucket": "week", "by_dimension": True},
            (0, 6, 12, 4),
        ),
    ],
    "Pipeline": [
        ("kpi", "Open pipeline", "pipeline", {"period": "this_month"}, (0, 0, 4, 2)),
        (
            "line",
            "Pipeline, last 90 days",
            "pipeline",
            {"period": "last_90_days", "bucket": "day"},
            (4, 0, 8, 4),
        ),
        (
            "bar",
            "Calls per week",
            "calls",
            {"period": "last_90_days", "bucket": "week"},
            (0, 4, 8, 4),
        ),
        (
            "text",
            "How to read this",
            None,
            {
                "text": "Pipeline is the value of open deals, taken once a day from the CRM. "
                "Calls are logged by each rep."
            },
            (8, 4, 4, 4),
        ),
    ],
    "Customer support": [
        (
            "kpi",
            "Tickets solved this week",
            "tickets_solved",
            {"period": "this_week", "target": 300},
            (0, 0, 4, 2),
        ),
        (
            "kpi",
            "First response (avg, 30 days)",
            "first_response",
            {"period": "last_30_days"},
            (4, 0, 4, 2),
        ),
        (
            "line",
            "Tickets solved per day",
            "tickets_solved",
            {"period": "last_30_days", "bucket": "day"},
            (0, 2, 8, 4),
        ),
        (
            "gauge",
            "Tickets this month vs goal",
            "tickets_solved",
            {"period": "this_month", "target": 1200},
            (8, 2, 4, 4),
        ),
    ],
}
GROUPS = {
    # group: (members, dashboards)
    "Sales": (["editor@acme.example", "viewer@acme.example"], ["Sales overview", "Pipeline"]),
    "Support": (["editor@acme.example"], ["Customer support"]),
}


KIOSK = ("Office TV", ["Sales overview", "Pipeline"], 20)  # name, dashboards, seconds each


def credentials_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-sign-ins.txt"


def kiosk_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-kiosk-link.txt"


def create_demo(*, now: dt.datetime | None = None, days: int = 365) -> bool:
    """Create Acme once (False when it exists). Passwords are random, written mode 0600."""
    if Organization.objects.filter(name=DEMO_ORG).exists():
        return False
    lines = []
    with transaction.atomic():
        org = Organization.objects.create(name=DEMO_ORG, time_zone=TIME_ZONE)
        users = {}
        for email, role in PEOPLE:
            password = secrets.token_urlsafe(12)
            users[email] = User.objects.create_user(email, password, org=org, role=role)
            lines.append(f"{role.label:<7} {email:<22} {password}")
        metrics = {
            key: Metric.objects.create(
                org=org, key=key, name=name, unit=unit, currency=currency, aggregation=agg
            )
            for key, name, unit, currency, agg in METRICS
        }
        do_ingest(org, list(sample_points(now or timezone.now(), days)))
        dashboards = {}
        for title, widgets in DASHBOARDS.items():
            dashboards[title] = dashboard = Dashboard.objects.create(org=org, title=title)
            for kind, widget_title, key, config, (x, y, w, h) in widgets:
                Widget.objects.create(
                    org=org,
                    dashboard=dashboard,
                    kind=kind,
                    title=widget_title,
                    metric=metrics[key] if key else None,
                    config=validate_config(kind, config, has_metric=key is not None),
                    x=x,
                    y=y,
                    w=w,
                    h=h,
                )
        for name, (members, granted) in GROUPS.items():
            group = Group.objects.create(org=org, name=name)
            group.members.set(users[m] for m in members)
            group.dashboards.set(dashboards[t] for t in granted)
        name, shown, seconds = KIOSK
        _, token = do_create_kiosk_link(
            org,
            name=name,
            dashboards=[dashboards[t] for t in shown],
            rotation_seconds=seconds,
            acting=None,
        )
    _write_private(credentials_file(), "\n".join(lines) + "\n")
    base = settings.PUBLIC_URL.rstrip("/")
    _write_private(kiosk_file(), f"{base}{reverse('kiosk_tv', kwargs={'token': token})}\n")
    return True


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)


def sample_points(now: dt.datetime, days: int) -> list[PointIn]:
    """A year of plausible data: weekday rhythm, growth, seasonality, a few strong reps.

    Seeded, so every demo install shows the same shapes; points end at `now`.
    """
    rng = random.Random(2026)  # noqa: S311  (demo data, not security)
    tz = ZoneInfo(TIME_ZONE)
    today = now.astimezone(tz).date()
    skill = {rep: 0.7 + 0.15 * i for i, rep in enumerate(REPS)}
    points: list[PointIn] = []
    pipeline = 900_000.0
    for offset in range(days, -1, -1):
        day = today - dt.timedelta(days=offset)
        growth = 1 + 0.35 * (days - offset) / days
        season = 1 + 0.15 * math.sin(2 * math.pi * day.timetuple().tm_yday / 365)
        weekday = day.weekday() < 5
        for hour in (9, 11, 14, 16):
            ts = dt.datetime.combine(day, dt.time(hour, rng.randrange(60)), tz)
            if ts > now:
                continue
            for rep in REPS:
                if weekday and rng.random() < 0.22 * skill[rep] * growth * season:
                    deal_id = f"deal-{day.isoformat()}-{hour}-{rep}"
                    value = round(rng.lognormvariate(8.3, 0.6) * skill[rep], 2)
                    points.append(PointIn("deals_won", ts, 1, rep, deal_id))
                    points.append(PointIn("revenue", ts, value, rep, deal_id))
                if weekday:
                    points.append(PointIn("calls", ts, rng.randint(2, 9), rep))
            if weekday or rng.random() < 0.3:
                solved = rng.randint(8, 22) if weekday else rng.randint(1, 5)
                points.append(PointIn("tickets_solved", ts, solved))
                points.append(
                    PointIn("first_response", ts, rng.gauss(1500 if weekday else 5400, 300))
                )
        close = dt.datetime.combine(day, dt.time(18), tz)
        if close <= now:
            pipeline = max(200_000.0, pipeline * rng.uniform(0.985, 1.02) + 4000 * growth)
            points.append(PointIn("pipeline", close, round(pipeline, 2)))
    return points
