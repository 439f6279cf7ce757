"""Fuzzing /api/v1/ with schemathesis against the OpenAPI schema the app serves (issue 9).

Every operation of /api/v1/openapi.json is called with generated requests, in-process through
Django's WSGI handler over HTTPS, with a live token holding every scope: schema-valid requests
(as generated, and steered towards the organization's own metric keys, integration id and valid
date ranges, so that they reach the handlers) and schema-invalid ones. Each answer must:

- not be a server error (5xx);
- conform to the schema: a documented status code and content type, a body that matches the
  response schema (and declared headers); schema-invalid input must be refused (4xx);
- when it refuses the request (4xx or 5xx), leave every database table as it was (a digest of
  all rows; the token's last use is the one column any authenticated call writes, by design).

Each operation runs MAX_EXAMPLES requests, derandomized (the same ones on every run), each in a
savepoint rolled back afterwards: every example starts from the same seeded data, so a failure
reproduces. Failures are collected over the run and reported together, each with a curl command.
Bugs found so far have narrow regression tests at the end.

Not checked: that every schema-valid request is accepted (schemathesis' positive_data_acceptance).
The API refuses schema-valid input by rules a JSON schema cannot state (an unknown metric key, a
currency with a unit other than "currency", dates outside 1900-2200, a CA that is not PEM), with
documented 4xx answers; those refusals are checked like any other.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django import forms
from django.apps import apps
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import DatabaseError, close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dashvault.api.actions import do_create_token
from dashvault.api.models import ApiToken, IdempotencyRecord
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.integrations import actions as integration_actions
from dashvault.integrations import config as integration_config
from dashvault.metrics import ingest
from dashvault.metrics.models import Metric
from tests.conftest import SecureClient

BASE_URL = "https://localhost"  # the app redirects plain HTTP; "localhost" is an allowed host
SCHEMA_PATH = "/api/v1/openapi.json"
MAX_EXAMPLES = 40  # per operation and per run; the whole file takes ~25 s here

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]

# Every operation the served schema declares: a new one fails the first test until listed here.
OPERATIONS = [
    "POST /api/v1/datapoints",
    "GET /api/v1/metrics",
    "POST /api/v1/metrics",
    "GET /api/v1/metrics/{key}",
    "PATCH /api/v1/metrics/{key}",
    "DELETE /api/v1/metrics/{key}",
    "GET /api/v1/metrics/{key}/series",
    "DELETE /api/v1/metrics/{key}/points",
    "GET /api/v1/integrations",
    "POST /api/v1/integrations",
    "GET /api/v1/integrations/{integration_id}",
    "PATCH /api/v1/integrations/{integration_id}",
    "DELETE /api/v1/integrations/{integration_id}",
    "POST /api/v1/integrations/{integration_id}/sync",
]

REST_CONFIG = {
    "url": "https://crm.example/deals",
    "records_path": "data",
    "pagination": "none",
    "auth": "bearer",
    "mapping": {"timestamp": "closed", "value": "amount", "dimension": "rep", "id": "id"},
}
USED_IDEMPOTENCY_KEY = "push-2026-05-01"
KEYS = ["revenue", "visits", "b-only"]  # revenue is on a widget; b-only is org B's

days = st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1))
instants = st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC))


@dataclass
class Fuzzing:
    """The seeded world the operations are fuzzed in, and what one operation's run saw."""

    app: WSGIHandler
    auth: dict[str, str]
    integration_id: str
    baseline: str
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def fail(self, kind: str, mode: str, status: int, detail: str) -> None:
        """Keep one example of each kind of failure, the shortest (a cheap shrink)."""
        key = (kind, mode, status)
        if key not in self.failures or len(detail) < len(self.failures[key]):
            self.failures[key] = detail


def table_digest() -> str:
    """A digest of every row of every table, but ApiToken.last_used_at (written by every
    authenticated call, refused or not, at most once a minute)."""
    digest = hashlib.sha256()
    for model in sorted(apps.get_models(), key=lambda model: model._meta.label):
        if not model._meta.managed or model._meta.proxy:
            continue
        columns = [f.attname for f in model._meta.concrete_fields]
        if model is ApiToken:
            columns.remove("last_used_at")
        digest.update(model._meta.label.encode())
        for row in model.objects.order_by("pk").values_list(*columns):
            # bytea may come back as a memoryview, whose repr is its address
            values = [bytes(v) if isinstance(v, memoryview) else v for v in row]
            digest.update(repr(values).encode())
    return digest.hexdigest()


