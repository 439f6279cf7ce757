"""/api/v1/: push data points, manage metrics and integrations with an org API token (OpenAPI
at /api/v1/openapi.json). Thin: principal → scope → access → validated input → action."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, ProtectedError, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Header, NinjaAPI, Query, Status
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser

from dashvault import audit
from dashvault.api import schemas
from dashvault.api.auth import BearerToken, TooManyGuesses
from dashvault.api.models import IdempotencyRecord, Scope
from dashvault.integrations import actions as integration_actions
from dashvault.integrations import config as integration_config
from dashvault.integrations.models import Integration, SyncRun
from dashvault.metrics import ingest, queries
from dashvault.metrics.models import Metric
from dashvault.policy import guard
from dashvault.policy.access import access_integration, access_metric, require_scope
from dashvault.policy.principal import TokenPrincipal

MAX_ERRORS = 100
logger = logging.getLogger(__name__)


class UnsupportedMediaType(Exception):
    pass


class JsonOnlyParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        if request.content_type != "application/json":
            raise UnsupportedMediaType
        return super().parse_body(request)


api = NinjaAPI(
    title="dashvault API",
    version="1",
    description="Push data points, manage metrics and integrations. Authenticate with "
    "`Authorization: Bearer <org API token>`.",
    urls_namespace="api_v1",
    docs_url=None,  # the interactive docs page loads assets from a CDN: not served
    openapi_url="/openapi.json",
    auth=BearerToken(),
    parser=JsonOnlyParser(),
)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, UnsupportedMediaType):
        return api.create_response(
            request,
            {"detail": "Send the body as JSON (Content-Type: application/json)."},
            status=415,
        )
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(TooManyGuesses)
def too_many_guesses(request: HttpRequest, exc: TooManyGuesses) -> HttpResponse:
    return guard.refused(request, exc.retry_after)


@api.exception_handler(ValidationError)
def invalid_input(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = []
    for error in exc.errors[:MAX_ERRORS]:
        loc = [part for part in error.get("loc", ()) if part not in ("body", "payload")]
        entry: dict[str, Any] = {"loc": _dotted(loc), "message": error.get("msg", "invalid")}
        if len(loc) >= 2 and loc[0] == "points" and isinstance(loc[1], int):
            entry["index"], entry["field"] = loc[1], ".".join(str(p) for p in loc[2:]) or None
        errors.append(entry)
    body: dict[str, Any] = {"detail": "Invalid input; nothing was stored.", "errors": errors}
    if len(exc.errors) > MAX_ERRORS:
        body["truncated"] = len(exc.errors) - MAX_ERRORS
    return api.create_response(request, body, status=422)


def _dotted(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@api.exception_handler(RequestDataTooBig)
def too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return api.create_response(
        request, {"detail": "Request body too large; send at most 10,000 points."}, status=413
    )


@api.exception_handler(Exception)
def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # API clients get JSON even for a bug; the traceback goes to the log (ids only there).
    logger.exception("api: unexpected error on %s", request.path)
    return api.create_response(
        request, {"detail": "Internal error; nothing was stored."}, status=500
    )


@api.exception_handler(PermissionDenied)
def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "Forbidden"}, status=403)


def _answers(ok: dict[int, Any], *, key: bool = False, body: bool = False) -> dict[int, Any]:
    """The operation's own answers and the errors every API call can give (documented in the
    schema, so clients and the fuzzing know them)."""
    errors: dict[int, Any] = {
        401: schemas.ErrorOut,
        403: schemas.ErrorOut,
        422: schemas.InvalidOut,
        429: schemas.ErrorOut,
        500: schemas.ErrorOut,
    }
    if key:
        errors[404] = schemas.ErrorOut
    if body:
        errors |= {400: schemas.ErrorOut, 413: schemas.ErrorOut, 415: schemas.ErrorOut}
    return errors | ok


def _principal(request: HttpRequest, scope: str) -> TokenPrincipal:
    principal = request.auth  # type: ignore[attr-defined]  # set by ninja from BearerToken
    assert isinstance(principal, TokenPrincipal)  # noqa: S101  (auth= guarantees it)
    require_scope(principal, scope)
    return principal


def _audit(principal: TokenPrincipal, action: str, target: Any = None, **detail: Any) -> None:
    audit.record(
        action,
        org=principal.org,
        actor=principal.token.pk,
        actor_kind="token",
        target=target,
        ip=principal.ip,
        **detail,
    )


@api.post(
    "/datapoints",
    response=_answers(
        {201: schemas.PushOut, 200: schemas.PushOut, 409: schemas.ErrorOut}, body=True
    ),
    summary="Push up to 10,000 data points, all or nothing",
)
def push_datapoints(
    request: HttpRequest,
    payload: schemas.PushIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
) -> Any:
    """A point with an `external_id` already stored replaces it. With an `Idempotency-Key`
    header, a retried request returns the first answer and stores nothing again."""
    principal = _principal(request, Scope.PUSH)
    points = [
        ingest.PointIn(p.metric, p.ts, p.value, p.dimension, p.external_id) for p in payload.points
    ]
    body_hash = hashlib.sha256(request.body).hexdigest()
    try:
        with transaction.atomic():
            if idempotency_key:
                replay = _replay(principal, idempotency_key, body_hash)
                if replay is not None:
                    return replay
            stored = ingest.do_ingest(principal.org, points)
            _audit(principal, "api.push", count=stored)
            answer = {"stored": stored}
            if idempotency_key:
                IdempotencyRecord.objects.create(
                    org=principal.org,
                    key=idempotency_key,
                    request_hash=body_hash,
                    status=201,
                    body=answer,
                )
    except ingest.UnknownMetrics as exc:
        return Status(
            400, {"detail": f"Unknown metric key(s): {', '.join(exc.keys)}. Create them first."}
        )
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first: answer as it did.
        replay = _replay(principal, idempotency_key or "", body_hash) if idempotency_key else None
        if replay is None:
            return Status(409, {"detail": "A concurrent request wrote the same data; retry it."})
        return replay
    return Status(201, answer)


def _replay(principal: TokenPrincipal, key: str, body_hash: str) -> Status | None:
    record = IdempotencyRecord.objects.filter(org=principal.org, key=key).first()
    if record is None:
        return None
    if record.request_hash != body_hash:
        raise HttpError(422, "This Idempotency-Key was used with a different request body.")
    return Status(200, record.body)


@api.get("/metrics", response=_answers({200: list[schemas.MetricOut]}), summary="List metrics")
def list_metrics(request: HttpRequest) -> Any:
    principal = _principal(request, Scope.READ)
    _audit(principal, "api.read")
    return list(Metric.objects.filter(org=principal.org).order_by("key"))


@api.post(
    "/metrics",
    response=_answers({201: schemas.MetricOut, 409: schemas.ErrorOut}, body=True),
    summary="Create a metric",
)
def create_metric(request: HttpRequest, payload: schemas.MetricIn) -> Any:
    principal = _principal(request, Scope.PUSH)
    try:
        with transaction.atomic():
            metric = Metric.objects.create(org=principal.org, **payload.dict())
            _audit(principal, "metric.create", metric)
    except IntegrityError:
        return Status(409, {"detail": f"A metric with key {payload.key!r} already exists."})
    return Status(201, metric)


@api.get(
    "/metrics/{key}", response=_answers({200: schemas.MetricOut}, key=True), summary="Read a metric"
)
def get_metric(request: HttpRequest, key: str) -> Any:
    principal = _principal(request, Scope.READ)
    metric = access_metric(principal, key)
    _audit(principal, "api.read", metric)
    return metric


@api.patch(
    "/metrics/{key}",
    response=_answers({200: schemas.MetricOut}, key=True, body=True),
    summary="Change a metric",
)
def update_metric(request: HttpRequest, key: str, payload: schemas.MetricPatch) -> Any:
    principal = _principal(request, Scope.PUSH)
    metric = access_metric(principal, key)
    changes = payload.dict(exclude_unset=True, exclude_none=True)
    unit = changes.get("unit", metric.unit)
    currency = changes.get("currency", metric.currency)
    problem = schemas.currency_problem(unit, currency)
    if problem:
        return Status(422, {"detail": problem})
    with transaction.atomic():
        for field, value in changes.items():
            setattr(metric, field, value)
        metric.save()
        _audit(principal, "metric.update", metric)
        ingest.announce_change(principal.org, [metric.pk])  # names and units show on screens
    return Status(200, metric)


@api.delete(
    "/metrics/{key}",
    response=_answers({204: None, 409: schemas.ErrorOut}, key=True),
    summary="Delete a metric and its data",
)
def delete_metric(request: HttpRequest, key: str) -> Any:
    principal = _principal(request, Scope.PUSH)
    metric = access_metric(principal, key)
    try:
        with transaction.atomic():
            _audit(principal, "metric.delete", metric)
            metric.delete()
    except ProtectedError:
        return Status(
            409, {"detail": "Widgets show this metric; remove them from their dashboards first."}
        )
    return Status(204, None)


@api.get(
    "/metrics/{key}/series",
    response=_answers({200: schemas.SeriesOut}, key=True),
    summary="Read a metric's series",
)
def metric_series(request: HttpRequest, key: str, query: Query[schemas.SeriesQuery]) -> Any:
    """Values per day, ISO week or month over local days start..end (from the rollups), one
    series, or one per dimension (the ten largest; the rest as "(other)")."""
    principal = _principal(request, Scope.READ)
    metric = access_metric(principal, key)
    aggregation = query.aggregation or metric.aggregation
    starts, values = queries.series(
        metric, query.start, query.end, query.bucket, aggregation, query.by_dimension
    )
    _audit(principal, "api.read", metric)
    return {
        "key": metric.key,
        "bucket": query.bucket,
        "aggregation": aggregation,
        "starts": starts,
        "series": values,
    }


class RangeQuery(schemas.Strict):
    start: schemas.Instant
    end: schemas.Instant
    dimension: schemas.Text | None = None


@api.delete(
    "/metrics/{key}/points",
    response=_answers({200: schemas.DeletedOut}, key=True),
    summary="Delete a metric's points with start <= ts < end",
)
def delete_points(request: HttpRequest, key: str, query: Query[RangeQuery]) -> Any:
    principal = _principal(request, Scope.PUSH)
    metric = access_metric(principal, key)
    if query.end <= query.start:
        return Status(422, {"detail": "end must be after start"})
    deleted = ingest.do_delete_points(
        principal.org, metric, query.start, query.end, query.dimension
    )
    _audit(principal, "api.delete_points", metric, count=deleted)
    return Status(200, {"deleted": deleted})


# -- integrations (scope "integrations") --------------------------------------------------------
# The credential is write-only: no answer carries it (IntegrationOut shows only "set" or "not
# set"), and refusals name the field, never its value (see invalid_input).


def _invalid(errors: dict[str, list[str]]) -> ValidationError:
    """Refusals found after parsing, answered like pydantic's (invalid_input)."""
    return ValidationError(
        [
            {"loc": tuple(place.split(".")) if place else (), "msg": message}
            for place, messages in errors.items()
            for message in messages
        ]
    )


