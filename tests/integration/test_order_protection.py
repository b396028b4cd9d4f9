"""Order Protection both ways (seeds/003): a claim's reship or refund reported once per claim and resolution, through
the report queue, under redelivery and a timeout after Order Protection applied it; refusals that write nothing. The
Order Protection sandbox's record of calls is the proof."""

from __future__ import annotations

import json
from typing import Any

import pytest

from claimbridge.runtime import table_store
from claimbridge.store import claim_pk
from tests.integration.conftest import Flow, claim_approved, claim_created

RESHIP = {"type": "RESHIP", "details": {"currency": "USD", "total_refund_amount": 42.5}}
REFUND = {"type": "REFUND", "details": {"currency": "USD", "total_refund_amount": 20}}


@pytest.fixture
def op(flow: Flow, sandbox: Any) -> Flow:
    flow.configure("order_protection", {"api_token": "op_token_0123456789"})
    return flow


def approve(flow: Flow, claim_id: str = "c-1", resolutions: list[dict[str, Any]] | None = None) -> None:
    flow.webhook("claim.created", claim_created(claim_id), event_id=f"{claim_id}-created")
    flow.webhook("claim.approved", claim_approved(claim_id, resolutions or [RESHIP, REFUND]), event_id=f"{claim_id}-ok")
    flow.work()


def report(flow: Flow, body: Any, claim_id: str = "c-1") -> Any:
    return flow.stack.admin("POST", f"/internal/stores/{flow.store_id}/claims/{claim_id}/resolution-report", body)


def reported(sandbox: Any) -> list[dict[str, Any]]:
    return list(sandbox["order_protection"].state()["resolutions"])


