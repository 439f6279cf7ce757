"""Pipedrive deals: API v2 (GET /api/v2/deals), cursor paging (`additional_data.next_cursor`),
incremental by `updated_since` (RFC 3339). Auth: the API token in the `x-api-token` header
(never in the URL). Each deal is the record.

config: `url` (the company's address, e.g. https://acme.pipedrive.com), `status` (open, won,
lost or empty for all).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dashvault.integrations.connectors.session import MAX_PAGES, Session, SyncError


def fetch(session: Session, config: dict[str, Any], full: bool) -> Iterator[list[dict[str, Any]]]:
    url = str(config.get("url", "")).rstrip("/") + "/api/v2/deals"
    params: dict[str, Any] = {"limit": 500, "sort_by": "update_time", "sort_direction": "asc"}
    if config.get("status"):
        params["status"] = config["status"]
    if session.state and not full:
        params["updated_since"] = session.state
    newest = session.state
    for _ in range(MAX_PAGES):
        data = session.get_json(url, params=params)
        if not isinstance(data, dict) or data.get("success") is False:
            raise SyncError("Pipedrive answered that the request did not succeed.")
        deals = data.get("data") or []
        if not isinstance(deals, list):
            raise SyncError("Pipedrive's answer holds no list of deals.")
        page = [deal for deal in deals if isinstance(deal, dict)]
        for deal in page:
            updated = str(deal.get("update_time") or "")
            if updated > newest:
                newest = updated
        yield page
        additional = data.get("additional_data") or {}
        if not isinstance(additional, dict):
            raise SyncError("Pipedrive's answer holds additional_data of another shape.")
        cursor = additional.get("next_cursor")
        if not cursor:
            break
        params["cursor"] = cursor
    else:
        raise SyncError(f"More than {MAX_PAGES} pages: stopped.")
    session.state = newest


def session_config(config: dict[str, Any]) -> dict[str, Any]:
    """Pipedrive's API token goes in the x-api-token header."""
    return {**config, "auth": "header", "header_name": "x-api-token"}


# add_time: every deal has one (close_time is empty on open deals).
DEFAULT_MAPPING = {"timestamp": "add_time", "value": "value", "dimension": "status", "id": "id"}
