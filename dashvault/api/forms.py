from __future__ import annotations

from django import forms

from dashvault.api.models import Scope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=120)
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, initial=[Scope.PUSH]
    )
    expires_days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, label="Expires after (days, optional)"
    )
