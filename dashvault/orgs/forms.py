from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms

from dashvault.accounts.models import User
from dashvault.dashboards.models import Dashboard
from dashvault.orgs.models import Organization


class GroupForm(forms.Form):
    name = forms.CharField(max_length=120)
    members = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )
    dashboards = forms.ModelMultipleChoiceField(
        queryset=Dashboard.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Choices scoped to the org: a posted id from another org is "not a valid choice".
        self.fields["members"].queryset = User.objects.filter(org=org)  # type: ignore[attr-defined]
        self.fields["dashboards"].queryset = Dashboard.objects.filter(org=org)  # type: ignore[attr-defined]


class OrgSettingsForm(forms.Form):
    name = forms.CharField(max_length=120)
    time_zone = forms.ChoiceField(choices=[(z, z) for z in sorted(zoneinfo.available_timezones())])
    require_mfa = forms.BooleanField(
        required=False, label="Require two-factor authentication for every member"
    )


class NetworksForm(forms.Form):
    networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        label="Allowed networks",
        help_text="One IPv4 or IPv6 network (CIDR) per line, e.g. 203.0.113.0/24 or "
        "2001:db8:1::/48. Empty: no filter.",
    )
