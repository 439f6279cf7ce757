"""The integration form (one per connector kind) and staff's plain-HTTP exception form.

Strict: every value that ends up in Integration.config is checked here (addresses, names of
query parameters and headers, dotted paths, sizes); the secret never leaves `cleaned_data`
except into the action or a connection test, and its input is never rendered back.
"""

from __future__ import annotations

import re
import ssl
from typing import Any
from urllib.parse import urlsplit

from django import forms

from dashvault.integrations.connectors import for_kind
from dashvault.integrations.models import Integration, Kind
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization

PARAM_RE = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,64}$")
HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
PATH_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,200}$")  # dotted paths and CSV column names
FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "cookie"}
AUTH_WITH_SECRET = {"header", "bearer", "basic", "oauth2"}
MAX_PEM = 20_000

AUTH_CHOICES = [
    ("none", "None"),
    ("header", "API key in a header"),
    ("bearer", "Bearer token"),
    ("basic", "HTTP basic (user name and password)"),
    ("oauth2", "OAuth2 client credentials"),
]
PAGINATION_CHOICES = [
    ("none", "None (one answer)"),
    ("next_link", "Next-page link in the answer"),
    ("cursor", "Cursor in the answer"),
    ("page", "Page numbers"),
]
DELIMITER_CHOICES = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Bar |")]
STATUS_CHOICES = [("", "All deals"), ("open", "Open"), ("won", "Won"), ("lost", "Lost")]

# Which config keys each kind keeps (in Integration.config, beside `mapping`).
AUTH_KEYS = ["auth", "header_name", "username", "token_url", "client_id", "scope"]
REST_KEYS = ["records_path", "pagination", "next_path", "cursor_path", "cursor_param"]
REST_KEYS += ["page_param", "page_size_param", "page_size", "since_param", "since_field"]
KIND_KEYS: dict[str, list[str]] = {
    "rest": ["url", *REST_KEYS, *AUTH_KEYS],
    "csv": ["url", "delimiter", *AUTH_KEYS],
    "hubspot": ["url"],
    "pipedrive": ["url", "status"],
    "salesforce": ["url", "query", "client_id"],
}
MAPPING_FIELDS = {"map_timestamp": "timestamp", "map_value": "value"}
MAPPING_FIELDS |= {"map_dimension": "dimension", "map_id": "id"}
URL_PLACEHOLDERS = {
    "hubspot": "https://api.hubapi.com",
    "pipedrive": "https://yourcompany.pipedrive.com",
    "salesforce": "https://yourcompany.my.salesforce.com",
}


def _param(label: str, **kwargs: Any) -> forms.CharField:
    return forms.CharField(required=False, max_length=64, label=label, **kwargs)


def _path(label: str, required: bool = False, **kwargs: Any) -> forms.CharField:
    return forms.CharField(required=required, max_length=200, label=label, **kwargs)


