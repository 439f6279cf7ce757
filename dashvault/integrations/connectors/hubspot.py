"""HubSpot deals: CRM v3 search API (POST /crm/v3/objects/deals/search), 100 a page, paged by
`paging.next.after`; incremental by `hs_lastmodifieddate` (milliseconds). Auth: a private app
token (bearer). Each deal's `properties` become the record, with its `id`.

config: `url` (default https://api.hubapi.com), `properties` (extra deal properties to read).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dashvault.integrations.connectors.session import MAX_PAGES, Session, SyncError

BASE = "https://api.hubapi.com"
SEARCH_WINDOW = 10_000  # results one search can page through
INDEX_LAG_MS = 5 * 60 * 1000
PROPERTIES = ["amount", "closedate", "dealstage", "pipeline", "hubspot_owner_id", "dealname"]


def fetch(session: Session, config: dict[str, Any], full: bool) -> Iterator[list[dict[str, Any]]]:
    url = str(config.get("url") or BASE).rstrip("/") + "/crm/v3/objects/deals/search"
    mapped = [str(path).split(".")[0] for path in (config.get("mapping") or {}).values() if path]
    wanted = set(PROPERTIES) | set(config.get("properties") or []) | set(mapped) - {"id"}
    properties = sorted(wanted - {"hs_lastmodifieddate"})
    properties.append("hs_lastmodifieddate")
    body: dict[str, Any] = {
        "limit": 100,
        "properties": properties,
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
    }
    since = session.state if not full else ""
    if since:
        body["filterGroups"] = _modified_since(since)
    newest = session.state
    for _ in range(MAX_PAGES):
        data = session.post_json(url, body)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise SyncError("HubSpot's answer holds no results list.")
        page = []
        for deal in results:
            if not isinstance(deal, dict):
                continue
            values = deal.get("properties") or {}
            if not isinstance(values, dict):
                raise SyncError("HubSpot's answer holds a deal whose properties are no object.")
            record = dict(values)
            record["id"] = deal.get("id")
            modified = _millis(record.get("hs_lastmodifieddate"))
            if modified and (not newest or int(modified) > int(newest)):
                newest = modified
            page.append(record)
        yield page
        paging = data.get("paging") or {}
        if not isinstance(paging, dict) or not isinstance(paging.get("next") or {}, dict):
            raise SyncError("HubSpot's answer holds paging of another shape.")
        after = (paging.get("next") or {}).get("after")
        if not after:
            break
        if _digits(str(after)) and int(after) >= SEARCH_WINDOW - body["limit"]:
            # The search API pages no further than 10,000 results: search again from the
            # newest modification seen (sorted ascending, so nothing is skipped; the deals at
            # that very millisecond come again and replace themselves by id).
            body.pop("after", None)
            body["filterGroups"] = _modified_since(newest)
            continue
        body["after"] = after
    else:
        raise SyncError(f"More than {MAX_PAGES} pages: stopped.")
    # A few minutes back: HubSpot's search index shows a change a little after it happened.
    session.state = str(max(int(newest) - INDEX_LAG_MS, 0)) if newest else ""


def _modified_since(millis: str) -> list[dict[str, Any]]:
    filters = [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": millis}]
    return [{"filters": filters}]


def _millis(value: Any) -> str:
    """HubSpot gives hs_lastmodifieddate as ISO 8601 in objects and wants milliseconds in
    filters; either form comes back as milliseconds."""
    if value is None or value == "":
        return ""
    text = str(value)
    if _digits(text):
        return text
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return str(int(when.timestamp() * 1000))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "²".isdigit() is true too, but int("²") raises


def session_config(config: dict[str, Any]) -> dict[str, Any]:
    """HubSpot private apps authenticate with a bearer token."""
    return {**config, "auth": "bearer"}


# What a deal maps to unless the admin changes it.
DEFAULT_MAPPING = {
    "timestamp": "closedate",
    "value": "amount",
    "dimension": "dealstage",
    "id": "id",
}
