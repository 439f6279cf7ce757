"""The generic JSON REST connector.

config: `url`; `records_path` (dotted path to the list of records, "" when the answer is the
list); `pagination`: "none", "next_link" (`next_path`: where the next page's URL is),
"cursor" (`cursor_path`: where the next cursor is, sent back as `cursor_param`) or "page"
(`page_param`, from 1, with `page_size_param`=`page_size`; ends at a short or empty page);
incremental sync when `since_param` is set: the largest `since_field` value seen is sent
as `since_param` the next time (a full resync sends none).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from dashvault.integrations.connectors.session import MAX_PAGES, Session, SyncError, dig


def fetch(session: Session, config: dict[str, Any], full: bool) -> Iterator[list[dict[str, Any]]]:
    url = str(config.get("url", ""))
    pagination = config.get("pagination", "none")
    since_param, since_field = config.get("since_param"), config.get("since_field")
    params: dict[str, Any] = {}
    if since_param and session.state and not full:
        params[since_param] = session.state
    newest = session.state
    page_size = int(config.get("page_size") or 100)
    if pagination == "page":
        params[config.get("page_param") or "page"] = 1
        if config.get("page_size_param"):
            params[config["page_size_param"]] = page_size
    for _ in range(MAX_PAGES):
        data = session.get_json(url, params=params)
        records = dig(data, str(config.get("records_path", "")))
        if not isinstance(records, list):
            raise SyncError("No list of records at the configured place in the answer.")
        records = [r for r in records if isinstance(r, dict)]
        if since_field:
            for record in records:
                value = dig(record, str(since_field))
                if value is not None and _later(str(value), newest):
                    newest = str(value)
        yield records
        if pagination == "next_link":
            following = dig(data, str(config.get("next_path", "")))
            if not following:
                break
            try:
                url, params = urljoin(url, str(following)), {}
            except ValueError:  # such as "http://[x" (not an IPv6 address)
                raise SyncError("The answer's next page link is not a valid address.") from None
        elif pagination == "cursor":
            cursor = dig(data, str(config.get("cursor_path", "")))
            if not cursor:
                break
            params[config.get("cursor_param") or "cursor"] = cursor
        elif pagination == "page":
            if len(records) < page_size or not records:
                break
            key = config.get("page_param") or "page"
            params[key] = int(params[key]) + 1
        else:
            break
    else:
        raise SyncError(f"More than {MAX_PAGES} pages: stopped.")
    if since_field:
        session.state = newest


def _later(value: str, than: str) -> bool:
    """Numbers as numbers (10 after 9), anything else (ISO times) as text."""
    if not than:
        return True
    try:
        return float(value) > float(than)
    except ValueError:
        return value > than
