"""Events twice, out of order, stale after fresh, and partners that fail after acting: one ticket, one credit, nothing
stranded. Each test is one of the defects the "exactly right under disorder" issue found, through the real workers."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from claimbridge.runtime import table_store
from claimbridge.store import claim_pk
from tests.integration.conftest import RISE_TOKEN, claim_approved, claim_created, module_of
from tests.integration.test_credits import SLOT, drain, issues, ledger, row_of, store_credit


@pytest.fixture
def money(flow, sandbox):
    flow.create_store(currency="USD", max_credit_amount="500.00")
    flow.configure("rise", {"credit_api_token": RISE_TOKEN})
    flow.configure("order_protection", {"api_token": "op_token_0123456789"})
    return flow


def customer(n: int) -> dict[str, Any]:
    return {"id": f"90{n:02d}", "email": f"shopper{n}@example.com", "first_name": f"Shopper{n}"}


# -- 1. approval before the claim ----------------------------------------------------------------------------------


def test_ten_approvals_before_their_claims_become_ten_credits_and_none_is_held(unpaced, sandbox):
    money = unpaced
    claims = [f"early-{n}" for n in range(10)]
    for n, claim_id in enumerate(claims):  # auto-approved claims: the approval is handled first
        money.webhook("claim.approved", claim_approved(claim_id, store_credit(10 + n)), event_id=f"a-{n}")
    money.work()
    money.work("CreditWorkerFunction")  # the credits wait for their customers; nothing is held
    waiting = [row_of(money, claim_id) for claim_id in claims]

    for n, claim_id in enumerate(claims):
        money.webhook("claim.created", claim_created(claim_id, customer=customer(n)), event_id=f"c-{n}")
    money.work()  # each claim's arrival enqueues its waiting credit at once
    drain(money)

    assert [(row["state"], row.get("wait_code")) for row in waiting] == [("QUEUED", "customer_unknown")] * 10
    rows = [row_of(money, claim_id) for claim_id in claims]
    assert [row["state"] for row in rows] == ["ISSUED"] * 10
    assert sorted(r["customer_email"] for r in rows) == sorted(f"shopper{n}@example.com" for n in range(10))
    assert len(issues(sandbox)) == 10
    assert len(sandbox["order_protection"].state()["resolutions"]) == 10


def test_a_credit_whose_customer_never_arrives_is_held_after_the_deadline_with_that_reason(money, sandbox):
    from tests.integration.test_credits import service

    money.webhook("claim.approved", claim_approved("orphan", store_credit()), event_id="a")
    money.work()
    job = _job(money, "orphan")
    now = [time.time()]
    svc = service(clock=lambda: now[0])

    with pytest.raises(Exception, match="waiting for the claim's customer"):
        svc.handle(job)
    now[0] += 24 * 3600 + 1
    svc.handle(job)

    row = row_of(money, "orphan")
    assert row["state"] == "HELD" and row["hold_code"] == "customer_unknown"
    assert "still unknown 24 h after the approval" in row["state_reason"]
    assert sandbox["rise"].calls() == []


# -- 4. the ledger key is the resolution, not its position ------------------------------------------------------


def test_a_resolution_listed_at_another_position_later_is_the_same_credit(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="c", created_at="2026-11-20T10:00:00Z")
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a", created_at="2026-11-20T10:01:00Z"
    )
    resolutions = [{"type": "RESHIP", "details": {}}, *store_credit()]
    money.webhook("claim.resolved", claim_approved("c-1", resolutions), event_id="r", created_at="2026-11-20T10:02:00Z")
    money.work()
    drain(money)

    (row,) = ledger(money)
    assert row["ledger_id"] == "claim:c-1:store_credit:claim_credit"
    assert len(issues(sandbox)) == 1


def test_resolutions_with_their_own_ids_are_credits_of_their_own(money, sandbox):
    resolutions = [*store_credit(10, id="res-a"), *store_credit(15, id="res-b")]
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", resolutions), event_id="a")
    money.webhook("claim.approved", claim_approved("c-1", list(reversed(resolutions))), event_id="a2")
    money.work()
    drain(money)

    rows = sorted(ledger(money), key=lambda row: row["ledger_id"])
    assert [(r["ledger_id"], r["amount"], r["state"]) for r in rows] == [
        ("claim:c-1:id-res-a:claim_credit", "10.00", "ISSUED"),
        ("claim:c-1:id-res-b:claim_credit", "15.00", "ISSUED"),
    ]
    assert len(issues(sandbox)) == 2


def test_an_approval_without_resolution_ids_then_one_with_them_is_never_paid_twice(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="c", created_at="2026-11-20T10:00:00Z")
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a", created_at="2026-11-20T10:01:00Z"
    )
    money.work()
    drain(money)
    money.webhook(
        "claim.resolved",
        claim_approved("c-1", store_credit(id="res-1")),
        event_id="r",
        created_at="2026-11-20T10:02:00Z",
    )
    money.work()
    drain(money)

    assert len(issues(sandbox)) == 1
    rows = {row["ledger_id"]: row for row in ledger(money)}
    assert rows["claim:c-1:store_credit:claim_credit"]["state"] == "ISSUED"
    second = rows["claim:c-1:id-res-1:claim_credit"]
    assert second["state"] == "HELD" and second["hold_code"] == "claim_changed"
    assert "claim:c-1:store_credit:claim_credit" in second["state_reason"]


def test_a_refund_beside_the_store_credit_is_not_mistaken_for_it(money, sandbox):
    refund = {"type": "REFUND", "details": {"currency": "USD", "total_refund_amount": 40}}
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", [refund, *store_credit(25)]), event_id="a")
    money.work()
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "ISSUED" and row["amount"] == "25.00"


def test_an_order_protection_outage_while_fetching_the_customer_never_delays_the_credit_row(money, sandbox):
    sandbox["order_protection"].faults(error_rate=1.0, error_status=503, error_path="/v1/orders/")
    money.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="a")
    money.work(rounds=1)  # the fetch fails; the approval goes back to be retried

    queued_first = row_of(money)["state"]
    sandbox["order_protection"].faults()
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.work()
    drain(money)

    assert queued_first == "QUEUED"
    assert row_of(money)["state"] == "ISSUED" and len(issues(sandbox)) == 1


def test_a_claim_created_later_than_its_approval_never_moves_the_claim_back_to_new(money, sandbox):
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a", created_at="2026-11-20T10:00:00Z"
    )
    money.work()
    money.webhook("claim.created", claim_created("c-1"), event_id="c", created_at="2026-11-20T10:05:00Z")
    money.work()
    drain(money)

    assert money.claim_view("c-1")["claim"]["claim_state"] == "APPROVED"
    assert ledger(money)[0]["state"] == "ISSUED"


# -- 6. tickets: an uncertain create is read back, never repeated under another id -------------------------------


@pytest.fixture
def quick_richpanel(flow, monkeypatch):
    module = module_of(flow, "RichpanelWorkerFunction")
    monkeypatch.setattr(module, "RICHPANEL_TIMEOUT", (2.0, 1.0))
    monkeypatch.setattr("claimbridge.jobs.MAX_DELAY_S", 0)
    module.service.cache_clear()
    yield
    module.service.cache_clear()


def test_a_ticket_created_whose_answer_is_lost_is_read_back_not_opened_twice(flow, sandbox, quick_richpanel):
    flow.configure_richpanel()
    sandbox["richpanel"].faults(
        apply_timeout_rate=1.0, apply_timeout_path="/v1/tickets", apply_timeout_method="POST", hang_s=1.5
    )
    flow.webhook("claim.created", claim_created("c-1"), event_id="c")
    flow.work(rounds=1)  # Richpanel opens it; the answer never comes
    sandbox["richpanel"].faults()
    flow.webhook("claim.approved", claim_approved("c-1"), event_id="a")
    flow.work()

    tickets = sandbox["richpanel"].state()["tickets"]
    claim = flow.claim_view("c-1")
    assert len(tickets) == 1 and list(tickets) == [claim["ticket"]["id"]]
    calls = [(c["method"], c["status"]) for c in sandbox["richpanel"].calls("/v1/tickets")]
    assert calls[0] == ("POST", "applied, then timed out")
    assert ("GET", 200) in calls and calls.count(("POST", 201)) == 0  # read back; never created again
    assert tickets[claim["ticket"]["id"]]["status"] == "SNOOZED"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_on_create_is_settled_by_the_same_id_one_ticket(flow, sandbox, quick_richpanel, status):
    flow.configure_richpanel()
    sandbox["richpanel"].faults(script=[{"status": status, "body": {"error": "down"}}])
    flow.webhook("claim.created", claim_created("c-1"), event_id="c")
    for _ in range(3):
        flow.work(rounds=1)

    tickets = sandbox["richpanel"].state()["tickets"]
    assert len(tickets) == 1 and list(tickets) == [flow.claim_view("c-1")["ticket"]["id"]]


def test_every_claim_event_twice_and_concurrently_opens_one_ticket(flow, sandbox):

    flow.configure_richpanel()
    for event_id in ("c", "c"):
        flow.webhook("claim.created", claim_created("c-1"), event_id=event_id)
    flow.webhook("claim.created", claim_created("c-1"), event_id="c-again")
    flow.webhook("claim.approved", claim_approved("c-1"), event_id="a")
    messages = flow.receive("RichpanelWorkerFunction")
    flow.work_concurrently("RichpanelWorkerFunction", messages)
    flow.work()

    assert len(messages) == 3  # the duplicate event id was never enqueued
    assert len(sandbox["richpanel"].state()["tickets"]) == 1


# -- 8. late events ------------------------------------------------------------------------------------------------


def test_a_stale_denial_after_the_approval_changes_nothing_and_is_on_the_timeline(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="c", created_at="2026-11-20T10:00:00Z")
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a", created_at="2026-11-20T10:05:00Z"
    )
    money.work()
    money.webhook("claim.denied", {"claim_id": "c-1"}, event_id="d", created_at="2026-11-20T10:04:59.500Z")
    money.work()
    drain(money)

    view = money.claim_view("c-1")
    assert view["claim"]["claim_state"] == "APPROVED"
    assert any("older than the claim's state APPROVED" in t["note"] for t in view["timeline"])
    assert len(issues(sandbox)) == 1 and ledger(money)[0]["state"] == "ISSUED"


def test_a_newer_denial_holds_a_credit_not_yet_paid(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="c", created_at="2026-11-20T10:00:00Z")
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a", created_at="2026-11-20T10:05:00Z"
    )
    money.webhook("claim.denied", {"claim_id": "c-1"}, event_id="d", created_at="2026-11-20T10:06:00Z")
    money.work()
    drain(money)

    assert money.claim_view("c-1")["claim"]["claim_state"] == "DENIED"
    (row,) = ledger(money)
    assert row["state"] == "HELD" and row["hold_code"] == "claim_state" and "DENIED" in row["state_reason"]
    assert sandbox["rise"].calls() == []


def test_an_approval_re_sent_later_under_a_new_id_is_still_one_credit(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="c", created_at="2026-11-20T10:00:00Z")
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a1", created_at="2026-11-20T10:05:00Z"
    )
    money.work()
    drain(money)
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a2", created_at="2026-11-21T08:00:00Z"
    )
    money.work()
    drain(money)

    assert len(issues(sandbox)) == 1
    assert len(sandbox["order_protection"].state()["resolutions"]) == 1


def test_a_claim_created_handled_after_its_approval_keeps_the_approved_state(money, sandbox):
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit()), event_id="a", created_at="2026-11-20T10:05:00Z"
    )
    money.work()
    money.webhook("claim.created", claim_created("c-1"), event_id="c", created_at="2026-11-20T10:00:00Z")
    money.work()

    claim = money.claim_view("c-1")["claim"]
    assert claim["claim_state"] == "APPROVED" and claim["description"] == "Box arrived crushed"


# -- 9. money is held to its currency --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "wire", "reported"),
    [("1e2", "USD", 100.0, "100.00"), (1000, "JPY", 1000.0, "1000"), ("1.234", "KWD", 1.234, "1.234")],
)
def test_amounts_are_exact_in_their_currency_from_the_webhook_to_the_report(
    money, sandbox, amount, currency, wire, reported
):
    money.create_store(currency=currency, max_credit_amount="100000")
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit(amount, currency)), event_id="a")
    money.work()
    drain(money)

    import json

    (issue,) = issues(sandbox)
    assert json.loads(issue["body"])["gift_card"]["balance"] == wire
    (report,) = sandbox["order_protection"].state()["resolutions"]
    assert report["amount"] == reported and report["currency"] == currency
    assert ledger(money)[0]["amount"] == reported


def test_more_precision_than_the_currency_has_is_held_not_rounded(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit("10.005")), event_id="a")
    money.work()
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "HELD" and row["hold_code"] == "amount"
    assert "more precision than USD allows" in row["state_reason"]
    assert Decimal(str(table_store().get(claim_pk(money.store_id, "c-1"), SLOT)["amount"])) == Decimal("10.005")
    assert sandbox["rise"].calls() == [] and sandbox["order_protection"].state()["resolutions"] == []


def _job(flow, claim_id: str):
    from claimbridge.models.credits import CreditJob

    return CreditJob(store_id=flow.store_id, pk=claim_pk(flow.store_id, claim_id), sk=SLOT)
