"""Each dashboard's widget data as ready JSON text, computed once per change and shared.

Screens and pages ask for the same dashboard far more often than its data changes, so the
JSON of `dashboard_data` is kept in the cache (Redis in scale-out, so every process shares
it). The live publisher refreshes an entry when data commits; edits forget it; a short TTL
bounds staleness from the clock alone (a "today" widget after midnight).

Security contract: an entry is only ever served after the caller passed the access path for
that dashboard (views and consumers call policy.access first); keys are dashboard ids.
"""

from __future__ import annotations

import json

from django.core.cache import cache

from dashvault.dashboards import widgets
from dashvault.dashboards.models import Dashboard

TTL_SECONDS = 60


def _key(dashboard_id: object) -> str:
    return f"dv:dashdata:{dashboard_id}"


def dashboard_json(dashboard: Dashboard) -> str:
    """The dashboard's data as JSON text, from the cache or computed (and cached) now."""
    text = cache.get(_key(dashboard.pk))
    if text is None:
        text = refresh(dashboard)
    return str(text)


def refresh(dashboard: Dashboard) -> str:
    """Compute the dashboard's data now, cache it, and return the JSON text."""
    # allow_nan=False: NaN is not JSON; a bad number fails loudly here, not in the browser.
    text = json.dumps(widgets.dashboard_data(dashboard), separators=(",", ":"), allow_nan=False)
    cache.set(_key(dashboard.pk), text, TTL_SECONDS)
    return text


def forget(dashboard_id: object) -> None:
    cache.delete(_key(dashboard_id))
