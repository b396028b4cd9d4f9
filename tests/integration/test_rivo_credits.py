"""Rivo as a store's credit provider: a claim's store credit becomes one points event with ``credits_amount``, through
the same ledger and state machine as Rise's cards, and is reported back; a lost answer is settled by the note that
names it, never by a second event. The sandbox's record of calls is the proof."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest

from claimbridge.models.credits import CreditJob
from claimbridge.store import claim_pk
from tests.integration.conftest import Flow, module_of
from tests.integration.test_credits import SLOT, approve_with_credit, drain, ledger, row_of

RIVO_KEY = "rivo_credit_key_0123456789"


@pytest.fixture
def rivo(flow: Flow, sandbox: Any) -> Flow:
    flow.create_store(currency="USD", max_credit_amount="500.00", credit_provider="rivo")
    flow.configure("rivo", {"api_key": RIVO_KEY + flow.store_id})
    flow.configure("order_protection", {"api_token": "op_token_0123456789"})
    sandbox["rivo"].seed(
        {"customers": {"ann@example.com": {"customer_id": 7001, "email": "ann@example.com", "points_tally": 10}}}
    )
    return flow


def events(sandbox: Any, method: str = "POST") -> list[dict[str, Any]]:
    return [
        c
        for c in sandbox["rivo"].calls("/points_events", method)
        if c.get("status") in (201, 200, "applied, then timed out")
    ]


def form(call: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(call["body"], keep_blank_values=True).items()}


def test_a_claims_store_credit_becomes_one_points_event_with_the_credits_and_is_reported_back(rivo, sandbox):
    approve_with_credit(rivo, amount="25.50")
    drain(rivo)

    (call,) = events(sandbox)
    sent = form(call)
    assert call["headers"]["authorization"] == RIVO_KEY + rivo.store_id  # the raw key, no "Bearer"
    assert call["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert sent["customer_identifier"] == "ann@example.com"
    assert sent["credits_amount"] == "25.50" and sent["points_amount"] == "0"
    assert sent["internal_note"] == "claim:c-1:store_credit:claim_credit"
    assert "c-1" in sent["external_note"] and sent["skip_email"] == "false"
    (row,) = ledger(rivo)
    assert row["state"] == "ISSUED" and row["provider"] == "rivo" and row["operation"] == "points_event"
    (report,) = sandbox["order_protection"].state()["resolutions"]
    assert report["reference"] == row["card_id"] and report["amount"] == "25.50"
    customer = sandbox["rivo"].state()["customers"]["ann@example.com"]
    assert Decimal(customer["credits_tally"]) == Decimal("25.50")
    assert sandbox["rise"].calls() == []


def test_a_points_event_rivo_applied_then_lost_is_found_by_its_note_and_never_sent_again(rivo, sandbox, monkeypatch):
    worker = module_of(rivo, "CreditWorkerFunction")
    monkeypatch.setattr(worker, "RIVO_TIMEOUT", (2.0, 1.0))
    approve_with_credit(rivo)
    sandbox["rivo"].faults(
        apply_timeout_rate=1.0, apply_timeout_path="/points_events", apply_timeout_method="POST", hang_s=1.5
    )
    rivo.work("CreditWorkerFunction")  # Rivo makes the event; its answer never comes
    unknown = row_of(rivo)
    sandbox["rivo"].faults()

    worker.service().handle(CreditJob(store_id=rivo.store_id, pk=claim_pk(rivo.store_id, "c-1"), sk=SLOT))
    drain(rivo)

    assert unknown["state"] == "UNKNOWN"
    assert len(events(sandbox)) == 1  # the one Rivo made; nothing re-sent
    row = row_of(rivo)
    assert row["state"] == "ISSUED" and row["reconciled"] is True
    made = sandbox["rivo"].state()["points_events"][0]
    assert row["card_id"] == str(made["id"]) and made["internal_note"] == row["ledger_id"]
    assert len(sandbox["order_protection"].state()["resolutions"]) == 1


def test_a_points_event_that_never_reached_rivo_is_proven_absent_by_the_read_back_and_sent_once(
    rivo, sandbox, monkeypatch
):
    worker = module_of(rivo, "CreditWorkerFunction")
    monkeypatch.setattr(worker, "RIVO_TIMEOUT", (2.0, 1.0))
    approve_with_credit(rivo)
    sandbox["rivo"].faults(timeout_rate=1.0, timeout_path="/points_events", timeout_method="POST", hang_s=1.5)
    rivo.work("CreditWorkerFunction")  # it hangs before acting: the outcome is unknown all the same
    sandbox["rivo"].faults()

    worker.service().handle(CreditJob(store_id=rivo.store_id, pk=claim_pk(rivo.store_id, "c-1"), sk=SLOT))
    rivo.sqs.purge_queue(QueueUrl=rivo.queue_url("CreditQueue"))
    worker.service().handle(CreditJob(store_id=rivo.store_id, pk=claim_pk(rivo.store_id, "c-1"), sk=SLOT))

    row = row_of(rivo)
    steps = [f"{s['from']}>{s['to']}" for s in row["history"]]
    assert "UNKNOWN>QUEUED" in steps  # absent, proven by reading every event of the customer
    assert row["state"] == "ISSUED" and len(sandbox["rivo"].state()["points_events"]) == 1
    assert row.get("reconciled") is None  # made by the second send, not found by the look-up


def test_a_rivo_429_is_retried_after_retry_after_and_credits_once(rivo, sandbox):
    approve_with_credit(rivo)
    sandbox["rivo"].faults(
        script=[{"status": 429, "body": {"errors": [{"title": "Too Many"}]}, "headers": {"Retry-After": "3"}}]
    )
    rivo.work("CreditWorkerFunction")
    queued = row_of(rivo)
    (again,) = rivo.receive("CreditWorkerFunction") or [None]

    assert queued["state"] == "QUEUED" and again is None  # sent back with a delay of Retry-After
    module_of(rivo, "CreditWorkerFunction").service().handle(
        CreditJob(store_id=rivo.store_id, pk=claim_pk(rivo.store_id, "c-1"), sk=SLOT)
    )
    assert row_of(rivo)["state"] == "ISSUED" and len(events(sandbox)) == 1


def test_a_revoked_rivo_key_holds_the_credit_and_marks_rivo_invalid_until_it_is_saved_again(rivo, sandbox):
    sandbox["rivo"].seed({"revoked_keys": [RIVO_KEY + rivo.store_id]})
    approve_with_credit(rivo)
    drain(rivo)
    held = row_of(rivo)
    status = rivo.stack.admin("GET", f"/internal/integrations/rivo/stores/{rivo.store_id}").json()["status"]

    rivo.configure("rivo", {"api_key": RIVO_KEY + rivo.store_id + "_new"})
    drain(rivo)

    assert held["state"] == "HELD" and held["hold_code"] == "provider_invalid"
    assert status["state"] == "invalid"
    assert row_of(rivo)["state"] == "ISSUED" and len(events(sandbox)) == 1


def test_a_failing_look_up_after_a_lost_answer_is_looked_up_again_never_held_or_sent_blind(rivo, sandbox, monkeypatch):
    from claimbridge.clients.http import ServerError

    worker = module_of(rivo, "CreditWorkerFunction")
    monkeypatch.setattr(worker, "RIVO_TIMEOUT", (2.0, 1.0))
    approve_with_credit(rivo)
    sandbox["rivo"].faults(
        apply_timeout_rate=1.0, apply_timeout_path="/points_events", apply_timeout_method="POST", hang_s=1.5
    )
    rivo.work("CreditWorkerFunction")
    sandbox["rivo"].faults(error_rate=1.0, error_status=503, error_path="/points_events", error_method="GET")
    job = CreditJob(store_id=rivo.store_id, pk=claim_pk(rivo.store_id, "c-1"), sk=SLOT)

    with pytest.raises(ServerError):
        worker.service().handle(job)
    still = row_of(rivo)
    sandbox["rivo"].faults()
    worker.service().handle(job)

    assert still["state"] == "UNKNOWN" and still["lease_until"] == 0
    assert row_of(rivo)["state"] == "ISSUED" and len(events(sandbox)) == 1
