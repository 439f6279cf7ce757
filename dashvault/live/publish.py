"""Live updates leave here: computed once per dashboard, handed to every server process.

Data flows one way (DESIGN §3): a commit sends `metrics_changed` → `on_metrics_changed` finds
the org's dashboards with widgets on those metrics → for each, `dashboard_data` runs ONCE, in
the thread where the data committed, and its JSON text is built ONCE → the text goes to every
process: straight to this process's hub in embedded mode (no DASHVAULT_REDIS_URL), or as one
PUBLISH on one Redis channel that each process's single subscription feeds to its own hub.

The same bus carries the events that close screens: a session or user ending (`end_*`) and
grants changing (`recheck`, from the receivers below).

Security contract:
- Nothing here decides access; screens were admitted by policy (consumers) and updates go only
  to screens of the very dashboard they were computed for. `dashboard_data` reads the widget's
  own org's metrics only.
- Events carry ids and hashes of session keys, never a key, a name or an e-mail address;
  log lines likewise carry ids only.
- A failure here is logged and swallowed: the data already committed, and a push or a
  sign-out must never answer 500 because a screen could not be told.
- `end_*` and `recheck` fire after the surrounding transaction commits, so a screen that
  reconnects at once meets the new state (the session gone, the grant removed).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from dashvault.accounts.models import User
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.live.admission import admissions
from dashvault.live.hub import channel_for, hub, kiosk_owner, session_digest, user_owner
from dashvault.orgs.models import Group

logger = logging.getLogger(__name__)


def render(dashboard: Dashboard, *, fresh: bool = False) -> str:
    """The dashboard's update as sent to browsers: {"type": "data", ...dashboard_data}.

    `fresh` computes the data now (and refreshes the shared cache: data just changed);
    otherwise the cached JSON serves (a new screen's first snapshot). Callers have checked
    access (or are publishing to screens that were admitted)."""
    # Imported here: dashboards.widgets imports the metrics read side, which must not load
    # while the app registry is still starting up.
    from dashvault.dashboards import datacache

    text = datacache.refresh(dashboard) if fresh else datacache.dashboard_json(dashboard)
    return '{"type":"data",' + text[1:]  # the cached object's members, after the type


def forget_cached(dashboard_id: str) -> None:
    from dashvault.dashboards import datacache

    datacache.forget(dashboard_id)
    admissions.forget_text(dashboard_id)


def render_by_id(dashboard_id: str) -> str | None:
    """`render` for a dashboard id (a resync after a lost subscription); None when deleted."""
    dashboard = Dashboard.objects.filter(pk=dashboard_id).first()
    return render(dashboard, fresh=True) if dashboard is not None else None


def affected_dashboards(org_id: uuid.UUID, metric_ids: Iterable[uuid.UUID]) -> list[Dashboard]:
    """The org's dashboards with at least one widget on one of the metrics."""
    widgets = Widget.objects.filter(org_id=org_id, metric_id__in=list(metric_ids))
    return list(Dashboard.objects.filter(org_id=org_id, id__in=widgets.values("dashboard_id")))


def publish_dashboards(dashboards: Iterable[Dashboard]) -> int:
    """Compute each dashboard's update once and send it to every process; returns how many
    were sent. Also for callers that change what a dashboard shows (widgets edited)."""
    sent = 0
    redis_mode = bool(settings.REDIS_URL)
    for dashboard in dashboards:
        dashboard_id = str(dashboard.pk)
        if not redis_mode and not hub.watching(dashboard_id):
            # Embedded: nobody shows it, so nothing to compute now; the next reader will.
            forget_cached(dashboard_id)
            continue
        try:
            emit("data", {"d": dashboard_id}, render(dashboard, fresh=True))
            sent += 1
        except Exception:  # one broken dashboard must not keep the others from updating
            logger.exception("live: update of dashboard %s failed", dashboard_id)
    return sent


def on_metrics_changed(
    sender: Any, org_id: uuid.UUID, metric_ids: Iterable[uuid.UUID], **kwargs: Any
) -> None:
    """Receiver of metrics.ingest.metrics_changed (sent on commit)."""
    try:
        publish_dashboards(affected_dashboards(org_id, metric_ids))
    except Exception:
        logger.exception("live: updates for org %s failed", org_id)


# -- closing screens ---------------------------------------------------------------------------


def end_user_sockets(user_id: object, *, keep_session_key: str | None = None) -> None:
    """After commit, close (4401) every screen of the user in every process, except those of
    `keep_session_key` (the session that changed its own password stays signed in)."""
    header = {"o": user_owner(user_id), "keep": session_digest(keep_session_key)}
    transaction.on_commit(lambda: emit_safely("end", header))


def end_session_sockets(user_id: object, session_key: str | None) -> None:
    """After commit, close (4401) the screens opened with one session (sign-out) in every
    process; with no session key known, all of the user's screens (fail closed)."""
    header = {"o": user_owner(user_id), "only": session_digest(session_key)}
    transaction.on_commit(lambda: emit_safely("end", header))


def end_kiosk_sockets(link_id: object, code: int, reason: str) -> None:
    """After commit, close every screen of a kiosk link in every process with `code` (4410:
    the link was revoked or rotated; 4001: its settings changed, the page reloads)."""
    header = {"o": kiosk_owner(link_id), "c": code, "r": reason}
    transaction.on_commit(lambda: emit_safely("end", header))


def recheck(dashboard_ids: Iterable[object] = (), user_ids: Iterable[object] = ()) -> None:
    """After commit, close (4000) the screens of these dashboards and users in every process;
    they reconnect through the policy check, which re-admits exactly those still allowed."""
    header = {"d": [str(d) for d in dashboard_ids], "o": [user_owner(u) for u in user_ids]}
    if header["d"] or header["o"]:
        transaction.on_commit(lambda: emit_safely("recheck", header))


# -- the bus -----------------------------------------------------------------------------------


def emit(kind: str, header: dict[str, Any], body: str = "") -> None:
    """Hand an event to every process: this one's hub, or one PUBLISH for all of them."""
    # This process first, synchronously: warm data reads (live.admission) stop before the
    # event can be seen anywhere else. Other processes apply it from their subscription.
    admissions.apply(kind, header, body)
    url = settings.REDIS_URL  # read at call time: tests flip it
    if not url:
        hub.post(kind, header, body)
        return
    # One line of JSON header, then the body verbatim: the update text is not re-encoded.
    envelope = json.dumps({"k": kind, **header}, separators=(",", ":")) + "\n" + body
    _redis(url).publish(channel_for(url), envelope)


def emit_safely(kind: str, header: dict[str, Any]) -> None:
    try:
        emit(kind, header)
    except redis.RedisError:
        # The session is gone from the store anyway, so a reconnect is refused; but open
        # screens in other processes stay open until then: say so loudly.
        logger.error("live: could not publish a %s event; screens elsewhere may stay open", kind)


@cache
def _redis(url: str) -> redis.Redis:
    # One client (its own thread-safe connection pool) per URL for the process's lifetime.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


# -- grants and accounts changing --------------------------------------------------------------


def _on_grants_changed(
    sender: Any, instance: Any, action: str, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    # A dashboard removed from a group (either side of the relation): its screens re-check.
    if action not in ("post_remove", "pre_clear"):
        return  # additions grant more: nobody open loses access
    if isinstance(instance, Dashboard):
        recheck(dashboard_ids=[instance.pk])
    elif action == "pre_clear":
        recheck(dashboard_ids=instance.dashboards.values_list("pk", flat=True))
    else:
        recheck(dashboard_ids=pk_set or ())


def _on_members_changed(
    sender: Any, instance: Any, action: str, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    # A user removed from a group (either side): their screens re-check.
    if action not in ("post_remove", "pre_clear"):
        return
    if isinstance(instance, User):
        recheck(user_ids=[instance.pk])
    elif action == "pre_clear":
        recheck(user_ids=instance.members.values_list("pk", flat=True))
    else:
        recheck(user_ids=pk_set or ())


def _on_group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    # The membership rows go by cascade, without m2m signals: collect the members first.
    recheck(user_ids=list(instance.members.values_list("pk", flat=True)))


def _on_dashboard_deleted(sender: Any, instance: Dashboard, **kwargs: Any) -> None:
    recheck(dashboard_ids=[instance.pk])  # the reconnect finds nothing: 4404


ACCESS_FIELDS = frozenset({"role", "is_active", "org", "is_platform_staff"})


def _on_widget_changed(sender: Any, instance: Widget, **kwargs: Any) -> None:
    # Widgets added, edited, moved or removed: open screens get the new layout's data.
    dashboard_id = instance.dashboard_id
    transaction.on_commit(
        lambda: publish_dashboards(Dashboard.objects.filter(pk=dashboard_id)), robust=True
    )


def _on_user_saved(
    sender: Any, instance: User, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    # Role, activity or org may have changed (update_fields None: unknown, so assume it).
    if created or (update_fields is not None and not ACCESS_FIELDS & set(update_fields)):
        return
    if not instance.is_active:
        end_user_sockets(instance.pk)  # deactivated: signed out everywhere (4401)
    else:
        recheck(user_ids=[instance.pk])


def _on_user_deleted(sender: Any, instance: User, **kwargs: Any) -> None:
    end_user_sockets(instance.pk)


def connect_receivers() -> None:
    """Called once from LiveConfig.ready."""
    from dashvault.metrics.ingest import metrics_changed

    metrics_changed.connect(on_metrics_changed, dispatch_uid="live.metrics_changed")
    m2m_changed.connect(
        _on_grants_changed, sender=Group.dashboards.through, dispatch_uid="live.grants"
    )
    m2m_changed.connect(
        _on_members_changed, sender=Group.members.through, dispatch_uid="live.members"
    )
    pre_delete.connect(_on_group_deleted, sender=Group, dispatch_uid="live.group_deleted")
    post_delete.connect(
        _on_dashboard_deleted, sender=Dashboard, dispatch_uid="live.dashboard_deleted"
    )
    post_save.connect(_on_widget_changed, sender=Widget, dispatch_uid="live.widget_saved")
    post_delete.connect(_on_widget_changed, sender=Widget, dispatch_uid="live.widget_deleted")
    post_save.connect(_on_user_saved, sender=User, dispatch_uid="live.user_saved")
    post_delete.connect(_on_user_deleted, sender=User, dispatch_uid="live.user_deleted")
