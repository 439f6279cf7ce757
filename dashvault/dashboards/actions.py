"""Changes to dashboards: each writes its audit entry in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from dashvault import audit
from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.dashboards.widgets import validate_config
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Group, Organization


def do_create_dashboard(
    org: Organization, title: str, *, acting: User, ip: str | None
) -> Dashboard:
    """Create a dashboard in `org`, the acting editor's organization.

    An editor sees only what their groups grant, so a new dashboard is granted to the
    creator's groups; an admin's is granted to none (admins see all, and grant it on a
    group's page).
    """
    groups = list(Group.objects.filter(org=org, members=acting))
    if acting.role != Role.ADMIN and not groups:
        raise ValidationError(
            "You are in no group, so you could not see a new dashboard. Ask an admin to add you."
        )
    with transaction.atomic():
        dashboard = Dashboard.objects.create(org=org, title=title.strip())
        if acting.role != Role.ADMIN:
            for group in groups:
                group.dashboards.add(dashboard)
        audit.record("dashboard.create", org=org, actor=acting, target=dashboard, ip=ip)
    return dashboard


# Grid: 12 columns; rows grow downwards. Bounds keep every tile on the grid and the CSS
# placement classes (dashboard.css) finite.
GRID_COLUMNS = 12
GRID_ROWS = 100
TILE_MAX_HEIGHT = 12


@dataclass(frozen=True)
class Place:
    """A widget's cell rectangle on the grid: column x, row y, width w and height h."""

    x: int
    y: int
    w: int
    h: int

    def overlaps(self, other: Place) -> bool:
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )

    def below(self) -> int:
        return self.y + self.h


def check_place(x: int, y: int, w: int, h: int) -> Place:
    """The place if it lies on the grid; ValidationError naming each offending field."""
    errors: dict[str, str] = {}
    if not 1 <= w <= GRID_COLUMNS:
        errors["w"] = f"Width must be 1 to {GRID_COLUMNS} columns."
    if not 1 <= h <= TILE_MAX_HEIGHT:
        errors["h"] = f"Height must be 1 to {TILE_MAX_HEIGHT} rows."
    if not 0 <= x < GRID_COLUMNS:
        errors["x"] = f"Column must be 0 to {GRID_COLUMNS - 1}."
    elif "w" not in errors and x + w > GRID_COLUMNS:
        errors["x"] = f"Column {x} plus width {w} runs past the {GRID_COLUMNS}-column grid."
    if not 0 <= y < GRID_ROWS:
        errors["y"] = f"Row must be 0 to {GRID_ROWS - 1}."
    if errors:
        raise ValidationError(errors)
    return Place(x, y, w, h)


def _settle(widgets: list[Widget], fixed: Widget, place: Place) -> list[Widget]:
    """Put `fixed` at `place` and push every widget it would overlap further down (never up,
    never sideways), cascading. Returns the widgets whose place changed (unsaved)."""
    placed: list[Place] = [place]
    moved: list[Widget] = []
    others = sorted((w for w in widgets if w.pk != fixed.pk), key=lambda w: (w.y, w.x))
    for other in others:
        spot = Place(other.x, other.y, other.w, other.h)
        while hits := [p for p in placed if p.overlaps(spot)]:
            spot = Place(spot.x, max(p.below() for p in hits), spot.w, spot.h)
        if spot.y >= GRID_ROWS:
            raise ValidationError("The dashboard is full: there is no room below to move to.")
        if spot.y != other.y:
            other.y = spot.y
            moved.append(other)
        placed.append(spot)
    return moved


def _check_metric(dashboard: Dashboard, metric: Metric | None) -> None:
    # Forms offer only the org's metrics; this is the backstop for any other caller.
    if metric is not None and metric.org_id != dashboard.org_id:
        raise ValidationError({"metric": "Choose a metric of this organization."})


def do_rename_dashboard(
    dashboard: Dashboard, title: str, *, acting: User, ip: str | None
) -> Dashboard:
    """Rename a dashboard the caller was allowed to edit (policy.access checked that)."""
    title = title.strip()
    if not title:
        raise ValidationError({"title": "A dashboard needs a title."})
    with transaction.atomic():
        dashboard.title = title[:120]
        dashboard.save(update_fields=["title"])
        audit.record(
            "dashboard.rename", org=dashboard.org_id, actor=acting, target=dashboard, ip=ip
        )
    return dashboard


