"""Editors build dashboards in the browser: rename, duplicate, delete, and add, edit, arrange
and remove widgets. Each action: the happy path, another org (404), a viewer (403), bad input
(400, nothing changed) and its audit entry (ids only)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.urls import reverse

from dashvault.audit.models import AuditEntry
from dashvault.dashboards import datacache
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.metrics.ingest import PointIn, do_ingest
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Group
from tests.conftest import make_client


@pytest.fixture
def revenue_a(org_a) -> Metric:
    return Metric.objects.create(
        org=org_a, key="revenue", name="Revenue", unit="currency", currency="EUR"
    )


@pytest.fixture
def revenue_b(org_b) -> Metric:
    return Metric.objects.create(org=org_b, key="revenue", name="Revenue B")


@pytest.fixture
def sales(dashboards_a) -> Dashboard:
    return dashboards_a["sales"]


@pytest.fixture
def kpi(sales, revenue_a) -> Widget:
    return Widget.objects.create(
        org=sales.org,
        dashboard=sales,
        kind="kpi",
        title="Revenue this month",
        metric=revenue_a,
        config={"period": "this_month", "aggregation": None, "target": 1000.0},
        x=0,
        y=0,
        w=4,
        h=2,
    )


def last_audit(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).latest("id")


def assert_ids_only(entry: AuditEntry, *texts: str) -> None:
    stored = json.dumps(
        [entry.action, entry.target_type, entry.target_id, str(entry.actor_id), entry.detail]
    )
    for text in texts:
        assert text not in stored


def url(name: str, *args) -> str:
    return reverse(name, args=[str(a) for a in args])


# --- rename ---------------------------------------------------------------------------------


def test_an_editor_renames_a_dashboard_and_it_is_audited(editor_a, sales):
    response = make_client(editor_a).post(url("dashboard_rename", sales.pk), {"title": " Q3 "})
    assert response.status_code == 302
    sales.refresh_from_db()
    assert sales.title == "Q3"
    entry = last_audit("dashboard.rename")
    assert (entry.org_id, entry.actor_id, entry.target_id) == (
        sales.org_id,
        editor_a.pk,
        str(sales.pk),
    )
    assert_ids_only(entry, "Q3", "editor@a.example")


def test_rename_refuses_an_empty_title_with_400_and_keeps_the_old_one(editor_a, sales):
    response = make_client(editor_a).post(url("dashboard_rename", sales.pk), {"title": "  "})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    sales.refresh_from_db()
    assert sales.title == "Sales A"
    assert not AuditEntry.objects.filter(action="dashboard.rename").exists()


def test_rename_refuses_a_title_too_long_with_400(editor_a, sales):
    response = make_client(editor_a).post(url("dashboard_rename", sales.pk), {"title": "x" * 121})
    assert response.status_code == 400
    sales.refresh_from_db()
    assert sales.title == "Sales A"


def test_rename_hides_another_orgs_dashboard_and_refuses_viewers(admin_b, viewer_a, sales):
    assert (
        make_client(admin_b).post(url("dashboard_rename", sales.pk), {"title": "x"}).status_code
        == 404
    )
    assert (
        make_client(viewer_a).post(url("dashboard_rename", sales.pk), {"title": "x"}).status_code
        == 403
    )
    sales.refresh_from_db()
    assert sales.title == "Sales A"


def test_an_editor_cannot_edit_a_dashboard_their_groups_do_not_grant(editor_a, dashboards_a):
    board = dashboards_a["board"]
    editor = make_client(editor_a)
    assert editor.post(url("dashboard_rename", board.pk), {"title": "x"}).status_code == 404
    assert editor.get(url("dashboard_edit", board.pk)).status_code == 404
    assert editor.post(url("dashboard_delete", board.pk)).status_code == 404
    assert Dashboard.objects.filter(pk=board.pk, title="Board A").exists()


def test_an_admin_edits_any_dashboard_of_the_org(admin_a, dashboards_a):
    board = dashboards_a["board"]
    response = make_client(admin_a).post(url("dashboard_rename", board.pk), {"title": "Board"})
    assert response.status_code == 302


# --- duplicate ------------------------------------------------------------------------------


def test_duplicate_copies_widgets_and_grants_and_is_audited(editor_a, viewer_a, sales, kpi):
    text = Widget.objects.create(
        org=sales.org, dashboard=sales, kind="text", config={"text": "hi"}, x=4, y=0, w=8, h=1
    )
    other_group = Group.objects.create(org=sales.org, name="Board members")
    other_group.dashboards.add(sales)

    response = make_client(editor_a).post(url("dashboard_duplicate", sales.pk))
    assert response.status_code == 302
    copy = Dashboard.objects.exclude(pk__in=[sales.pk]).get(title="Copy of Sales A")
    assert response["Location"] == url("dashboard_edit", copy.pk)
    copied = {
        (w.kind, w.title, w.metric_id, json.dumps(w.config, sort_keys=True), w.x, w.y, w.w, w.h)
        for w in copy.widgets.all()
    }
    original = {
        (w.kind, w.title, w.metric_id, json.dumps(w.config, sort_keys=True), w.x, w.y, w.w, w.h)
        for w in (kpi, text)
    }
    assert copied == original
    assert not copy.widgets.filter(pk__in=[kpi.pk, text.pk]).exists()  # new rows
    assert (
        set(copy.granted_to.all())
        == set(sales.granted_to.all())
        == {
            other_group,
            Group.objects.get(name="Sales team A"),
        }
    )
    # The viewer sees the copy through the same group.
    assert make_client(viewer_a).get(url("dashboard_detail", copy.pk)).status_code == 200
    entry = last_audit("dashboard.duplicate")
    assert entry.target_id == str(copy.pk) and entry.detail == {"source": str(sales.pk)}
    assert_ids_only(entry, "Sales A")


def test_duplicate_hides_another_orgs_dashboard_and_refuses_viewers(admin_b, viewer_a, sales):
    assert make_client(admin_b).post(url("dashboard_duplicate", sales.pk)).status_code == 404
    assert make_client(viewer_a).post(url("dashboard_duplicate", sales.pk)).status_code == 403
    assert Dashboard.objects.count() == 2
    assert not AuditEntry.objects.filter(action="dashboard.duplicate").exists()


def test_duplicate_refuses_get(editor_a, sales):
    assert make_client(editor_a).get(url("dashboard_duplicate", sales.pk)).status_code == 405


# --- delete ---------------------------------------------------------------------------------


def test_delete_asks_for_confirmation_then_deletes_with_widgets(editor_a, sales, kpi, revenue_a):
    editor = make_client(editor_a)
    page = editor.get(url("dashboard_delete", sales.pk))
    assert page.status_code == 200
    assert "Delete “Sales A”?" in page.content.decode()
    assert Dashboard.objects.filter(pk=sales.pk).exists()  # a GET changes nothing

    response = editor.post(url("dashboard_delete", sales.pk))
    assert response.status_code == 302 and response["Location"] == url("dashboard_list")
    assert not Dashboard.objects.filter(pk=sales.pk).exists()
    assert not Widget.objects.filter(pk=kpi.pk).exists()
    assert Metric.objects.filter(pk=revenue_a.pk).exists()  # data stays
    entry = last_audit("dashboard.delete")
    assert (entry.target_id, entry.actor_id) == (str(sales.pk), editor_a.pk)
    assert_ids_only(entry, "Sales A")


def test_delete_hides_another_orgs_dashboard_and_refuses_viewers(admin_b, viewer_a, sales):
    assert make_client(admin_b).post(url("dashboard_delete", sales.pk)).status_code == 404
    assert make_client(admin_b).get(url("dashboard_delete", sales.pk)).status_code == 404
    assert make_client(viewer_a).post(url("dashboard_delete", sales.pk)).status_code == 403
    assert Dashboard.objects.filter(pk=sales.pk).exists()


# --- add a widget ---------------------------------------------------------------------------


def widget_post(**fields) -> dict:
    base = {"kind": "kpi", "title": "", "period": "this_month", "bucket": "day", "top_n": "5"}
    base.update({"w": "4", "h": "2"})
    base.update(fields)
    return base


def test_an_editor_adds_a_kpi_below_the_others(editor_a, sales, kpi, revenue_a):
    response = make_client(editor_a).post(
        url("widget_new", sales.pk),
        widget_post(
            kind="kpi", title="Won", metric=str(revenue_a.pk), period="today", target="250"
        ),
    )
    assert response.status_code == 302
    widget = Widget.objects.exclude(pk=kpi.pk).get()
    assert response["Location"] == url("dashboard_edit", sales.pk) + f"#w-{widget.pk}"
    assert (widget.kind, widget.title, widget.metric, widget.org_id) == (
        "kpi",
        "Won",
        revenue_a,
        sales.org_id,
    )
    assert widget.config == {"period": "today", "aggregation": None, "target": 250.0}
    assert (widget.x, widget.y, widget.w, widget.h) == (0, 2, 4, 2)
    entry = last_audit("widget.create")
    assert entry.target_id == str(widget.pk) and entry.detail == {"dashboard": str(sales.pk)}
    assert_ids_only(entry, "Won")


def test_an_editor_adds_a_line_chart_per_dimension_and_a_text(editor_a, sales, revenue_a):
    editor = make_client(editor_a)
    line = editor.post(
        url("widget_new", sales.pk),
        widget_post(
            kind="line",
            metric=str(revenue_a.pk),
            period="last_12_months",
            bucket="month",
            by_dimension="on",
            aggregation="max",
            target="5",  # not an option of a line chart: ignored
            w="8",
        ),
    )
    assert line.status_code == 302
    text = editor.post(url("widget_new", sales.pk), widget_post(kind="text", text="Hello <b>"))
    assert text.status_code == 302
    chart = Widget.objects.get(kind="line")
    assert chart.config == {
        "period": "last_12_months",
        "bucket": "month",
        "by_dimension": True,
        "aggregation": "max",
    }
    assert Widget.objects.get(kind="text").config == {"text": "Hello <b>"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "kpi", "metric": ""}, "a KPI widget needs a metric"),
        ({"kind": "text", "text": "x", "metric": "METRIC"}, "a text widget shows no metric"),
        ({"kind": "kpi", "metric": "METRIC", "period": "fortnight"}, "Select a valid choice"),
        ({"kind": "kpi", "metric": "METRIC", "target": "-1"}, "greater than or equal to 0"),
        ({"kind": "kpi", "metric": "METRIC", "target": "nan"}, "Enter a number"),
        ({"kind": "kpi", "metric": "METRIC", "target": "inf"}, "Enter a number"),
        ({"kind": "leaderboard", "metric": "METRIC", "top_n": "0"}, "greater than or equal to 1"),
        ({"kind": "gauge", "metric": "METRIC", "aggregation": "median"}, "Select a valid choice"),
        ({"kind": "text", "text": "x" * 2001}, "at most 2000 characters"),
        ({"kind": "pie", "metric": "METRIC"}, "Select a valid choice"),
        ({"kind": "kpi", "metric": "METRIC", "w": "13"}, "less than or equal to 12"),
        ({"kind": "kpi", "metric": "METRIC", "h": "0"}, "greater than or equal to 1"),
        ({"kind": "kpi", "metric": "not-a-uuid"}, "is not a valid UUID"),
    ],
)
def test_adding_a_bad_widget_answers_400_and_stores_nothing(
    editor_a, sales, revenue_a, fields, message
):
    fields = {k: (str(revenue_a.pk) if v == "METRIC" else v) for k, v in fields.items()}
    response = make_client(editor_a).post(url("widget_new", sales.pk), widget_post(**fields))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Widget.objects.exists()
    assert not AuditEntry.objects.filter(action="widget.create").exists()


def test_the_metric_choice_offers_only_the_orgs_own_metrics(editor_a, sales, revenue_a, revenue_b):
    editor = make_client(editor_a)
    page = editor.get(url("widget_new", sales.pk)).content.decode()
    assert str(revenue_a.pk) in page
    assert str(revenue_b.pk) not in page and "Revenue B" not in page
    response = editor.post(
        url("widget_new", sales.pk), widget_post(kind="kpi", metric=str(revenue_b.pk))
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Widget.objects.exists()


def test_adding_a_widget_hides_another_orgs_dashboard_and_refuses_viewers(
    admin_b, viewer_a, sales, revenue_a
):
    data = widget_post(metric=str(revenue_a.pk))
    assert make_client(admin_b).post(url("widget_new", sales.pk), data).status_code == 404
    assert make_client(admin_b).get(url("widget_new", sales.pk)).status_code == 404
    assert make_client(viewer_a).post(url("widget_new", sales.pk), data).status_code == 403
    assert not Widget.objects.exists()


# --- edit a widget --------------------------------------------------------------------------


def test_an_editor_changes_a_widget_and_it_is_audited(editor_a, sales, kpi, revenue_a):
    editor = make_client(editor_a)
    form = editor.get(url("widget_edit", sales.pk, kpi.pk)).content.decode()
    assert 'value="Revenue this month"' in form and 'value="1000.0"' in form
    response = editor.post(
        url("widget_edit", sales.pk, kpi.pk),
        widget_post(kind="bar", metric=str(revenue_a.pk), bucket="week", title="Weekly"),
    )
    assert response.status_code == 302
    kpi.refresh_from_db()
    assert (kpi.kind, kpi.title) == ("bar", "Weekly")
    assert kpi.config == {
        "period": "this_month",
        "bucket": "week",
        "by_dimension": False,
        "aggregation": None,
    }
    assert (kpi.x, kpi.y, kpi.w, kpi.h) == (0, 0, 4, 2)  # placement is arranged separately
    entry = last_audit("widget.update")
    assert entry.target_id == str(kpi.pk) and entry.detail == {"dashboard": str(sales.pk)}
    assert_ids_only(entry, "Weekly")


def test_editing_a_widget_with_bad_input_answers_400_and_changes_nothing(
    editor_a, sales, kpi, revenue_b
):
    editor = make_client(editor_a)
    for fields in (
        {"metric": str(revenue_b.pk)},
        {"metric": str(kpi.metric_id), "target": "-3"},
        {"kind": "text", "metric": str(kpi.metric_id)},
    ):
        response = editor.post(url("widget_edit", sales.pk, kpi.pk), widget_post(**fields))
        assert response.status_code == 400, fields
    before = (kpi.kind, kpi.title, kpi.metric_id, kpi.config)
    kpi.refresh_from_db()
    assert (kpi.kind, kpi.title, kpi.metric_id, kpi.config) == before
    assert not AuditEntry.objects.filter(action="widget.update").exists()


def test_a_widget_is_reachable_only_through_its_own_dashboard(
    editor_a, admin_a, admin_b, viewer_a, dashboards_a, kpi
):
    board = dashboards_a["board"]
    sales = dashboards_a["sales"]
    # Right widget, wrong dashboard (same org): 404, even for an admin who sees both.
    assert make_client(admin_a).get(url("widget_edit", board.pk, kpi.pk)).status_code == 404
    assert make_client(admin_b).get(url("widget_edit", sales.pk, kpi.pk)).status_code == 404
    assert make_client(viewer_a).get(url("widget_edit", sales.pk, kpi.pk)).status_code == 403
    # An editor whose groups do not grant the dashboard cannot reach its widgets.
    foreign = Widget.objects.create(org=board.org, dashboard=board, kind="text", config={})
    editor = make_client(editor_a)
    assert editor.get(url("widget_edit", board.pk, foreign.pk)).status_code == 404
    assert editor.post(url("widget_delete", board.pk, foreign.pk)).status_code == 404
    assert Widget.objects.filter(pk=foreign.pk).exists()


# --- arrange --------------------------------------------------------------------------------


def place(widget: Widget) -> tuple[int, int, int, int]:
    widget.refresh_from_db()
    return (widget.x, widget.y, widget.w, widget.h)


def test_nudges_move_and_resize_a_widget_and_stay_on_the_grid(editor_a, sales, kpi):
    editor = make_client(editor_a)
    arrange = url("widget_arrange", sales.pk, kpi.pk)
    assert editor.post(arrange, {"nudge": "right"}).status_code == 302
    assert place(kpi) == (1, 0, 4, 2)
    editor.post(arrange, {"nudge": "wider"})
    editor.post(arrange, {"nudge": "taller"})
    editor.post(arrange, {"nudge": "down"})
    assert place(kpi) == (1, 1, 5, 3)
    editor.post(arrange, {"nudge": "left"})
    editor.post(arrange, {"nudge": "left"})  # already at the left edge: stays
    editor.post(arrange, {"nudge": "up"})
    editor.post(arrange, {"nudge": "up"})
    assert place(kpi) == (0, 0, 5, 3)
    entry = last_audit("widget.arrange")
    assert entry.target_id == str(kpi.pk) and entry.detail["dashboard"] == str(sales.pk)


def test_placing_a_widget_over_others_pushes_them_down(editor_a, sales, kpi):
    right = Widget.objects.create(
        org=sales.org, dashboard=sales, kind="text", config={}, x=4, y=0, w=4, h=2
    )
    below = Widget.objects.create(
        org=sales.org, dashboard=sales, kind="text", config={}, x=4, y=2, w=4, h=1
    )
    response = make_client(editor_a).post(
        url("widget_arrange", sales.pk, kpi.pk),
        {"x": "2", "y": "0", "w": "6", "h": "2"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    layout = response.json()["layout"]
    assert layout[str(kpi.pk)] == {"x": 2, "y": 0, "w": 6, "h": 2}
    assert layout[str(right.pk)] == {"x": 4, "y": 2, "w": 4, "h": 2}
    assert layout[str(below.pk)] == {"x": 4, "y": 4, "w": 4, "h": 1}
    assert place(right) == (4, 2, 4, 2) and place(below) == (4, 4, 4, 1)
    assert last_audit("widget.arrange").detail["pushed"] == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"x": "10", "y": "0", "w": "4", "h": "2"},  # past the 12th column
        {"x": "-1", "y": "0", "w": "4", "h": "2"},
        {"x": "0", "y": "100", "w": "4", "h": "2"},
        {"x": "0", "y": "0", "w": "0", "h": "2"},
        {"x": "0", "y": "0", "w": "4", "h": "13"},
        {"x": "0", "y": "0", "w": "4"},  # h missing
        {"x": "a", "y": "0", "w": "4", "h": "2"},
        {"nudge": "sideways"},
    ],
)
def test_a_bad_place_answers_400_and_moves_nothing(editor_a, sales, kpi, fields):
    editor = make_client(editor_a)
    arrange = url("widget_arrange", sales.pk, kpi.pk)
    page = editor.post(arrange, fields)
    assert page.status_code == 400
    assert 'class="arrange-errors"' in page.content.decode()
    as_json = editor.post(arrange, fields, headers={"Accept": "application/json"})
    assert as_json.status_code == 400 and as_json.json()["errors"]
    assert place(kpi) == (0, 0, 4, 2)
    assert not AuditEntry.objects.filter(action="widget.arrange").exists()


def test_arrange_hides_another_orgs_widget_and_refuses_viewers(admin_b, viewer_a, sales, kpi):
    data = {"nudge": "right"}
    assert (
        make_client(admin_b).post(url("widget_arrange", sales.pk, kpi.pk), data).status_code == 404
    )
    assert (
        make_client(viewer_a).post(url("widget_arrange", sales.pk, kpi.pk), data).status_code == 403
    )
    assert place(kpi) == (0, 0, 4, 2)


# --- remove a widget ------------------------------------------------------------------------


def test_an_editor_removes_a_widget_after_confirming(editor_a, sales, kpi, revenue_a):
    editor = make_client(editor_a)
    page = editor.get(url("widget_delete", sales.pk, kpi.pk))
    assert page.status_code == 200 and "Remove “Revenue this month”?" in page.content.decode()
    assert Widget.objects.filter(pk=kpi.pk).exists()
    response = editor.post(url("widget_delete", sales.pk, kpi.pk))
    assert response.status_code == 302 and response["Location"] == url("dashboard_edit", sales.pk)
    assert not Widget.objects.filter(pk=kpi.pk).exists()
    assert Metric.objects.filter(pk=revenue_a.pk).exists()
    entry = last_audit("widget.delete")
    assert entry.target_id == str(kpi.pk) and entry.detail == {"dashboard": str(sales.pk)}


def test_removing_a_widget_hides_another_orgs_and_refuses_viewers(admin_b, viewer_a, sales, kpi):
    assert make_client(admin_b).post(url("widget_delete", sales.pk, kpi.pk)).status_code == 404
    assert make_client(viewer_a).post(url("widget_delete", sales.pk, kpi.pk)).status_code == 403
    assert Widget.objects.filter(pk=kpi.pk).exists()


# --- pages and the batched data endpoint ----------------------------------------------------


def test_the_dashboard_page_embeds_its_data_and_places_its_tiles(viewer_a, sales, kpi, revenue_a):
    do_ingest(sales.org, [PointIn("revenue", dt.datetime.now(dt.UTC), 120.5)])
    page = make_client(viewer_a).get(url("dashboard_detail", sales.pk)).content.decode()
    match = re.search(
        r'<script id="dashboard-data" type="application/json">(.*?)</script>', page, re.S
    )
    assert match is not None
    data = json.loads(match.group(1))
    assert data["dashboard"] == str(sales.pk)
    assert data["widgets"][str(kpi.pk)]["display"] == "€120.50"
    assert f'id="w-{kpi.pk}"' in page and "gx-0 gy-0 gw-4 gh-2" in page
    assert "Edit dashboard" not in page  # viewers get no edit link
    assert " style=" not in page and "<script>" not in page  # the CSP allows neither


def test_the_edit_page_shows_the_tools_to_editors_only(editor_a, viewer_a, sales, kpi):
    page = make_client(editor_a).get(url("dashboard_edit", sales.pk))
    assert page.status_code == 200
    body = page.content.decode()
    assert url("widget_arrange", sales.pk, kpi.pk) in body
    assert url("widget_new", sales.pk) in body
    assert make_client(viewer_a).get(url("dashboard_edit", sales.pk)).status_code == 403


def test_the_data_endpoint_answers_every_widget_in_one_response(viewer_a, sales, kpi):
    response = make_client(viewer_a).get(url("dashboard_data", sales.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["dashboard"] == str(sales.pk)
    assert set(body["widgets"]) == {str(kpi.pk)}
    assert body["widgets"][str(kpi.pk)]["kind"] == "kpi"


KINDS_OF_20 = ["kpi"] * 6 + ["line"] * 5 + ["bar"] * 3 + ["leaderboard"] * 3 + ["gauge"] * 2
KINDS_OF_20 += ["text"]


def twenty_widgets(sales: Dashboard, metric: Metric) -> None:
    for index, kind in enumerate(KINDS_OF_20):
        Widget.objects.create(
            org=sales.org,
            dashboard=sales,
            kind=kind,
            metric=None if kind == "text" else metric,
            config={"text": "t"} if kind == "text" else {},
            x=(index % 3) * 4,
            y=index // 3 * 2,
        )
    do_ingest(sales.org, [PointIn("revenue", dt.datetime.now(dt.UTC), 5.0, "north")])


def test_the_data_endpoint_query_count_is_pinned_for_20_widgets(
    viewer_a, sales, revenue_a, django_assert_num_queries
):
    twenty_widgets(sales, revenue_a)
    datacache.forget(sales.pk)
    client = make_client(viewer_a)
    client.get("/dashboards/")  # warm the session
    # Cold: 2 for the request (user with org, dashboard access; the session comes from the
    # cache), 2 for the org's time zone and
    # the widgets with their metrics, then per widget: 2 per KPI (its period and the previous
    # one), 1 per chart, leaderboard and gauge, 0 per text.
    per_widget = 6 * 2 + 5 + 3 + 3 + 2
    with django_assert_num_queries(2 + 2 + per_widget):
        cold = client.get(url("dashboard_data", sales.pk))
    # Warm: the computed JSON is shared from the cache; only the access path runs.
    with django_assert_num_queries(2):
        warm = client.get(url("dashboard_data", sales.pk))
    assert cold.status_code == warm.status_code == 200
    assert len(cold.json()["widgets"]) == 20 and warm.content == cold.content


def test_the_dashboard_page_query_count_is_pinned_for_20_widgets(
    viewer_a, sales, revenue_a, django_assert_num_queries
):
    twenty_widgets(sales, revenue_a)
    client = make_client(viewer_a)
    client.get(url("dashboard_detail", sales.pk))
    # The access path, the tiles' places; the data comes from the cache the first view filled.
    with django_assert_num_queries(2 + 1):
        response = client.get(url("dashboard_detail", sales.pk))
    assert response.status_code == 200
    assert response.content.decode().count('class="tile ') == 20


def test_the_dashboard_page_embedding_its_data_is_never_cached(viewer_a, sales, kpi):
    # ASVS V14.3.2: the page carries the widgets' data, so it is kept out of caches too.
    response = make_client(viewer_a).get(url("dashboard_detail", sales.pk))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
