"""Order Protection webhooks (both routes): authenticate, de-duplicate, enqueue, 202.

Deliberately light: no Tracer (0.7 s of X-Ray imports), no pydantic, no requests; see claimbridge.receiver.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from claimbridge.config import get_settings
from claimbridge.observability import logger, metrics
from claimbridge.receiver import WebhookReceiver
from claimbridge.runtime import aws_client, table_store


@lru_cache(maxsize=1)
def receiver() -> WebhookReceiver:
    settings = get_settings().require("table_name", "richpanel_queue_url")
    return WebhookReceiver(store=table_store(), sqs=aws_client("sqs"), queue_url=settings.richpanel_queue_url or "")


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handle_receive_webhook(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    store_id = (event.get("pathParameters") or {}).get("storeId", "")
    answer = receiver().receive(store_id, _header(event, "x-webhook-secret"), body)
    metrics.add_metric(name=f"Webhook{answer.status}", unit="Count", value=1)
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store", **answer.headers},
        "body": json.dumps(answer.body),
    }