def do_duplicate_dashboard(
    dashboard: Dashboard, *, title: str | None = None, acting: User, ip: str | None
) -> Dashboard:
    """Copy a dashboard the caller may edit: its widgets (same metrics, options and places)
    and its grants (the same groups of the org see the copy)."""
    new_title = (title or "").strip() or f"Copy of {dashboard.title}"
    with transaction.atomic():
        copy = Dashboard.objects.create(org_id=dashboard.org_id, title=new_title[:120])
        widgets = Widget.objects.filter(org_id=dashboard.org_id, dashboard=dashboard)
        Widget.objects.bulk_create(
            Widget(
                org_id=dashboard.org_id,
                dashboard=copy,
                kind=widget.kind,
                title=widget.title,
                metric_id=widget.metric_id,
                config=widget.config,
                x=widget.x,
                y=widget.y,
                w=widget.w,
                h=widget.h,
            )
            for widget in widgets
        )
        groups = Group.objects.filter(org_id=dashboard.org_id, dashboards=dashboard)
        copy.granted_to.add(*groups)
        audit.record(
            "dashboard.duplicate",
            org=dashboard.org_id,
            actor=acting,
            target=copy,
            ip=ip,
            source=dashboard.pk,
        )
    return copy


def do_delete_dashboard(dashboard: Dashboard, *, acting: User, ip: str | None) -> None:
    """Delete a dashboard, its widgets and its grants (metrics and data stay)."""
    with transaction.atomic():
        audit.record(
            "dashboard.delete", org=dashboard.org_id, actor=acting, target=dashboard, ip=ip
        )
        dashboard.delete()


def do_create_widget(
    dashboard: Dashboard,
    *,
    kind: str,
    title: str,
    metric: Metric | None,
    config: dict[str, Any],
    w: int,
    h: int,
    acting: User,
    ip: str | None,
) -> Widget:
    """Add a widget at the bottom left of the grid. `config` is checked by validate_config
    and the metric must belong to the dashboard's org (ValidationError otherwise)."""
    _check_metric(dashboard, metric)
    cleaned = validate_config(kind, config, has_metric=metric is not None)
    with transaction.atomic():
        rows = Widget.objects.select_for_update().filter(
            org_id=dashboard.org_id, dashboard=dashboard
        )
        bottom = max((row.y + row.h for row in rows), default=0)
        if bottom >= GRID_ROWS:
            raise ValidationError("The dashboard is full: remove or shrink a widget first.")
        place = check_place(0, bottom, w, h)
        widget = Widget.objects.create(
            org_id=dashboard.org_id,
            dashboard=dashboard,
            kind=kind,
            title=title.strip()[:120],
            metric=metric,
            config=cleaned,
            x=place.x,
            y=place.y,
            w=place.w,
            h=place.h,
        )
        audit.record(
            "widget.create",
            org=dashboard.org_id,
            actor=acting,
            target=widget,
            ip=ip,
            dashboard=dashboard.pk,
        )
    return widget


def do_update_widget(
    widget: Widget,
    *,
    kind: str,
    title: str,
    metric: Metric | None,
    config: dict[str, Any],
    acting: User,
    ip: str | None,
) -> Widget:
    """Change a widget's kind, title, metric and options (validated as on create)."""
    _check_metric(widget.dashboard, metric)
    cleaned = validate_config(kind, config, has_metric=metric is not None)
    with transaction.atomic():
        widget.kind, widget.title, widget.metric, widget.config = (
            kind,
            title.strip()[:120],
            metric,
            cleaned,
        )
        widget.save(update_fields=["kind", "title", "metric", "config"])
        audit.record(
            "widget.update",
            org=widget.org_id,
            actor=acting,
            target=widget,
            ip=ip,
            dashboard=widget.dashboard_id,
        )
    return widget


def do_delete_widget(widget: Widget, *, acting: User, ip: str | None) -> None:
    """Remove a widget from its dashboard (the metric and its data stay)."""
    with transaction.atomic():
        audit.record(
            "widget.delete",
            org=widget.org_id,
            actor=acting,
            target=widget,
            ip=ip,
            dashboard=widget.dashboard_id,
        )
        widget.delete()


def do_arrange_widget(
    widget: Widget, place: Place, *, acting: User, ip: str | None
) -> dict[str, Place]:
    """Move and/or resize a widget; widgets it would cover are pushed down (cascading).
    Returns the place of every widget of the dashboard by id, after the change."""
    place = check_place(place.x, place.y, place.w, place.h)
    with transaction.atomic():
        widgets = list(
            Widget.objects.select_for_update().filter(
                org_id=widget.org_id, dashboard_id=widget.dashboard_id
            )
        )
        moved = _settle(widgets, widget, place)
        widget.x, widget.y, widget.w, widget.h = place.x, place.y, place.w, place.h
        Widget.objects.bulk_update([widget, *moved], ["x", "y", "w", "h"])
        audit.record(
            "widget.arrange",
            org=widget.org_id,
            actor=acting,
            target=widget,
            ip=ip,
            dashboard=widget.dashboard_id,
            pushed=len(moved),
        )
    layout = {str(w.pk): Place(w.x, w.y, w.w, w.h) for w in widgets if w.pk != widget.pk}
    layout[str(widget.pk)] = place
    return layout
