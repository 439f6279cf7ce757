"""Form helpers shared by the views."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError


def add_errors(
    form: forms.Form, exc: ValidationError, renames: dict[str, str] | None = None
) -> None:
    """Put an action's ValidationError on the form: each field's messages on that field (or
    the form field `renames` names for it) when the form has it, the rest at the top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, texts in exc.message_dict.items():
        target = (renames or {}).get(field, field)
        form.add_error(target if target in form.fields else None, texts)
