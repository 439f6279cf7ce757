"""Integrations (issue 7): every connector's sync against real HTTPS servers on loopback that
speak the service's API (tests/connector_servers.py); nothing of the client is mocked.

Covered:
- each connector (REST with every pagination, CSV, HubSpot, Pipedrive, Salesforce) stores all
  pages' records as points (values, dimensions, external ids), and a second sync replaces them
  instead of adding copies; incremental syncs send the newest value seen, a full one none;
- authentication: header key, bearer, basic, OAuth2 client credentials (an expired token is
  replaced and the sync goes on; a wrong client secret is a clear error, nothing stored);
- retries: 429 with Retry-After and 500s are retried (waits go to a `sleep` recorder); a
  persistent 500 fails the run with a sentence, leaves the metric, counts failures; three in a
  row flag the integration, a success clears it;
- failed runs: malformed JSON, a server slower than the read timeout, an oversized body, and a
  failure on page 2 (nothing of page 1 stored, the cursor kept);
- plain HTTP only with staff's exception; SSRF: loopback, private, metadata addresses and the
  name localhost are refused before any connection with the default settings;
- the credential is nowhere in clear: database, log lines, audit entries, run errors;
- preview shows the first page's rows and stores nothing; the periodic job queues due, enabled
  integrations only and runs them (JOBS_IMMEDIATE); a claimed integration is not run twice;
- mapping: a value that is no number fails the run naming the record, empty values are skipped.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
from django.db import connection
from django.utils import timezone

from dashvault.accounts.models import User
from dashvault.audit.models import AuditEntry
from dashvault.integrations import sync
from dashvault.integrations.actions import do_create_integration, do_set_http_exception
from dashvault.integrations.connectors.session import SyncError
from dashvault.integrations.jobs import queue_due_syncs
from dashvault.integrations.models import Integration, SyncRun
from dashvault.lib import http
from dashvault.lib.clientip import parse_networks
from dashvault.metrics.models import DataPoint, Metric, Rollup
from dashvault.orgs.models import Organization
from tests.connector_servers import (
    CsvFile,
    HubSpotApi,
    PipedriveApi,
    RestApi,
    SalesforceApi,
    Seen,
    Services,
    answer,
    answer_json,
    slow_answer,
)

SECRET = "sk-live-7Qp2Vd9XnR4tLm8ZwK3c"
CLIENT_ID = "dashvault-client"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
REFUSED = "is a private, loopback, link-local or reserved address."


class Sleeps(list[float]):
    """A `sleep` that records how long it was asked to wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_pem(ca: trustme.CA) -> str:
    return ca.cert_pem.bytes().decode()


@pytest.fixture
def services(ca: trustme.CA) -> Iterator[Services]:
    pool = Services(ca)
    yield pool
    pool.close()


@pytest.fixture
def loopback(settings: Any) -> None:
    """The operator allows loopback, where the fake services listen."""
    settings.OUTBOUND_ALLOWED_NETWORKS = parse_networks(["127.0.0.0/8", "::1/128"])


@pytest.fixture
def metric(org_a: Organization) -> Metric:
    return Metric.objects.create(org=org_a, key="sales.won", name="Won deals")


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


Create = Callable[..., Integration]


@pytest.fixture
def create(org_a: Organization, admin_a: User, metric: Metric, ca_pem: str) -> Create:
    def make(kind: str, config: dict[str, Any], **overrides: Any) -> Integration:
        arguments: dict[str, Any] = {
            "acting": admin_a,
            "ip": "192.0.2.10",
            "name": f"{kind} feed",
            "kind": kind,
            "metric": metric,
            "config": config,
            "secret": SECRET,
            "ca_pem": ca_pem,
            **overrides,
        }
        return do_create_integration(org_a, **arguments)

    return make


def reload(integration: Integration) -> Integration:
    return Integration.objects.get(pk=integration.pk)


def points(metric: Metric) -> list[tuple[Any, ...]]:
    """The metric's points, each external id without its integration's prefix ("<id>:")."""
    rows = [
        (None if external is None else external.split(":", 1)[1], *rest)
        for external, *rest in DataPoint.objects.filter(metric=metric).values_list(
            "external_id", "ts", "value", "dimension"
        )
    ]
    return sorted(rows, key=lambda r: (str(r[0]), r[1]))


def rollups(metric: Metric) -> list[tuple[Any, ...]]:
    rows = Rollup.objects.filter(metric=metric).values_list(
        "day", "dimension", "total", "count", "minimum", "maximum", "latest_value"
    )
    return sorted(rows)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def rest_records(count: int, *, start: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r-{i}",
            "day": f"2026-01-{i:02d}T09:30:00Z",
            "amount": 100 * i + 0.5,
            "region": "north" if i % 2 else "south",
            "updated_at": f"2026-02-01T10:{i:02d}:00Z",
        }
        for i in range(start, start + count)
    ]


def rest_points(count: int, *, start: int = 1) -> list[tuple[Any, ...]]:
    return sorted(
        (
            (f"r-{i}", utc(2026, 1, i, 9, 30), 100 * i + 0.5, "north" if i % 2 else "south")
            for i in range(start, start + count)
        ),
        key=lambda r: (str(r[0]), r[1]),
    )


