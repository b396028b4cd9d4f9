"""The webhook routes declared as a Powertools resolver: what the OpenAPI document is generated from.

Deployed, API Gateway calls ``app.handle_receive_webhook`` directly: the receive path stays light (no resolver, no
pydantic) inside Order Protection's 5 s deadline. These declarations delegate to that same handler, so the document
describes the code that answers; ``tests/unit/test_openapi.py`` asserts both answer alike.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from claimbridge.receiver import KNOWN_TOPICS

app = APIGatewayRestResolver()

Id = Annotated[str, Field(min_length=1, max_length=200, description="printable text, at most 200 characters")]


class WebhookBody(BaseModel):
    """The ids the receiver checks before it enqueues; the worker validates the rest per topic (README)."""

    model_config = ConfigDict(extra="allow")

    claim_id: Id | None = None
    order_id: Id | None = None
    source_order_id: Id | None = None


class WebhookEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Id
    topic: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="one of "
        + ", ".join(sorted(KNOWN_TOPICS))
        + " ('/' read as '.'); any other is answered 202, ignored"
    )
    created_at: str | None = Field(None, description="when the event happened (ISO 8601): orders a claim's states")
    body: WebhookBody


ANSWERS: dict[int, OpenAPIResponse] = {
    202: OpenAPIResponse(description="accepted (or a duplicate, or an unknown topic): it will be worked once"),
    400: OpenAPIResponse(
        description="the envelope is not JSON, lacks id/topic/body, or an id is too long or not printable"
    ),
    401: OpenAPIResponse(description="missing or wrong x-webhook-secret, or an unknown store"),
    413: OpenAPIResponse(description="the body is over 256 KB"),
    503: OpenAPIResponse(description="not enqueued this time: retry (Retry-After when another delivery holds it)"),
}


@lru_cache(maxsize=1)
def _deployed_handler() -> Any:
    """This function's own handler (app.py beside this file), loaded under a name of its own."""
    name = "claimbridge_fn_webhook_receiver_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("app.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].handle_receive_webhook


def _delegate() -> Response:
    answer = _deployed_handler()(app.current_event.raw_event, app.lambda_context)
    return Response(answer["statusCode"], None, answer["body"], headers=answer["headers"])


@app.post(
    "/stores/<storeId>/webhooks/claims", summary="Order Protection webhooks", tags=["webhooks"], responses=ANSWERS
)
def post_claims_webhook(
    storeId: str,
    envelope: Annotated[WebhookEnvelope | None, Body()] = None,
    x_webhook_secret: Annotated[str | None, Header(alias="x-webhook-secret")] = None,
):
    return _delegate()


@app.post(
    "/stores/<storeId>/webhooks/resolutions",
    summary="Order Protection webhooks (the same as /claims: either route takes every topic)",
    tags=["webhooks"],
    responses=ANSWERS,
)
def post_resolutions_webhook(
    storeId: str,
    envelope: Annotated[WebhookEnvelope | None, Body()] = None,
    x_webhook_secret: Annotated[str | None, Header(alias="x-webhook-secret")] = None,
):
    return _delegate()