@dataclass
class Seeded:
    token: str  # org A's, with every scope
    read_token: str  # org A's, with the "read" scope only
    integration_id: str


@pytest.fixture
def seeded(org_a: Any, admin_a: Any, org_b: Any, settings: Any) -> Seeded:
    """Org A with two metrics (revenue is on a widget), points, an integration and a used
    Idempotency-Key; org B with a metric of its own; two tokens of org A."""
    # The API's only throttle is the guessing guard, which counts bad tokens; every fuzzed
    # request carries the valid one, but should generation ever change the header, the guard
    # must not turn the run into 429s (and any 429 fails the fuzzing test).
    settings.GUARD_FAILURES = 1_000_000
    token = do_create_token(
        org_a, "fuzz", ["push", "read", "integrations"], expires_at=None, acting=admin_a
    )[1]
    read_token = do_create_token(org_a, "reader", ["read"], expires_at=None, acting=admin_a)[1]
    revenue = Metric.objects.create(
        org=org_a, key="revenue", name="Revenue", unit="currency", currency="EUR"
    )
    visits = Metric.objects.create(org=org_a, key="visits", name="Visits")
    Metric.objects.create(org=org_b, key="b-only", name="Org B's")
    ts = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    ingest.do_ingest(
        org_a,
        [
            ingest.PointIn("revenue", ts, 10.0, "alice", "deal-1"),
            ingest.PointIn("visits", ts - dt.timedelta(days=40), 3.0),
        ],
    )
    dashboard = Dashboard.objects.create(org=org_a, title="Board")
    Widget.objects.create(org=org_a, dashboard=dashboard, kind="kpi", metric=revenue)
    integration = integration_actions.do_create_integration(
        org_a,
        acting=admin_a,
        ip=None,
        name="Deals",
        kind="rest",
        metric=visits,
        config=REST_CONFIG,
        secret="fuzz-Credential-3a9e",
    )
    IdempotencyRecord.objects.create(
        org=org_a, key=USED_IDEMPOTENCY_KEY, request_hash="0" * 64, status=201, body={"stored": 1}
    )
    return Seeded(token, read_token, str(integration.pk))


@pytest.fixture
def fuzzing(seeded: Seeded) -> Iterator[Fuzzing]:
    # As Django's test client does: a request must not close the test's database connection
    # (the requests run inside the test's transaction, which would be lost).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Fuzzing(
            app=WSGIHandler(),
            auth={"Authorization": f"Bearer {seeded.token}"},
            integration_id=seeded.integration_id,
            baseline=table_digest(),
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def load_schema(app: WSGIHandler) -> Any:
    """The schema as the app serves it. The configuration is explicit (no schemathesis.toml
    found on the way applies); reports hide only the token, so their curl commands reproduce."""
    only_the_token = {"keys-to-sanitize": ["authorization"], "sensitive-markers": ["authorization"]}
    config = schemathesis.Config.from_dict(
        {
            # The token is always the valid one (tests/test_api.py covers bad ones): every
            # example goes to the handlers, none is spent on a missing or random token.
            "generation": {"with-security-parameters": False},
            "output": {"sanitization": only_the_token},
        }
    )
    return schemathesis.openapi.from_wsgi(SCHEMA_PATH, app, config=config, base_url=BASE_URL)


