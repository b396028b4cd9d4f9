"""Admin API: store profiles, integration settings, money and operations. Each request's caller is authorized first
(IAM, or a named admin key: claimbridge.admin_auth); Powertools' resolver then validates each body against its model
before the service sees it, and the routes' declarations here are what the OpenAPI document (``openapi.json``,
``/internal/openapi.json``) is generated from."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.admin import AdminService
from claimbridge.admin_auth import AdminKeys, Caller, iam_caller, needed_scope
from claimbridge.clients.richpanel import RichpanelClient
from claimbridge.config import get_settings
from claimbridge.credits import CreditService
from claimbridge.crypto import SecretBox
from claimbridge.errors import DomainError, problems_from_errors
from claimbridge.inventory import Inventory
from claimbridge.loyalty import RivoActions
from claimbridge.models.credits import BonusCreditIn, CreditJob, LedgerActionIn
from claimbridge.models.order_protection import InventoryIn, ProtectionCancelIn, ResolutionReportIn
from claimbridge.models.settings import INTEGRATIONS, StoreProfileIn, WidgetUrlIn, partial
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.protection import ProtectionCancels
from claimbridge.providers.rivo import RivoProvider
from claimbridge.queues import QueueAdmin
from claimbridge.reports import ResolutionReports
from claimbridge.returns import ReturnsAdmin
from claimbridge.runtime import (
    aws_client,
    credit_message,
    job_queues,
    oldest_message_age,
    reconcile_message,
    report_message,
    rivo_client,
    send_reports,
    store_directory,
    sync_message,
    table_store,
)

RIVO_TIMEOUT = (3.05, 8.0)  # a write answers within the function's 25 s (API Gateway's 29 s), pacing slot included

app = APIGatewayRestResolver(enable_validation=True)
app.configure_openapi(
    title="claimbridge", security_schemes={"adminKey": APIKey.model_validate({"name": "x-api-key", "in": "header"})}
)
tracer = get_tracer()


@lru_cache(maxsize=1)
def service() -> AdminService:
    settings = get_settings().require(
        "table_name", "kms_key_id", "credit_queue_url", "richpanel_queue_url", "order_protection_queue_url"
    )
    sqs = aws_client("sqs")
    return AdminService(
        store=table_store(),
        secret_box=SecretBox(aws_client("kms"), settings.kms_key_id or ""),
        richpanel=lambda api_key: RichpanelClient(
            api_key=api_key, base_url=settings.richpanel_api_base_url, timeout=(3.05, 8.0)
        ),
        directory=store_directory(),
        limits=settings.money_limits(),
        enqueue_credit=lambda job: sqs.send_message(**credit_message(settings, job)),
        enqueue_claim=lambda store_id, claim_id: sqs.send_message(**reconcile_message(settings, store_id, claim_id)),
        enqueue_report=lambda report: sqs.send_message(**report_message(settings, report)),
        enqueue_sync=lambda store_id, reason: sqs.send_message(**sync_message(settings, store_id, reason)),
    )


@lru_cache(maxsize=1)
def returns() -> ReturnsAdmin:
    settings = get_settings().require("table_name", "postco_queue_url")
    sqs = aws_client("sqs")
    return ReturnsAdmin(
        store=table_store(),
        enqueue_sync=lambda store_id, reason: sqs.send_message(**sync_message(settings, store_id, reason)),
    )


@lru_cache(maxsize=1)
def loyalty() -> RivoActions:
    """Rivo's actions; their non-idempotent writes are made by the credit flow, here and then by the credit worker."""
    settings = get_settings().require("table_name", "kms_key_id", "credit_queue_url", "order_protection_queue_url")
    sqs = aws_client("sqs")

    def enqueue_credit(job: CreditJob, delay_s: int = 0) -> None:
        sqs.send_message(**credit_message(settings, job, delay_s))

    flow = CreditService(
        store=table_store(),
        directory=store_directory(),
        providers={  # a second at most for a pacing slot: then the credit worker sends it (never a slow answer)
            "rivo": RivoProvider.factory(
                lambda key, observer: rivo_client(key, observer=observer, timeout=RIVO_TIMEOUT, max_wait_s=1.0)
            )
        },
        enqueue_report=lambda report: sqs.send_message(**report_message(settings, report)),
        enqueue_credit=enqueue_credit,
        secret_box=SecretBox(aws_client("kms"), settings.kms_key_id or ""),
        limits=settings.money_limits(),
    )
    return RivoActions(
        store=table_store(),
        directory=store_directory(),
        # a second at most for a pacing slot: the caller gets 429 with Retry-After rather than a slow answer
        client_for=lambda key: rivo_client(key, timeout=RIVO_TIMEOUT, max_wait_s=1.0),
        flow=flow,
        enqueue_credit=enqueue_credit,
        limits=settings.money_limits(),
    )


