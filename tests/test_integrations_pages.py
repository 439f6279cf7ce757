"""The integrations pages: org admins add, edit, test, sync and delete integrations; platform
staff set the plain-HTTP exception. Connections are tested against a real HTTPS server on
loopback with a certificate from a throwaway CA (trustme), pasted into the form's CA field.

The secret is write-only: no page shows it (not after saving, not after a test, not on a
form with errors), the database holds it sealed, and an empty field keeps the stored one.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from django.urls import reverse

from dashvault.audit.models import AuditEntry
from dashvault.integrations import actions, sync
from dashvault.integrations.models import Integration, SyncRun
from dashvault.lib.clientip import parse_networks
from dashvault.metrics.models import DataPoint, Metric
from tests.conftest import make_client

SECRET = "tok-S3cret-never-shown-4f9a"
OTHER_SECRET = "tok-Replacement-7b21"
LOOPBACK = ["127.0.0.0/8", "::1/128"]


# -- a loopback HTTPS service that answers deals as JSON ---------------------------------------


@dataclass
class DealService:
    """Answers GET /deals with `deals` under "data"; records each request's Authorization."""

    httpd: ThreadingHTTPServer
    ca: trustme.CA
    deals: list[dict[str, Any]]
    authorizations: list[str] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"https://localhost:{self.httpd.server_address[1]}/deals"

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode()


