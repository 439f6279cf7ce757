from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django import forms

from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.models import MAX_ROTATION, MIN_ROTATION, KioskLink
from dashvault.orgs.models import Organization


class KioskLinkForm(forms.Form):
    """A link's settings. Dashboards are picked with a checkbox each and shown in the order of
    their position numbers (ties: the list's order)."""

    name = forms.CharField(max_length=120, help_text="Where the screen is, e.g. “Sales floor TV”.")
    rotation_seconds = forms.IntegerField(
        min_value=MIN_ROTATION,
        max_value=MAX_ROTATION,
        initial=30,
        label="Seconds per dashboard",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The link stops working at the start of this day (the organization's time zone).",
    )
    networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed networks (optional)",
        help_text="One IPv4 or IPv6 network per line, e.g. 203.0.113.0/24. Applies on top of "
        "your organization's own IP filter.",
    )

    def __init__(self, *args: Any, org: Organization, link: KioskLink | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.org = org
        self.choices = list(Dashboard.objects.filter(org=org).order_by("title"))
        chosen: dict[str, int] = {}
        if link is not None:
            chosen = {str(e.dashboard_id): e.position + 1 for e in link.entries.filter(org=org)}
        for index, dashboard in enumerate(self.choices):
            key = str(dashboard.pk)
            self.fields[f"show_{key}"] = forms.BooleanField(
                required=False, label=dashboard.title, initial=key in chosen
            )
            self.fields[f"order_{key}"] = forms.IntegerField(
                required=False,
                min_value=1,
                max_value=999,
                label="Position",
                initial=chosen.get(key, index + 1),
            )

    def rows(self) -> list[tuple[Dashboard, forms.BoundField, forms.BoundField]]:
        return [(d, self[f"show_{d.pk}"], self[f"order_{d.pk}"]) for d in self.choices]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        picked = [
            (data.get(f"order_{d.pk}") or index + 1, index, d)
            for index, d in enumerate(self.choices)
            if data.get(f"show_{d.pk}")
        ]
        data["dashboards"] = [d for _, _, d in sorted(picked, key=lambda t: (t[0], t[1]))]
        if not data["dashboards"]:
            self.add_error(None, "Choose at least one dashboard to show.")
        day = data.get("expires_on")
        data["expires_at"] = None
        if day is not None:
            zone = zoneinfo.ZoneInfo(self.org.time_zone)  # validated when the org was saved
            data["expires_at"] = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
        data["network_list"] = (data.get("networks") or "").replace(",", "\n").splitlines()
        return data

    def link_settings(self) -> dict[str, Any]:
        """The cleaned settings, as the kiosk actions take them."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "dashboards": data["dashboards"],
            "rotation_seconds": data["rotation_seconds"],
            "expires_at": data["expires_at"],
            "networks": data["network_list"],
        }