@lru_cache(maxsize=1)
def resolution_reports() -> ResolutionReports:
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url")
    sqs = aws_client("sqs")
    return ResolutionReports(
        store=table_store(),
        directory=store_directory(),
        enqueue_report=lambda report: sqs.send_message(**report_message(settings, report)),
    )


@lru_cache(maxsize=1)
def inventory() -> Inventory:
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url")
    return Inventory(
        store=table_store(), directory=store_directory(), enqueue=lambda jobs: send_reports(settings, jobs)
    )


@lru_cache(maxsize=1)
def cancels() -> ProtectionCancels:
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url")
    return ProtectionCancels(
        store=table_store(), directory=store_directory(), enqueue=lambda job: send_reports(settings, [job])
    )


@lru_cache(maxsize=1)
def admin_keys() -> AdminKeys:
    return AdminKeys(table_store(), bootstrap_digest=get_settings().admin_bootstrap_key_digest)


@lru_cache(maxsize=1)
def queues() -> QueueAdmin:
    settings = get_settings()
    return QueueAdmin(sqs=aws_client("sqs"), queues=job_queues(settings), oldest_age=oldest_message_age)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, default=_plain),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _body() -> Any:
    """The raw JSON body (already checked against the route's model); services validate it again in their terms."""
    raw = app.current_event.body
    if raw is None or raw == "":
        raise BadBodyError("request body is required (JSON)")
    try:
        return json.loads(raw)
    except ValueError as error:
        raise BadBodyError(f"request body is not valid JSON: {error.args[0]}") from error


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):  # money and counts as exact decimal strings, never floats
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class BadBodyError(DomainError):
    status = 400


class UnsupportedMediaError(DomainError):
    status = 415


