"""Kiosk links: org admins manage them; a TV opens one in TV mode at /kiosk/<token>."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from functools import wraps
from io import BytesIO
from typing import Any

import qrcode
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from qrcode.image.svg import SvgPathImage

from dashvault.dashboards import queries
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.kiosk import actions, entry
from dashvault.kiosk.forms import KioskLinkForm
from dashvault.kiosk.models import KioskLink
from dashvault.lib.forms import add_errors
from dashvault.policy import guard, ipfilter, rules
from dashvault.policy.access import access_kiosk_link, require_org_admin
from dashvault.policy.principal import KioskPrincipal, Principal, member_required

# The actions' field names that the form calls otherwise.
RENAMES = {"expires_at": "expires_on", "dashboards": ""}

# -- org admins --------------------------------------------------------------------------------


@require_GET
@member_required
def kiosk_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    links = KioskLink.objects.filter(org=principal.org).prefetch_related("dashboards")
    return render(request, "kiosk/list.html", {"links": links})


@require_http_methods(["GET", "POST"])
@member_required
def kiosk_new(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    form = KioskLinkForm(request.POST or None, org=principal.member_org)
    if request.method == "POST" and form.is_valid():
        try:
            link, secret = actions.do_create_kiosk_link(
                principal.member_org, **form.link_settings(), acting=principal.user, ip=principal.ip
            )
        except ValidationError as exc:
            add_errors(form, exc, RENAMES)
        else:
            return _shown_once(request, link, secret, created=True)
    return render(request, "kiosk/form.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@member_required
def kiosk_edit(request: HttpRequest, principal: Principal, link_id: str) -> HttpResponse:
    link = access_kiosk_link(principal, link_id)
    initial: dict[str, Any] = {
        "name": link.name,
        "rotation_seconds": link.rotation_seconds,
        "networks": "\n".join(link.networks),
    }
    if link.expires_at is not None:
        zone = zoneinfo.ZoneInfo(principal.member_org.time_zone)
        initial["expires_on"] = link.expires_at.astimezone(zone).date()
    form = KioskLinkForm(request.POST or None, org=principal.member_org, link=link, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_update_kiosk_link(
                link, **form.link_settings(), acting=principal.user, ip=principal.ip
            )
        except ValidationError as exc:
            add_errors(form, exc, RENAMES)
        else:
            messages.success(request, "Kiosk link saved. Open screens reload with the changes.")
            return redirect("kiosk_list")
    context = {"form": form, "link": link}
    return render(request, "kiosk/form.html", context, status=400 if form.errors else 200)


@require_POST
@member_required
def kiosk_rotate(request: HttpRequest, principal: Principal, link_id: str) -> HttpResponse:
    link = access_kiosk_link(principal, link_id)
    try:
        secret = actions.do_rotate_kiosk_link(link, acting=principal.user, ip=principal.ip)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("kiosk_list")
    return _shown_once(request, link, secret, created=False)


@require_POST
@member_required
def kiosk_revoke(request: HttpRequest, principal: Principal, link_id: str) -> HttpResponse:
    link = access_kiosk_link(principal, link_id)
    actions.do_revoke_kiosk_link(link, acting=principal.user, ip=principal.ip)
    messages.success(request, "Kiosk link revoked. Screens showing it close within seconds.")
    return redirect("kiosk_list")


def _shown_once(request: HttpRequest, link: KioskLink, secret: str, *, created: bool) -> Any:
    url = request.build_absolute_uri(reverse("kiosk_tv", kwargs={"token": secret}))
    qr = BytesIO()
    qrcode.make(url, image_factory=SvgPathImage, box_size=8, border=2).save(qr)
    context = {"link": link, "url": url, "qr_svg": qr.getvalue().decode(), "created": created}
    response = render(request, "kiosk/created.html", context)
    response["Cache-Control"] = "no-store"  # the URL is the secret: never in a cache
    return response


# -- TV mode -----------------------------------------------------------------------------------

KIOSK_HEADERS = {
    "Referrer-Policy": "no-referrer",  # the URL holds the token: never pass it on
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
}


def with_kiosk_headers(response: HttpResponse) -> HttpResponse:
    for name, value in KIOSK_HEADERS.items():
        response[name] = value
    return response


def kiosk_headers(view: Any) -> Any:
    """Every answer under /kiosk/ (also refusals) carries KIOSK_HEADERS."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return with_kiosk_headers(view(request, *args, **kwargs))

    return wrapper


def kiosk_message(
    request: HttpRequest, title: str, message: str, *, status: int, retry: int | None = None
) -> HttpResponse:
    context = {"title": title, "message": message, "retry_seconds": retry}
    response = render(request, "kiosk/message.html", context, status=status)
    if retry is not None:
        response["Retry-After"] = str(retry)
    return response


def blocked_response(request: HttpRequest, retry_after: int) -> HttpResponse:
    return kiosk_message(
        request,
        "Too many invalid kiosk links",
        "Too many invalid kiosk links were tried from this network. Try again later.",
        status=429,
        retry=retry_after,
    )


REFUSED_RETRY = 300  # seconds

LINK_INVALID = (
    "This kiosk link no longer works",
    "It was revoked, replaced or has expired, or it was mistyped. "
    "Ask your dashvault admin for a new link.",
)


@dataclass
class Board:
    dashboard: Dashboard
    tiles: list[Widget]
    data: dict[str, Any]
    script_id: str


@kiosk_headers
@require_GET
def kiosk_tv(request: HttpRequest, token: str) -> HttpResponse:
    """TV mode: the link's dashboards, rotating, kept live by kiosk websockets (kiosk.js)."""
    ip = request.META.get("REMOTE_ADDR")
    try:
        principal = entry.enter(token, ip, source="kiosk")
    except guard.Blocked as exc:
        return blocked_response(request, exc.retry_after)
    except entry.LinkInvalid:
        return kiosk_message(request, *LINK_INVALID, status=404)
    except ipfilter.AddressRefused as exc:
        # The TV tries again every few minutes: once the network is allowed, it comes back.
        return kiosk_message(
            request, "Not allowed from this network", str(exc), status=403, retry=REFUSED_RETRY
        )
    entry.record_screen_opened(principal)
    boards = [_board(d) for d in _link_dashboards(principal)]
    return render(request, "kiosk/tv.html", {"link": principal.link, "boards": boards})


def _link_dashboards(principal: KioskPrincipal) -> list[Dashboard]:
    # Through policy, in the link's order: the one path decides what a link may show.
    return list(rules.visible_dashboards(principal).order_by("kiosk_entries__position"))


def _board(dashboard: Dashboard) -> Board:
    tiles, data = queries.board(dashboard)
    return Board(dashboard, tiles, data, f"board-data-{dashboard.pk}")
