"""Rollups stay exactly what a recomputation from raw points gives, whatever happens."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashvault.metrics.ingest import (
    PointIn,
    UnknownMetrics,
    do_delete_points,
    do_ingest,
    rebuild_rollups,
)
from dashvault.metrics.models import DataPoint, Metric, Rollup

BASE = dt.datetime(2026, 3, 27, tzinfo=dt.UTC)  # spans Europe/Helsinki's DST change (Mar 29)


def snapshot(org) -> list[tuple]:
    return sorted(
        Rollup.objects.filter(org=org).values_list(
            "metric_id",
            "day",
            "dimension",
            "total",
            "count",
            "minimum",
            "maximum",
            "latest_ts",
            "latest_value",
        )
    )


def rounded(rows):
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


points = st.builds(
    PointIn,
    metric_key=st.sampled_from(["deals", "revenue"]),
    ts=st.integers(min_value=0, max_value=5 * 24 * 60).map(
        lambda m: BASE + dt.timedelta(minutes=m)
    ),
    value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: round(v, 2)),
    dimension=st.sampled_from(["", "alice", "bob"]),
    external_id=st.one_of(st.none(), st.sampled_from(["e1", "e2", "e3", "e4"])),
)
operations = st.lists(
    st.one_of(
        st.lists(points, min_size=1, max_size=12).map(lambda ps: ("ingest", ps)),
        st.tuples(
            st.integers(0, 5 * 24), st.integers(1, 48), st.sampled_from([None, "", "alice"])
        ).map(lambda t: ("delete", t)),
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture
def org(org_a):
    org_a.time_zone = "Europe/Helsinki"
    org_a.save()
    for key in ("deals", "revenue"):
        Metric.objects.create(org=org_a, key=key, name=key)
    return org_a


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_rollups_equal_a_rebuild_after_random_inserts_replacements_and_deletes(org, ops):
    DataPoint.objects.filter(org=org).delete()
    Rollup.objects.filter(org=org).delete()
    deals = Metric.objects.get(org=org, key="deals")
    for kind, arg in ops:
        if kind == "ingest":
            do_ingest(org, arg)
        else:
            start_hours, length, dimension = arg
            start = BASE + dt.timedelta(hours=start_hours)
            do_delete_points(org, deals, start, start + dt.timedelta(hours=length), dimension)
    incremental = snapshot(org)
    rebuild_rollups(org)
    assert rounded(incremental) == rounded(snapshot(org))


def test_a_resent_external_id_replaces_instead_of_doubling(org):
    ts = BASE + dt.timedelta(hours=12)
    do_ingest(org, [PointIn("deals", ts, 5.0, "alice", "crm-1")])
    do_ingest(org, [PointIn("deals", ts, 7.0, "alice", "crm-1")])
    assert DataPoint.objects.filter(org=org).count() == 1
    rollup = Rollup.objects.get(org=org)
    assert (rollup.total, rollup.count, rollup.latest_value) == (7.0, 1, 7.0)


def test_days_follow_the_org_time_zone(org):
    # 22:30 UTC on 27 March is 00:30 on the 28th in Helsinki (UTC+2 before DST).
    do_ingest(org, [PointIn("deals", dt.datetime(2026, 3, 27, 22, 30, tzinfo=dt.UTC), 1.0)])
    assert Rollup.objects.get(org=org).day == dt.date(2026, 3, 28)


def test_an_unknown_metric_stores_nothing(org):
    with pytest.raises(UnknownMetrics) as err:
        do_ingest(org, [PointIn("deals", BASE, 1.0), PointIn("nope", BASE, 1.0)])
    assert err.value.keys == ["nope"]
    assert not DataPoint.objects.exists() and not Rollup.objects.exists()


def test_another_orgs_metric_key_is_unknown(org, org_b):
    Metric.objects.create(org=org_b, key="b_only", name="b")
    with pytest.raises(UnknownMetrics):
        do_ingest(org, [PointIn("b_only", BASE, 1.0)])


def test_the_rebuild_command_agrees_with_incremental_rollups(org):
    import io

    from django.core.management import call_command

    do_ingest(
        org, [PointIn("deals", BASE + dt.timedelta(hours=h), float(h), "alice") for h in range(60)]
    )
    before = snapshot(org)
    out = io.StringIO()
    call_command("rollups", "rebuild", "--org", org.name, stdout=out)
    assert f"{org.pk}: {len(before)} rollup rows rebuilt" in out.getvalue()
    assert rounded(snapshot(org)) == rounded(before)
