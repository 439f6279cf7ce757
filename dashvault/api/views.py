"""/api/v1/: push data points and manage metrics with an org API token (OpenAPI at
/api/v1/openapi.json). Thin: principal → scope → access → validated input → action."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from ninja import Header, NinjaAPI, Query, Status
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser

from dashvault import audit
from dashvault.api import schemas
from dashvault.api.auth import BearerToken, TooManyGuesses
from dashvault.api.models import IdempotencyRecord, Scope
from dashvault.metrics import ingest, queries
from dashvault.metrics.models import Metric
from dashvault.policy import guard
from dashvault.policy.access import access_metric, require_scope
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
    description="Push data points and manage metrics. Authenticate with `Authorization: "
    "Bearer <org API token>`.",
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
    response={
        201: schemas.PushOut,
        200: schemas.PushOut,
        400: schemas.ErrorOut,
        409: schemas.ErrorOut,
    },
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


@api.get("/metrics", response=list[schemas.MetricOut], summary="List metrics")
def list_metrics(request: HttpRequest) -> Any:
    principal = _principal(request, Scope.READ)
    _audit(principal, "api.read")
    return list(Metric.objects.filter(org=principal.org).order_by("key"))


@api.post(
    "/metrics", response={201: schemas.MetricOut, 409: schemas.ErrorOut}, summary="Create a metric"
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


@api.get("/metrics/{key}", response=schemas.MetricOut, summary="Read a metric")
def get_metric(request: HttpRequest, key: str) -> Any:
    principal = _principal(request, Scope.READ)
    metric = access_metric(principal, key)
    _audit(principal, "api.read", metric)
    return metric


@api.patch(
    "/metrics/{key}",
    response={200: schemas.MetricOut, 422: schemas.ErrorOut},
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
    response={204: None, 409: schemas.ErrorOut},
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


@api.get("/metrics/{key}/series", response=schemas.SeriesOut, summary="Read a metric's series")
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
    response={200: schemas.DeletedOut, 422: schemas.ErrorOut},
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
