from __future__ import annotations

from django import forms


class DashboardForm(forms.Form):
    title = forms.CharField(max_length=120)