def quick_policy(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> None:
    """Syncs use a policy with these limits (no retries), loopback allowed."""

    def policy_for(*, allow_http: bool, ca_pem: str) -> http.Policy:
        return http.Policy(
            allow_http=allow_http,
            allowed_networks=LOOPBACK,
            ca_pem=ca_pem,
            retries=0,
            **overrides,
        )

    monkeypatch.setattr(sync, "policy_for", policy_for)


def run(integration: Integration, sleeps: Sleeps, *, full: bool = False) -> SyncRun:
    record = sync.run(integration.pk, full=full, sleep=sleeps)
    assert record is not None
    return record


# 1. each connector syncs all pages, and a second sync does not duplicate


@pytest.mark.parametrize(
    ("pagination", "next_link", "requests"),
    [
        ("none", "absolute", 1),
        ("next_link", "absolute", 3),
        ("next_link", "relative", 3),
        ("cursor", "absolute", 3),
        ("page", "absolute", 3),
    ],
)
def test_rest_connector_stores_every_page_and_a_second_sync_adds_no_copies(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    pagination: str,
    next_link: str,
    requests: int,
) -> None:
    service = services.start()
    api = RestApi(
        service, rest_records(5), secret=SECRET, pagination=pagination, next_link=next_link
    )
    integration = create("rest", api.config())

    first = run(integration, sleeps)

    assert (first.ok, first.error, first.records) == (True, "", 5)
    assert points(metric) == rest_points(5)
    assert rollups(metric) == sorted(
        (utc(2026, 1, i).date(), "north" if i % 2 else "south", v, 1, v, v, v)
        for i, v in ((i, 100 * i + 0.5) for i in range(1, 6))
    )
    assert len(api.api_requests()) == requests
    stored_rollups = rollups(metric)

    second = run(integration, sleeps)

    assert (second.ok, second.records) == (True, 5)
    assert points(metric) == rest_points(5)
    assert rollups(metric) == stored_rollups
    assert len(api.api_requests()) == 2 * requests
    assert sleeps == []


def test_rest_pages_are_asked_for_the_way_each_pagination_says(
    services: Services, loopback: None, create: Create, sleeps: Sleeps
) -> None:
    targets: dict[str, list[dict[str, str]]] = {}
    for pagination in ("next_link", "cursor", "page"):
        service = services.start()
        api = RestApi(service, rest_records(5), secret=SECRET, pagination=pagination)
        assert run(create("rest", api.config(), name=pagination), sleeps).ok
        targets[pagination] = [s.query for s in api.api_requests()]

    assert targets["next_link"] == [{}, {"offset": "2"}, {"offset": "4"}]
    assert [q.get("cursor") is not None for q in targets["cursor"]] == [False, True, True]
    assert targets["page"] == [
        {"page": "1", "per_page": "2"},
        {"page": "2", "per_page": "2"},
        {"page": "3", "per_page": "2"},
    ]


@pytest.mark.parametrize("auth", ["header", "bearer", "basic", "oauth2"])
def test_rest_connector_authenticates_each_way_with_the_credential_in_a_header_only(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    auth: str,
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(4), secret=SECRET, auth=auth, pagination="cursor")
    integration = create("rest", api.config())

    result = run(integration, sleeps)

    assert (result.ok, result.error, result.records) == (True, "", 4)
    assert points(metric) == rest_points(4)
    for seen in service.seen:
        assert SECRET not in seen.target
        assert SECRET not in seen.body.decode()
    if auth == "oauth2":
        (token_request,) = service.requests(RestApi.TOKEN)
        assert token_request.method == "POST"
        assert token_request.form() == {"grant_type": "client_credentials"}
        assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert api.issued == 1
    else:
        assert service.requests(RestApi.TOKEN) == []


def test_rest_incremental_sync_sends_the_newest_value_and_a_full_sync_sends_none(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(3), secret=SECRET, pagination="cursor")
    config = api.config(since_param="updated_since", since_field="updated_at")
    integration = create("rest", config)

    assert run(integration, sleeps).ok
    assert reload(integration).state == "2026-02-01T10:03:00Z"

    api.records.extend(rest_records(2, start=4))
    second = run(integration, sleeps)

    assert (second.ok, second.records) == (True, 3)  # >= the newest: r-3 again, then r-4, r-5
    assert reload(integration).state == "2026-02-01T10:05:00Z"
    assert points(metric) == rest_points(5)

    full = run(integration, sleeps, full=True)

    assert (full.ok, full.records) == (True, 5)
    since_sent = [
        s.query.get("updated_since") for s in api.api_requests() if "cursor" not in s.query
    ]
    assert since_sent == [None, "2026-02-01T10:03:00Z", None]
    assert points(metric) == rest_points(5)
    assert reload(integration).state == "2026-02-01T10:05:00Z"


CSV_ROWS = [("2026-01-01", "1200.50", "north", "c-1"), ("2026-01-02", "80", "south", "c-2")]


@pytest.mark.parametrize(
    ("text", "delimiter", "bom"),
    [
        (
            'date,amount,region,id\n2026-01-01,"1,200.50",north,c-1\n2026-01-02,80,south,c-2\n',
            "",
            False,
        ),
        (
            "date;amount;region;id\r\n2026-01-01;1200.50;north;c-1\r\n2026-01-02;80;south;c-2\r\n",
            ";",
            False,
        ),
        (
            "date,amount,region,id\n2026-01-01,1200.50,north,c-1\n2026-01-02,80,south,c-2\n",
            ",",
            True,
        ),
    ],
    ids=["comma", "semicolon", "utf8-bom"],
)
def test_csv_connector_reads_the_header_row_and_a_second_sync_adds_no_copies(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    text: str,
    delimiter: str,
    bom: bool,
) -> None:
    service = services.start()
    csv_file = CsvFile(service, text, bom=bom)
    config = {
        "url": csv_file.url(),
        "delimiter": delimiter,
        "mapping": {"timestamp": "date", "value": "amount", "dimension": "region", "id": "id"},
    }
    integration = create("csv", config, secret="")
    expected = [
        ("c-1", utc(2026, 1, 1), 1200.5, "north"),
        ("c-2", utc(2026, 1, 2), 80.0, "south"),
    ]

    first = run(integration, sleeps)
    second = run(integration, sleeps)

    assert (first.ok, first.error, first.records) == (True, "", 2)
    assert (second.ok, second.records) == (True, 2)
    assert points(metric) == expected
    assert len(service.requests(CsvFile.PATH)) == 2


def hubspot_deals(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": str(9000 + i),
            "properties": {
                "amount": f"{1000 * i}.00",
                "closedate": f"2026-03-{i:02d}T12:00:00Z",
                "dealstage": "closedwon" if i % 2 else "contractsent",
                "pipeline": "default",
                "dealname": f"Deal {i}",
                "hubspot_owner_id": "12345",
                "createdate": "2026-01-01T08:00:00.000Z",
                "hs_lastmodifieddate": f"2026-03-{i:02d}T15:00:00.{i:03d}Z",
                "hs_object_id": str(9000 + i),
            },
        }
        for i in range(1, count + 1)
    ]


