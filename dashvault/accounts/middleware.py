"""Session policy: absolute timeout, idle timeout refresh, and mandatory MFA enrolment."""

from __future__ import annotations

import time
from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

STARTED = "dv_started"  # when the user signed in (set by accounts.signals)
SEEN = "dv_seen"  # last time the idle expiry was pushed forward
TOUCH_EVERY = 60  # seconds: refresh the idle expiry at most once a minute, not every request

# Paths a user who must enrol MFA may still reach.
MFA_SETUP_PREFIXES = ("/accounts/2fa/", "/accounts/logout/", "/accounts/reauthenticate/")


def needs_mfa_enrolment(user: object) -> bool:
    """Whether `user` must enrol a second factor before using anything: the org (or staff
    status) requires one and none exists. Checked per request and per websocket admission,
    never cached, so removing a factor anywhere takes effect everywhere."""
    return mfa_required(user) and not Authenticator.objects.filter(user_id=user.pk).exists()  # type: ignore[attr-defined]  # a signed-in user


def mfa_required(user: object) -> bool:
    if getattr(user, "is_platform_staff", False):
        return True
    org = getattr(user, "org", None)
    return bool(org and org.require_mfa)


class SessionPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            session = request.session
            now = int(time.time())
            started = session.setdefault(STARTED, now)
            if now - started > settings.SESSION_ABSOLUTE_SECONDS:
                logout(request)
                messages.info(request, "Your session has ended. Please sign in again.")
                return redirect(settings.LOGIN_URL)
            if now - session.get(SEEN, 0) > TOUCH_EVERY:
                session[SEEN] = now  # marks the session modified: expiry moves to now + idle
            if needs_mfa_enrolment(user):
                if not request.path.startswith(MFA_SETUP_PREFIXES):
                    messages.warning(
                        request,
                        "Your organization requires two-factor authentication. "
                        "Set up an authenticator app to continue.",
                    )
                    return redirect("mfa_activate_totp")
        return self.get_response(request)