def steer(data: st.DataObject, case: Any, fuzzing: Fuzzing) -> None:
    """Move a schema-valid case towards what the handlers accept (and their own refusals): known
    metric keys (org A's and org B's), the integration's id, a valid integration config, the
    currency rule, the used Idempotency-Key, dates in range."""
    label = case.operation.label
    if "key" in (case.path_parameters or {}):
        case.path_parameters["key"] = data.draw(st.sampled_from(KEYS), label="key")
    if "integration_id" in (case.path_parameters or {}):
        case.path_parameters["integration_id"] = fuzzing.integration_id
    body = case.body if isinstance(case.body, dict) else None
    if label in ("POST /api/v1/metrics", "PATCH /api/v1/metrics/{key}") and body is not None:
        # The currency goes with the unit "currency" only (a rule the schema cannot state).
        body["currency"] = data.draw(st.sampled_from(["", "EUR"]), label="currency")
        if "key" in body and data.draw(st.booleans(), label="existing key"):
            body["key"] = "visits"  # 409
    elif label == "POST /api/v1/datapoints":
        for point in (body or {}).get("points", []):
            if isinstance(point, dict):
                point["metric"] = data.draw(st.sampled_from(KEYS), label="metric")
                point["ts"] = data.draw(instants, label="ts").isoformat()
        if data.draw(st.booleans(), label="used Idempotency-Key"):
            case.headers = {**(case.headers or {}), "Idempotency-Key": USED_IDEMPOTENCY_KEY}
    elif label == "GET /api/v1/metrics/{key}/series":
        start = data.draw(days, label="start")
        case.query["start"] = start.isoformat()
        span = dt.timedelta(days=data.draw(st.integers(0, 400), label="days"))
        case.query["end"] = (start + span).isoformat()
    elif label == "DELETE /api/v1/metrics/{key}/points":
        start = data.draw(instants, label="start")
        case.query["start"] = start.isoformat()
        span = dt.timedelta(hours=data.draw(st.integers(1, 10_000), label="hours"))
        case.query["end"] = (start + span).isoformat()
    elif "/api/v1/integrations" in label and body is not None:
        # The config's keys depend on the kind (not in the schema): a REST API that is valid.
        if label == "POST /api/v1/integrations":
            body.update(kind="rest", config=dict(REST_CONFIG), credential="fuzz-Credential-5b1d")
        elif "config" in body:
            body["config"] = dict(REST_CONFIG)
        if "metric" in body:
            body["metric"] = data.draw(st.sampled_from(KEYS), label="metric")
        if body.get("credential"):  # generated ones mostly hold control characters
            body["credential"] = "fuzz-Credential-5b1d"
        if data.draw(st.booleans(), label="no CA"):  # generated ones are never PEM
            body.pop("ca_pem", None)


def fuzz_one(fuzzing: Fuzzing, case: Any, mode: str) -> None:
    """Send one case; record the failures of its answer."""
    response = case.call(base_url=BASE_URL, headers=fuzzing.auth, app=fuzzing.app)
    status = response.status_code
    fuzzing.statuses[status] += 1
    curl = case.as_curl_command(headers=fuzzing.auth)
    answer = response.content[:300].decode(errors="replace")
    try:
        case.validate_response(
            response,
            checks=CHECKS,
            headers=fuzzing.auth,
            transport_kwargs={"base_url": BASE_URL, "app": fuzzing.app},
        )
    except FailureGroup as group:
        for failure in group.exceptions:
            message = " ".join(failure.message.split())[:300]
            fuzzing.fail(failure.title, mode, status, f"{message}\n    {curl}\n    -> {answer}")
    if status >= 400:
        try:
            changed = table_digest() != fuzzing.baseline
        except DatabaseError as exc:  # PostgreSQL: the request broke the transaction
            fuzzing.fail("Database unusable after the request", mode, status, f"{exc}\n    {curl}")
        else:
            if changed:
                fuzzing.fail("Stored data from a refused request", mode, status, curl)


def test_every_operation_of_the_served_schema_is_fuzzed(fuzzing: Fuzzing) -> None:
    schema = load_schema(fuzzing.app)
    labels = [result.ok().label for result in schema.get_all_operations()]
    assert sorted(labels) == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzzed_requests_get_documented_answers_and_refusals_store_nothing(
    fuzzing: Fuzzing, label: str
) -> None:
    operation = load_schema(fuzzing.app).find_operation_by_label(label)
    generated = {
        "schema-valid": operation.as_strategy(GenerationMode.POSITIVE),
        "steered": operation.as_strategy(GenerationMode.POSITIVE),
        "schema-invalid": operation.as_strategy(GenerationMode.NEGATIVE),
    }

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run and machine
        database=None,
        phases=[Phase.explicit, Phase.generate],  # failures are collected, not shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        mode = data.draw(st.sampled_from(list(generated)), label="mode")
        case = data.draw(generated[mode], label="case")
        if mode == "steered":
            steer(data, case, fuzzing)
        cache.clear()  # no state carried over in the cache either
        with transaction.atomic():
            try:
                fuzz_one(fuzzing, case, mode)
            finally:
                transaction.set_rollback(True)

    fuzz()
    report = "\n".join(
        f"[{mode}] {status} {kind}: {detail}"
        for (kind, mode, status), detail in sorted(fuzzing.failures.items())
    )
    assert not fuzzing.failures, f"{label} (answers: {dict(fuzzing.statuses)}):\n{report}"
    assert not fuzzing.statuses[429], "the fuzzing was throttled"
    # Fuzzing reached the handlers and they accepted some input: not all refused at the door.
    assert any(200 <= status < 300 for status in fuzzing.statuses), dict(fuzzing.statuses)


