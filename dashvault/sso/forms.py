from __future__ import annotations

from typing import Any

from django import forms

from dashvault.accounts.models import Role, User
from dashvault.orgs.models import Group, Organization


class ProviderForm(forms.Form):
    client_id = forms.CharField(max_length=255, label="Client id (application id)")
    client_secret = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.PasswordInput(render_value=False),
        label="Client secret",
        help_text="Stored encrypted and never shown again. Leave empty to keep the current one.",
    )
    tenant_id = forms.CharField(
        required=False, max_length=64, label="Directory (tenant) id", help_text="Azure AD only."
    )
    hosted_domain = forms.CharField(
        required=False,
        max_length=253,
        label="Google Workspace domain (hd)",
        help_text="Google only: only accounts of this Workspace domain may sign in.",
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")


class SsoSettingsForm(forms.Form):
    domains = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed e-mail domains",
        help_text="One per line, e.g. example.com. People sign in with SSO only with an "
        "address at one of these, and the sign-in page finds your organization by them.",
    )
    federation = forms.BooleanField(
        required=False,
        label="Federation: create accounts for people of these domains at their first "
        "SSO sign-in (as viewers in the default groups)",
    )
    password_signin = forms.BooleanField(
        required=False, label="Allow password sign-in (off: SSO only, except the break-glass admin)"
    )
    break_glass = forms.ModelChoiceField(
        queryset=User.objects.none(),
        required=False,
        label="Break-glass admin",
        help_text="The one admin who may still sign in with a password (and a second factor) "
        "when password sign-in is off.",
    )
    default_groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Default groups for people created by federation",
    )

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        admins = User.objects.filter(org=org, role=Role.ADMIN, is_active=True)
        self.fields["break_glass"].queryset = admins  # type: ignore[attr-defined]
        self.fields["default_groups"].queryset = Group.objects.filter(org=org)  # type: ignore[attr-defined]


class MappingForm(forms.Form):
    value = forms.CharField(
        max_length=255,
        label="Claim value",
        help_text="An Azure AD group object id (groups claim) or an app role value (roles).",
    )
    group = forms.ModelChoiceField(queryset=Group.objects.none(), required=False)
    role = forms.ChoiceField(choices=[("", "(keep)")] + list(Role.choices), required=False)

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = Group.objects.filter(org=org)  # type: ignore[attr-defined]


class StartForm(forms.Form):
    email = forms.EmailField(label="Your work e-mail address")
