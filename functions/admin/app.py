"""Admin API: store profiles and integration settings (API key enforced by API Gateway's usage plan)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.admin import AdminService
from claimbridge.clients.richpanel import RichpanelClient
from claimbridge.config import get_settings
from claimbridge.crypto import SecretBox
from claimbridge.errors import DomainError
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.queues import QueueAdmin
from claimbridge.runtime import (
    aws_client,
    job_queues,
    oldest_message_age,
    reconcile_message,
    store_directory,
    table_store,
)

app = APIGatewayRestResolver()
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
        enqueue_credit=lambda job: sqs.send_message(
            QueueUrl=settings.credit_queue_url, MessageBody=job.model_dump_json()
        ),
        enqueue_claim=lambda store_id, claim_id: sqs.send_message(**reconcile_message(settings, store_id, claim_id)),
        enqueue_report=lambda report: sqs.send_message(
            QueueUrl=settings.order_protection_queue_url, MessageBody=json.dumps(report)
        ),
    )


@lru_cache(maxsize=1)
def queues() -> QueueAdmin:
    settings = get_settings()
    return QueueAdmin(sqs=aws_client("sqs"), queues=job_queues(settings), oldest_age=oldest_message_age)


def _json(status: int, body: Any) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, default=_plain),
        headers={"Cache-Control": "no-store"},
    )


def _body() -> Any:
    raw = app.current_event.body
    if raw is None or raw == "":
        raise BadBodyError("request body is required (JSON)")
    try:
        return json.loads(raw)
    except ValueError as error:
        raise BadBodyError(f"request body is not valid JSON: {error.args[0]}") from error
    except RecursionError:
        raise BadBodyError("request body nests too deeply") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):  # money and counts as exact decimal strings, never floats
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class BadBodyError(DomainError):
    status = 400


@app.exception_handler(DomainError)
def _domain_error(error: DomainError) -> Response:
    logger.info("admin request refused", status=error.status, reason=str(error))
    return _json(error.status, error.body())


@app.put("/internal/stores/<storeId>")
def put_store(storeId: str) -> Response:
    profile, created = service().put_store(storeId, _body())
    return _json(201 if created else 200, profile)


@app.patch("/internal/stores/<storeId>")
def patch_store(storeId: str) -> Response:
    profile, _ = service().put_store(storeId, _body(), partial=True)
    return _json(200, profile)


@app.get("/internal/stores/<storeId>")
def get_store(storeId: str) -> Response:
    return _json(200, service().get_store(storeId))


@app.get("/internal/integrations/richpanel/stores/<storeId>/teams")
def list_richpanel_teams(storeId: str) -> Response:
    teams = service().list_richpanel_teams(storeId)
    return _json(200, {"teams": [team.model_dump() for team in teams]})


@app.get("/internal/stores/<storeId>/claims/<claimId>")
def get_claim(storeId: str, claimId: str) -> Response:
    return _json(200, service().get_claim(storeId, claimId))


@app.post("/internal/integrations/rise/stores/<storeId>/bonus-credits")
def post_bonus_credit(storeId: str) -> Response:
    row, queued = service().bonus_credit(storeId, _body())
    return _json(202 if queued else 200, {"ledger_id": row["ledger_id"], "queued": queued, "entry": row})


@app.post("/internal/stores/<storeId>/widget-url")
def post_widget_url(storeId: str) -> Response:
    return _json(200, service().widget_url(storeId, _body(), _public_base_url(), time.time()))


def _public_base_url() -> str:
    """This API's own base URL, as the caller reached it (stage prefix included when deployed)."""
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    proto = headers.get("x-forwarded-proto", "http")
    context = event.request_context
    stage_prefix = f"/{context.stage}" if context.path and context.path.startswith(f"/{context.stage}/") else ""
    return f"{proto}://{headers.get('host', 'localhost')}{stage_prefix}"


@app.get("/internal/stores/<storeId>/ledger/<entryId>")
def get_ledger_entry(storeId: str, entryId: str) -> Response:
    return _json(200, service().ledger_entry(storeId, entryId))


@app.get("/internal/stores/<storeId>/ledger")
def list_ledger(storeId: str) -> Response:
    query = app.current_event.query_string_parameters or {}
    return _json(200, service().ledger_rows(storeId, query.get("state"), query.get("cursor")))


@app.post("/internal/stores/<storeId>/ledger/<entryId>/actions")
def post_ledger_action(storeId: str, entryId: str) -> Response:
    return _json(200, service().ledger_action(storeId, entryId, _body(), _caller()))


@app.get("/internal/queues")
def get_queues() -> Response:
    return _json(200, queues().overview())


@app.post("/internal/queues/<name>/redrive")
def post_queue_redrive(name: str) -> Response:
    return _json(200, queues().redrive(name))


def _caller() -> str:
    """Who acts, for the audit: the IAM principal when the API is IAM-authorized, else the API key's id."""
    identity = app.current_event.request_context.identity
    return (
        identity.user_arn or identity.caller or (f"api-key:{identity.api_key_id}" if identity.api_key_id else "admin")
    )


@app.put("/internal/integrations/<name>/stores/<storeId>")
def put_integration(name: str, storeId: str) -> Response:
    settings, created = service().put_integration(name, storeId, _body())
    return _json(201 if created else 200, settings)


@app.patch("/internal/integrations/<name>/stores/<storeId>")
def patch_integration(name: str, storeId: str) -> Response:
    settings, _ = service().put_integration(name, storeId, _body(), partial=True)
    return _json(200, settings)


@app.get("/internal/integrations/<name>/stores/<storeId>")
def get_integration(name: str, storeId: str) -> Response:
    return _json(200, service().get_integration(name, storeId))


@app.delete("/internal/integrations/<name>/stores/<storeId>")
def delete_integration(name: str, storeId: str) -> Response:
    service().delete_integration(name, storeId)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_admin_request(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