class IntegrationForm(forms.Form):
    name = forms.CharField(max_length=120, label="Name")
    metric = forms.ModelChoiceField(queryset=Metric.objects.none(), label="Metric")
    every_minutes = forms.IntegerField(
        min_value=5, max_value=1440, initial=15, label="Sync every (minutes)"
    )
    enabled = forms.BooleanField(required=False, label="Enabled (syncs on its schedule)")
    url = forms.CharField(max_length=2000, label="URL")
    # rest
    records_path = _path(
        "Records path", help_text="Dotted path to the list of records; empty: the answer is it."
    )
    pagination = forms.ChoiceField(choices=PAGINATION_CHOICES, initial="none", label="Pagination")
    next_path = _path("Next-page link path")
    cursor_path = _path("Cursor path")
    cursor_param = _param("Cursor parameter")
    page_param = _param("Page parameter")
    page_size_param = _param("Page size parameter")
    page_size = forms.IntegerField(
        required=False, min_value=1, max_value=1000, initial=100, label="Page size"
    )
    since_param = _param("Incremental: parameter", help_text="Sent with the largest value seen.")
    since_field = _path("Incremental: record field")
    # csv
    delimiter = forms.ChoiceField(choices=DELIMITER_CHOICES, initial=",", label="Delimiter")
    # authentication (rest, csv)
    auth = forms.ChoiceField(choices=AUTH_CHOICES, initial="none", label="Authentication")
    header_name = forms.CharField(
        required=False, max_length=64, label="Header name", help_text="e.g. X-API-Key"
    )
    username = forms.CharField(required=False, max_length=200, label="User name")
    token_url = forms.CharField(required=False, max_length=2000, label="Token URL")
    client_id = forms.CharField(required=False, max_length=255, label="Client id")
    scope = forms.CharField(required=False, max_length=500, label="Scope")
    # pipedrive, salesforce
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, label="Deals", initial="")
    query = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="SOQL query",
        help_text="e.g. SELECT Id, Amount, CloseDate, StageName FROM Opportunity "
        "WHERE IsWon = true",
    )
    # mapping
    map_timestamp = _path("Time field", required=True)
    map_value = _path("Value field", required=True)
    map_dimension = _path("Dimension field (optional)")
    map_id = _path(
        "Id field (optional)", help_text="A record synced again replaces its earlier point."
    )
    ca_pem = forms.CharField(
        required=False,
        max_length=MAX_PEM,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="CA certificate (PEM, optional)",
        help_text="Only if the service's certificate comes from your own CA.",
    )
    secret = forms.CharField(
        required=False,
        max_length=4000,
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
        super().__init__(*args, **kwargs)
        self.kind, self.integration = kind, integration
        self.fields["metric"].queryset = Metric.objects.filter(org=org)  # type: ignore[attr-defined]
        self.fields["metric"].label_from_instance = lambda m: f"{m.name} ({m.key})"  # type: ignore[attr-defined]
        keep = {"name", "metric", "every_minutes", "ca_pem", "secret", *MAPPING_FIELDS}
        keep |= set(KIND_KEYS[kind])
        if integration is not None:
            keep |= {"enabled", "remove_secret"}
            self.fields["secret"].label = "Replace the secret"
            self.fields["secret"].help_text = "Leave empty to keep the stored one."
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        if kind in URL_PLACEHOLDERS:
            self.fields["url"].widget.attrs["placeholder"] = URL_PLACEHOLDERS[kind]
        if kind == "salesforce":
            self.fields["client_id"].label = "Connected app consumer key (client id)"
            self.fields["client_id"].required = True

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

    def _clean_url(self, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  # raises ValueError on a bad port
        except ValueError:
            raise forms.ValidationError("Not a valid web address.") from None
        allow_http = self.integration is not None and self.integration.allow_http
        schemes = ("https", "http") if allow_http else ("https",)
        if parts.scheme.lower() not in schemes:
            raise forms.ValidationError(
                "Use an https:// address"
                + ("." if allow_http else " (plain HTTP only with platform staff's exception).")
            )
        if not parts.hostname or any(c.isspace() for c in value):
            raise forms.ValidationError("Not a valid web address.")
        if "@" in parts.netloc:
            raise forms.ValidationError(
                "Put credentials in the secret field, never in the address."
            )
        if parts.fragment:
            raise forms.ValidationError("The address must not have a #fragment.")
        return value

    def clean_url(self) -> str:
        return self._clean_url(self.cleaned_data["url"])

    def clean_token_url(self) -> str:
        return self._clean_url(self.cleaned_data.get("token_url", ""))

    def clean_header_name(self) -> str:
        value = self.cleaned_data.get("header_name", "").strip()
        if value and (not HEADER_RE.fullmatch(value) or value.lower() in FORBIDDEN_HEADERS):
            raise forms.ValidationError("Not a header name this can send (letters, digits, -).")
        return value

    def clean_query(self) -> str:
        value = self.cleaned_data.get("query", "").strip()
        if not value.lower().startswith("select "):
            raise forms.ValidationError("The SOQL query must start with SELECT.")
        return value

    def clean_ca_pem(self) -> str:
        value = self.cleaned_data.get("ca_pem", "").strip()
        if not value:
            return ""
        if "PRIVATE KEY" in value:
            raise forms.ValidationError("Paste the CA certificate only, never a private key.")
        try:
            ssl.create_default_context().load_verify_locations(cadata=value)
        except (ssl.SSLError, ValueError):
            raise forms.ValidationError("Not a PEM certificate.") from None
        return value + "\n"

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for name in ("cursor_param", "page_param", "page_size_param", "since_param"):
            value = data.get(name, "")
            if value and not PARAM_RE.fullmatch(value):
                self.add_error(name, "Use letters, digits, _ . - [ ] only (at most 64).")
        for name in (*MAPPING_FIELDS, "records_path", "next_path", "cursor_path", "since_field"):
            value = data.get(name, "")
            if value and not PATH_RE.fullmatch(value):
                self.add_error(name, "No control characters.")
        pagination = data.get("pagination", "none")
        needs = {"next_link": "next_path", "cursor": "cursor_path"}
        if pagination in needs and not data.get(needs[pagination]):
            self.add_error(needs[pagination], "This pagination needs it.")
        if bool(data.get("since_param")) != bool(data.get("since_field")):
            self.add_error("since_field", "Set both the parameter and the field, or neither.")
        auth = data.get("auth", "none")
        if auth == "header" and not data.get("header_name"):
            self.add_error("header_name", "Name the header the key goes in.")
        if auth == "oauth2":
            for name in ("token_url", "client_id"):
                if not data.get(name):
                    self.add_error(name, "OAuth2 client credentials need it.")
        if data.get("secret") and data.get("remove_secret"):
            self.add_error("secret", "Either replace the credential or remove it, not both.")
        elif self.needs_secret(auth) and not data.get("secret"):
            stored = self.integration is not None and self.integration.has_credential
            if not stored or data.get("remove_secret"):
                self.add_error("secret", "This way of signing in needs a secret.")
        return data

    def needs_secret(self, auth: str) -> bool:
        if self.kind in ("hubspot", "pipedrive", "salesforce"):
            return True
        return auth in AUTH_WITH_SECRET

    # -- results --------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The settings as the kind's connector reads them (Integration.config)."""
        data = self.cleaned_data
        config: dict[str, Any] = {}
        for key in KIND_KEYS[self.kind]:
            value = data.get(key)
            if value not in (None, ""):
                config[key] = value
        if self.kind in ("rest", "csv") and config.get("auth", "none") == "none":
            for key in AUTH_KEYS:
                config.pop(key, None)
        mapping = {key: data[name] for name, key in MAPPING_FIELDS.items() if data.get(name)}
        config["mapping"] = mapping
        if self.kind == "hubspot":
            # The search API returns only the properties asked for: ask for the mapped ones.
            wanted = {p.split(".")[0] for k, p in mapping.items() if k != "id"}
            extra = sorted(wanted - set(for_kind("hubspot").PROPERTIES))
            if extra:
                config["properties"] = extra
        return config

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
