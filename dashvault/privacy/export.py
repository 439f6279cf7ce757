"""GDPR exports: what dashvault holds about one person, and everything an org owns.

Both are JSON. Secrets never leave: no password hashes, MFA seeds, token hashes, sealed
credentials or SSO provider tokens; an entry says such a thing exists instead. The org export
streams (data points can be millions of rows) and is built from one org's rows only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from allauth.usersessions.models import UserSession
from django.db.models import Q

from dashvault.accounts.models import User
from dashvault.api.models import ApiToken
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.integrations.models import Integration
from dashvault.kiosk.models import KioskLink
from dashvault.metrics.models import DataPoint, Metric
from dashvault.orgs.models import Group, Organization
from dashvault.sso.models import ClaimMapping, EmailDomain, IdentityProvider

FORMAT = 1
BATCH = 5000


def _when(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _audit(entries: Iterable[AuditEntry]) -> list[dict[str, Any]]:
    return [
        {
            "at": _when(e.at),
            "action": e.action,
            "actor_kind": e.actor_kind,
            "actor_id": str(e.actor_id) if e.actor_id else None,
            "target_type": e.target_type,
            "target_id": e.target_id,
            "ip": e.ip,
            "detail": e.detail,
        }
        for e in entries
    ]


def person(user: User) -> dict[str, Any]:
    """Everything dashvault holds about `user` (GDPR access)."""
    return {
        "format": FORMAT,
        "kind": "person",
        "exported_at": _when(dt.datetime.now(dt.UTC)),
        "account": _account(user),
        "groups": sorted(user.dashboard_groups.values_list("name", flat=True)),
        "email_addresses": [
            {"email": a.email, "verified": a.verified, "primary": a.primary}
            for a in EmailAddress.objects.filter(user=user)
        ],
        "single_sign_on": [
            {
                "provider": s.provider,
                "uid": s.uid,
                "date_joined": _when(s.date_joined),
                "last_login": _when(s.last_login),
                "claims": s.extra_data,  # what the identity provider said about them
            }
            for s in SocialAccount.objects.filter(user=user)
        ],
        "mfa_devices": [
            {
                "type": a.type,
                "created_at": _when(a.created_at),
                "last_used_at": _when(a.last_used_at),
            }
            for a in Authenticator.objects.filter(user=user)
        ],
        "sessions": [
            {
                "ip": s.ip,
                "user_agent": s.user_agent,
                "created_at": _when(s.created_at),
                "last_seen_at": _when(s.last_seen_at),
            }
            for s in UserSession.objects.filter(user=user)
        ],
        "api_tokens_created": [
            {"name": t.name, "prefix": t.prefix, "created_at": _when(t.created_at)}
            for t in ApiToken.objects.filter(created_by=user)
        ],
        "kiosk_links_created": [
            {"name": k.name, "prefix": k.prefix, "created_at": _when(k.created_at)}
            for k in KioskLink.objects.filter(created_by=user)
        ],
        # What they did, and what was done to their account.
        "audit": _audit(
            AuditEntry.objects.filter(
                Q(actor_id=user.pk) | Q(target_type="user", target_id=str(user.pk))
            ).order_by("id")
        ),
    }


def _account(user: User) -> dict[str, Any]:
    return {
        "id": str(user.pk),
        "email": user.email,
        "org": str(user.org_id) if user.org_id else None,
        "role": user.role,
        "platform_staff": user.is_platform_staff,
        "active": user.is_active,
        "may_use_sso": user.sso_allowed,
        "has_password": user.has_usable_password(),
        "created_at": _when(user.created_at),
        "last_login": _when(user.last_login),
    }


def org(organization: Organization) -> Iterator[str]:
    """Everything `organization` owns (GDPR portability), as JSON text in pieces."""
    scope = {"org": organization}
    head = {
        "format": FORMAT,
        "kind": "organization",
        "exported_at": _when(dt.datetime.now(dt.UTC)),
        "organization": {
            "id": str(organization.pk),
            "name": organization.name,
            "time_zone": organization.time_zone,
            "require_mfa": organization.require_mfa,
            "allowed_networks": organization.allowed_networks,
            "sso_federation": organization.sso_federation,
            "password_signin": organization.password_signin,
            "created_at": _when(organization.created_at),
        },
        "members": [_account(u) for u in User.objects.filter(**scope)],
        "groups": [
            {
                "id": str(g.pk),
                "name": g.name,
                "members": sorted(str(pk) for pk in g.members.values_list("pk", flat=True)),
                "dashboards": sorted(str(pk) for pk in g.dashboards.values_list("pk", flat=True)),
            }
            for g in Group.objects.filter(**scope)
        ],
        "dashboards": [
            {
                "id": str(d.pk),
                "title": d.title,
                "widgets": [
                    {
                        "id": str(w.pk),
                        "kind": w.kind,
                        "title": w.title,
                        "metric": str(w.metric_id) if w.metric_id else None,
                        "config": w.config,
                        "position": [w.x, w.y, w.w, w.h],
                    }
                    for w in Widget.objects.filter(dashboard=d)
                ],
            }
            for d in Dashboard.objects.filter(**scope)
        ],
        "api_tokens": [
            {
                "name": t.name,
                "prefix": t.prefix,
                "scopes": t.scopes,
                "created_at": _when(t.created_at),
                "revoked_at": _when(t.revoked_at),
            }
            for t in ApiToken.objects.filter(**scope)
        ],
        "kiosk_links": [
            {"name": k.name, "prefix": k.prefix, "created_at": _when(k.created_at)}
            for k in KioskLink.objects.filter(**scope)
        ],
        "integrations": [
            {
                "id": str(i.pk),
                "name": i.name,
                "kind": i.kind,
                "metric": str(i.metric_id),
                "config": i.config,
                "credential_set": bool(i.credential),  # never the credential itself
                "every_minutes": i.every_minutes,
            }
            for i in Integration.objects.filter(**scope)
        ],
        "single_sign_on": {
            "providers": [
                {"kind": p.kind, "client_id": p.client_id, "tenant_id": p.tenant_id}
                for p in IdentityProvider.objects.filter(**scope)
            ],
            "email_domains": list(
                EmailDomain.objects.filter(**scope).values_list("domain", flat=True)
            ),
            "claim_mappings": [
                {"value": m.value, "group": str(m.group_id) if m.group_id else None, "role": m.role}
                for m in ClaimMapping.objects.filter(**scope)
            ],
        },
    }
    # The head without its closing brace, then the big lists streamed in batches.
    yield json.dumps(head)[:-1]
    yield ', "metrics": ['
    for number, metric in enumerate(Metric.objects.filter(**scope).order_by("key")):
        described = {
            "id": str(metric.pk),
            "key": metric.key,
            "name": metric.name,
            "unit": metric.unit,
            "currency": metric.currency,
            "aggregation": metric.aggregation,
        }
        yield ("," if number else "") + json.dumps(described)[:-1] + ', "points": ['
        points = (
            DataPoint.objects.filter(org=organization, metric=metric)
            .order_by("ts", "id")
            .values_list("ts", "value", "dimension", "external_id")
        )
        for count, (ts, value, dimension, external_id) in enumerate(points.iterator(BATCH)):
            point = {"ts": ts.isoformat(), "value": value}
            if dimension:
                point["dimension"] = dimension
            if external_id is not None:
                point["external_id"] = external_id
            yield ("," if count else "") + json.dumps(point)
        yield "]}"
    yield '], "audit": ['
    entries = AuditEntry.objects.filter(org=organization).order_by("id").iterator(BATCH)
    for count, entry in enumerate(entries):
        yield ("," if count else "") + json.dumps(_audit([entry])[0])
    yield "]}"
