"""The document as the API serves it, and the webhook routes' declarations answering as the deployed handler does."""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

from local.functions import LocalContext
from local.openapi import DOCUMENT
from local.template import ROOT
from tests.integration.conftest import WEBHOOK_SECRET, claim_created


def test_the_document_and_its_swagger_ui_are_served_without_the_admin_key(stack):
    document = stack.api.invoke("GET", "/internal/openapi.json")
    docs = stack.api.invoke("GET", "/internal/docs")

    assert document.status == 200 and document.json() == json.loads(DOCUMENT.read_text())
    assert docs.status == 200 and docs.headers["Content-Type"].startswith("text/html")
    assert b"SwaggerUIBundle" in docs.body and b"/internal/stores/{storeId}" in docs.body


def _declared_routes() -> Any:
    name = "claimbridge_docs_webhook_routes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "webhook_receiver" / "routes.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].app


def _event(store_id: str, secret: str, body: str) -> dict[str, Any]:
    return {
        "resource": "/stores/{storeId}/webhooks/claims",
        "path": f"/stores/{store_id}/webhooks/claims",
        "httpMethod": "POST",
        "headers": {"content-type": "application/json", "x-webhook-secret": secret},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": {"storeId": store_id},
        "requestContext": {"requestId": "r1", "stage": "local", "resourcePath": "/stores/{storeId}/webhooks/claims"},
        "body": body,
        "isBase64Encoded": False,
    }


def test_the_declared_webhook_routes_answer_as_the_deployed_handler_does(flow):
    declared = _declared_routes()
    context = LocalContext("WebhookReceiverFunction", "arn:local", 10)
    cases = [
        (WEBHOOK_SECRET, {"id": "d-1", "topic": "claim.created", "body": claim_created("d1")}),
        ("whsec_wrong_0123456789", {"id": "d-2", "topic": "claim.created", "body": claim_created("d2")}),
        (WEBHOOK_SECRET, {"id": "d-3", "topic": "claim.created"}),
    ]
    for secret, envelope in cases:
        through_routes = declared.resolve(_event(flow.store_id, secret, json.dumps(envelope)), context)
        again = {**envelope, "id": envelope["id"] + "-direct"}
        direct = flow.stack.api.invoke(
            "POST",
            f"/stores/{flow.store_id}/webhooks/claims",
            {"content-type": "application/json", "x-webhook-secret": secret},
            json.dumps(again),
        )
        assert through_routes["statusCode"] == direct.status, envelope
    assert [s for s, _ in cases] and flow.messages("RichpanelQueue") == 2  # the two accepted, once each
