"""What an integration's settings may be, checked in one place for the pages and the API.

Strict: every value that ends up in Integration.config is checked here (addresses, names of
query parameters and headers, dotted paths, sizes). `ConfigForm` holds the rules;
`IntegrationForm` (the pages) extends it, and `clean_config` runs it on the JSON shape the API
takes (the shape of Integration.config itself). Nothing here sees the secret.
"""

from __future__ import annotations

import re
import ssl
from typing import Any
from urllib.parse import urlsplit

from django import forms

from dashvault.integrations.connectors import for_kind

PARAM_RE = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,64}$")
HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
PATH_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,200}$")  # dotted paths and CSV column names
FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "cookie"}
AUTH_WITH_SECRET = {"header", "bearer", "basic", "oauth2"}
MAX_PEM = 20_000
MAX_SECRET = 4000
MAX_NAME = 120
EVERY_MINUTES_MIN, EVERY_MINUTES_MAX = 5, 1440

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
# What an API client may leave out (the pages always send these).
DEFAULTS = {"pagination": "none", "auth": "none", "delimiter": ","}
INTEGER_KEYS = {"page_size"}
DERIVED_KEYS = {"properties"}  # computed from the mapping (hubspot): ignored on input


def _param(label: str, **kwargs: Any) -> forms.CharField:
    return forms.CharField(required=False, max_length=64, label=label, **kwargs)


def _path(label: str, required: bool = False, **kwargs: Any) -> forms.CharField:
    return forms.CharField(required=required, max_length=200, label=label, **kwargs)


def clean_url(value: str, *, allow_http: bool) -> str:
    """An https:// address (http:// too with staff's exception) with a host, and without
    credentials or a fragment; raises forms.ValidationError (never echoing the value)."""
    value = value.strip()
    if not value:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError:
        raise forms.ValidationError("Not a valid web address.") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        raise forms.ValidationError(
            "Use an https:// address"
            + ("." if allow_http else " (plain HTTP only with platform staff's exception).")
        )
    if not parts.hostname or any(c.isspace() for c in value):
        raise forms.ValidationError("Not a valid web address.")
    if "@" in parts.netloc:
        raise forms.ValidationError("Put credentials in the secret field, never in the address.")
    if parts.fragment:
        raise forms.ValidationError("The address must not have a #fragment.")
    return value


def clean_ca_pem(value: str) -> str:
    """A CA certificate in PEM ("" for none), never a private key; raises
    forms.ValidationError."""
    value = value.strip()
    if not value:
        return ""
    if "PRIVATE KEY" in value:
        raise forms.ValidationError("Paste the CA certificate only, never a private key.")
    try:
        ssl.create_default_context().load_verify_locations(cadata=value)
    except (ssl.SSLError, ValueError, TypeError):  # TypeError: text that is not ASCII
        raise forms.ValidationError("Not a PEM certificate.") from None
    return value + "\n"


def needs_secret(kind: str, auth: str) -> bool:
    """Whether an integration of `kind` signing in with `auth` cannot sync without a secret."""
    if kind in ("hubspot", "pipedrive", "salesforce"):
        return True
    return auth in AUTH_WITH_SECRET


