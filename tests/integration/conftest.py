"""Helpers for the flows: a store with partners configured, webhooks sent, queues drained through the workers."""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
from typing import Any

import pytest

from local.emulators import create_queues
from local.pollers import Poller, SqsSource, sqs_sources
from local.template import Resolver

WEBHOOK_SECRET = "whsec_integration_0123456789"
RICHPANEL_KEY_PREFIX = "rp_it_"
TEAM = "6f1c1b7e-3a51-4a2b-9f0e-1d2c3b4a5f60"


class Flow:
    """One store of the integration tests, with its webhook secret and its queues."""

    def __init__(self, stack: Any, store_id: str) -> None:
        self.stack = stack
        self.store_id = store_id
        self.sqs = stack.emulators.client("sqs")
        self.queues = fresh_queues(stack)
        self.richpanel_key = RICHPANEL_KEY_PREFIX + store_id.replace("-", "_") + "_0123456789"

    def create_store(self, **profile: Any) -> None:
        body = {
            "name": "Flow store",
            "shop_domain": f"{self.store_id}.myshopify.com",
            "webhook_secrets": [WEBHOOK_SECRET],
            "widget_secret": "wgt_integration_0123456789",
            **profile,
        }
        answer = self.stack.admin("PUT", f"/internal/stores/{self.store_id}", body)
        assert answer.status in (200, 201), answer.body

    def configure(self, name: str, body: dict[str, Any]) -> None:
        answer = self.stack.admin("PUT", f"/internal/integrations/{name}/stores/{self.store_id}", body)
        assert answer.status in (200, 201), answer.body

    def configure_richpanel(self, **settings: Any) -> None:
        self.configure(
            "richpanel",
            {"api_key": self.richpanel_key, "default_team_id": TEAM, "default_channel": "email", **settings},
        )

    def webhook(
        self,
        topic: str,
        body: dict[str, Any],
        *,
        event_id: str,
        route: str = "claims",
        secret: str | None = WEBHOOK_SECRET,
        created_at: str = "2026-11-20T10:00:00Z",
    ) -> Any:
        envelope = {"id": event_id, "topic": topic, "created_at": created_at, "body": body}
        headers = {"content-type": "application/json"}
        if secret is not None:
            headers["x-webhook-secret"] = secret
        return self.stack.api.invoke("POST", f"/stores/{self.store_id}/webhooks/{route}", headers, json.dumps(envelope))

    def queue_url(self, logical_id: str) -> str:
        return self.queues[logical_id]

    def messages(self, logical_id: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url(logical_id),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def poller(self, function: str) -> Poller:
        template_source = next(
            s for s in sqs_sources(self.stack.template, self.stack.resources.resolver) if s.function == function
        )
        logical_id = next(
            k for k, url in self.stack.resources.resolver.refs.items() if url == template_source.queue_url
        )
        source = SqsSource(**{**template_source.__dict__, "queue_url": self.queues[logical_id]})
        return Poller(source, self.stack.functions[function], self.sqs, threading.Event())

    def receive(self, function: str, *, wait: int = 0) -> list[dict[str, Any]]:
        poller = self.poller(function)
        answer = self.sqs.receive_message(
            QueueUrl=poller.source.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages", []))

    def work(self, function: str = "RichpanelWorkerFunction", *, rounds: int = 10) -> int:
        """Run the function over what its queue has now (Lambda's batch semantics); return how many it handled."""
        poller = self.poller(function)
        handled = 0
        for _ in range(rounds):
            messages = self.receive(function)
            if not messages:
                break
            poller.poll_once(messages)
            handled += len(messages)
        return handled

    def work_concurrently(self, function: str, messages: list[dict[str, Any]]) -> None:
        """Each message to its own invocation, all at once (as Lambda may run them)."""
        poller = self.poller(function)
        threads = [threading.Thread(target=poller.poll_once, args=([m],)) for m in messages]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def claim_view(self, claim_id: str) -> dict[str, Any]:
        answer = self.stack.admin("GET", f"/internal/stores/{self.store_id}/claims/{claim_id}")
        assert answer.status == 200, answer.body
        return dict(answer.json())

    def event_record(self, event_id: str) -> dict[str, Any] | None:
        from claimbridge.runtime import table_store

        return table_store().get(f"EVENT#{self.store_id}#{event_id}", "EVENT")


ENV_OF_QUEUE = {
    "RichpanelQueue": "RICHPANEL_QUEUE_URL",
    "CreditQueue": "CREDIT_QUEUE_URL",
    "OrderProtectionQueue": "ORDER_PROTECTION_QUEUE_URL",
    "PostcoQueue": "POSTCO_QUEUE_URL",
    "PostcoDLQ": "POSTCO_DLQ_URL",
    "RichpanelDLQ": "RICHPANEL_DLQ_URL",
    "CreditDLQ": "CREDIT_DLQ_URL",
    "OrderProtectionDLQ": "ORDER_PROTECTION_DLQ_URL",
}


def fresh_queues(stack: Any) -> dict[str, str]:
    """New job queues and DLQs for one test, with the template's attributes; the handlers are pointed at them."""
    suffix = secrets.token_hex(4)
    urls = create_queues(
        stack.emulators.client("sqs"), Resolver(stack.template), lambda logical_id: f"t-{logical_id}-{suffix}"
    )
    for logical_id, variable in ENV_OF_QUEUE.items():
        os.environ[variable] = urls[logical_id]
    rebuild_handlers()
    return urls


def rebuild_handlers() -> None:
    """Forget the settings and every function's cached collaborators, as a new execution environment would."""
    from claimbridge.config import get_settings
    from claimbridge.runtime import store_directory

    get_settings.cache_clear()
    store_directory.cache_clear()
    for name, module in list(sys.modules.items()):
        if name.startswith("claimbridge_fn_"):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


@pytest.fixture
def flow(stack: Any, sandbox: Any, store_id: str) -> Flow:
    flow = Flow(stack, store_id)
    flow.create_store()
    return flow


RISE_TOKEN = "rise_token_0123456789"


@pytest.fixture
def money(flow: Flow, sandbox: Any) -> Flow:
    """A store with Rise and Order Protection configured; Rise knows Ann as Shopify customer 7001."""
    flow.create_store(currency="USD", max_credit_amount="500.00")
    flow.configure("rise", {"credit_api_token": RISE_TOKEN})
    flow.configure("order_protection", {"api_token": "op_token_0123456789"})
    sandbox["rise"].seed({"customers": {"ann@example.com": "7001"}})
    return flow


def claim_created(claim_id: str, **patch: Any) -> dict[str, Any]:
    body = {
        "claim_id": claim_id,
        "order_id": f"order-{claim_id}",
        "source_order_id": f"shopify-{claim_id}",
        "created_at": "2026-11-20T09:59:00Z",
        "claim_description": "Box arrived crushed",
        "claim_type": "DAMAGED",
        "claim_state": "NEW",
        "items": [
            {
                "product_id": "p1",
                "variant_id": "v1",
                "sku": "MUG-1",
                "item_id": "i1",
                "item_name": "Blue mug",
                "quantity": 2,
            }
        ],
        "order_number": "1001",
        "customer": {
            "id": "7001",
            "email": "ann@example.com",
            "first_name": "Ann",
            "last_name": "Lee",
            "phone": "+15550100",
        },
        "order": {
            "number": "1001",
            "currency": "USD",
            "total": 42.5,
            "items": [{"name": "Blue mug", "quantity": 2, "price": "21.25"}],
        },
    }
    body.update(patch)
    return body


def claim_approved(claim_id: str, resolutions: list[dict[str, Any]] | None = None, **patch: Any) -> dict[str, Any]:
    body = {
        "claim_id": claim_id,
        "order_id": f"order-{claim_id}",
        "source_order_id": f"shopify-{claim_id}",
        "resolutions": resolutions if resolutions is not None else [{"type": "RESHIP", "details": {}}],
    }
    body.update(patch)
    return body


def module_of(flow: Flow, function: str) -> Any:
    """A function's module as the inline stack runs it (imported on first use)."""
    from local.functions import _import_handler

    _import_handler(flow.stack.functions[function].spec)
    return sys.modules[f"claimbridge_fn_{function}"]


def unpace_rise(flow: Flow, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rise's 2 calls a second lifted, in the sandbox and in the credit worker, for a test about something else
    (the pacing has its own tests): twenty credits then take a second, not twenty-two."""
    sandbox["rise"].faults(no_rate_limit=True)
    worker = module_of(flow, "CreditWorkerFunction")
    monkeypatch.setattr(worker, "RISE_INTERVAL_S", 0.0)


def unpace_richpanel(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    """Richpanel's calls unspaced in the worker, for a test about something else that makes a few (well inside the
    sandbox's 50 per 30 s; the pacing has its own tests)."""
    monkeypatch.setattr(module_of(flow, "RichpanelWorkerFunction"), "RICHPANEL_INTERVAL_S", 0.0)


@pytest.fixture
def unpaced(money: Flow, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Flow:
    """The money store with Rise unthrottled (see ``unpace_rise``)."""
    unpace_rise(money, sandbox, monkeypatch)
    return money
