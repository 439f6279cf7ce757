"""The integrations API: org tokens with the "integrations" scope list, create, read, change,
delete and sync integrations.

The credential is write-only: no answer carries it (not after creating, reading, changing or
syncing, not in a refusal, not even when it was sent where it does not belong); answers show
only whether one is "set". It is stored sealed, absent keeps it, "" removes it.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashvault.api.actions import do_create_token
from dashvault.api.models import ApiToken
from dashvault.audit.models import AuditEntry
from dashvault.integrations import actions, sync
from dashvault.integrations.models import Integration, SyncRun
from dashvault.metrics.models import Metric
from tests.conftest import SecureClient, make_client

URL = "/api/v1/integrations"
SECRET = "api-S3cret-never-returned-81c2"
OTHER_SECRET = "api-Replacement-secret-5d07"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def revenue(org_a: Any) -> Metric:
    return Metric.objects.create(org=org_a, key="crm_revenue", name="CRM revenue")


@pytest.fixture
def revenue_b(org_b: Any) -> Metric:
    return Metric.objects.create(org=org_b, key="crm_revenue", name="Revenue of B")


@pytest.fixture
def token(org_a: Any, admin_a: Any) -> str:
    return do_create_token(org_a, "ops", ["integrations"], expires_at=None, acting=admin_a)[1]


def api(token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return SecureClient(headers=headers)


def send(client: Client, method: str, url: str, body: Any = None) -> Any:
    if body is None:  # no body at all, as curl -X POST sends it
        return client.generic(method.upper(), url)
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return getattr(client, method)(url, data, content_type="application/json")


def rest_config(url: str = "https://crm.example/deals", **changes: Any) -> dict[str, Any]:
    config = {
        "url": url,
        "records_path": "data",
        "pagination": "none",
        "auth": "bearer",
        "mapping": {"timestamp": "closed", "value": "amount", "dimension": "rep", "id": "id"},
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def new_body(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Deals API",
        "kind": "rest",
        "metric": "crm_revenue",
        "config": rest_config(),
        "credential": SECRET,
        "every_minutes": 30,
    }
    body.update(changes)
    return body


def make_integration(admin: Any, metric: Metric, **changes: Any) -> Integration:
    fields: dict[str, Any] = {
        "name": "Deals API",
        "kind": "rest",
        "metric": metric,
        "config": rest_config(),
        "secret": SECRET,
    }
    fields.update(changes)
    return actions.do_create_integration(admin.org, acting=admin, ip=None, **fields)


def item_url(integration: Integration | str) -> str:
    return f"{URL}/{getattr(integration, 'pk', integration)}"


def assert_no_secret(response: Any) -> None:
    content = response.content.decode()
    for secret in (SECRET, OTHER_SECRET):
        assert secret not in content


def assert_sealed(integration: Integration, expected: str) -> None:
    integration.refresh_from_db()
    assert expected.encode() not in bytes(integration.credential)
    assert expected not in json.dumps(integration.config)
    assert sync.stored_secret(integration) == expected


# -- create ----------------------------------------------------------------------------------------


def test_an_integration_is_created_with_its_credential_sealed_and_never_returned(token, revenue):
    response = send(api(token), "post", URL, new_body())

    assert response.status_code == 201, response.content
    assert_no_secret(response)
    body = response.json()
    assert body["name"] == "Deals API" and body["kind"] == "rest"
    assert body["metric"] == "crm_revenue" and body["every_minutes"] == 30
    assert body["enabled"] is True and body["credential"] == "set"
    assert body["config"] == rest_config()
    assert body["allow_http"] is False and body["failing"] is False
    assert body["last_run"] is None and body["next_run_at"]
    integration = Integration.objects.get(pk=body["id"])
    assert integration.org == revenue.org and integration.metric == revenue
    assert_sealed(integration, SECRET)
    entry = AuditEntry.objects.get(action="integration.create")
    assert entry.target_id == body["id"]
    assert entry.actor_id == ApiToken.objects.get().pk
    assert SECRET not in json.dumps(entry.detail)


def test_an_integration_without_a_credential_says_not_set(token, revenue):
    body = new_body(config=rest_config(auth="none"))
    del body["credential"]
    response = send(api(token), "post", URL, body)
    assert response.status_code == 201, response.content
    assert response.json()["credential"] == "not set"
    assert response.json()["config"] == rest_config(auth=None)
    assert not Integration.objects.get().has_credential


def test_every_kind_is_checked_by_the_same_rules_as_the_pages(token, revenue):
    hubspot = {
        "url": "https://api.hubapi.com",
        "mapping": {"timestamp": "closedate", "value": "forecast_amount", "id": "id"},
    }
    response = send(api(token), "post", URL, new_body(kind="hubspot", config=hubspot))
    assert response.status_code == 201, response.content
    config = response.json()["config"]
    assert config["properties"] == ["forecast_amount"]  # derived, as on the pages
    again = send(
        api(token), "patch", item_url(response.json()["id"]), {"config": config}
    )  # what GET shows can be sent back as it is
    assert again.status_code == 200 and again.json()["config"] == config

    salesforce = {"url": "https://x.my.salesforce.com", "query": "DELETE Opportunity"}
    refused = send(api(token), "post", URL, new_body(kind="salesforce", config=salesforce))
    assert refused.status_code == 422
    places = {e["loc"]: e["message"] for e in refused.json()["errors"]}
    assert "SELECT" in places["config.query"]
    assert "config.client_id" in places
    assert not any(place.startswith("config.mapping") for place in places)  # the default


def test_plain_http_is_refused_without_staffs_exception(token, revenue):
    response = send(
        api(token), "post", URL, new_body(config=rest_config("http://crm.example/deals"))
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "loc": "config.url",
            "message": "Use an https:// address (plain HTTP only with platform staff's exception).",
        }
    ]
    assert_no_secret(response)
    assert not Integration.objects.exists()


def test_plain_http_is_accepted_for_an_integration_with_the_exception(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    http = {"config": rest_config("http://crm.example/deals")}
    assert send(api(token), "patch", item_url(integration), http).status_code == 422
    Integration.objects.filter(pk=integration.pk).update(allow_http=True)
    moved = send(api(token), "patch", item_url(integration), http)
    assert moved.status_code == 422  # the stored credential would now travel in clear
    assert [e["loc"] for e in moved.json()["errors"]] == ["credential"]
    http["credential"] = "a-new-key"
    response = send(api(token), "patch", item_url(integration), http)
    assert response.status_code == 200, response.content
    assert response.json()["allow_http"] is True
    assert response.json()["config"]["url"] == "http://crm.example/deals"


BAD_BODIES = {
    "credential with a line break": new_body(credential="tok-abc\n"),
    "credential with a NUL": new_body(credential="tok\x00abc"),
    "unknown kind": new_body(kind="ftp"),
    "empty name": new_body(name="   "),
    "long name": new_body(name="x" * 121),
    "nul in name": new_body(name="a\x00b"),
    "sync too often": new_body(every_minutes=1),
    "sync too rarely": new_body(every_minutes=99999),
    "malformed metric key": new_body(metric="Not A Key"),
    "unknown metric": new_body(metric="nope"),
    "no config": {k: v for k, v in new_body().items() if k != "config"},
    "config not an object": new_body(config=[SECRET]),
    "unknown config key": new_body(config=rest_config(token=SECRET)),
    "config value not text": new_body(config=rest_config(records_path=[SECRET])),
    "secret as a choice": new_body(config=rest_config(auth=SECRET)),
    "secret as a page size": new_body(config=rest_config(page_size=SECRET)),
    "mapping not an object": new_body(config=rest_config(mapping=SECRET)),
    "unknown mapping key": new_body(config=rest_config(mapping={"value": "a", "token": SECRET})),
    "no value mapped": new_body(config=rest_config(mapping={"timestamp": "closed"})),
    "credentials in the address": new_body(
        config=rest_config(f"https://user:{SECRET}@crm.example/deals")
    ),
    "not an address": new_body(config=rest_config(SECRET)),
    "forbidden header": new_body(config=rest_config(auth="header", header_name="Host")),
    "oauth2 without its settings": new_body(config=rest_config(auth="oauth2")),
    "page size too large": new_body(config=rest_config(page_size=5000)),
    "needs a credential": new_body(credential=""),
    "credential too long": new_body(credential=SECRET * 200),
    "credential not text": new_body(credential={"key": SECRET}),
    "ca not a certificate": new_body(ca_pem=f"-----BEGIN CERTIFICATE-----\n{SECRET}\n"),
    "ca a private key": new_body(ca_pem=f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n"),
    "unknown field": new_body(api_key=SECRET),
    "secret as the kind": new_body(kind=SECRET),
    "secret as every_minutes": new_body(every_minutes=SECRET),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_is_refused_with_422_without_echoing_a_secret(token, revenue, body):
    response = send(api(token), "post", URL, body)
    assert response.status_code == 422, response.content
    assert response.json()["detail"] == "Invalid input; nothing was stored."
    assert response.json()["errors"] and all(e["message"] for e in response.json()["errors"])
    assert_no_secret(response)
    assert not Integration.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="integration.").exists()


def test_the_refusal_names_the_credential_field_not_its_value(token, revenue):
    response = send(api(token), "post", URL, new_body(credential=SECRET * 200))
    assert [e["loc"] for e in response.json()["errors"]] == ["credential"]
    assert_no_secret(response)


def test_another_orgs_metric_key_is_refused_like_an_unknown_one(token, revenue_b):
    response = send(api(token), "post", URL, new_body())
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": "metric", "message": "No metric with this key; create it first."}
    ]
    assert "Revenue of B" not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ('{"credential": "' + SECRET + '", ', "application/json", 400),
        ("credential=" + SECRET, "application/x-www-form-urlencoded", 415),
        ('"' + SECRET + '"', "application/json", 422),
    ],
)
def test_malformed_bodies_get_a_4xx_without_the_secret(token, revenue, body, content_type, status):
    response = api(token).post(URL, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["detail"]
    assert_no_secret(response)
    assert not Integration.objects.exists()


# -- read ------------------------------------------------------------------------------------------


def test_the_list_shows_each_integration_with_its_last_run_and_flags(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    make_integration(admin_a, revenue, name="Another", config=rest_config(auth="none"), secret="")
    SyncRun.objects.create(
        org=admin_a.org,
        integration=integration,
        started_at="2026-05-01T10:00:00Z",
        finished_at="2026-05-01T10:00:01Z",
        ok=True,
        records=7,
    )
    SyncRun.objects.create(
        org=admin_a.org,
        integration=integration,
        started_at="2026-05-01T11:00:00Z",
        finished_at="2026-05-01T11:00:02Z",
        error="The service answered HTTP 503.",
    )
    Integration.objects.filter(pk=integration.pk).update(failures=3, allow_http=True)

    response = api(token).get(URL)

    assert response.status_code == 200
    assert_no_secret(response)
    another, deals = response.json()
    assert (another["name"], another["credential"], another["last_run"]) == (
        "Another",
        "not set",
        None,
    )
    assert deals["credential"] == "set" and deals["failing"] is True and deals["failures"] == 3
    assert deals["allow_http"] is True and deals["metric"] == "crm_revenue"
    assert deals["last_run"] == {
        "started_at": "2026-05-01T11:00:00Z",
        "finished_at": "2026-05-01T11:00:02Z",
        "full": False,
        "ok": False,
        "records": 0,
        "error": "The service answered HTTP 503.",
    }
    entry = AuditEntry.objects.filter(action="api.read").get()
    assert entry.actor_kind == "token" and entry.detail == {"resource": "integrations"}


def test_the_list_costs_the_same_queries_for_one_or_many(token, admin_a, revenue):
    from django.db import connection

    client = api(token)
    first = make_integration(admin_a, revenue)
    SyncRun.objects.create(org=admin_a.org, integration=first, started_at="2026-05-01T10:00Z")
    client.get(URL)  # the token's last use is written at most once a minute
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(URL).json()) == 1
    for _ in range(4):
        other = make_integration(admin_a, revenue)
        SyncRun.objects.create(org=admin_a.org, integration=other, started_at="2026-05-01T10:00Z")
    with CaptureQueriesContext(connection) as five:
        assert len(client.get(URL).json()) == 5
    assert len(five.captured_queries) == len(one.captured_queries)


def test_an_integration_is_read_and_the_read_is_audited(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue, ca_pem="")
    response = api(token).get(item_url(integration))
    assert response.status_code == 200
    assert_no_secret(response)
    assert response.json()["id"] == str(integration.pk)
    assert response.json()["credential"] == "set"
    entry = AuditEntry.objects.get(action="api.read")
    assert entry.target_id == str(integration.pk) and entry.actor_kind == "token"


# -- change ----------------------------------------------------------------------------------------


def test_a_change_without_a_credential_keeps_the_stored_one(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    response = send(
        api(token), "patch", item_url(integration), {"name": "Renamed", "enabled": False}
    )
    assert response.status_code == 200, response.content
    assert_no_secret(response)
    assert response.json()["name"] == "Renamed" and response.json()["enabled"] is False
    assert response.json()["credential"] == "set"
    assert_sealed(integration, SECRET)
    entry = AuditEntry.objects.get(action="integration.update")
    assert entry.detail == {"credential_changed": False, "enabled": False}


def test_a_credential_replaces_the_stored_one(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    response = send(api(token), "patch", item_url(integration), {"credential": OTHER_SECRET})
    assert response.status_code == 200
    assert_no_secret(response)
    assert response.json()["credential"] == "set"
    assert_sealed(integration, OTHER_SECRET)
    entry = AuditEntry.objects.get(action="integration.update")
    assert entry.detail["credential_changed"] is True
    assert OTHER_SECRET not in json.dumps(entry.detail)


def test_an_empty_credential_removes_the_stored_one(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    body = {"credential": "", "config": rest_config(auth="none")}
    response = send(api(token), "patch", item_url(integration), body)
    assert response.status_code == 200, response.content
    assert response.json()["credential"] == "not set"
    integration.refresh_from_db()
    assert not integration.has_credential and "auth" not in integration.config


def test_removing_a_credential_that_is_needed_is_refused(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    response = send(api(token), "patch", item_url(integration), {"credential": ""})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": "credential", "message": "This way of signing in needs a credential."}
    ]
    assert_sealed(integration, SECRET)


def test_a_null_credential_is_refused_rather_than_guessed(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    response = send(api(token), "patch", item_url(integration), {"credential": None})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "credential"
    assert_sealed(integration, SECRET)


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "csv"},
        {"config": rest_config(auth="telepathy"), "credential": OTHER_SECRET},
        {"credential": OTHER_SECRET * 200},
        {"metric": "nope", "credential": OTHER_SECRET},
        {"every_minutes": 0, "credential": OTHER_SECRET},
        {"allow_http": True},
    ],
)
def test_a_bad_change_is_refused_and_changes_nothing(token, admin_a, revenue, body):
    integration = make_integration(admin_a, revenue)
    response = send(api(token), "patch", item_url(integration), body)
    assert response.status_code == 422, response.content
    assert_no_secret(response)
    assert_sealed(integration, SECRET)
    assert integration.kind == "rest" and not integration.allow_http
    assert integration.every_minutes == 15 and integration.config == rest_config()
    assert not AuditEntry.objects.filter(action="integration.update").exists()


def test_a_change_can_feed_another_metric_of_the_org(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    Metric.objects.create(org=admin_a.org, key="calls", name="Calls")
    response = send(api(token), "patch", item_url(integration), {"metric": "calls"})
    assert response.status_code == 200 and response.json()["metric"] == "calls"


# -- delete and sync -------------------------------------------------------------------------------


def test_an_integration_is_deleted_and_the_deletion_audited(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    response = api(token).delete(item_url(integration))
    assert response.status_code == 204 and response.content == b""
    assert not Integration.objects.filter(pk=integration.pk).exists()
    assert Metric.objects.filter(pk=revenue.pk).exists()
    assert AuditEntry.objects.get(action="integration.delete").target_id == str(integration.pk)
    assert api(token).delete(item_url(integration)).status_code == 404


@pytest.mark.parametrize(
    ("body", "full"), [(None, False), ({}, False), ({"full": False}, False), ({"full": True}, True)]
)
def test_a_sync_is_queued_and_audited(
    token, admin_a, revenue, monkeypatch, django_capture_on_commit_callbacks, body, full
):
    from dashvault.integrations import jobs

    queued = []
    monkeypatch.setattr(jobs, "sync_integration", lambda *args: queued.append(args))
    integration = make_integration(admin_a, revenue)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(api(token), "post", f"{item_url(integration)}/sync", body)
    assert response.status_code == 202, response.content
    assert response.json() == {"queued": True, "full": full}
    assert queued == [(str(integration.pk), full)]
    entry = AuditEntry.objects.get(action="integration.sync_request")
    assert entry.detail == {"full": full} and entry.target_id == str(integration.pk)


def test_a_bad_sync_body_is_refused(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    for body in ({"full": "maybe"}, {"full": True, "now": True}, "[]"):
        response = send(api(token), "post", f"{item_url(integration)}/sync", body)
        assert response.status_code == 422
    assert not AuditEntry.objects.filter(action="integration.sync_request").exists()


# -- who may ---------------------------------------------------------------------------------------


def test_another_orgs_token_gets_404_and_changes_nothing(admin_a, admin_b, org_b, revenue):
    integration = make_integration(admin_a, revenue)
    _, other = do_create_token(org_b, "b", ["integrations"], expires_at=None, acting=admin_b)
    client = api(other)
    assert client.get(URL).json() == []
    assert client.get(item_url(integration)).status_code == 404
    patch = send(client, "patch", item_url(integration), {"name": "x", "credential": "y"})
    assert patch.status_code == 404
    assert send(client, "post", f"{item_url(integration)}/sync", {}).status_code == 404
    assert client.delete(item_url(integration)).status_code == 404
    assert Integration.objects.filter(pk=integration.pk, name="Deals API").exists()
    assert_sealed(integration, SECRET)
    assert AuditEntry.objects.filter(action__startswith="integration.").count() == 1  # created


@pytest.mark.parametrize("integration_id", [MISSING, "not-a-uuid", "1"])
def test_unknown_ids_get_404(token, integration_id):
    assert api(token).get(item_url(integration_id)).status_code == 404
    assert api(token).delete(item_url(integration_id)).status_code == 404


def test_a_token_without_the_scope_gets_403_before_any_lookup(org_a, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    _, push_read = do_create_token(org_a, "pr", ["push", "read"], expires_at=None, acting=admin_a)
    client = api(push_read)
    for method, url, body in [
        ("get", URL, None),
        ("post", URL, new_body()),
        ("get", item_url(integration), None),
        ("get", item_url(MISSING), None),
        ("patch", item_url(integration), {"name": "x"}),
        ("delete", item_url(integration), None),
        ("post", f"{item_url(integration)}/sync", {}),
    ]:
        response = send(client, method, url, body)
        assert response.status_code == 403, (method, url)
        assert "integrations" in response.json()["detail"]
        assert_no_secret(response)
    assert Integration.objects.get().name == "Deals API"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer dvp_" + "A" * 43])
def test_missing_or_unknown_tokens_get_401(admin_a, revenue, header):
    integration = make_integration(admin_a, revenue)
    client = SecureClient(headers={"Authorization": header} if header else {})
    assert client.get(URL).status_code == 401
    assert client.get(item_url(integration)).status_code == 401
    assert send(client, "post", URL, new_body()).status_code == 401
    assert client.delete(item_url(integration)).status_code == 401
    assert Integration.objects.count() == 1


def test_wrong_methods_get_405(token, admin_a, revenue):
    integration = make_integration(admin_a, revenue)
    client = api(token)
    assert client.put(URL).status_code == 405
    assert client.delete(URL).status_code == 405
    assert client.post(item_url(integration)).status_code == 405
    assert client.get(f"{item_url(integration)}/sync").status_code == 405


# -- the scope and the schema ------------------------------------------------------------------


def test_an_admin_grants_the_scope_on_the_token_page(admin_a, revenue):
    created = make_client(admin_a).post("/org/tokens/", {"name": "ops", "scopes": ["integrations"]})
    assert created.status_code == 200
    assert ApiToken.objects.get(name="ops").scopes == ["integrations"]
    assert "Manage integrations" in make_client(admin_a).get("/org/tokens/").content.decode()


def test_the_token_command_grants_the_scope(org_a, admin_a, revenue):
    out = io.StringIO()
    call_command(
        "token",
        "create",
        "--org",
        str(org_a.pk),
        "--scope",
        "integrations",
        stdout=out,
        stderr=io.StringIO(),
    )
    make_integration(admin_a, revenue)
    assert api(out.getvalue().strip()).get(URL).status_code == 200


def test_the_schema_marks_the_credential_write_only(db):
    schema = SecureClient().get("/api/v1/openapi.json").json()
    assert {"/api/v1/integrations", "/api/v1/integrations/{integration_id}"} <= set(schema["paths"])
    components = schema["components"]["schemas"]
    credential = components["IntegrationIn"]["properties"]["credential"]
    assert credential["anyOf"][0]["writeOnly"] is True
    assert components["IntegrationOut"]["properties"]["credential"]["enum"] == ["set", "not set"]


def test_changes_are_audited_as_the_token(token, revenue):
    send(api(token), "post", URL, new_body())
    assert AuditEntry.objects.get(action="integration.create").actor_kind == "token"