def _no_content() -> Response:
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@app.exception_handler(DomainError)
def _domain_error(error: DomainError) -> Response:
    logger.info("admin request refused", status=error.status, reason=str(error))
    return _json(error.status, error.body(), error.headers())


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response:
    """Powertools' validation, answered in our shape: 400 for a body that is missing or not JSON, else 422."""
    errors = list(error.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _domain_error(BadBodyError("request body is not valid JSON"))
    if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") == "missing" for e in errors):
        return _domain_error(BadBodyError("request body is required (JSON)"))
    return _domain_error(problems_from_errors(errors, skip=1))


@app.exception_handler(RecursionError)
def _too_deep(error: RecursionError) -> Response:
    """A body nested past the parser's depth, wherever it is parsed (Powertools' validation or ``_body``)."""
    return _domain_error(BadBodyError("request body nests too deeply"))


# -- what the document says each route answers ------------------------------------------------------------------------

ANSWERS = {
    200: "done",
    201: "created",
    202: "queued (or, for a write made once, on its way or held for an operator: `state` and `reason` say)",
    204: "deleted",
    400: "the body is missing, not JSON or nested too deeply",
    401: "missing or wrong x-api-key (ADMIN_AUTH=KEYS), or no SigV4 signature (IAM)",
    403: "the key's scope or stores do not allow this route (KEYS), or IAM does not (IAM)",
    404: "no such store, integration, claim, ledger row or queue",
    409: "the row's state does not allow the action, what is saved changed meanwhile (read it again), the "
    "Idempotency-Key was used for another request, or the integration's key is invalid",
    413: "the body is over API Gateway's 10 MB",
    405: "the action is a POST (a write) or a GET (a read), not what was asked: `Allow` says which",
    415: "the body is not application/json",
    422: "a field, path id or header is invalid (`errors` names each), or the partner refused the request's content",
    429: "the partner's rate limit for this account is in use: retry after `Retry-After` seconds; nothing was done",
    503: "a partner or queue that must be consulted is down; nothing was changed",
}
AUTH = (401, 403)
BODY = (400, 413, 415, 422)


def answers(*statuses: int) -> dict[int, OpenAPIResponse]:
    return {status: OpenAPIResponse(description=ANSWERS[status]) for status in (*statuses, *AUTH)}


def _route(method: str, path: str, summary: str, *statuses: int, tags: list[str] | None = None) -> Any:
    return app.route(
        path,
        method=method,
        summary=summary,
        responses=answers(*statuses),
        tags=tags or ["admin"],
        security=[{"adminKey": []}],
    )


# -- stores -----------------------------------------------------------------------------------------------------------


@_route("PUT", "/internal/stores/<storeId>", "Create or replace a store's profile", 200, 201, 409, *BODY)
def put_store(storeId: str, profile: Annotated[StoreProfileIn, Body()]):
    saved, created = service().put_store(storeId, _body())
    return _json(201 if created else 200, saved)


@_route("PATCH", "/internal/stores/<storeId>", "Change some fields of a store's profile", 200, 404, 409, *BODY)
def patch_store(storeId: str, profile: Annotated[partial(StoreProfileIn), Body()]):  # type: ignore[valid-type]
    saved, _ = service().put_store(storeId, _body(), partial=True)
    return _json(200, saved)


@_route("GET", "/internal/stores/<storeId>", "A store's profile, secrets masked", 200, 404, 422)
def get_store(storeId: str):
    return _json(200, service().get_store(storeId))


@_route("GET", "/internal/stores/<storeId>/claims/<claimId>", "A claim: ticket, ledger, timeline", 200, 404, 422)
def get_claim(storeId: str, claimId: str):
    return _json(200, service().get_claim(storeId, claimId))


@_route(
    "POST",
    "/internal/stores/<storeId>/claims/<claimId>/resolution-report",
    "Report a claim's reship order or refund to Order Protection (once per claim and resolution)",
    200,
    202,
    404,
    409,
    *BODY,
    tags=["order_protection"],
)
def post_resolution_report(storeId: str, claimId: str, report: Annotated[ResolutionReportIn, Body()]):
    row, queued = resolution_reports().request(storeId, claimId, _body(), _caller())
    return _json(202 if queued else 200, row)


@_route(
    "POST",
    "/internal/stores/<storeId>/orders/<sourceOrderId>/protection/cancel",
    "Cancel an order's protection in Order Protection (queued, once per order; by the platform's order id)",
    200,
    202,
    404,
    409,
    *BODY,
    tags=["order_protection"],
)
def post_protection_cancel(storeId: str, sourceOrderId: str, cancel: Annotated[ProtectionCancelIn, Body()]):
    row, queued = cancels().request(storeId, sourceOrderId, _body(), _caller())
    return _json(202 if queued else 200, row)


@_route(
    "GET",
    "/internal/stores/<storeId>/orders/<sourceOrderId>/protection/cancel",
    "An order's protection cancel: its state and when it was sent",
    200,
    404,
    422,
    tags=["order_protection"],
)
def get_protection_cancel(storeId: str, sourceOrderId: str):
    return _json(200, cancels().view(storeId, sourceOrderId))


@_route(
    "PUT",
    "/internal/stores/<storeId>/inventory",
    "Replace the store's inventory (up to 10,000 rows) and push it to Order Protection in chunks",
    202,
    404,
    409,
    *BODY,
    tags=["order_protection"],
)
def put_inventory(storeId: str, inventory_in: Annotated[InventoryIn, Body()]):
    return _json(202, inventory().replace(storeId, _body(), _caller()))


@_route(
    "GET", "/internal/stores/<storeId>/inventory", "The last inventory push", 200, 404, 422, tags=["order_protection"]
)
def get_inventory(storeId: str):
    return _json(200, inventory().last(storeId))


@_route(
    "GET",
    "/internal/stores/<storeId>/returns/<returnId>",
    "A PostCo return: its ledger rows, calls, timeline",
    200,
    404,
    422,
)
def get_return(storeId: str, returnId: str):
    return _json(200, returns().view(storeId, returnId))


@_route(
    "POST",
    "/internal/integrations/postco/stores/<storeId>/sync",
    "Run the store's PostCo returns sync now (queued; its result shows on the postco integration)",
    202,
    404,
    409,
    503,
    tags=["integrations"],
)
def post_postco_sync(storeId: str):
    return _json(202, returns().request_sync(storeId))


@_route("POST", "/internal/stores/<storeId>/widget-url", "A signed widget URL for one customer", 200, 404, *BODY)
def post_widget_url(storeId: str, request: Annotated[WidgetUrlIn, Body()]):
    return _json(200, service().widget_url(storeId, _body(), _public_base_url(), time.time()))


def _public_base_url() -> str:
    """This API's own base URL, as the caller reached it (stage prefix included when deployed)."""
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    proto = headers.get("x-forwarded-proto", "http")
    context = event.request_context
    stage_prefix = f"/{context.stage}" if context.path and context.path.startswith(f"/{context.stage}/") else ""
    return f"{proto}://{headers.get('host', 'localhost')}{stage_prefix}"


# -- money ------------------------------------------------------------------------------------------------------------


@_route(
    "POST",
    "/internal/integrations/rise/stores/<storeId>/bonus-credits",
    "Queue a bonus store credit, once per (order, reason)",
    200,
    202,
    404,
    503,
    *BODY,
    tags=["money"],
)
def post_bonus_credit(storeId: str, bonus: Annotated[BonusCreditIn, Body()]):
    row, queued = service().bonus_credit(storeId, _body())
    return _json(202 if queued else 200, {"ledger_id": row["ledger_id"], "queued": queued, "entry": row})


@_route("GET", "/internal/stores/<storeId>/ledger/<entryId>", "One ledger row", 200, 404, 422, tags=["money"])
def get_ledger_entry(storeId: str, entryId: str):
    return _json(200, service().ledger_entry(storeId, entryId))


@_route("GET", "/internal/stores/<storeId>/ledger", "The store's rows that need a person", 200, 422, tags=["money"])
def list_ledger(
    storeId: str,
    state: Annotated[str | None, Query(description="HELD (default), UNKNOWN or FAILED")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
):
    return _json(200, service().ledger_rows(storeId, state, cursor))


@_route(
    "POST",
    "/internal/stores/<storeId>/ledger/<entryId>/actions",
    "An operator's decision on one ledger row (audited)",
    200,
    404,
    409,
    503,
    *BODY,
    tags=["money"],
)
def post_ledger_action(storeId: str, entryId: str, action: Annotated[LedgerActionIn, Body()]):
    return _json(200, service().ledger_action(storeId, entryId, _body(), _caller()))


def _caller() -> str:
    """Who acts, for the audit: the IAM principal, or key:<name> (see claimbridge.admin_auth)."""
    caller: Caller = app.context["caller"]
    return caller.name


# -- operations -------------------------------------------------------------------------------------------------------


@_route("GET", "/internal/queues", "Each job queue's depth, age and DLQ depth", 200, tags=["operations"])
def get_queues():
    return _json(200, queues().overview())


@_route("POST", "/internal/queues/<name>/redrive", "Move a queue's DLQ messages back", 200, 404, tags=["operations"])
def post_queue_redrive(name: str):
    return _json(200, queues().redrive(name))


# -- integrations -----------------------------------------------------------------------------------------------------


@_route(
    "GET", "/internal/integrations/richpanel/stores/<storeId>/teams", "The store's Richpanel teams", 200, 404, 422, 503
)
def list_richpanel_teams(storeId: str):
    teams = service().list_richpanel_teams(storeId)
    return _json(200, {"teams": [team.model_dump() for team in teams]})


RIVO_ACTIONS = "/internal/integrations/rivo/stores/<storeId>/actions"


@_route("GET", RIVO_ACTIONS, "Rivo's actions, with their JSON schemas", 200, 404, 422, tags=["rivo"])
def get_rivo_actions(storeId: str):
    return _json(200, loyalty().catalogue(storeId))


@_route(
    "GET",
    RIVO_ACTIONS + "/<action>",
    "A Rivo read (its input in the query): customers, points events, redemptions, rewards, tiers, memberships",
    200,
    404,
    405,
    409,
    422,
    429,
    503,
    tags=["rivo"],
)
def get_rivo_action(storeId: str, action: str):
    given = dict(app.current_event.query_string_parameters or {})
    return _rivo_answer(loyalty().run(storeId, action, "GET", given))


@_route(
    "POST",
    RIVO_ACTIONS + "/<action>",
    "A Rivo write: points events, redemptions and points redemptions once per Idempotency-Key; a date of birth; "
    "a membership cancelled",
    200,
    201,
    202,
    404,
    405,
    409,
    429,
    503,
    *BODY,
    tags=["rivo"],
)
def post_rivo_action(storeId: str, action: str):
    key = app.current_event.headers.get("Idempotency-Key")  # case-insensitive (Powertools v3)
    return _rivo_answer(loyalty().run(storeId, action, "POST", _body(), key))


def _rivo_answer(answer: Any) -> Response:
    return _json(answer.status, answer.body, answer.headers)


def _integration_routes(name: str, model: type[Any]) -> None:
    """PUT and PATCH of one integration, each with its own body model in the document."""

    def put(storeId: str, settings: Any):
        saved, created = service().put_integration(name, storeId, _body())
        return _json(201 if created else 200, saved)

    def patch(storeId: str, settings: Any):
        saved, _ = service().put_integration(name, storeId, _body(), partial=True)
        return _json(200, saved)

    # Real objects, not strings: Powertools reads these to validate and to write the document.
    put.__annotations__ = {"storeId": str, "settings": Annotated[model, Body()]}
    patch.__annotations__ = {"storeId": str, "settings": Annotated[partial(model), Body()]}
    put.__name__, patch.__name__ = f"put_{name}", f"patch_{name}"
    path = f"/internal/integrations/{name}/stores/<storeId>"
    tags = ["integrations"]
    _route("PUT", path, f"Replace the store's {name} settings", 200, 201, 404, 409, 503, *BODY, tags=tags)(put)
    _route("PATCH", path, f"Change some {name} settings", 200, 404, 409, 503, *BODY, tags=tags)(patch)


for _name, _model in INTEGRATIONS.items():
    _integration_routes(_name, _model)


@app.route("/internal/integrations/<name>/stores/<storeId>", method=["PUT", "PATCH"], include_in_schema=False)
def put_unknown_integration(name: str, storeId: str):
    service().put_integration(name, storeId, _body())  # refuses the name: 404
    return _json(404, {"message": f"unknown integration {name}"})


@_route(
    "GET",
    "/internal/integrations/<name>/stores/<storeId>",
    "An integration's settings",
    200,
    404,
    422,
    tags=["integrations"],
)
def get_integration(name: str, storeId: str):
    return _json(200, service().get_integration(name, storeId))


@_route(
    "DELETE",
    "/internal/integrations/<name>/stores/<storeId>",
    "Remove an integration",
    204,
    404,
    422,
    tags=["integrations"],
)
def delete_integration(name: str, storeId: str):
    service().delete_integration(name, storeId)
    return _no_content()


# -- admin keys (ADMIN_AUTH=KEYS) -------------------------------------------------------------------------------------


@_route("POST", "/internal/admin-keys", "Create a named admin key (its value is shown once)", 201, 409, *BODY)
def post_admin_key():
    return _json(201, admin_keys().create(_body(), _caller()))


@_route("GET", "/internal/admin-keys", "The named admin keys (names, scopes, stores; never values)", 200)
def get_admin_keys():
    return _json(200, {"keys": admin_keys().list()})


@_route(
    "DELETE", "/internal/admin-keys/<name>", "Delete a named admin key (refused from the next request on)", 204, 404
)
def delete_admin_key(name: str):
    admin_keys().delete(name)
    return _no_content()


# -- the document -----------------------------------------------------------------------------------------------------

OPENAPI_FILE = Path(__file__).with_name("openapi.json")


@app.get("/internal/openapi.json", include_in_schema=False)
def get_openapi():
    """The whole API's document (every function's routes), as generated into openapi.json at build time."""
    return Response(200, "application/json", OPENAPI_FILE.read_text(), headers={"Cache-Control": "no-store"})


@app.get("/internal/docs", include_in_schema=False)
def get_docs():
    """Swagger UI over that document, with Powertools' bundled assets (nothing fetched from a CDN)."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    assets = Path(swagger_ui.__file__).parent
    html = swagger_ui.generate_swagger_html(
        OPENAPI_FILE.read_text().replace("</", "<\\/"),
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        "",
        None,
    )
    return Response(200, "text/html", html, headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_admin_request(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        event = _admissible(event)
        if event.get("resource") not in PUBLIC:
            app.append_context(caller=_authorize(event))
    except DomainError as error:  # answered before the resolver: nothing has read the body
        logger.info("admin request refused", status=error.status, reason=str(error))
        return {
            "statusCode": error.status,
            "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
            "body": json.dumps(error.body()),
        }
    return app.resolve(event, context)


def _admissible(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a JSON text body, or the DomainError that refuses it before Powertools would read it."""
    if not event.get("body"):
        return event
    content_type = next((str(v) for k, v in (event.get("headers") or {}).items() if k.lower() == "content-type"), "")
    if content_type and not content_type.lower().startswith("application/json"):
        # Bodies are JSON only: refused before Powertools would try to read a form or a multipart body.
        raise UnsupportedMediaError(f"request body must be application/json, not {content_type[:100]}")
    if event.get("isBase64Encoded"):
        # API Gateway base64-encodes a body that is not UTF-8 text; JSON is UTF-8, so that body cannot be JSON.
        try:
            return {**event, "body": base64.b64decode(event["body"]).decode("utf-8"), "isBase64Encoded": False}
        except ValueError:
            raise BadBodyError("request body is not valid JSON (not UTF-8 text)") from None
    return event


PUBLIC = {"/internal/openapi.json", "/internal/docs"}


def _authorize(event: dict[str, Any]) -> Caller:
    """The caller, allowed this route and this store, before anything reads the body (claimbridge.admin_auth)."""
    context = event.get("requestContext") or {}
    if get_settings().admin_auth == "IAM":
        return iam_caller(context.get("identity") or {})  # API Gateway checked the signature; IAM scoped the route
    headers = {k.lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    caller = admin_keys().authenticate(headers.get("x-api-key"))
    store_id = (event.get("pathParameters") or {}).get("storeId")
    caller.check(needed_scope(str(event.get("httpMethod", "")).upper(), str(event.get("resource", ""))), store_id)
    return caller
