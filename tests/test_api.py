"""The push API: tokens, all-or-nothing ingest, idempotency, and a 4xx for every bad input."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from dashvault.api.actions import do_create_token
from dashvault.api.models import ApiToken
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Widget
from dashvault.lib.tokens import hash_token
from dashvault.metrics.models import DataPoint, Metric, Rollup
from tests.conftest import SecureClient, make_client

URL = "/api/v1/datapoints"


@pytest.fixture
def metric(org_a):
    return Metric.objects.create(
        org=org_a, key="revenue", name="Revenue", unit="currency", currency="EUR"
    )


@pytest.fixture
def token(org_a, admin_a):
    return do_create_token(org_a, "ci", ["push", "read"], expires_at=None, acting=admin_a)[1]


def api(token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return SecureClient(headers=headers)


def push(client: Client, body, *, content_type="application/json", **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data, content_type=content_type, headers=headers)


def point(**fields):
    return {"metric": "revenue", "ts": "2026-05-01T12:00:00Z", "value": 100.5, **fields}


def nothing_stored() -> bool:
    return not DataPoint.objects.exists() and not Rollup.objects.exists()


def test_a_push_stores_points_and_rollups_and_is_audited(token, metric):
    response = push(api(token), {"points": [point(), point(value=20, dimension="alice")]})
    assert response.status_code == 201, response.content
    assert response.json() == {"stored": 2}
    assert DataPoint.objects.filter(metric=metric).count() == 2
    assert sum(r.total for r in Rollup.objects.filter(metric=metric)) == 120.5
    entry = AuditEntry.objects.get(action="api.push")
    assert entry.actor_kind == "token" and entry.detail == {"count": 2}


def test_an_unknown_metric_is_named_and_nothing_is_stored(token, metric):
    response = push(api(token), {"points": [point(), point(metric="nope")]})
    assert response.status_code == 400
    assert "nope" in response.json()["detail"]
    assert nothing_stored()


BAD_POINTS = {
    "value as text": point(value="lots"),
    "missing value": {"metric": "revenue", "ts": "2026-05-01T12:00:00Z"},
    "naive timestamp": point(ts="2026-05-01T12:00:00"),
    "year 1800": point(ts="1800-01-01T00:00:00Z"),
    "year 3000": point(ts="3000-01-01T00:00:00Z"),
    "not a date": point(ts="yesterday"),
    "bad metric key": point(metric="Revenue Total"),
    "extra field": point(colour="red"),
    "dimension too long": point(dimension="x" * 121),
    "empty external id": point(external_id=""),
}


@pytest.mark.parametrize("bad", BAD_POINTS.values(), ids=BAD_POINTS.keys())
def test_a_bad_point_is_refused_by_index_and_field_and_nothing_is_stored(token, metric, bad):
    response = push(api(token), {"points": [point(), bad]})
    assert response.status_code == 422, response.content
    errors = response.json()["errors"]
    assert errors and all(e["index"] == 1 for e in errors)
    assert nothing_stored()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(token, metric, literal):
    body = '{"points": [{"metric": "revenue", "ts": "2026-05-01T12:00:00Z", "value": LIT}]}'
    body = body.replace("LIT", literal)
    response = push(api(token), body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "value"
    assert nothing_stored()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ('{"points": []}', "application/json", 422),
        ('{"points": "many"}', "application/json", 422),
        ("[]", "application/json", 422),
        ("metric=revenue", "application/x-www-form-urlencoded", 415),
        ('{"points": []}', "text/plain", 415),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(token, metric, body, content_type, status):
    response = push(api(token), body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["detail"]
    assert nothing_stored()


def test_more_than_ten_thousand_points_are_refused(token, metric):
    response = push(api(token), {"points": [point()] * 10_001})
    assert response.status_code == 422
    assert nothing_stored()


def test_a_huge_body_is_refused_with_413(token, metric):
    response = push(api(token), '{"points": [' + " " * (9 * 1024 * 1024) + "]}")
    assert response.status_code == 413
    assert nothing_stored()


def test_ten_thousand_points_are_accepted(token, metric):
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    points = [
        point(ts=(base + dt.timedelta(minutes=i)).isoformat(), value=1) for i in range(10_000)
    ]
    assert push(api(token), {"points": points}).status_code == 201
    assert sum(r.count for r in Rollup.objects.filter(metric=metric)) == 10_000


def test_a_retry_with_the_same_idempotency_key_is_a_no_op(token, metric):
    body = {"points": [point()]}
    first = push(api(token), body, **{"Idempotency-Key": "batch-7"})
    again = push(api(token), body, **{"Idempotency-Key": "batch-7"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() == {"stored": 1}
    assert DataPoint.objects.count() == 1
    reused = push(api(token), {"points": [point(value=1)]}, **{"Idempotency-Key": "batch-7"})
    assert reused.status_code == 422 and "different request body" in reused.json()["detail"]
    assert DataPoint.objects.count() == 1


def test_external_ids_replace_points(token, metric):
    push(api(token), {"points": [point(external_id="deal-1", value=10)]})
    push(api(token), {"points": [point(external_id="deal-1", value=15)]})
    assert list(DataPoint.objects.values_list("value", flat=True)) == [15]


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "Bearer dvp_" + "A" * 43, "Basic dXNlcjpwYXNz"]
)
def test_missing_or_unknown_tokens_get_401(metric, header, db):
    client = SecureClient(headers={"Authorization": header} if header else {})
    response = push(client, {"points": [point()]})
    assert response.status_code == 401
    assert nothing_stored()


def test_revoked_and_expired_tokens_get_401(org_a, admin_a, metric):
    revoked_row, revoked = do_create_token(org_a, "r", ["push"], expires_at=None, acting=admin_a)
    revoked_row.revoked_at = timezone.now()
    revoked_row.save()
    expiring_row, expiring = do_create_token(
        org_a, "e", ["push"], expires_at=timezone.now() + dt.timedelta(days=1), acting=admin_a
    )
    ApiToken.objects.filter(pk=expiring_row.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    for secret in (revoked, expiring):
        assert push(api(secret), {"points": [point()]}).status_code == 401
    assert nothing_stored()


def test_a_read_token_cannot_push(org_a, admin_a, metric):
    _, read_only = do_create_token(org_a, "ro", ["read"], expires_at=None, acting=admin_a)
    response = push(api(read_only), {"points": [point()]})
    assert response.status_code == 403 and "push" in response.json()["detail"]
    assert api(read_only).get("/api/v1/metrics").status_code == 200


def test_another_orgs_token_cannot_see_or_write_this_orgs_metrics(org_b, admin_b, metric):
    _, other = do_create_token(org_b, "b", ["push", "read"], expires_at=None, acting=admin_b)
    assert api(other).get("/api/v1/metrics/revenue").status_code == 404
    assert api(other).get("/api/v1/metrics").json() == []
    assert push(api(other), {"points": [point()]}).status_code == 400
    assert api(other).delete("/api/v1/metrics/revenue").status_code == 404
    assert Metric.objects.filter(pk=metric.pk).exists() and nothing_stored()


def test_metrics_are_created_read_changed_and_deleted(token, org_a):
    client = api(token)
    made = client.post(
        "/api/v1/metrics",
        {"key": "calls", "name": "Calls", "aggregation": "count"},
        content_type="application/json",
    )
    assert made.status_code == 201 and made.json()["key"] == "calls"
    assert (
        client.post(
            "/api/v1/metrics", {"key": "calls", "name": "x"}, content_type="application/json"
        ).status_code
        == 409
    )
    no_currency = client.post(
        "/api/v1/metrics",
        {"key": "money", "name": "M", "unit": "currency"},
        content_type="application/json",
    )
    assert no_currency.status_code == 422
    changed = client.patch(
        "/api/v1/metrics/calls", {"name": "Phone calls"}, content_type="application/json"
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Phone calls"
    assert client.get("/api/v1/metrics/calls").json()["name"] == "Phone calls"
    assert client.delete("/api/v1/metrics/calls").status_code == 204
    assert client.get("/api/v1/metrics/calls").status_code == 404


def test_a_metric_shown_by_a_widget_cannot_be_deleted(token, metric, dashboards_a):
    Widget.objects.create(
        org=metric.org, dashboard=dashboards_a["sales"], kind="kpi", metric=metric
    )
    response = api(token).delete("/api/v1/metrics/revenue")
    assert response.status_code == 409
    assert Metric.objects.filter(pk=metric.pk).exists()


def test_points_in_a_range_are_deleted(token, metric):
    push(
        api(token), {"points": [point(ts="2026-05-01T10:00:00Z"), point(ts="2026-05-02T10:00:00Z")]}
    )
    response = api(token).delete(
        "/api/v1/metrics/revenue/points?start=2026-05-02T00:00:00Z&end=2026-05-03T00:00:00Z"
    )
    assert response.status_code == 200 and response.json() == {"deleted": 1}
    assert Rollup.objects.get(metric=metric).day == dt.date(2026, 5, 1)
    backwards = api(token).delete(
        "/api/v1/metrics/revenue/points?start=2026-05-03T00:00:00Z&end=2026-05-01T00:00:00Z"
    )
    assert backwards.status_code == 422


def test_the_openapi_schema_is_served(db):
    schema = SecureClient().get("/api/v1/openapi.json").json()
    assert "/api/v1/datapoints" in schema["paths"]
    assert schema["components"]["securitySchemes"]


def test_an_admin_creates_a_token_shown_once_then_revokes_it(admin_a, metric):
    admin = make_client(admin_a)
    created = admin.post("/org/tokens/", {"name": "CRM sync", "scopes": ["push"]})
    assert created.status_code == 200
    secret = (
        created.content.decode()
        .split('id="new-token" type="text" readonly value="')[1]
        .split('"')[0]
    )
    stored = ApiToken.objects.get(name="CRM sync")
    assert stored.token_hash == hash_token(secret) and secret not in str(stored.__dict__)
    listing = admin.get("/org/tokens/").content.decode()
    assert stored.prefix in listing and secret not in listing
    assert push(api(secret), {"points": [point()]}).status_code == 201
    admin.post(f"/org/tokens/{stored.pk}/revoke/")
    assert push(api(secret), {"points": [point()]}).status_code == 401
    actions = list(
        AuditEntry.objects.filter(target_id=str(stored.pk)).values_list("action", flat=True)
    )
    assert actions == ["token.create", "token.revoke"]


def test_token_create_command_prints_the_token_once(org_a, metric):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "token", "create", "--org", str(org_a.pk), "--scope", "push", stdout=out, stderr=err
    )
    secret = out.getvalue().strip()
    assert secret.startswith("dvp_") and len(secret) >= 47
    assert secret not in err.getvalue()
    assert push(api(secret), {"points": [point()]}).status_code == 201


def test_a_series_is_read_by_bucket_and_dimension(token, metric, org_a):
    push(
        api(token),
        {
            "points": [
                point(ts="2026-05-01T10:00:00Z", value=10, dimension="alice"),
                point(ts="2026-05-02T10:00:00Z", value=5, dimension="bob"),
                point(ts="2026-05-12T10:00:00Z", value=1, dimension="alice"),
            ]
        },
    )
    client = api(token)
    weekly = client.get(
        "/api/v1/metrics/revenue/series?start=2026-04-27&end=2026-05-17&bucket=week"
    )
    assert weekly.status_code == 200, weekly.content
    assert weekly.json()["starts"] == ["2026-04-27", "2026-05-04", "2026-05-11"]
    assert weekly.json()["series"] == {"Revenue": [15.0, 0.0, 1.0]}
    split = client.get(
        "/api/v1/metrics/revenue/series?start=2026-05-01&end=2026-05-31&bucket=month&by_dimension=true"
    ).json()
    assert split["series"] == {"alice": [11.0], "bob": [5.0]}
    bad = client.get("/api/v1/metrics/revenue/series?start=2026-05-31&end=2026-05-01")
    assert bad.status_code == 422
    huge = client.get("/api/v1/metrics/revenue/series?start=1900-01-01&end=2100-01-01")
    assert huge.status_code == 422


@pytest.mark.parametrize("value", [1.7e308, -1e16, 1e15 + 1e3])
def test_values_whose_sums_could_overflow_are_refused(token, metric, value):
    response = push(api(token), {"points": [point(value=value)]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "value"
    assert nothing_stored()


def test_do_ingest_refuses_huge_values_for_every_caller(org_a, metric):
    from dashvault.metrics.ingest import PointIn as Point
    from dashvault.metrics.ingest import do_ingest

    with pytest.raises(ValueError):
        do_ingest(org_a, [Point("revenue", dt.datetime(2026, 5, 1, tzinfo=dt.UTC), 1e300)])
    assert nothing_stored()


@pytest.mark.parametrize("field", ["dimension", "external_id"])
def test_nul_characters_are_refused(token, metric, field):
    response = push(api(token), {"points": [point(**{field: "a\x00b"})]})
    assert response.status_code == 422
    assert nothing_stored()


def test_a_metric_name_with_nul_is_refused(token, db):
    response = api(token).post(
        "/api/v1/metrics", {"key": "calls", "name": "a\x00b"}, content_type="application/json"
    )
    assert response.status_code == 422
    assert not Metric.objects.filter(key="calls").exists()


@pytest.mark.parametrize("key", ["Not A Key", "a\x00b", "x" * 200])
def test_a_malformed_metric_key_in_the_path_is_404(token, metric, key):
    assert api(token).get(f"/api/v1/metrics/{key}").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "series?start=9999-12-20&end=9999-12-31",
        "series?start=0001-01-01&end=0001-01-31&bucket=month",
        "points?start=0001-01-01T00:00:00%2B00:00&end=2026-01-01T00:00:00Z",
        "points?start=2026-01-01T00:00:00Z&end=9999-12-31T23:59:59Z",
    ],
)
def test_dates_far_out_of_range_are_a_422(token, metric, query):
    client = api(token)
    url = f"/api/v1/metrics/revenue/{query}"
    response = client.get(url) if query.startswith("series") else client.delete(url)
    assert response.status_code == 422


def test_an_unexpected_error_answers_json_and_stores_nothing(token, metric, monkeypatch):
    from dashvault.metrics import ingest

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest, "_upsert_increments", broken)
    client = SecureClient(
        headers={"Authorization": f"Bearer {token}"}, raise_request_exception=False
    )
    response = push(client, {"points": [point()]})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal error; nothing was stored."}
    assert nothing_stored()


def test_the_created_token_page_is_not_cached(admin_a):
    response = make_client(admin_a).post("/org/tokens/", {"name": "x", "scopes": ["push"]})
    assert response["Cache-Control"] == "no-store"


def test_unknown_api_paths_answer_json_404(token, db):
    for path in ("/api/v1/nope", "/api/v2/datapoints", "/api/"):
        response = api(token).get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "No such API endpoint."}