class ConfigForm(forms.Form):
    """The settings kept in Integration.config, the fields of one kind only."""

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
        "Id field",
        required=True,
        help_text="Unique per record: a record synced again replaces its earlier point "
        "instead of adding a second one.",
    )
    decimal_comma = forms.BooleanField(
        required=False, label="Numbers are written with a decimal comma (1.234,5)"
    )

    def __init__(self, *args: Any, kind: str, allow_http: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind, self.allow_http = kind, allow_http
        keep = {*KIND_KEYS[kind], *MAPPING_FIELDS, "decimal_comma"}
        for name in list(ConfigForm.base_fields):
            if name not in keep:
                del self.fields[name]
        if kind == "salesforce":
            self.fields["client_id"].label = "Connected app consumer key (client id)"
            self.fields["client_id"].required = True

    def clean_url(self) -> str:
        return clean_url(self.cleaned_data["url"], allow_http=self.allow_http)

    def clean_token_url(self) -> str:
        return clean_url(self.cleaned_data.get("token_url", ""), allow_http=self.allow_http)

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
        return data

    def needs_secret(self, auth: str) -> bool:
        return needs_secret(self.kind, auth)

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
        if data.get("decimal_comma"):
            mapping["decimal"] = ","
        config["mapping"] = mapping
        if self.kind == "hubspot":
            # The search API returns only the properties asked for: ask for the mapped ones.
            wanted = {p.split(".")[0] for k, p in mapping.items() if k != "id"}
            extra = sorted(wanted - set(for_kind("hubspot").PROPERTIES))
            if extra:
                config["properties"] = extra
        return config


class ConfigErrors(Exception):
    """The settings were refused: `errors` maps a dotted place in the config ("url",
    "mapping.value", "" for the whole) to its messages, none of which repeats a value."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid integration settings")
        self.errors = errors


def clean_config(kind: str, config: dict[str, Any], *, allow_http: bool) -> dict[str, Any]:
    """Check settings in Integration.config's own shape (as the API takes and shows them) by
    the same rules as the pages, and return them as they are stored; raise ConfigErrors.

    Unknown keys are refused; `properties` (derived from the mapping) is ignored."""
    errors: dict[str, list[str]] = {}
    flat: dict[str, Any] = {key: value for key, value in DEFAULTS.items() if key in KIND_KEYS[kind]}
    if "mapping" not in config:  # the named connectors' own mapping, as the pages prefill it
        default = getattr(for_kind(kind), "DEFAULT_MAPPING", {})
        flat |= {name: default[key] for name, key in MAPPING_FIELDS.items() if key in default}
    for key, value in config.items():
        if key in DERIVED_KEYS:
            continue
        if key == "mapping":
            flat |= _flat_mapping(value, errors)
        elif key not in KIND_KEYS[kind]:
            errors[key] = [f"Not a setting of a {kind} integration."]
        elif value is None:
            flat.pop(key, None)
        elif key in INTEGER_KEYS and isinstance(value, int) and not isinstance(value, bool):
            flat[key] = value
        elif isinstance(value, str):
            flat[key] = value
        else:
            errors[key] = ["Must be a whole number." if key in INTEGER_KEYS else "Must be text."]
    form = ConfigForm(flat, kind=kind, allow_http=allow_http)
    if not form.is_valid():
        for name, field_errors in form.errors.as_data().items():
            if name == "__all__":
                place = ""
            elif name in MAPPING_FIELDS:
                place = f"mapping.{MAPPING_FIELDS[name]}"
            else:
                place = name
            errors.setdefault(place, []).extend(_messages(field_errors))
    if errors:
        raise ConfigErrors(errors)
    return form.config()


def _flat_mapping(value: Any, errors: dict[str, list[str]]) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors["mapping"] = ["Must be an object of record fields (timestamp, value, …)."]
        return {}
    by_key = {key: name for name, key in MAPPING_FIELDS.items()}
    flat: dict[str, Any] = {}
    for key, path in value.items():
        if key == "decimal":
            if path not in (".", ","):
                errors["mapping.decimal"] = ['Must be "." or ",".']
            flat["decimal_comma"] = path == ","
        elif key not in by_key:
            errors[f"mapping.{key}"] = [f"Map one of: {', '.join(by_key)}."]
        elif path is not None and not isinstance(path, str):
            errors[f"mapping.{key}"] = ["Must be text."]
        elif path is not None:
            flat[by_key[key]] = path
    return flat


def _messages(field_errors: list[forms.ValidationError]) -> list[str]:
    """The errors' sentences, none repeating the submitted value (Django words some with it:
    "Select a valid choice. X is not one of the available choices.")."""
    out = []
    for error in field_errors:
        value = (error.params or {}).get("value")
        for message in error.messages:
            if value not in (None, "") and str(value) in message:
                invalid_choice = error.code == "invalid_choice"
                message = "Select a valid choice." if invalid_choice else "Not a value this takes."
            out.append(message)
    return out


def credential_target(config: dict[str, Any]) -> tuple[Any, ...]:
    """Where and how a credential is sent: the origins of the address and the token endpoint,
    the way of authenticating and the header name. A stored credential is used only while
    this stays the same; changing it asks for the credential again, so it cannot be pointed
    at another host."""
    from dashvault.lib.http import origin

    return (
        origin(str(config.get("url", ""))),
        origin(str(config.get("token_url", ""))),
        config.get("auth", ""),
        str(config.get("header_name", "")).lower(),
    )


def clean_secret(value: str) -> str:
    """A credential goes into an HTTP header: no control characters (a trailing newline from
    a pasted file would otherwise make every request fail, with the value in the error)."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise forms.ValidationError(
            "The credential contains a line break or another control character."
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise forms.ValidationError("The credential can only hold Latin-1 characters.") from None
    return value