# -- bugs the fuzzing found: narrow regression tests ---------------------------------------------


class NotInSchema(AssertionError):
    """The API gave an answer its OpenAPI schema does not declare."""


def api_client(token: str | None) -> SecureClient:
    return SecureClient(headers={"Authorization": f"Bearer {token}"} if token else {})


def assert_declared(response: Any, method: str, path: str) -> None:
    schema = api_client(None).get(SCHEMA_PATH).json()
    declared = schema["paths"][path][method]["responses"]
    if str(response.status_code) not in declared:
        raise NotInSchema(
            f"{method.upper()} {path} answered {response.status_code}, declared: {list(declared)}"
        )


# Error answers the README documents and the API gives, but the served schema does not declare
# (each operation declares only its success codes and a few of its own).
UNDECLARED_ANSWERS = [
    pytest.param("get", "/api/v1/metrics", "/api/v1/metrics", None, None, 401, id="401-no-token"),
    pytest.param(
        "get", "/api/v1/integrations", "/api/v1/integrations", None, "read", 403, id="403-scope"
    ),
    pytest.param(
        "get", "/api/v1/metrics/{key}", "/api/v1/metrics/nope", None, "all", 404, id="404-key"
    ),
    pytest.param(
        "post", "/api/v1/metrics", "/api/v1/metrics", "{not json", "all", 400, id="400-not-json"
    ),
    pytest.param(
        "post",
        "/api/v1/metrics",
        "/api/v1/metrics",
        {"key": "Bad key"},
        "all",
        422,
        id="422-metric",
    ),
    pytest.param(
        "post",
        "/api/v1/datapoints",
        "/api/v1/datapoints",
        {"points": []},
        "all",
        422,
        id="422-datapoints",
    ),
    pytest.param(
        "get",
        "/api/v1/metrics/{key}/series",
        "/api/v1/metrics/revenue/series",
        None,
        "all",
        422,
        id="422-series-without-dates",
    ),
    pytest.param(
        "post",
        "/api/v1/integrations/{integration_id}/sync",
        "/api/v1/integrations/{id}/sync",
        {"full": []},
        "all",
        422,
        id="422-sync",
    ),
]


@pytest.mark.parametrize(("method", "path", "url", "body", "token", "status"), UNDECLARED_ANSWERS)
def test_the_schema_declares_the_error_answers_the_api_gives(
    seeded: Seeded, method: str, path: str, url: str, body: Any, token: str | None, status: int
) -> None:
    tokens = {None: None, "all": seeded.token, "read": seeded.read_token}
    client = api_client(tokens[token])
    url = url.replace("{id}", seeded.integration_id)
    if body is None:
        response = client.generic(method.upper(), url)
    else:
        data = body if isinstance(body, str) else json.dumps(body)
        response = client.generic(method.upper(), url, data, content_type="application/json")
    assert response.status_code == status, response.content
    assert_declared(response, method, path)


def test_a_ca_certificate_with_non_ascii_text_is_refused_not_a_server_error(
    seeded: Seeded,
) -> None:
    body = {
        "name": "Deals with our CA",
        "kind": "rest",
        "metric": "visits",
        "config": REST_CONFIG,
        "credential": "fuzz-Credential-77c1",
        "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIé\n-----END CERTIFICATE-----",
    }
    response = api_client(seeded.token).post(
        "/api/v1/integrations", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 422, response.content
    assert response.json()["errors"] == [
        {"loc": "ca_pem", "message": "Value error, Not a PEM certificate."}
    ]


def test_clean_ca_pem_refuses_non_ascii_text_as_not_a_certificate() -> None:
    with pytest.raises(forms.ValidationError, match="Not a PEM certificate"):
        integration_config.clean_ca_pem("not a certificate: é")


def test_the_schema_offers_no_null_credential_that_the_api_refuses(seeded: Seeded) -> None:
    response = api_client(seeded.token).patch(
        f"/api/v1/integrations/{seeded.integration_id}",
        json.dumps({"credential": None}),
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    schema = api_client(None).get(SCHEMA_PATH).json()
    credential = schema["components"]["schemas"]["IntegrationPatch"]["properties"]["credential"]
    if {"type": "null"} in credential.get("anyOf", []):
        raise NotInSchema("IntegrationPatch.credential is declared nullable; null is refused")