def report_calls(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox["order_protection"].calls("/v1/claims/", "POST")


def test_a_reship_order_reaches_order_protection_once_and_shows_on_the_claim(op, sandbox):
    approve(op)
    asked = report(op, {"type": "RESHIP", "reship_order_id": "shopify-9001"})
    op.work("ReportWorkerFunction")
    again = report(op, {"type": "RESHIP", "reship_order_id": "shopify-9001"})
    op.work("ReportWorkerFunction")

    assert asked.status == 202 and asked.json()["report_state"] == "QUEUED"
    assert again.status == 200 and again.json()["report_state"] == "REPORTED"
    (sent,) = reported(sandbox)
    assert sent == {
        "claim_id": "c-1",
        "idempotency_key": f"claimbridge:{op.store_id}:c-1:reship",
        "type": "RESHIP",
        "reference": "shopify-9001",
        "amount": "42.50",
        "currency": "USD",
    }
    assert len(report_calls(sandbox)) == 1
    view = op.claim_view("c-1")
    (row,) = view["reports"]
    assert row["report_state"] == "REPORTED" and row["reference"] == "shopify-9001"
    assert any("RESHIP shopify-9001 reported" in t.get("note", "") for t in view["timeline"])
    assert view["claim"]["resolution_reports"]["reship"]["report_state"] == "REPORTED"


def test_a_refund_is_reported_with_its_amount_and_currency(op, sandbox):
    approve(op)
    asked = report(op, {"type": "REFUND", "refund_id": "re_123", "amount": "20.00", "currency": "USD"})
    op.work("ReportWorkerFunction")

    assert asked.status == 202
    (sent,) = reported(sandbox)
    assert (sent["type"], sent["reference"], sent["amount"], sent["currency"]) == ("REFUND", "re_123", "20.00", "USD")


def test_a_report_job_delivered_twice_at_once_sends_one_report(op, sandbox):
    approve(op)
    report(op, {"type": "RESHIP", "reship_order_id": "shopify-9001"})
    (message,) = op.receive("ReportWorkerFunction")

    op.work_concurrently("ReportWorkerFunction", [message, message, message])

    assert len(reported(sandbox)) == 1 and len(report_calls(sandbox)) == 1


def test_a_report_order_protection_applied_then_lost_is_sent_again_as_the_same_report(op, sandbox, monkeypatch):
    from tests.integration.conftest import module_of

    monkeypatch.setattr(module_of(op, "ReportWorkerFunction"), "REPORT_TIMEOUT", (2.0, 1.0))
    approve(op)
    sandbox["order_protection"].faults(
        apply_timeout_rate=1.0, apply_timeout_path="/v1/claims/", apply_timeout_method="POST", hang_s=1.5
    )
    report(op, {"type": "RESHIP", "reship_order_id": "shopify-9001"})
    op.work("ReportWorkerFunction")
    lost = table_store().get(claim_pk(op.store_id, "c-1"), "REPORT#reship") or {}
    sandbox["order_protection"].faults()

    module_of(op, "ReportWorkerFunction").service().handle(op.store_id, claim_pk(op.store_id, "c-1"), "REPORT#reship")

    assert lost["report_state"] == "RETRY"
    calls = report_calls(sandbox)
    assert len(calls) == 2 and calls[0]["headers"]["idempotency-key"] == calls[1]["headers"]["idempotency-key"]
    assert len(reported(sandbox)) == 1  # the same key: Order Protection's first answer, nothing recorded twice
    assert (table_store().get(claim_pk(op.store_id, "c-1"), "REPORT#reship") or {})["report_state"] == "REPORTED"


def test_a_lost_report_job_is_queued_again_by_the_sweeper(op, sandbox):
    from tests.integration.conftest import module_of

    approve(op)
    report(op, {"type": "RESHIP", "reship_order_id": "shopify-9001"})
    op.sqs.purge_queue(QueueUrl=op.queue_url("OrderProtectionQueue"))  # the job is lost
    table_store().update(
        claim_pk(op.store_id, "c-1"), "REPORT#reship", expression="SET due_at = :past", values={":past": 1}
    )

    module_of(op, "SyncFunction").sweeper().sweep()
    op.work("ReportWorkerFunction")

    assert [r["reference"] for r in reported(sandbox)] == ["shopify-9001"]


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        ({"type": "REFUND", "refund_id": "re_1", "amount": "5.00", "currency": "USD"}, 409, "no REFUND resolution"),
        ({"type": "RESHIP", "reship_order_id": "x", "resolution_id": "r-9"}, 409, "no RESHIP resolution r-9"),
        ({"type": "STORE_CREDIT", "reference": "x"}, 422, "type"),
        ({"type": "REFUND", "refund_id": "re_1", "currency": "USD"}, 422, "REFUND.amount"),
        ({"type": "REFUND", "refund_id": "re_1", "amount": "-1", "currency": "USD"}, 422, "REFUND.amount"),
        ({"type": "RESHIP", "reship_order_id": "a\nb"}, 422, "RESHIP.reship_order_id"),
        ({"type": "RESHIP", "reship_order_id": "x", "extra": 1}, 422, "RESHIP.extra"),
    ],
)
def test_a_report_that_does_not_fit_the_claim_is_refused_and_nothing_is_written_or_sent(op, sandbox, body, status, why):
    approve(op, resolutions=[RESHIP])

    answer = report(op, body)

    assert answer.status == status, answer.body
    assert why in json.dumps(answer.json())
    assert op.claim_view("c-1")["reports"] == [] and op.messages("OrderProtectionQueue") == 0
    assert reported(sandbox) == []


def test_a_second_report_for_the_same_resolution_with_another_reference_is_409(op, sandbox):
    approve(op)
    report(op, {"type": "RESHIP", "reship_order_id": "shopify-9001"})
    other = report(op, {"type": "RESHIP", "reship_order_id": "shopify-9002"})

    assert other.status == 409 and "shopify-9001" in other.json()["message"]
    assert [r["reference"] for r in op.claim_view("c-1")["reports"]] == ["shopify-9001"]


