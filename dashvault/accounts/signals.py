"""Audit entries and session rules hooked onto Django's and allauth's account signals."""

from __future__ import annotations

import time
from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals
from django.dispatch import receiver
from django.http import HttpRequest

from dashvault import audit
from dashvault.accounts.middleware import STARTED
from dashvault.accounts.models import User, normalize_email
from dashvault.accounts.sessions import end_sessions
from dashvault.live.publish import end_session_sockets


def _ip(request: HttpRequest | None) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


@receiver(auth_signals.user_logged_in)
def on_signed_in(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    request.session[STARTED] = int(time.time())
    audit.record("signin", org=user.org_id, actor=user, ip=_ip(request))


@receiver(auth_signals.user_logged_out)
def on_signed_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        audit.record("signout", org=user.org_id, actor=user, ip=_ip(request))
        # This session's live dashboards close too (all of the user's when it is unknown).
        session = getattr(request, "session", None)
        end_session_sockets(user.pk, session.session_key if session is not None else None)


@receiver(auth_signals.user_login_failed)
def on_signin_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # The typed e-mail never reaches the log: only the id of a matching account, if any.
    email = credentials.get("email") or credentials.get("username") or ""
    user = User.objects.filter(email=normalize_email(str(email))).only("id", "org_id").first()
    audit.record(
        "signin.failed",
        org=user.org_id if user else None,
        actor=user.pk if user else None,
        actor_kind="user" if user else "anonymous",
        ip=_ip(request),
    )


def _password_changed(request: HttpRequest, user: User, action: str) -> None:
    # Django already invalidates other sessions through the session auth hash; ending them
    # here removes them from the store and closes their live screens.
    keep = request.session.session_key if request.user.is_authenticated else None
    end_sessions(user, keep_session_key=keep)
    audit.record(action, org=user.org_id, actor=user, target=user, ip=_ip(request))


@receiver(account_signals.password_changed)
def on_password_changed(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    _password_changed(request, user, "password.change")


@receiver(account_signals.password_set)
def on_password_set(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    _password_changed(request, user, "password.set")


@receiver(account_signals.password_reset)
def on_password_reset(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    _password_changed(request, user, "password.reset")


def _mfa_event(action: str, request: HttpRequest, user: User, authenticator: Any) -> None:
    audit.record(action, org=user.org_id, actor=user, ip=_ip(request), kind=authenticator.type)


@receiver(mfa_signals.authenticator_added)
def on_mfa_added(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any
) -> None:
    _mfa_event("mfa.add", request, user, authenticator)


@receiver(mfa_signals.authenticator_removed)
def on_mfa_removed(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any
) -> None:
    _mfa_event("mfa.remove", request, user, authenticator)


@receiver(mfa_signals.authenticator_reset)
def on_mfa_reset(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any
) -> None:
    _mfa_event("mfa.reset", request, user, authenticator)
