"""Ending sessions: used on password change, deactivation and absolute timeout."""

from __future__ import annotations

from collections.abc import Iterable

from allauth.usersessions.adapter import DefaultUserSessionsAdapter
from allauth.usersessions.models import UserSession

from dashvault.accounts.models import User
from dashvault.live.publish import end_session_sockets, end_user_sockets


def end_sessions(user: User, *, keep_session_key: str | None = None) -> int:
    """End every session of `user` except `keep_session_key`; returns how many ended.

    Sessions also die on their next request once the password hash or is_active changes
    (Django's session auth hash); ending them here removes them from the store at once, and
    closes the user's live dashboard sockets (but the kept session's) in every process.
    """
    ended = 0
    for user_session in UserSession.objects.filter(user=user):
        if user_session.session_key != keep_session_key:
            user_session.end()
            ended += 1
    end_user_sockets(user.pk, keep_session_key=keep_session_key)
    return ended


class UserSessionsAdapter(DefaultUserSessionsAdapter):
    """allauth's "sign out other sessions" (the Sessions page) also closes those sessions'
    live dashboard screens in every process, not only their stored sessions."""

    def end_sessions(self, sessions: Iterable[UserSession]) -> None:
        for user_session in sessions:
            user_session.end()
            end_session_sockets(user_session.user_id, user_session.session_key)