def test_a_claim_not_approved_or_unknown_has_nothing_to_report(op, sandbox):
    op.webhook("claim.created", claim_created("c-2"), event_id="c-2-created")
    op.work()

    pending = report(op, {"type": "RESHIP", "reship_order_id": "x"}, claim_id="c-2")
    unknown = report(op, {"type": "RESHIP", "reship_order_id": "x"}, claim_id="c-404")

    assert pending.status == 409 and "not approved" in pending.json()["message"]
    assert unknown.status == 404
    assert op.messages("OrderProtectionQueue") == 0


def test_the_widget_shows_the_reship_and_whether_order_protection_was_told(op, sandbox):
    from tests.integration.test_widget import get, signed

    approve(op)
    report(op, {"type": "RESHIP", "reship_order_id": "shopify-9001"})
    op.work("ReportWorkerFunction")

    (claim,) = get(op, op.store_id, signed(op.store_id, "ann@example.com"), as_json=True).json()["claims"]
    page = get(op, op.store_id, signed(op.store_id, "ann@example.com")).body.decode()

    assert claim["reports"] == [
        {
            "type": "RESHIP",
            "reference": "shopify-9001",
            "amount": "42.50",
            "currency": "USD",
            "report_state": "REPORTED",
        }
    ]
    assert "Reshipped as order shopify-9001" in page and "reported to Order Protection" in page


# -- inventory ----------------------------------------------------------------------------------------------------


def stock(rows: int) -> dict[str, Any]:
    return {"items": [{"sku": f"SKU-{n}", "variant_id": f"v{n}", "quantity": n % 7} for n in range(rows)]}


def inventory_calls(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox["order_protection"].calls("/v1/inventory", "PUT")


def push_left(flow: Flow) -> None:
    """What the runner sends back after a 5xx comes later (backoff); run those chunks now, as their jobs would."""
    from tests.integration.conftest import module_of

    worker = module_of(flow, "ReportWorkerFunction")
    push = table_store().get(f"STORE#{flow.store_id}#INVENTORY", "PUSH") or {}
    for name, chunk in sorted(push["chunks"].items()):
        if chunk["state"] != "SENT":
            worker.inventory().push_chunk(flow.store_id, push["push_id"], name)


def test_ten_thousand_rows_are_pushed_in_chunks_each_once_under_a_5xx_midway(op, sandbox):
    sandbox["order_protection"].faults(script=[{"pass": True}] * 7 + [{"status": 503, "body": {"error": "busy"}}])
    answer = op.stack.admin("PUT", f"/internal/stores/{op.store_id}/inventory", stock(10_000))
    (first_job, *_) = op.receive("ReportWorkerFunction")  # taken now, delivered again below: a redelivery
    op.sqs.change_message_visibility(
        QueueUrl=op.queue_url("OrderProtectionQueue"), ReceiptHandle=first_job["ReceiptHandle"], VisibilityTimeout=0
    )
    op.work("ReportWorkerFunction", rounds=5)
    push_left(op)
    op.work_concurrently("ReportWorkerFunction", [first_job, first_job])  # a chunk already sent, delivered twice

    assert answer.status == 202 and answer.json()["chunk_count"] == 20 and answer.json()["rows"] == 10_000
    calls = inventory_calls(sandbox)
    assert len(calls) == 21  # 20 chunks, one of them twice: the 503, then the same chunk under the same key
    keys = [c["headers"]["idempotency-key"] for c in calls]
    assert len(set(keys)) == 20
    state = sandbox["order_protection"].state()
    assert len(state["inventory_pushes"]) == 20 and len(state["inventory"]) == 10_000
    assert state["inventory"]["v9999"] == {"sku": "SKU-9999", "quantity": 9999 % 7}
    assert all(len(json.loads(c["body"])["items"]) == 500 for c in calls)
    last = op.stack.admin("GET", f"/internal/stores/{op.store_id}/inventory").json()
    assert last["outcome"] == "pushed" and last["chunks"] == {"SENT": 20} and last["rows"] == 10_000


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({17: {"quantity": -1}}, "items.17.quantity"),
        ({3: {"sku": ""}}, "items.3.sku"),
        ({9: {"variant_id": "v1"}}, "items.9.variant_id"),
        ({0: {"colour": "red"}}, "items.0.colour"),
        ({5: {"quantity": "many"}}, "items.5.quantity"),
    ],
)
def test_an_invalid_row_is_422_naming_it_and_nothing_is_pushed(op, sandbox, patch, field):
    body = stock(50)
    for n, change in patch.items():
        body["items"][n].update(change)

    answer = op.stack.admin("PUT", f"/internal/stores/{op.store_id}/inventory", body)

    assert answer.status == 422 and field in [e["field"] for e in answer.json()["errors"]]
    assert op.stack.admin("GET", f"/internal/stores/{op.store_id}/inventory").status == 404
    assert op.messages("OrderProtectionQueue") == 0 and inventory_calls(sandbox) == []