def _integration_metric(
    principal: TokenPrincipal, key: str, errors: dict[str, list[str]]
) -> Metric | None:
    try:
        return access_metric(principal, key)
    except Http404:
        # A body field, not the path: a refusal, alike for another org's key and a missing one.
        errors["metric"] = ["No metric with this key; create it first."]
        return None


def _clean_config(
    kind: str, config: dict[str, Any], *, allow_http: bool, errors: dict[str, list[str]]
) -> dict[str, Any]:
    try:
        return integration_config.clean_config(kind, config, allow_http=allow_http)
    except integration_config.ConfigErrors as exc:
        for place, messages in exc.errors.items():
            errors[f"config.{place}" if place else "config"] = messages
        return config


def _config_refused(errors: dict[str, list[str]]) -> bool:
    return any(place == "config" or place.startswith("config.") for place in errors)


def _check_credential(kind: str, config: dict[str, Any], has_credential: bool) -> list[str]:
    if integration_config.needs_secret(kind, config.get("auth", "none")) and not has_credential:
        return ["This way of signing in needs a credential."]
    return []


def _integration_out(integration: Integration, last_run: SyncRun | None) -> dict[str, Any]:
    """What an answer shows of an integration: named fields only, the credential as "set"."""
    return {
        "id": integration.pk,
        "name": integration.name,
        "kind": integration.kind,
        "metric": integration.metric.key,
        "enabled": integration.enabled,
        "every_minutes": integration.every_minutes,
        "config": integration.config,
        "credential": "set" if integration.has_credential else "not set",
        "ca_pem": integration.ca_pem,
        "allow_http": integration.allow_http,
        "next_run_at": integration.next_run_at,
        "failing": integration.failing,
        "failures": integration.failures,
        "last_run": last_run,
        "created_at": integration.created_at,
    }