def deals_now(count: int = 3) -> list[dict[str, Any]]:
    """Deals closed in the last seconds (so today, in any time zone), worth 100, 200, 300…"""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return [
        {
            "id": f"d{n}",
            "closed": (now - dt.timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
            "amount": 100 * n,
            "rep": ["Aino", "Ben", "Carla"][n % 3],
        }
        for n in range(1, count + 1)
    ]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802  # http.server's name
        service: DealService = self.server.service  # type: ignore[attr-defined]  # set below
        service.authorizations.append(self.headers.get("Authorization", ""))
        if self.path.split("?", 1)[0] != "/deals":
            body, status = b"{}", 404
        else:
            body, status = json.dumps({"data": service.deals}).encode(), service.status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up mid-handshake are expected


def start_deal_service(deals: list[dict[str, Any]]) -> tuple[DealService, threading.Thread]:
    ca = trustme.CA()
    httpd = _Httpd(("127.0.0.1", 0), _Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    httpd.socket = context.wrap_socket(
        httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    service = DealService(httpd, ca, deals)
    httpd.service = service  # type: ignore[attr-defined]  # the handler finds it here
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return service, thread


def stop_deal_service(service: DealService, thread: threading.Thread) -> None:
    service.httpd.shutdown()
    service.httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def service(settings: Any) -> Iterator[DealService]:
    settings.OUTBOUND_ALLOWED_NETWORKS = parse_networks(LOOPBACK)
    running, thread = start_deal_service(deals_now())
    yield running
    stop_deal_service(running, thread)


# -- org A's metric and integrations -----------------------------------------------------------


@pytest.fixture
def revenue(org_a: Any) -> Metric:
    return Metric.objects.create(org=org_a, key="crm_revenue", name="CRM revenue")


@pytest.fixture
def revenue_b(org_b: Any) -> Metric:
    return Metric.objects.create(org=org_b, key="crm_revenue", name="Revenue of B")


def rest_form(metric: Metric, url: str, ca_pem: str = "", /, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "Deals API",
        "metric": str(metric.pk),
        "every_minutes": "15",
        "url": url,
        "records_path": "data",
        "pagination": "none",
        "page_size": "100",
        "auth": "bearer",
        "map_timestamp": "closed",
        "map_value": "amount",
        "map_dimension": "rep",
        "map_id": "id",
        "ca_pem": ca_pem,
        "secret": SECRET,
        "action": "save",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def make_integration(admin: Any, metric: Metric, url: str, ca_pem: str = "") -> Integration:
    return actions.do_create_integration(
        admin.org,
        acting=admin,
        ip=None,
        name="Deals API",
        kind="rest",
        metric=metric,
        config={
            "url": url,
            "records_path": "data",
            "pagination": "none",
            "auth": "bearer",
            "mapping": {"timestamp": "closed", "value": "amount", "dimension": "rep", "id": "id"},
        },
        secret=SECRET,
        ca_pem=ca_pem,
    )


def edit_url(integration: Integration) -> str:
    return reverse("integration_edit", kwargs={"integration_id": integration.pk})


def assert_no_secret(response: Any, *secrets: str) -> None:
    content = response.content.decode()
    for secret in secrets or (SECRET, OTHER_SECRET):
        assert secret not in content


def assert_sealed(integration: Integration, expected: str) -> None:
    integration.refresh_from_db()
    blob = bytes(integration.credential)
    assert expected.encode() not in blob
    assert expected not in json.dumps(integration.config)
    assert sync.stored_secret(integration) == expected


# -- list ----------------------------------------------------------------------------------------


def test_the_list_shows_each_integration_with_its_last_run_and_flags(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    now = dt.datetime.now(dt.UTC)
    SyncRun.objects.create(
        org=admin_a.org,
        integration=integration,
        started_at=now - dt.timedelta(minutes=10),
        finished_at=now - dt.timedelta(minutes=10),
        ok=True,
        records=7,
    )
    SyncRun.objects.create(
        org=admin_a.org,
        integration=integration,
        started_at=now,
        finished_at=now + dt.timedelta(seconds=2),
        error="The service answered HTTP 503.",
    )
    Integration.objects.filter(pk=integration.pk).update(failures=3, allow_http=True)

    response = make_client(admin_a).get(reverse("integration_list"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "Deals API" in content and "JSON REST API" in content and "crm_revenue" in content
    assert "The service answered HTTP 503." in content  # the latest run, not the older one
    assert "2.0 s" in content
    assert "failing" in content
    assert "Plain HTTP allowed by platform staff at your request" in content
    assert "Add integration" in content
    assert_no_secret(response)


def test_the_list_costs_the_same_queries_for_one_or_many(
    admin_a, revenue, django_assert_max_num_queries
):
    first = make_integration(admin_a, revenue, "https://crm.example/deals")
    SyncRun.objects.create(org=admin_a.org, integration=first, started_at=dt.datetime.now(dt.UTC))
    client = make_client(admin_a)
    client.get(reverse("integration_list"))  # warm the session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        client.get(reverse("integration_list"))
    for _ in range(4):
        integration = make_integration(admin_a, revenue, "https://crm.example/deals")
        SyncRun.objects.create(
            org=admin_a.org, integration=integration, started_at=dt.datetime.now(dt.UTC)
        )
    with django_assert_max_num_queries(len(one.captured_queries)):
        client.get(reverse("integration_list"))


def test_the_list_hides_other_orgs_integrations(admin_a, admin_b, revenue):
    make_integration(admin_a, revenue, "https://crm.example/deals")
    response = make_client(admin_b).get(reverse("integration_list"))
    assert response.status_code == 200
    assert "Deals API" not in response.content.decode()


# -- adding --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rest", "Records path"),
        ("csv", "Delimiter"),
        ("hubspot", "closedate"),
        ("pipedrive", "add_time"),
        ("salesforce", "CloseDate"),
    ],
)
def test_the_new_page_has_a_form_per_kind(admin_a, revenue, kind, expected):
    response = make_client(admin_a).get(reverse("integration_new") + f"?kind={kind}")
    assert response.status_code == 200
    content = response.content.decode()
    assert expected in content
    assert 'type="password"' in content
    assert "CRM revenue (crm_revenue)" in content


def test_an_unknown_kind_falls_back_to_rest(admin_a, revenue):
    response = make_client(admin_a).get(reverse("integration_new") + "?kind=<script>")
    assert response.status_code == 200
    assert "JSON REST API" in response.content.decode()
    assert "<script>" not in response.content.decode()


def test_an_admin_adds_an_integration_and_its_secret_is_never_shown(admin_a, revenue):
    client = make_client(admin_a)
    url = reverse("integration_new") + "?kind=rest"
    response = client.post(url, rest_form(revenue, "https://crm.example/deals"), follow=True)

    assert response.status_code == 200
    assert "Integration added." in response.content.decode()
    assert "A credential is set." in response.content.decode()
    assert_no_secret(response)
    integration = Integration.objects.get(org=admin_a.org)
    assert integration.kind == "rest" and integration.metric == revenue
    assert integration.config == {
        "url": "https://crm.example/deals",
        "records_path": "data",
        "pagination": "none",
        "page_size": 100,
        "auth": "bearer",
        "mapping": {"timestamp": "closed", "value": "amount", "dimension": "rep", "id": "id"},
    }
    assert integration.every_minutes == 15 and integration.enabled
    assert_sealed(integration, SECRET)
    entry = AuditEntry.objects.get(action="integration.create")
    assert SECRET not in json.dumps(entry.detail) and "crm.example" not in json.dumps(entry.detail)
    assert_no_secret(client.get(edit_url(integration)))
    assert_no_secret(client.get(reverse("integration_list")))


def test_a_hubspot_integration_asks_for_the_mapped_properties(admin_a, revenue):
    data = {
        "name": "HubSpot deals",
        "metric": str(revenue.pk),
        "every_minutes": "60",
        "url": "https://api.hubapi.com",
        "map_timestamp": "closedate",
        "map_value": "forecast_amount",
        "map_dimension": "dealstage",
        "map_id": "id",
        "secret": SECRET,
    }
    response = make_client(admin_a).post(reverse("integration_new") + "?kind=hubspot", data)
    assert response.status_code == 302
    integration = Integration.objects.get(org=admin_a.org)
    assert integration.kind == "hubspot" and integration.every_minutes == 60
    assert integration.config["properties"] == ["forecast_amount"]
    assert integration.config["mapping"]["value"] == "forecast_amount"


@pytest.mark.parametrize(
    ("changes", "field_error"),
    [
        ({"url": "http://crm.example/deals"}, "https://"),
        ({"url": "ftp://crm.example/deals"}, "https://"),
        ({"url": "https://user:pw@crm.example/deals"}, "secret field"),
        ({"url": "not a url"}, "https://"),
        ({"page_size": "5000"}, "1000"),
        ({"every_minutes": "1"}, "5"),
        ({"every_minutes": "99999"}, "1440"),
        ({"name": "x" * 121}, "120"),
        ({"secret": ""}, "needs a secret"),
        ({"auth": "header", "header_name": "Host"}, "header name"),
        ({"auth": "oauth2"}, "OAuth2"),
        ({"pagination": "cursor"}, "This pagination needs it."),
        ({"cursor_param": "a b", "pagination": "cursor", "cursor_path": "next"}, "letters"),
        ({"since_param": "since"}, "neither"),
        ({"map_value": ""}, "required"),
        ({"ca_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"}, "PEM"),
        ({"metric": "00000000-0000-0000-0000-000000000000"}, "valid choice"),
        ({"pagination": "everything"}, "valid choice"),
    ],
)
def test_bad_input_is_refused_with_400_and_nothing_is_saved(admin_a, revenue, changes, field_error):
    url = reverse("integration_new") + "?kind=rest"
    response = make_client(admin_a).post(
        url, rest_form(revenue, "https://crm.example/d", **changes)
    )
    assert response.status_code == 400
    assert field_error in response.content.decode()
    assert_no_secret(response)
    assert not Integration.objects.exists()


def test_another_orgs_metric_cannot_be_fed(admin_a, revenue, revenue_b):
    url = reverse("integration_new")
    response = make_client(admin_a).post(url, rest_form(revenue_b, "https://crm.example/d"))
    assert response.status_code == 400
    assert not Integration.objects.exists()


# -- editing and the credential ----------------------------------------------------------------


def test_saving_without_a_secret_keeps_the_stored_one(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = rest_form(revenue, "https://crm.example/deals", secret="", name="Renamed", enabled="on")
    response = make_client(admin_a).post(edit_url(integration), data)
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.name == "Renamed" and integration.enabled
    assert_sealed(integration, SECRET)


def test_a_new_secret_replaces_the_stored_one(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = rest_form(revenue, "https://crm.example/deals", secret=OTHER_SECRET, enabled="on")
    response = make_client(admin_a).post(edit_url(integration), data, follow=True)
    assert_no_secret(response)
    assert_sealed(integration, OTHER_SECRET)


def test_the_stored_credential_can_be_removed(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = rest_form(
        revenue, "https://crm.example/deals", secret="", auth="none", remove_secret="on"
    )
    response = make_client(admin_a).post(edit_url(integration), data, follow=True)
    assert response.status_code == 200
    integration.refresh_from_db()
    assert not integration.has_credential
    assert "auth" not in integration.config
    assert "No credential is stored." in response.content.decode()


def test_removing_a_credential_that_is_needed_is_refused(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = rest_form(revenue, "https://crm.example/deals", secret="", remove_secret="on")
    response = make_client(admin_a).post(edit_url(integration), data)
    assert response.status_code == 400
    assert_sealed(integration, SECRET)


def test_disabling_an_integration(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = rest_form(revenue, "https://crm.example/deals", secret="")  # enabled unticked
    assert make_client(admin_a).post(edit_url(integration), data).status_code == 302
    integration.refresh_from_db()
    assert not integration.enabled


def test_plain_http_is_accepted_only_with_staffs_exception(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = rest_form(revenue, "http://crm.example/deals", secret="", enabled="on")
    client = make_client(admin_a)
    assert client.post(edit_url(integration), data).status_code == 400
    Integration.objects.filter(pk=integration.pk).update(allow_http=True)
    response = client.get(edit_url(integration))
    assert "Plain HTTP allowed by platform staff at your request" in response.content.decode()
    moved = client.post(edit_url(integration), data)
    assert moved.status_code == 400  # the stored credential would now travel in clear
    assert "Enter the secret again" in moved.content.decode()
    data["secret"] = "a-new-key"
    assert client.post(edit_url(integration), data).status_code == 302
    integration.refresh_from_db()
    assert integration.config["url"] == "http://crm.example/deals"


# -- test connection -----------------------------------------------------------------------------


def test_test_connection_shows_the_mapped_rows_and_saves_nothing(admin_a, revenue, service):
    data = rest_form(revenue, service.url, service.ca_pem, action="test")
    response = make_client(admin_a).post(reverse("integration_new") + "?kind=rest", data)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Connected: 3 records on the first page" in content
    assert "<td>300.0</td><td>Aino</td><td>d3</td>" in content
    assert service.authorizations == [f"Bearer {SECRET}"]
    assert_no_secret(response)
    assert not Integration.objects.exists()
    assert not DataPoint.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="integration").exists()


def test_test_connection_uses_the_stored_credential_when_the_field_is_empty(
    admin_a, revenue, service
):
    integration = make_integration(admin_a, revenue, service.url, service.ca_pem)
    data = rest_form(revenue, service.url, service.ca_pem, secret="", action="test", name="New")
    response = make_client(admin_a).post(edit_url(integration), data)
    assert response.status_code == 200
    assert "Connected: 3 records" in response.content.decode()
    assert service.authorizations == [f"Bearer {SECRET}"]
    assert_no_secret(response)
    integration.refresh_from_db()
    assert integration.name == "Deals API"  # a test changes nothing


def test_the_stored_credential_is_opened_only_in_a_job(admin_a, revenue, service, monkeypatch):
    """The web request never opens it: the test with the stored credential runs as a job (in
    tests jobs run at once in the caller, so the job's function is on the stack)."""
    import inspect

    integration = make_integration(admin_a, revenue, service.url, service.ca_pem)
    callers, real_open = [], sync.stored_secret

    def opened(found):
        callers.append({frame.function for frame in inspect.stack()})
        return real_open(found)

    monkeypatch.setattr(sync, "stored_secret", opened)
    data = rest_form(revenue, service.url, service.ca_pem, secret="", action="test", name="New")
    response = make_client(admin_a).post(edit_url(integration), data)
    assert "Connected: 3 records" in response.content.decode()
    assert len(callers) == 1 and "test_with_stored_credential" in callers[0]


def test_a_test_connection_says_so_when_no_job_worker_answers(
    admin_a, revenue, service, monkeypatch
):
    from huey.exceptions import HueyException

    from dashvault.integrations import jobs

    class NoAnswer:
        def get(self, **kwargs):
            raise HueyException("timed out")

    integration = make_integration(admin_a, revenue, service.url, service.ca_pem)
    monkeypatch.setattr(jobs, "test_with_stored_credential", lambda *args: NoAnswer())
    data = rest_form(revenue, service.url, service.ca_pem, secret="", action="test", name="New")
    response = make_client(admin_a).post(edit_url(integration), data)
    assert "No job worker answered within 45 seconds" in response.content.decode()
    assert service.authorizations == []


def test_test_connection_shows_the_error_sentence(admin_a, revenue, service):
    service.status = 401
    data = rest_form(revenue, service.url, service.ca_pem, action="test")
    response = make_client(admin_a).post(reverse("integration_new"), data)
    assert response.status_code == 200
    assert "The service refused the credentials (HTTP 401)" in response.content.decode()
    assert_no_secret(response)


def test_test_connection_refuses_an_untrusted_certificate(admin_a, revenue, service):
    data = rest_form(revenue, service.url, "", action="test")  # no CA pasted
    response = make_client(admin_a).post(reverse("integration_new"), data)
    assert response.status_code == 200
    assert "TLS certificate of localhost was not accepted" in response.content.decode()


# -- syncing and deleting ------------------------------------------------------------------------


def test_sync_now_stores_the_records_in_the_metric(
    admin_a, revenue, service, django_capture_on_commit_callbacks
):
    integration = make_integration(admin_a, revenue, service.url, service.ca_pem)
    client = make_client(admin_a)
    url = reverse("integration_sync", kwargs={"integration_id": integration.pk})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response.status_code == 302 and response["Location"] == edit_url(integration)
    points = DataPoint.objects.filter(metric=revenue).order_by("external_id")
    assert [(p.external_id, p.value, p.dimension) for p in points] == [
        (f"{integration.pk}:d1", 100.0, "Ben"),
        (f"{integration.pk}:d2", 200.0, "Carla"),
        (f"{integration.pk}:d3", 300.0, "Aino"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"full": "1"})
    assert DataPoint.objects.filter(metric=revenue).count() == 3  # replaced by id
    runs = list(SyncRun.objects.filter(integration=integration))
    assert [(r.ok, r.records, r.full) for r in runs] == [(True, 3, True), (True, 3, False)]
    page = client.get(edit_url(integration)).content.decode()
    assert page.count("<td>OK</td>") == 2
    assert ["sync_request", "sync_request"] == [
        e.action.split(".")[1] for e in AuditEntry.objects.filter(action="integration.sync_request")
    ]


def test_delete_asks_first_then_deletes(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    client = make_client(admin_a)
    url = reverse("integration_delete", kwargs={"integration_id": integration.pk})
    page = client.get(url)
    assert page.status_code == 200 and "Delete “Deals API”?" in page.content.decode()
    assert Integration.objects.filter(pk=integration.pk).exists()
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("integration_list")
    assert not Integration.objects.filter(pk=integration.pk).exists()


# -- who may -------------------------------------------------------------------------------------


def test_another_orgs_admin_gets_404_and_changes_nothing(admin_a, admin_b, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    client = make_client(admin_b)
    pk = {"integration_id": integration.pk}
    assert client.get(edit_url(integration)).status_code == 404
    assert client.post(edit_url(integration), {"name": "x"}).status_code == 404
    assert client.post(reverse("integration_sync", kwargs=pk)).status_code == 404
    assert client.post(reverse("integration_delete", kwargs=pk)).status_code == 404
    assert Integration.objects.filter(pk=integration.pk, name="Deals API").exists()


def test_editors_and_viewers_get_403(admin_a, editor_a, viewer_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    for user in (editor_a, viewer_a):
        client = make_client(user)
        assert client.get(reverse("integration_list")).status_code == 403
        assert client.get(edit_url(integration)).status_code == 403
        assert client.get(reverse("integration_new")).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    for url in (reverse("integration_list"), edit_url(integration)):
        response = make_client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_wrong_methods_get_405(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    client = make_client(admin_a)
    assert client.post(reverse("integration_list")).status_code == 405
    assert (
        client.get(
            reverse("integration_sync", kwargs={"integration_id": integration.pk})
        ).status_code
        == 405
    )
    assert client.put(edit_url(integration)).status_code == 405


# -- staff: the plain-HTTP exception ------------------------------------------------------------


def staff_url(org: Any) -> str:
    return reverse("staff_integrations", kwargs={"org_id": org.pk})


def test_staff_see_names_and_kinds_only(staff, admin_a, revenue):
    make_integration(admin_a, revenue, "https://crm.example/deals")
    response = make_client(staff).get(staff_url(admin_a.org))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Deals API" in content and "JSON REST API" in content
    assert "crm.example" not in content and "crm_revenue" not in content
    assert_no_secret(response)


def test_staff_set_the_http_exception_audited_and_shown_to_the_customer(staff, admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    client = make_client(staff)
    data = {"integration": str(integration.pk), "allow": "on", "ticket": "SUP-4711"}
    response = client.post(staff_url(admin_a.org), data)
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.allow_http
    entry = AuditEntry.objects.get(action="integration.http_exception")
    assert entry.org_id == admin_a.org_id and entry.detail.get("allow") is True
    assert "SUP-4711" not in json.dumps(entry.detail)
    listing = make_client(admin_a).get(reverse("integration_list")).content.decode()
    assert "Plain HTTP allowed by platform staff at your request" in listing

    client.post(staff_url(admin_a.org), {"integration": str(integration.pk), "ticket": "SUP-2"})
    integration.refresh_from_db()
    assert not integration.allow_http
    assert AuditEntry.objects.filter(action="integration.http_exception").count() == 2


def test_staff_must_give_a_ticket_reference(staff, admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = {"integration": str(integration.pk), "allow": "on", "ticket": ""}
    response = make_client(staff).post(staff_url(admin_a.org), data)
    assert response.status_code == 400
    integration.refresh_from_db()
    assert not integration.allow_http


def test_staff_cannot_reach_an_integration_through_another_org(staff, admin_a, org_b, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    data = {"integration": str(integration.pk), "allow": "on", "ticket": "SUP-1"}
    assert make_client(staff).post(staff_url(org_b), data).status_code == 400
    integration.refresh_from_db()
    assert not integration.allow_http


def test_the_staff_page_is_hidden_from_org_members(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    client = make_client(admin_a)
    assert client.get(staff_url(admin_a.org)).status_code == 404
    data = {"integration": str(integration.pk), "allow": "on", "ticket": "SUP-1"}
    assert client.post(staff_url(admin_a.org), data).status_code == 404
    integration.refresh_from_db()
    assert not integration.allow_http


def test_a_credential_with_a_line_break_is_refused(admin_a, revenue):
    data = rest_form(revenue, "https://crm.example/deals", secret="tok-abc\n")
    response = make_client(admin_a).post(reverse("integration_new") + "?kind=rest", data)
    assert response.status_code == 400
    assert "line break" in response.content.decode()
    assert not Integration.objects.exists()


def test_pointing_an_integration_elsewhere_asks_for_the_credential_again(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    client = make_client(admin_a)
    elsewhere = rest_form(revenue, "https://other.example/deals", secret="", enabled="on")
    response = client.post(edit_url(integration), elsewhere)
    assert response.status_code == 400
    assert "Enter the secret again" in response.content.decode()
    test = {**elsewhere, "action": "test"}
    assert "Enter the secret again" in client.post(edit_url(integration), test).content.decode()
    same_host = rest_form(revenue, "https://crm.example/other", secret="", enabled="on")
    assert client.post(edit_url(integration), same_host).status_code == 302  # same origin
    integration.refresh_from_db()
    assert sync.stored_secret(integration) == SECRET


def test_staffs_exception_ends_when_the_integration_points_at_another_host(admin_a, revenue):
    integration = make_integration(admin_a, revenue, "https://crm.example/deals")
    Integration.objects.filter(pk=integration.pk).update(allow_http=True)
    client = make_client(admin_a)
    data = rest_form(revenue, "http://crm.example/deals", secret="new-key", enabled="on")
    assert client.post(edit_url(integration), data).status_code == 302
    integration.refresh_from_db()
    assert integration.allow_http  # the same host, now over HTTP as staff allowed
    data = rest_form(revenue, "https://elsewhere.example/", secret="new-key", enabled="on")
    assert client.post(edit_url(integration), data).status_code == 302
    integration.refresh_from_db()
    assert not integration.allow_http