def test_more_than_ten_thousand_rows_is_422_and_nothing_is_pushed(op, sandbox):
    answer = op.stack.admin("PUT", f"/internal/stores/{op.store_id}/inventory", stock(10_001))

    assert answer.status == 422 and answer.json()["errors"][0]["field"] == "items"
    assert op.messages("OrderProtectionQueue") == 0


def test_the_daily_schedule_pushes_the_last_snapshot_again(op, sandbox):
    op.stack.admin("PUT", f"/internal/stores/{op.store_id}/inventory", stock(600))
    op.work("ReportWorkerFunction")
    first = op.stack.admin("GET", f"/internal/stores/{op.store_id}/inventory").json()

    totals = op.stack.functions["SyncFunction"].invoke({"task": "inventory"})
    op.work("ReportWorkerFunction")
    again = op.stack.admin("GET", f"/internal/stores/{op.store_id}/inventory").json()

    assert first["outcome"] == "pushed" and first["chunk_count"] == 2
    assert totals["pushed"] >= 1
    assert again["push_id"] != first["push_id"] and again["reason"] == "daily" and again["outcome"] == "pushed"
    ours = [c for c in inventory_calls(sandbox) if op.store_id in c["headers"]["idempotency-key"]]
    assert len(ours) == 4


# -- cancelling protection ----------------------------------------------------------------------------------------


def cancel(flow: Flow, body: Any = None, source_order_id: str = "shopify-c-1") -> Any:
    path = f"/internal/stores/{flow.store_id}/orders/{source_order_id}/protection/cancel"
    return flow.stack.admin("POST", path, body if body is not None else {"reason": "customer asked to remove it"})


