"""Salesforce: a SOQL query through the REST API (GET /services/data/v62.0/query?q=...), paged
by `nextRecordsUrl`. Auth: OAuth2 client credentials against the org's My Domain
(`{url}/services/oauth2/token`). Each record is a row of the query (its `attributes` dropped).
Not incremental: the query is the customer's own (it can filter on SystemModstamp itself).

config: `url` (the My Domain, e.g. https://acme.my.salesforce.com), `query`, `client_id`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin

from dashvault.integrations.connectors.session import MAX_PAGES, Session, SyncError

API_VERSION = "v62.0"


def fetch(session: Session, config: dict[str, Any], full: bool) -> Iterator[list[dict[str, Any]]]:
    base = str(config.get("url", "")).rstrip("/")
    query = str(config.get("query", "")).strip()
    if not query.lower().startswith("select "):
        raise SyncError("The SOQL query must start with SELECT.")
    url = f"{base}/services/data/{API_VERSION}/query?" + urlencode({"q": query})
    for _ in range(MAX_PAGES):
        data = session.get_json(url)
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise SyncError("Salesforce's answer holds no records list.")
        yield [
            {k: v for k, v in record.items() if k != "attributes"}
            for record in records
            if isinstance(record, dict)
        ]
        following = data.get("nextRecordsUrl")
        if data.get("done", True) or not following:
            break
        try:
            url = urljoin(base + "/", str(following))
        except ValueError:  # such as "http://[x" (not an IPv6 address)
            raise SyncError("Salesforce's nextRecordsUrl is not a valid address.") from None
    else:
        raise SyncError(f"More than {MAX_PAGES} pages: stopped.")


def session_config(config: dict[str, Any]) -> dict[str, Any]:
    """Salesforce authenticates with OAuth2 client credentials at the My Domain."""
    base = str(config.get("url", "")).rstrip("/")
    return {**config, "auth": "oauth2", "token_url": f"{base}/services/oauth2/token"}


DEFAULT_MAPPING = {
    "timestamp": "CloseDate",
    "value": "Amount",
    "dimension": "StageName",
    "id": "Id",
}