def hubspot_millis(day: int) -> str:
    return str(int(utc(2026, 3, day, 15).timestamp()) * 1000 + day)


def hubspot_cursor(day: int) -> str:
    """The cursor kept after deal `day`: five minutes earlier, for HubSpot's index lag."""
    return str(int(hubspot_millis(day)) - 5 * 60 * 1000)


def test_hubspot_connector_searches_deals_page_by_page_then_only_modified_ones(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = HubSpotApi(service, hubspot_deals(5), token=SECRET)
    config = {
        "url": service.origin(),
        "mapping": {
            "timestamp": "closedate",
            "value": "amount",
            "dimension": "dealstage",
            "id": "id",
        },
    }
    integration = create("hubspot", config)
    expected = [
        (str(9000 + i), utc(2026, 3, i, 12), 1000.0 * i, "closedwon" if i % 2 else "contractsent")
        for i in range(1, 6)
    ]

    first = run(integration, sleeps)

    assert (first.ok, first.error, first.records) == (True, "", 5)
    assert points(metric) == expected
    bodies = [s.json() for s in api.searches()]
    assert [b.get("after") for b in bodies] == [None, "2", "4"]
    assert all(s.headers["authorization"] == f"Bearer {SECRET}" for s in api.searches())
    assert all(s.headers["content-type"] == "application/json" for s in api.searches())
    assert bodies[0]["limit"] == 100
    assert {"amount", "closedate", "dealstage", "hs_lastmodifieddate"} <= set(
        bodies[0]["properties"]
    )
    assert bodies[0]["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert "filterGroups" not in bodies[0]
    assert reload(integration).state == hubspot_cursor(5)

    api.deals.append(hubspot_deals(6)[-1])
    second = run(integration, sleeps)

    assert (second.ok, second.records) == (True, 2)  # GTE the newest: deal 5 again, and 6
    incremental = api.searches()[3].json()
    assert incremental["filterGroups"] == [
        {
            "filters": [
                {
                    "propertyName": "hs_lastmodifieddate",
                    "operator": "GTE",
                    "value": hubspot_cursor(5),
                }
            ]
        }
    ]
    assert len(points(metric)) == 6
    assert reload(integration).state == hubspot_cursor(6)

    full = run(integration, sleeps, full=True)

    assert (full.ok, full.records) == (True, 6)
    assert "filterGroups" not in api.searches()[4].json()
    assert len(points(metric)) == 6


def test_hubspot_refuses_a_wrong_token_with_a_clear_error(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    HubSpotApi(service, hubspot_deals(2), token="pat-na1-the-right-one")
    integration = create("hubspot", {"url": service.origin(), "mapping": {"value": "amount"}})

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == (
        "The service refused the credentials (HTTP 401). Check the API key or token."
    )
    assert points(metric) == []


def pipedrive_deals(count: int, *, start: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": 100 + i,
            "title": f"Deal {i}",
            "owner_id": 7,
            "person_id": None,
            "org_id": 3,
            "stage_id": 4,
            "pipeline_id": 1,
            "value": 250 * i,
            "currency": "EUR",
            "add_time": "2026-01-01T08:00:00Z",
            "update_time": f"2026-02-{i:02d}T10:00:00Z",
            "status": "won" if i % 2 else "lost",
            "close_time": f"2026-02-{i:02d}T09:00:00Z",
            "lost_time": None,
            "expected_close_date": None,
            "probability": None,
            "visible_to": 3,
        }
        for i in range(start, start + count)
    ]


def test_pipedrive_connector_follows_cursors_with_the_token_in_a_header_never_the_url(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = PipedriveApi(service, pipedrive_deals(5), token=SECRET)
    config = {
        "url": service.origin(),
        "mapping": {"timestamp": "close_time", "value": "value", "dimension": "status", "id": "id"},
    }
    integration = create("pipedrive", config)
    expected = sorted(
        (str(100 + i), utc(2026, 2, i, 9), 250.0 * i, "won" if i % 2 else "lost")
        for i in range(1, 6)
    )

    first = run(integration, sleeps)

    assert (first.ok, first.error, first.records) == (True, "", 5)
    assert points(metric) == expected
    requests = api.deal_requests()
    assert len(requests) == 3
    for seen in requests:
        assert seen.method == "GET"
        assert seen.headers["x-api-token"] == SECRET
        assert SECRET not in seen.target
        assert "api_token" not in seen.query
        assert (seen.query["limit"], seen.query["sort_by"]) == ("500", "update_time")
    assert [("cursor" in s.query) for s in requests] == [False, True, True]
    assert reload(integration).state == "2026-02-05T10:00:00Z"

    api.deals.extend(pipedrive_deals(1, start=6))
    second = run(integration, sleeps)

    assert (second.ok, second.records) == (True, 2)
    assert api.deal_requests()[3].query["updated_since"] == "2026-02-05T10:00:00Z"
    assert len(points(metric)) == 6
    assert reload(integration).state == "2026-02-06T10:00:00Z"


def salesforce_records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "Id": f"006XX0000{i:06d}",
            "Amount": 5000.0 * i,
            "CloseDate": f"2026-11-{i:02d}",
            "StageName": "Closed Won",
        }
        for i in range(1, count + 1)
    ]


def test_salesforce_connector_gets_a_token_then_follows_next_records_urls(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = SalesforceApi(service, salesforce_records(5), client_id=CLIENT_ID, secret=SECRET)
    integration = create("salesforce", api.config())
    expected = [
        (f"006XX0000{i:06d}", utc(2026, 11, i), 5000.0 * i, "Closed Won") for i in range(1, 6)
    ]

    first = run(integration, sleeps)

    assert (first.ok, first.error, first.records) == (True, "", 5)
    assert points(metric) == expected
    paths = [s.path for s in service.seen]
    assert paths == [
        SalesforceApi.TOKEN,
        SalesforceApi.QUERY,
        f"{SalesforceApi.QUERY}/01gXX-2",
        f"{SalesforceApi.QUERY}/01gXX-4",
    ]
    assert service.seen[1].query["q"] == api.config()["query"]
    assert service.seen[0].form() == {"grant_type": "client_credentials"}

    second = run(integration, sleeps)

    assert (second.ok, second.records) == (True, 5)
    assert points(metric) == expected


# 2. OAuth2


def test_an_expired_oauth2_token_is_replaced_and_the_sync_completes(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(
        service, rest_records(6), secret=SECRET, auth="oauth2", pagination="cursor", token_uses=1
    )
    integration = create("rest", api.config())

    result = run(integration, sleeps)

    assert (result.ok, result.error, result.records) == (True, "", 6)
    assert points(metric) == rest_points(6)
    assert api.issued == 3  # one token per page: each expired after one request
    assert [s.path for s in service.seen] == [
        RestApi.TOKEN,
        RestApi.ITEMS,
        RestApi.ITEMS,  # 401: expired
        RestApi.TOKEN,
        RestApi.ITEMS,
        RestApi.ITEMS,  # 401: expired
        RestApi.TOKEN,
        RestApi.ITEMS,
    ]


def test_a_wrong_oauth2_client_secret_is_a_clear_error_and_stores_nothing(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET, auth="oauth2")
    integration = create("rest", api.config(), secret="not-the-client-secret")

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == "The token endpoint refused the client credentials (HTTP 401)."
    assert points(metric) == []
    assert api.api_requests() == []
    assert reload(integration).failures == 1


def test_salesforce_with_a_wrong_client_secret_is_a_clear_error_and_stores_nothing(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = SalesforceApi(service, salesforce_records(2), client_id=CLIENT_ID, secret=SECRET)
    integration = create("salesforce", api.config(), secret="not-the-client-secret")

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == "The token endpoint refused the client credentials (HTTP 400)."
    assert points(metric) == []
    assert [s.path for s in service.seen] == [SalesforceApi.TOKEN]


# 3. retries and failures


def test_429_with_retry_after_is_waited_for_then_the_sync_succeeds(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET)
    service.script(RestApi.ITEMS, answer_json(429, {"error": "slow down"}, {"Retry-After": "7"}))
    integration = create("rest", api.config())

    result = run(integration, sleeps)

    assert (result.ok, result.records) == (True, 2)
    assert sleeps == [7.0]
    assert len(api.api_requests()) == 2
    assert points(metric) == rest_points(2)


def test_500s_are_retried_with_back_off_then_the_sync_succeeds(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET)
    service.script(RestApi.ITEMS, answer(500), answer(502))
    integration = create("rest", api.config())

    result = run(integration, sleeps)

    assert (result.ok, result.records) == (True, 2)
    assert sleeps == [1.0, 2.0]
    assert points(metric) == rest_points(2)


def test_a_persistent_500_fails_the_run_with_a_sentence_and_leaves_the_metric(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET)
    integration = create("rest", api.config())
    assert run(integration, sleeps).ok
    before, before_rollups = points(metric), rollups(metric)
    last_ok = reload(integration).last_ok_at
    api.records[:] = rest_records(4)
    service.when(lambda s: s.path == RestApi.ITEMS, answer(500, b"database exploded"))
    started = timezone.now()

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == "The service answered HTTP 500."
    assert result.records == 0
    assert result.finished_at is not None
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(api.api_requests()) == 1 + 4
    assert points(metric) == before
    assert rollups(metric) == before_rollups
    after = reload(integration)
    assert (after.failures, after.failing) == (1, False)
    assert after.last_ok_at == last_ok
    assert after.running_since is None
    assert after.next_run_at is not None
    assert after.next_run_at >= started + dt.timedelta(minutes=integration.every_minutes)


def test_three_failed_runs_flag_the_integration_and_a_success_clears_it(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET)
    integration = create("rest", api.config())
    service.when(lambda s: s.path == RestApi.ITEMS, answer(503, headers={"Retry-After": "0"}))

    states = []
    for _ in range(3):
        assert not run(integration, sleeps).ok
        current = reload(integration)
        states.append((current.failures, current.failing))

    assert states == [(1, False), (2, False), (3, True)]
    assert SyncRun.objects.filter(integration=integration, ok=False).count() == 3

    service.rules.clear()
    result = run(integration, sleeps)

    assert result.ok
    current = reload(integration)
    assert (current.failures, current.failing) == (0, False)
    assert current.last_ok_at is not None
    assert points(metric) == rest_points(2)


# 4. malformed, slow, oversized


def test_malformed_json_fails_the_run(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    service.route(
        RestApi.ITEMS, answer(200, b"<html>maintenance</html>", {"Content-Type": "text/html"})
    )
    integration = create("rest", {"url": service.url(RestApi.ITEMS), "records_path": ""})

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == "The service's answer is not valid JSON."
    assert points(metric) == []


def test_a_server_slower_than_the_read_timeout_fails_the_run(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick_policy(monkeypatch, read_timeout=0.3)
    service = services.start()
    service.route(RestApi.ITEMS, slow_answer(b"[]"))
    integration = create("rest", {"url": service.url(RestApi.ITEMS), "records_path": ""})

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == "localhost did not answer in time."
    assert len(service.seen) == 1
    assert points(metric) == []


def test_an_oversized_body_fails_the_run(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick_policy(monkeypatch, max_bytes=2000)
    service = services.start()
    api = RestApi(service, rest_records(30), secret=SECRET)
    integration = create("rest", api.config())

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == "The response from localhost is larger than allowed."
    assert points(metric) == []


# 5. a failure part way stores nothing


def _page_two(seen: Seen) -> bool:
    return seen.path == RestApi.ITEMS and "cursor" in seen.query


@pytest.mark.parametrize(
    "page_two",
    [answer(500, b"oops"), answer(200, b'{"data": {"items": [{"id": "r-'), answer(401)],
    ids=["persistent-500", "malformed", "unauthorized"],
)
def test_a_failure_on_page_two_keeps_the_metric_and_the_cursor_as_they_were(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    page_two: Any,
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET, pagination="cursor", page_size=2)
    config = api.config(since_param="updated_since", since_field="updated_at")
    integration = create("rest", config)
    assert run(integration, sleeps).ok
    before, before_rollups = points(metric), rollups(metric)
    state = reload(integration).state
    assert state == "2026-02-01T10:02:00Z"
    # r-2 changed and r-3..r-6 are new: page 1 (r-2, r-3) answers, page 2 does not.
    api.records[:] = [{**rest_records(2)[0]}, {**rest_records(1, start=2)[0], "amount": 9.0}]
    api.records.extend(rest_records(4, start=3))
    service.when(_page_two, page_two)

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error
    first_page = [s for s in api.api_requests() if s.query.get("updated_since") == state]
    assert [("cursor" in s.query) for s in first_page][:2] == [False, True]
    assert points(metric) == before
    assert rollups(metric) == before_rollups
    assert reload(integration).state == state
    assert reload(integration).failures == 1


# 6. plain HTTP only with staff's exception


def test_http_url_is_refused_until_staff_allow_the_exception(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    staff: User,
) -> None:
    plain = services.start(tls=False)
    api = RestApi(plain, rest_records(2), secret=SECRET)
    integration = create("rest", api.config())
    assert integration.config["url"].startswith("http://")

    refused = run(integration, sleeps)

    assert not refused.ok
    assert refused.error == "Plain HTTP is refused: use https:// (staff can allow an exception)."
    assert (plain.seen, plain.connections) == ([], 0)

    do_set_http_exception(integration, acting=staff, ip="192.0.2.20", allow=True)
    allowed = run(integration, sleeps)

    assert (allowed.ok, allowed.records) == (True, 2)
    assert points(metric) == rest_points(2)
    entry = AuditEntry.objects.filter(action="integration.http_exception").get()
    assert entry.detail == {"allow": True}


# 7. SSRF with the default settings


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "10.0.0.1", "169.254.169.254", "[::ffff:127.0.0.1]"],
)
def test_internal_addresses_are_refused_before_any_request_with_the_default_settings(
    services: Services,
    settings: Any,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    host: str,
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ()
    service = services.start()
    RestApi(service, rest_records(2), secret=SECRET)
    port = service.port if host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]") else 443
    integration = create("rest", {"url": f"https://{host}:{port}{RestApi.ITEMS}"})

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error.startswith("Refused: ")
    assert result.error.endswith(REFUSED)
    assert sleeps == []
    assert (service.seen, service.connections) == ([], 0)
    assert points(metric) == []


def test_an_oauth2_token_url_on_the_metadata_address_is_refused(
    services: Services, settings: Any, create: Create, sleeps: Sleeps
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ()
    config = {
        "url": "https://api.example.com/items",
        "auth": "oauth2",
        "client_id": CLIENT_ID,
        "token_url": "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    }

    result = run(create("rest", config), sleeps)

    assert not result.ok
    assert result.error == f"Refused: 169.254.169.254 {REFUSED}"


# 8. the credential is nowhere in clear


def _clear_forms(secret: str) -> list[str]:
    pair = base64.b64encode(f"reporting:{secret}".encode()).decode()
    client = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    return [secret, pair, client, base64.b64encode(secret.encode()).decode()]


def _database_texts() -> Iterator[tuple[str, str]]:
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608  (names from the schema)
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        yield table, bytes(value).decode("latin-1")
                    elif value is not None:
                        yield table, str(value)


@pytest.mark.parametrize("auth", ["header", "basic", "oauth2"])
def test_the_credential_is_never_in_the_database_logs_audit_or_errors_in_clear(
    services: Services,
    loopback: None,
    create: Create,
    metric: Metric,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
    auth: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    service = services.start()
    api = RestApi(service, rest_records(3), secret=SECRET, auth=auth, pagination="cursor")
    integration = create("rest", api.config())
    leaky = f'{{"error": "bad key {SECRET}"}}'.encode()

    results = [run(integration, sleeps)]
    service.when(lambda s: s.path == RestApi.ITEMS, answer(500, leaky))
    results.append(run(integration, sleeps))
    service.rules[:] = [(lambda s: s.path == RestApi.ITEMS, answer(401, leaky))]
    results.append(run(integration, sleeps))
    service.rules.clear()
    Integration.objects.filter(pk=integration.pk).update(
        config={**integration.config, "page_size": "many"}
    )
    results.append(run(integration, sleeps))  # an unexpected error, logged with its traceback

    assert [r.ok for r in results] == [True, False, False, False]
    assert results[3].error == sync.UNEXPECTED
    assert "integrations: sync of" in caplog.text
    sealed = bytes(reload(integration).credential)
    assert sealed
    forms = _clear_forms(SECRET)
    for form in forms:
        assert form.encode() not in sealed
        assert form not in caplog.text
        for record in caplog.records:
            assert form not in record.getMessage()
            assert form not in (record.exc_text or "")
        for table, text in _database_texts():
            assert form not in text, table
        for run_record in SyncRun.objects.all():
            assert form not in run_record.error
        for entry in AuditEntry.objects.all():
            assert form not in f"{entry.action} {entry.target_id} {entry.detail}"
    assert sync.stored_secret(reload(integration)) == SECRET  # sealed, not lost


# 9. preview


def test_preview_maps_the_first_page_and_stores_nothing(
    services: Services, loopback: None, metric: Metric, ca_pem: str
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(5), secret=SECRET, pagination="cursor", page_size=2)

    result = sync.preview(kind="rest", config=api.config(), secret=SECRET, ca_pem=ca_pem)

    assert result.records == 2
    assert result.skipped == 0
    assert result.rows == [
        {"time": "2026-01-01T09:30:00+00:00", "value": 100.5, "dimension": "north", "id": "r-1"},
        {"time": "2026-01-02T09:30:00+00:00", "value": 200.5, "dimension": "south", "id": "r-2"},
    ]
    assert len(api.api_requests()) == 1
    assert not DataPoint.objects.exists()
    assert not Rollup.objects.exists()
    assert not SyncRun.objects.exists()


def test_preview_of_salesforce_gets_a_token_and_shows_the_first_batch(
    services: Services, loopback: None, ca_pem: str, db: None
) -> None:
    service = services.start()
    records = salesforce_records(3)
    records[1]["Amount"] = None
    api = SalesforceApi(service, records, client_id=CLIENT_ID, secret=SECRET)

    result = sync.preview(kind="salesforce", config=api.config(), secret=SECRET, ca_pem=ca_pem)

    assert (result.records, result.skipped) == (2, 1)
    assert result.rows == [
        {
            "time": "2026-11-01T00:00:00+00:00",
            "value": 5000.0,
            "dimension": "Closed Won",
            "id": "006XX0000000001",
        }
    ]
    assert [s.path for s in service.seen] == [SalesforceApi.TOKEN, SalesforceApi.QUERY]
    assert not DataPoint.objects.exists()


def test_preview_with_a_refused_credential_raises_a_sentence(
    services: Services, loopback: None, ca_pem: str, db: None
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET, auth="bearer")

    with pytest.raises(SyncError) as caught:
        sync.preview(kind="rest", config=api.config(), secret="wrong", ca_pem=ca_pem)

    assert str(caught.value) == (
        "The service refused the credentials (HTTP 401). Check the API key or token."
    )
    assert not DataPoint.objects.exists()


# 10. the periodic job and the claim


def test_the_periodic_job_queues_only_due_enabled_integrations_and_runs_them(
    services: Services,
    loopback: None,
    create: Create,
    org_a: Organization,
) -> None:
    now = timezone.now()
    made: dict[str, tuple[Integration, RestApi, Metric]] = {}
    for name in ("due", "not_yet", "disabled", "running"):
        service = services.start()
        api = RestApi(service, rest_records(2), secret=SECRET)
        own = Metric.objects.create(org=org_a, key=f"feed.{name}", name=name)
        made[name] = (create("rest", api.config(), name=name, metric=own), api, own)
    Integration.objects.filter(pk=made["due"][0].pk).update(
        next_run_at=now - dt.timedelta(minutes=3)
    )
    Integration.objects.filter(pk=made["not_yet"][0].pk).update(
        next_run_at=now + dt.timedelta(minutes=5)
    )
    Integration.objects.filter(pk=made["disabled"][0].pk).update(
        enabled=False, next_run_at=now - dt.timedelta(minutes=3)
    )
    Integration.objects.filter(pk=made["running"][0].pk).update(
        running_since=now - dt.timedelta(minutes=1), next_run_at=now - dt.timedelta(minutes=3)
    )
    untouched = {
        name: reload(made[name][0]).next_run_at for name in ("not_yet", "disabled", "running")
    }

    queued = queue_due_syncs.call_local()

    assert queued == 1
    due, due_api, due_metric = made["due"]
    assert points(due_metric) == rest_points(2)
    assert SyncRun.objects.get(integration=due).ok
    assert reload(due).next_run_at > now + dt.timedelta(minutes=due.every_minutes - 1)
    for name, next_run_at in untouched.items():
        integration, api, own = made[name]
        assert reload(integration).next_run_at == next_run_at, name
        assert api.api_requests() == [], name
        assert points(own) == [], name
    assert queue_due_syncs.call_local() == 0  # moved forward: not due again
    assert len(due_api.api_requests()) == 1


def test_the_periodic_job_requeues_an_integration_whose_run_crashed_long_ago(
    services: Services, loopback: None, create: Create, metric: Metric
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET)
    integration = create("rest", api.config())
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        running_since=now - dt.timedelta(hours=2), next_run_at=now - dt.timedelta(minutes=1)
    )

    assert queue_due_syncs.call_local() == 1
    assert points(metric) == rest_points(2)


def test_a_run_while_another_holds_the_integration_does_nothing(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET)
    integration = create("rest", api.config())
    Integration.objects.filter(pk=integration.pk).update(running_since=timezone.now())

    assert sync.run(integration.pk, sleep=sleeps) is None
    assert not SyncRun.objects.exists()
    assert service.seen == []
    assert points(metric) == []


def test_a_claim_older_than_an_hour_is_taken_over(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET)
    integration = create("rest", api.config())
    Integration.objects.filter(pk=integration.pk).update(
        running_since=timezone.now() - sync.CLAIM_EXPIRES - dt.timedelta(minutes=1)
    )

    result = run(integration, sleeps)

    assert result.ok
    assert points(metric) == rest_points(2)
    assert reload(integration).running_since is None


# 11. mapping


def test_a_value_that_is_no_number_fails_the_run_naming_the_record(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    records = rest_records(4)
    records[2]["amount"] = "n/a"
    api = RestApi(service, records, secret=SECRET, pagination="cursor", page_size=2)
    integration = create("rest", api.config())

    result = run(integration, sleeps)

    assert not result.ok
    assert result.error == "Record 3: 'amount' is not a number."
    assert points(metric) == []
    assert reload(integration).failures == 1


def test_records_without_a_value_are_skipped(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    records = rest_records(4)
    records[0]["amount"] = None
    records[3]["amount"] = ""
    api = RestApi(service, records, secret=SECRET, pagination="cursor")
    integration = create("rest", api.config())

    result = run(integration, sleeps)

    assert (result.ok, result.records) == (True, 2)
    assert [p[0] for p in points(metric)] == ["r-2", "r-3"]


# Found while writing these tests.


def test_a_redirect_to_another_host_does_not_carry_the_api_key_header(
    services: Services, loopback: None, create: Create, sleeps: Sleeps
) -> None:
    elsewhere = services.start()
    elsewhere.route(
        PipedriveApi.DEALS,
        answer_json(200, {"success": True, "data": [], "additional_data": {"next_cursor": None}}),
    )
    service = services.start()
    target = elsewhere.url(PipedriveApi.DEALS, host="127.0.0.1")
    service.route(PipedriveApi.DEALS, answer(302, headers={"Location": target}))
    integration = create("pipedrive", {"url": service.origin(), "mapping": {"value": "value"}})

    result = run(integration, sleeps)

    assert result.ok
    (seen,) = elsewhere.seen
    assert "x-api-token" not in seen.headers


# -- rules from review: claims, caps, ids per integration, times in the org's zone ---------------


def test_a_run_whose_claim_was_taken_over_stores_nothing(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(3), secret=SECRET, pagination="none", next_link="absolute")
    integration = create("rest", api.config())
    real_fetch = sync.for_kind("rest").fetch

    def fetch_then_lose_the_claim(*args: Any, **kwargs: Any) -> Any:
        yield from real_fetch(*args, **kwargs)
        # Meanwhile the run outlived its claim and another took the integration over.
        Integration.objects.filter(pk=integration.pk).update(running_since=dt.datetime.now(dt.UTC))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.for_kind("rest"), "fetch", fetch_then_lose_the_claim)
        record = run(integration, sleeps)
    assert (record.ok, record.records) == (False, 0)
    assert "Another run took this integration over" in record.error
    assert points(metric) == []
    assert reload(integration).running_since is not None  # the newer claim stays


def test_a_sync_stops_past_the_record_limit_and_stores_nothing(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(5), secret=SECRET, pagination="none", next_link="absolute")
    integration = create("rest", api.config())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync, "MAX_RECORDS", 4)
        record = run(integration, sleeps)
    assert (record.ok, record.error) == (False, "More than 4 records in one sync: stopped.")
    assert points(metric) == []


def test_two_integrations_with_the_same_record_ids_keep_their_own_points(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    service = services.start()
    api = RestApi(service, rest_records(2), secret=SECRET, pagination="none", next_link="absolute")
    first = create("rest", api.config(), name="CRM one")
    second = create("rest", api.config(), name="CRM two")
    run(first, sleeps)
    run(second, sleeps)
    stored = DataPoint.objects.filter(metric=metric).values_list("external_id", flat=True)
    assert sorted(stored) == sorted(f"{i.pk}:r-{n}" for i in (first, second) for n in (1, 2))


def test_times_without_an_offset_and_dates_are_read_in_the_orgs_time_zone(
    org_a: Organization,
) -> None:
    from zoneinfo import ZoneInfo

    from dashvault.integrations import mapping

    tz = ZoneInfo("America/New_York")
    rules = {"timestamp": "t", "value": "v", "id": "i"}
    records = [{"t": "2024-01-01", "v": 1, "i": 1}, {"t": "2024-01-01T09:00:00", "v": 2, "i": 2}]
    mapped = mapping.points(records, rules, "m", tz=tz)
    assert [p.ts for p in mapped.points] == [
        dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, 14, tzinfo=dt.UTC),
    ]
    with pytest.raises(SyncError, match="outside 1900-2200"):
        mapping.points([{"t": "0001-01-01", "v": 1, "i": 1}], rules, "m")
    with pytest.raises(SyncError, match="NUL"):
        mapping.points([{"t": "2024-01-01", "v": 1, "i": "a\x00b"}], rules, "m")


def test_hubspot_searches_again_from_the_newest_deal_at_the_end_of_a_search_window(
    services: Services, loopback: None, create: Create, metric: Metric, sleeps: Sleeps
) -> None:
    """HubSpot pages one search through 10,000 results at most: past that the connector
    searches again from the newest modification seen. Here the window is made tiny."""
    from dashvault.integrations.connectors import hubspot

    service = services.start()
    api = HubSpotApi(service, hubspot_deals(7), token=SECRET)
    integration = create("hubspot", {"url": service.origin(), "mapping": hubspot.DEFAULT_MAPPING})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hubspot, "SEARCH_WINDOW", 102)  # limit 100: a new search after 2
        record = run(integration, sleeps)
    assert (record.ok, record.error) == (True, "")
    assert sorted(p[0] for p in points(metric)) == [str(9000 + i) for i in range(1, 8)]
    bodies = [s.json() for s in api.searches()]
    assert all("after" not in b for b in bodies[1:])  # every page a new search
    starts = [b["filterGroups"][0]["filters"][0]["value"] for b in bodies[1:]]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_run_records_older_than_ninety_days_are_pruned_but_each_latest_stays(
    org_a: Organization, create: Create
) -> None:
    from dashvault.integrations.jobs import prune_sync_runs

    integration = create("rest", {"url": "https://crm.example/", "mapping": {}})
    quiet = create("rest", {"url": "https://crm.example/", "mapping": {}}, name="quiet")
    now = timezone.now()
    for days in (200, 120, 10):
        SyncRun.objects.create(
            org=org_a, integration=integration, started_at=now - dt.timedelta(days=days)
        )
    SyncRun.objects.create(org=org_a, integration=quiet, started_at=now - dt.timedelta(days=300))
    assert prune_sync_runs.call_local() == 2
    kept = sorted(
        (r.integration_id == quiet.pk, (now - r.started_at).days) for r in SyncRun.objects.all()
    )
    assert kept == [(False, 10), (True, 300)]
