"""The in-helpdesk widget: HTML for Richpanel's iframe, JSON with ``Accept: application/json``; signed requests only."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.logging import correlation_paths

from claimbridge.clients.rivo import RivoClient
from claimbridge.config import get_settings
from claimbridge.observability import logger, metrics
from claimbridge.runtime import store_directory, table_store
from claimbridge.widget import RIVO_TIMEOUT, WidgetAuthError, WidgetService, render_html, security_headers


@lru_cache(maxsize=1)
def service() -> WidgetService:
    settings = get_settings().require("table_name", "kms_key_id")
    store = table_store()
    return WidgetService(
        store=store,
        directory=store_directory(),
        dashboard_claim_url_template=settings.dashboard_claim_url_template,
        rivo=lambda api_key: RivoClient(api_key=api_key, base_url=settings.rivo_api_base_url, timeout=RIVO_TIMEOUT),
    )


def _headers(event: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in (event.get("headers") or {}).items()}


# Not validated by Powertools: a malformed request gets the widget's own 401, the same for every failure, never a 422
# that would tell a prober which part was wrong. The parameters are declared for the OpenAPI document.
app = APIGatewayRestResolver()


@app.get(
    "/widget/stores/<storeId>",
    summary="The in-helpdesk widget for one customer (signed)",
    tags=["widget"],
    responses={
        200: {
            "description": "the customer's claims and orders: HTML, or JSON with Accept: application/json",
            "content": {"text/html": {}, "application/json": {}},
        },
        401: {
            "description": "not signed as it must be (the same answer for an unknown store)",
            "content": {"text/plain": {}},
        },
    },
)
def get_widget(
    storeId: str,
    customer_email: Annotated[str | None, Query(description="the customer, as signed")] = None,
    timestamp: Annotated[str | None, Query(description="unix seconds; 300 s of skew at most")] = None,
    signature: Annotated[str | None, Query(description="hex HMAC-SHA256 of the other parameters")] = None,
    x_widget_signature: Annotated[str | None, Header(alias="X-Widget-Signature")] = None,
):
    answer = widget_answer(app.current_event.raw_event)
    return Response(answer["statusCode"], None, answer["body"], headers=answer["headers"])


def widget_answer(event: dict[str, Any]) -> dict[str, Any]:
    headers = _headers(event)
    store_id = (event.get("pathParameters") or {}).get("storeId", "")
    query = {k: str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    wants_json = "application/json" in headers.get("accept", "")
    secure = security_headers(get_settings().widget_frame_ancestors)
    try:
        view = service().view(store_id, query, headers.get("x-widget-signature"))
    except WidgetAuthError as error:
        metrics.add_metric(name="WidgetRefused", unit="Count", value=1)
        logger.info("widget request refused", store_id=store_id[:64], reason=str(error))
        return {
            "statusCode": 401,
            "headers": {**secure, "Content-Type": "text/plain; charset=utf-8"},
            "body": f"Unauthorized: {error}",
        }
    if wants_json:
        return {
            "statusCode": 200,
            "headers": {**secure, "Content-Type": "application/json"},
            "body": json.dumps(view.as_json()),
        }
    return {
        "statusCode": 200,
        "headers": {**secure, "Content-Type": "text/html; charset=utf-8"},
        "body": render_html(view),
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handle_widget_request(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
