"""Read side of dashboards."""

from __future__ import annotations

import json
from typing import Any

from dashvault.dashboards import datacache
from dashvault.dashboards.models import Dashboard, Widget


def board(dashboard: Dashboard) -> tuple[list[Widget], dict[str, Any]]:
    """A dashboard's tiles in place, each with its data (`tile.payload`), and the data itself,
    so a page draws its first paint without a second request. Callers have checked access."""
    data = json.loads(datacache.dashboard_json(dashboard))
    tiles = list(
        Widget.objects.filter(org_id=dashboard.org_id, dashboard=dashboard).only(
            "id", "kind", "title", "x", "y", "w", "h", "dashboard_id", "org_id"
        )
    )
    for tile in tiles:
        tile.payload = data["widgets"].get(str(tile.pk), {})  # type: ignore[attr-defined]  # template only
    return tiles, data
