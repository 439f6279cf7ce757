"""The integration form (one per connector kind) and staff's plain-HTTP exception form.

Strict: the settings kept in Integration.config are checked by integrations.config (the rules
the API shares); the secret never leaves `cleaned_data` except into the action or a connection
test, and its input is never rendered back.
"""

from __future__ import annotations

from typing import Any

from django import forms

from dashvault.integrations import config
from dashvault.integrations.config import AUTH_KEYS, MAPPING_FIELDS, REST_KEYS, ConfigForm
from dashvault.integrations.connectors import for_kind
from dashvault.integrations.models import Integration, Kind
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization

URL_PLACEHOLDERS = {
    "hubspot": "https://api.hubapi.com",
    "pipedrive": "https://yourcompany.pipedrive.com",
    "salesforce": "https://yourcompany.my.salesforce.com",
}


class IntegrationForm(ConfigForm):
    name = forms.CharField(max_length=config.MAX_NAME, label="Name")
    metric = forms.ModelChoiceField(queryset=Metric.objects.none(), label="Metric")
    every_minutes = forms.IntegerField(
        min_value=config.EVERY_MINUTES_MIN,
        max_value=config.EVERY_MINUTES_MAX,
        initial=15,
        label="Sync every (minutes)",
    )
    enabled = forms.BooleanField(required=False, label="Enabled (syncs on its schedule)")
    ca_pem = forms.CharField(
        required=False,
        max_length=config.MAX_PEM,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="CA certificate (PEM, optional)",
        help_text="Only if the service's certificate comes from your own CA.",
    )
    secret = forms.CharField(
        required=False,
        max_length=config.MAX_SECRET,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="Secret (API key, token, password or client secret)",
        help_text="Stored encrypted and never shown again.",
    )
    remove_secret = forms.BooleanField(required=False, label="Remove the stored credential")

    def __init__(
        self,
        *args: Any,
        org: Organization,
        kind: str,
        integration: Integration | None = None,
        **kwargs: Any,
    ) -> None:
        allow_http = integration is not None and integration.allow_http
        super().__init__(*args, kind=kind, allow_http=allow_http, **kwargs)
        self.integration, self.org = integration, org
        self.fields["metric"].queryset = Metric.objects.filter(org=org)  # type: ignore[attr-defined]
        self.fields["metric"].label_from_instance = lambda m: f"{m.name} ({m.key})"  # type: ignore[attr-defined]
        if integration is None:
            del self.fields["enabled"], self.fields["remove_secret"]
        else:
            self.fields["secret"].label = "Replace the secret"
            self.fields["secret"].help_text = "Leave empty to keep the stored one."
        if kind in URL_PLACEHOLDERS:
            self.fields["url"].widget.attrs["placeholder"] = URL_PLACEHOLDERS[kind]

    # -- layout ---------------------------------------------------------------------------------

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        source = ["url", "delimiter", "status", "query", *REST_KEYS]
        if self.kind == "salesforce":
            source.append("client_id")
        layout = [
            ("General", ["name", "metric", "every_minutes", "enabled"]),
            ("Source", source),
            ("Authentication", AUTH_KEYS if self.kind in ("rest", "csv") else []),
            ("Field mapping", list(MAPPING_FIELDS)),
            ("TLS", ["ca_pem"]),
        ]
        out = []
        for title, names in layout:
            fields = [self[name] for name in names if name in self.fields]
            if fields:
                out.append((title, fields))
        return out

    # -- validation -----------------------------------------------------------------------------

    def clean_ca_pem(self) -> str:
        return config.clean_ca_pem(self.cleaned_data.get("ca_pem", ""))

    def clean_secret(self) -> str:
        return config.clean_secret(self.cleaned_data.get("secret", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        auth = data.get("auth", "none")
        stored = self.integration is not None and self.integration.has_credential
        if data.get("secret") and data.get("remove_secret"):
            self.add_error("secret", "Either replace the credential or remove it, not both.")
        elif self.needs_secret(auth) and not data.get("secret"):
            if not stored or data.get("remove_secret"):
                self.add_error("secret", "This way of signing in needs a secret.")
            elif not self.errors and self.moves_credential():
                self.add_error(
                    "secret",
                    "Enter the secret again: with these settings it would go to another "
                    "address or in another way than it was given for.",
                )
        return data

    def moves_credential(self) -> bool:
        """Whether these settings send the stored credential elsewhere
        (config.credential_target)."""
        assert self.integration is not None  # noqa: S101  (called only with a stored credential)
        before = config.credential_target(self.integration.config)
        return config.credential_target(self.config()) != before

    # -- results --------------------------------------------------------------------------------

    def new_secret(self) -> str | None:
        """None: keep the stored credential; "": remove it; else the replacement."""
        if self.cleaned_data.get("remove_secret"):
            return ""
        return self.cleaned_data.get("secret") or None


def initial_for(integration: Integration | None, kind: str) -> dict[str, Any]:
    """The form's initial values: the stored settings (never the secret), or the defaults."""
    if integration is None:
        mapping = getattr(for_kind(kind), "DEFAULT_MAPPING", {})
        initial: dict[str, Any] = {"every_minutes": 15, "enabled": True}
        if kind == "hubspot":
            initial["url"] = "https://api.hubapi.com"
    else:
        config = integration.config
        mapping = config.get("mapping") or {}
        initial = {
            "name": integration.name,
            "metric": integration.metric_id,
            "every_minutes": integration.every_minutes,
            "enabled": integration.enabled,
            "ca_pem": integration.ca_pem,
        }
        initial |= {k: v for k, v in config.items() if k not in ("mapping", "properties")}
    initial |= {name: mapping.get(key, "") for name, key in MAPPING_FIELDS.items()}
    return initial


def kind_of(value: str | None) -> str:
    return value if value in Kind.values else Kind.REST


class HttpExceptionForm(forms.Form):
    """Staff: allow plain HTTP for one integration, on the customer's request."""

    integration = forms.ModelChoiceField(queryset=Integration.objects.none())
    allow = forms.BooleanField(required=False, label="Allow plain HTTP")
    ticket = forms.CharField(
        max_length=64,
        label="Ticket reference",
        help_text="The customer's written request; needed for every change.",
    )

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["integration"].queryset = Integration.objects.filter(org=org)  # type: ignore[attr-defined]
