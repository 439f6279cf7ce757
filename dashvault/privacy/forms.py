from __future__ import annotations

from typing import Any

from django import forms


class ConfirmForm(forms.Form):
    """Type the exact name of what goes (an e-mail address, an org's name) to confirm."""

    confirm = forms.CharField(max_length=254, strip=True)

    def __init__(self, *args: Any, expected: str, what: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected, self.what = expected, what
        self.fields["confirm"].label = f"Type the {what} to confirm"

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data["confirm"])
        if value.casefold() != self.expected.strip().casefold():
            raise forms.ValidationError(f"That is not the {self.what}: nothing was changed.")
        return value