def _last_run(integration: Integration) -> SyncRun | None:
    runs = SyncRun.objects.filter(org=integration.org_id, integration=integration)
    return runs.order_by("-started_at").first()


@api.get(
    "/integrations",
    response=_answers({200: list[schemas.IntegrationOut]}),
    summary="List integrations",
)
def list_integrations(request: HttpRequest) -> Any:
    principal = _principal(request, Scope.INTEGRATIONS)
    latest = SyncRun.objects.filter(integration=OuterRef("pk")).order_by("-started_at")
    integrations = list(
        Integration.objects.filter(org=principal.org)
        .select_related("metric")
        .annotate(latest_run_id=Subquery(latest.values("pk")[:1]))
        .order_by("name", "created_at")
    )
    runs = SyncRun.objects.in_bulk([i.latest_run_id for i in integrations if i.latest_run_id])
    _audit(principal, "api.read", resource="integrations")
    return [_integration_out(i, runs.get(i.latest_run_id)) for i in integrations]


@api.post(
    "/integrations",
    response=_answers({201: schemas.IntegrationOut}, body=True),
    summary="Create an integration (its first sync is due at once)",
)
def create_integration(request: HttpRequest, payload: schemas.IntegrationIn) -> Any:
    principal = _principal(request, Scope.INTEGRATIONS)
    errors: dict[str, list[str]] = {}
    metric = _integration_metric(principal, payload.metric, errors)
    # A new integration never has staff's plain-HTTP exception.
    config = _clean_config(payload.kind, payload.config, allow_http=False, errors=errors)
    secret = payload.credential.get_secret_value() if payload.credential else ""
    if not _config_refused(errors):
        if problem := _check_credential(payload.kind, config, bool(secret)):
            errors["credential"] = problem
    if errors or metric is None:
        raise _invalid(errors)
    integration = integration_actions.do_create_integration(
        principal.org,
        acting=principal.token,
        ip=principal.ip,
        name=payload.name,
        kind=payload.kind,
        metric=metric,
        config=config,
        secret=secret,
        ca_pem=payload.ca_pem,
        every_minutes=payload.every_minutes,
    )
    return Status(201, _integration_out(integration, None))