def order_puts(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox["order_protection"].calls("/v1/orders/", "PUT")


def protection_of(flow: Flow) -> str:
    from tests.integration.test_widget import get, signed

    (order,) = get(flow, flow.store_id, signed(flow.store_id, "ann@example.com"), as_json=True).json()["orders"]
    return str(order["protection"])


def protected(flow: Flow) -> None:
    flow.webhook("claim.created", claim_created("c-1"), event_id="c-1-created")
    flow.webhook(
        "protection.added",
        {"order_id": "order-c-1", "source_order_id": "shopify-c-1", "amount": 2.5, "currency": "USD"},
        event_id="p-1",
        created_at="2026-11-20T09:00:00Z",
    )
    flow.work()


def test_cancelling_protection_puts_the_order_once_and_its_state_follows(op, sandbox):
    protected(op)
    before = protection_of(op)
    asked = cancel(op)
    (job,) = op.receive("ReportWorkerFunction")
    op.work_concurrently("ReportWorkerFunction", [job, job, job])  # delivered three times at once
    again = cancel(op)
    op.work("ReportWorkerFunction")

    assert before == "PROTECTED"
    assert asked.status == 202 and asked.json()["cancel_state"] == "QUEUED"
    (put,) = order_puts(sandbox)
    assert put["path"] == "/v1/orders/shopify-c-1"
    assert json.loads(put["body"]) == {
        "protectionStatus": "CANCELLED",
        "cancellationReason": "customer asked to remove it",
    }
    assert again.status == 200 and again.json()["cancel_state"] == "SENT"
    assert protection_of(op) == "CANCELLED"
    assert sandbox["order_protection"].state()["orders"]["shopify-c-1"]["protectionStatus"] == "CANCELLED"


def test_the_protection_removed_webhook_that_follows_a_cancel_changes_nothing(op, sandbox):
    protected(op)
    cancel(op)
    op.work("ReportWorkerFunction")

    op.webhook(
        "protection.removed",
        {"order_id": "order-c-1", "source_order_id": "shopify-c-1", "amount": 2.5, "currency": "USD"},
        event_id="p-2",
        created_at="2099-01-01T00:00:00Z",
    )
    op.work()

    assert protection_of(op) == "CANCELLED" and len(order_puts(sandbox)) == 1


def test_a_cancel_order_protection_fails_is_sent_again_and_the_order_follows_once_it_is_sent(op, sandbox):
    from tests.integration.conftest import module_of

    protected(op)
    sandbox["order_protection"].faults(script=[{"status": 502, "body": {"error": "bad gateway"}}])
    cancel(op)
    op.work("ReportWorkerFunction")  # the 502: sent back with a backoff delay
    failed = op.stack.admin("GET", f"/internal/stores/{op.store_id}/orders/shopify-c-1/protection/cancel").json()
    row = failed | {"PK": f"STORE#{op.store_id}#PROTECTION#shopify-c-1", "SK": "CANCEL"}

    module_of(op, "ReportWorkerFunction").cancels().send(op.store_id, row["PK"], row["SK"])

    assert failed["cancel_state"] == "RETRY" and protection_of(op) == "CANCELLED"
    assert [c.get("status") for c in order_puts(sandbox)] == [502, 200]


@pytest.mark.parametrize(
    ("body", "field"), [({}, "reason"), ({"reason": "x"}, "reason"), ({"reason": "fine", "now": True}, "now")]
)
def test_a_bad_cancel_is_422_and_nothing_is_written_or_sent(op, sandbox, body, field):
    protected(op)

    answer = cancel(op, body)

    assert answer.status == 422 and field in [e["field"] for e in answer.json()["errors"]]
    assert op.stack.admin("GET", f"/internal/stores/{op.store_id}/orders/shopify-c-1/protection/cancel").status == 404
    assert op.messages("OrderProtectionQueue") == 0 and order_puts(sandbox) == []


def test_a_store_without_order_protection_cannot_cancel(flow, sandbox):
    answer = cancel(flow)

    assert answer.status == 404 and "order_protection is not configured" in answer.json()["message"]
    assert order_puts(sandbox) == []


# -- finding the customer -----------------------------------------------------------------------------------------


def claim_nodes(count: int, **target: Any) -> list[dict[str, Any]]:
    """Order Protection's claims, oldest first (the sandbox lists them newest first); ``target`` is the oldest."""
    nodes = [
        {"id": f"other-{n}", "authorEmail": f"other{n}@example.com", "sourceOrderNumber": str(5000 + n)}
        for n in range(count)
    ]
    return [target, *nodes] if target else nodes


def tickets(sandbox: Any) -> list[dict[str, Any]]:
    return list(sandbox["richpanel"].state()["tickets"].values())


def test_a_claim_without_its_customer_is_found_in_order_protections_claims_list_page_by_page(op, sandbox):
    op.configure_richpanel()
    sandbox["order_protection"].seed(
        {"claims": claim_nodes(120, id="c-1", authorEmail="zoe@example.com", sourceOrderNumber="7007")}
    )
    bare = claim_created("c-1")
    del bare["customer"], bare["order"], bare["order_number"]

    op.webhook("claim.created", bare, event_id="bare-1")
    op.work()

    listed = sandbox["order_protection"].calls("/v1/claims", "GET")
    assert [c["query"].get("first") for c in listed] == ["50", "50", "50"]  # the claim is on the third page
    assert "after" not in listed[0]["query"] and listed[1]["query"]["after"] and listed[2]["query"]["after"]
    assert sandbox["order_protection"].calls("/v1/orders/", "GET") == []  # the fallback was not needed
    (ticket,) = tickets(sandbox)
    assert ticket["via"]["source"]["from"]["address"] == "zoe@example.com" and "#7007" in ticket["subject"]
    claim = op.claim_view("c-1")["claim"]
    assert claim["customer_email"] == "zoe@example.com" and claim["order_number"] == "7007"


def test_a_claim_missing_from_the_claims_list_falls_back_to_the_order_endpoint(op, sandbox):
    op.configure_richpanel()
    sandbox["order_protection"].seed(
        {
            "claims": claim_nodes(3),
            "orders": {"order-c-1": {"number": "1001", "customer": {"email": "yan@example.com", "first_name": "Yan"}}},
        }
    )
    bare = claim_created("c-1")
    del bare["customer"], bare["order"]

    op.webhook("claim.created", bare, event_id="bare-2")
    op.work()

    assert len(sandbox["order_protection"].calls("/v1/claims", "GET")) == 1
    assert len(sandbox["order_protection"].calls("/v1/orders/order-c-1", "GET")) == 1
    (ticket,) = tickets(sandbox)
    assert ticket["via"]["source"]["from"]["address"] == "yan@example.com"


def test_a_customer_known_only_by_phone_gets_an_sms_ticket_a_held_credit_and_is_found_by_phone(op, sandbox):
    from tests.integration.test_credits import store_credit
    from tests.integration.test_widget import get, signed

    op.configure_richpanel()
    by_phone = claim_created("c-1", customer={"first_name": "Pat", "phone": "+1 (555) 010-0199"})
    op.webhook("claim.created", by_phone, event_id="phone-1")
    op.webhook("claim.approved", claim_approved("c-1", store_credit("15.00")), event_id="phone-2")
    op.work()
    op.work("CreditWorkerFunction")

    (ticket,) = tickets(sandbox)
    assert ticket["via"]["channel"] == "twilio-sms"
    assert ticket["via"]["source"]["from"] == {"number": "+15550100199", "name": "Pat"}
    (row,) = op.claim_view("c-1")["ledger"]
    assert row["state"] == "HELD" and row["hold_code"] == "no_email"
    assert "no email for the gift card" in row["state_reason"]
    assert sandbox["rise"].calls() == []
    params = {
        "store_id": op.store_id,
        "customer_phone": "+15550100199",
        "timestamp": str(int(__import__("time").time())),
    }
    from claimbridge.crypto import sign_widget
    from tests.integration.test_widget import WIDGET_SECRET

    found = get(op, op.store_id, {**params, "signature": sign_widget(WIDGET_SECRET, params)}, as_json=True)
    assert found.status == 200 and [c["claim_id"] for c in found.json()["claims"]] == ["c-1"]
    assert get(op, op.store_id, signed(op.store_id, "ann@example.com"), as_json=True).json()["claims"] == []


def test_a_widget_url_is_signed_for_a_phone_and_one_customer_is_asked_for(op, sandbox):
    op.webhook("claim.created", claim_created("c-1", customer={"phone": "+15550100199"}), event_id="phone-3")
    op.work()
    path = f"/internal/stores/{op.store_id}/widget-url"

    made = op.stack.admin("POST", path, {"customer_phone": "+1 555 010 0199"})
    both = op.stack.admin("POST", path, {"customer_phone": "+15550100199", "customer_email": "ann@example.com"})
    neither = op.stack.admin("POST", path, {})
    shown = op.stack.api.invoke("GET", made.json()["url"].split("127.0.0.1", 1)[-1].split("/", 1)[-1].join(["/", ""]))

    assert made.status == 200 and "customer_phone=%2B15550100199" in made.json()["url"]
    assert both.status == 422 and neither.status == 422
    assert shown.status == 200 and "+15550100199" in shown.body.decode()