@api.get(
    "/integrations/{integration_id}",
    response=_answers({200: schemas.IntegrationOut}, key=True),
    summary="Read an integration",
)
def get_integration(request: HttpRequest, integration_id: str) -> Any:
    principal = _principal(request, Scope.INTEGRATIONS)
    integration = access_integration(principal, integration_id)
    _audit(principal, "api.read", integration)
    return _integration_out(integration, _last_run(integration))


@api.patch(
    "/integrations/{integration_id}",
    response=_answers({200: schemas.IntegrationOut}, key=True, body=True),
    summary="Change an integration",
)
def update_integration(
    request: HttpRequest, integration_id: str, payload: schemas.IntegrationPatch
) -> Any:
    """Absent fields stay. `config` replaces all the settings (read, change, send back).
    `credential`: absent keeps the stored one, "" removes it, a value replaces it."""
    principal = _principal(request, Scope.INTEGRATIONS)
    integration = access_integration(principal, integration_id)
    sent = payload.model_fields_set
    errors: dict[str, list[str]] = {}
    metric: Metric | None = integration.metric
    if payload.metric is not None:
        metric = _integration_metric(principal, payload.metric, errors)
    config = integration.config
    if payload.config is not None:
        config = _clean_config(
            integration.kind, payload.config, allow_http=integration.allow_http, errors=errors
        )
    # null is refused (schemas.IntegrationPatch): None here means absent, keep the stored one.
    secret = payload.credential.get_secret_value() if payload.credential is not None else None
    has_credential = bool(secret) if secret is not None else integration.has_credential
    if ("config" in sent or "credential" in sent) and not _config_refused(errors):
        if problem := _check_credential(integration.kind, config, has_credential):
            errors["credential"] = problem
        elif (
            secret is None
            and integration.has_credential
            and integration_config.credential_target(config)
            != integration_config.credential_target(integration.config)
        ):
            # The stored credential is never sent elsewhere than where it was given for.
            errors["credential"] = [
                "Send the credential again: with this config it would go to another address "
                "or in another way than it was given for."
            ]
    if errors or metric is None:
        raise _invalid(errors)
    integration_actions.do_update_integration(
        integration,
        acting=principal.token,
        ip=principal.ip,
        name=payload.name if payload.name is not None else integration.name,
        metric=metric,
        config=config,
        secret=secret,
        ca_pem=payload.ca_pem if payload.ca_pem is not None else integration.ca_pem,
        every_minutes=payload.every_minutes or integration.every_minutes,
        enabled=payload.enabled if payload.enabled is not None else integration.enabled,
    )
    return Status(200, _integration_out(integration, _last_run(integration)))


@api.delete(
    "/integrations/{integration_id}",
    response=_answers({204: None}, key=True),
    summary="Delete an integration (the data it stored stays in the metric)",
)
def delete_integration(request: HttpRequest, integration_id: str) -> Any:
    principal = _principal(request, Scope.INTEGRATIONS)
    integration = access_integration(principal, integration_id)
    integration_actions.do_delete_integration(integration, acting=principal.token, ip=principal.ip)
    return Status(204, None)


@api.post(
    "/integrations/{integration_id}/sync",
    response=_answers({202: schemas.SyncOut}, key=True, body=True),
    summary="Queue a sync now",
)
def sync_integration(
    request: HttpRequest, integration_id: str, payload: schemas.SyncIn | None = None
) -> Any:
    """`{"full": true}` syncs from scratch, ignoring the incremental cursor; an empty body
    is a normal sync."""
    principal = _principal(request, Scope.INTEGRATIONS)
    integration = access_integration(principal, integration_id)
    full = payload.full if payload is not None else False
    integration_actions.do_request_sync(
        integration, acting=principal.token, ip=principal.ip, full=full
    )
    return Status(202, {"queued": True, "full": full})
