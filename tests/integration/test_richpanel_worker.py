"""The Richpanel worker against the sandbox over real HTTP: tickets, snoozes, order of events, failures."""

from __future__ import annotations

import json
import time

from tests.integration.conftest import TEAM, claim_approved, claim_created


def richpanel_calls(sandbox, flow, path: str = "", method: str | None = None) -> list[dict]:
    """The sandbox's record of the worker's calls: this test's key, without the key check made at save time."""
    return [
        c
        for c in sandbox["richpanel"].calls(path, method)
        if c["headers"].get("x-richpanel-key") == flow.richpanel_key and c["path"] != "/v1/teams"
    ]


def test_a_new_claim_opens_one_ticket_with_everything_an_agent_needs(flow, sandbox):
    flow.configure_richpanel(default_channel="twilio-sms")

    flow.webhook("claim.created", claim_created("c-100"), event_id="e1")
    flow.work()

    (call,) = richpanel_calls(sandbox, flow, "/v1/tickets", "POST")
    ticket = json.loads(call["body"])["ticket"]
    body = ticket["comment"]["body"]
    assert ticket["status"] == "OPEN"
    assert ticket["assignee_team_id"] == TEAM
    assert ticket["via"]["channel"] == "twilio-sms"
    assert ticket["via"]["source"]["from"] == {"address": "ann@example.com", "name": "Ann Lee", "number": "+15550100"}
    assert "#c-100" in ticket["subject"] and "order #1001" in ticket["subject"]
    for expected in (
        "Ann Lee",
        "ann@example.com",
        "+15550100",
        "Order #1001",
        "2 x Blue mug",
        "21.25",
        "Order total: 42.50 USD",
        "Damaged",
        "status NEW",
        "Box arrived crushed",
    ):
        assert expected in body, expected
    assert '<a href="https://dashboard.orderprotection.com/claims/c-100">' in body
    view = flow.claim_view("c-100")
    assert view["ticket"]["id"]
    assert view["claim"]["claim_type"] == "DAMAGED"
    assert any(t.get("operation") == "create_ticket" and t["outcome"] == "ok" for t in view["timeline"])


def test_customer_text_is_escaped_in_the_ticket(flow, sandbox):
    flow.configure_richpanel()

    flow.webhook("claim.created", claim_created("c-xss", claim_description="<script>alert(1)</script>"), event_id="e1")
    flow.work()

    (call,) = richpanel_calls(sandbox, flow, "/v1/tickets", "POST")
    body = json.loads(call["body"])["ticket"]["comment"]["body"]
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_an_approval_snoozes_the_ticket_with_the_string_zero(flow, sandbox):
    flow.configure_richpanel()
    flow.webhook("claim.created", claim_created("c-1"), event_id="e1")
    flow.work()

    flow.webhook("claim.approved", claim_approved("c-1"), event_id="e2", route="resolutions")
    flow.work()

    ticket_id = flow.claim_view("c-1")["ticket"]["id"]
    (snooze,) = richpanel_calls(sandbox, flow, f"/v1/tickets/{ticket_id}/snooze", "PUT")
    assert snooze["body"] == '{"snoozed_till": "0"}'
    assert len(richpanel_calls(sandbox, flow, "/v1/tickets", "POST")) == 1
    assert flow.claim_view("c-1")["claim"]["claim_state"] == "APPROVED"


def test_resolved_and_updated_to_resolved_snooze_too_but_other_updates_do_not(flow, sandbox):
    flow.configure_richpanel()
    flow.webhook("claim.created", claim_created("c-1"), event_id="e1", created_at="2026-11-20T10:00:00Z")
    flow.work()

    opened = {"claim_id": "c-1", "claim_state": "OPEN"}
    flow.webhook("claim.updated", opened, event_id="e2", created_at="2026-11-20T10:01:00Z")
    flow.webhook("claim.resolved", claim_approved("c-1"), event_id="e3", created_at="2026-11-20T10:02:00Z")
    flow.work()
    resolved = {"claim_id": "c-1", "claim_state": "RESOLVED"}
    flow.webhook("claim.updated", resolved, event_id="e4", created_at="2026-11-20T10:03:00Z")
    flow.webhook("claim.updated", resolved, event_id="e5", created_at="2026-11-20T10:03:00Z")  # re-sent: same state
    flow.work()

    snoozes = richpanel_calls(sandbox, flow, "/v1/tickets/", "PUT")
    # claim.resolved and the later update to RESOLVED; not the update to OPEN, not the re-sent update
    assert len(snoozes) == 2
    assert all(c["path"].endswith("/snooze") for c in snoozes)


def test_an_approval_before_the_claim_opens_the_ticket_then_snoozes_it(flow, sandbox):
    flow.configure_richpanel()
    flow.configure("order_protection", {"api_token": "op_token_0123456789"})
    sandbox["order_protection"].seed(
        {
            "orders": {
                "order-c-ooo": {
                    "id": "order-c-ooo",
                    "number": "2002",
                    "currency": "USD",
                    "total": "10.00",
                    "customer": {"id": "7002", "email": "bob@example.com", "first_name": "Bob", "last_name": "Ray"},
                }
            }
        }
    )

    flow.webhook("claim.approved", claim_approved("c-ooo"), event_id="e-approve")
    flow.work()
    flow.webhook("claim.created", claim_created("c-ooo", customer={"email": "bob@example.com"}), event_id="e-create")
    flow.work()

    calls = richpanel_calls(sandbox, flow, "/v1/tickets")
    assert [(c["method"], c["path"].endswith("/snooze")) for c in calls] == [("POST", False), ("PUT", True)]
    assert json.loads(calls[0]["body"])["ticket"]["via"]["source"]["from"]["address"] == "bob@example.com"


def test_created_and_approved_handled_at_the_same_moment_open_one_ticket(flow, sandbox):
    flow.configure_richpanel()
    flow.webhook("claim.created", claim_created("c-race"), event_id="e1")
    flow.webhook("claim.approved", claim_approved("c-race"), event_id="e2")
    messages = flow.receive("RichpanelWorkerFunction")
    assert len(messages) == 2
    flow.work_concurrently("RichpanelWorkerFunction", messages)
    deadline = time.monotonic() + 20  # a call that found the key's pace full was deferred to its slot: run it then
    while time.monotonic() < deadline and flow.claim_view("c-race")["ticket"]["snoozed_at"] is None:
        flow.work()
        time.sleep(0.2)

    tickets = sandbox["richpanel"].state()["tickets"]
    claim = flow.claim_view("c-race")
    assert len(tickets) == 1  # both may have asked; the claim's one id made the second a 409
    assert list(tickets) == [claim["ticket"]["id"]]
    assert tickets[claim["ticket"]["id"]]["status"] == "SNOOZED"


def test_a_492_with_retry_after_defers_the_message_by_that_long(flow, sandbox):
    flow.configure_richpanel()
    sandbox["richpanel"].faults(script=[{"status": 492, "headers": {"Retry-After": "2"}, "body": {"error": "quota"}}])
    flow.webhook("claim.created", claim_created("c-492"), event_id="e1")

    flow.work()  # answered 492: the message stays, hidden for 2 s
    immediately = flow.receive("RichpanelWorkerFunction")
    time.sleep(2.2)
    flow.work()

    assert immediately == []
    calls = richpanel_calls(sandbox, flow, "/v1/tickets", "POST")
    assert [c["status"] for c in calls] == [492, 201]
    assert calls[1]["at"] - calls[0]["at"] >= 2.0


def test_a_refused_key_marks_the_integration_invalid_and_stops_calling(flow, sandbox):
    flow.configure_richpanel()
    sandbox["richpanel"].seed({"revoked_keys": [flow.richpanel_key]})

    flow.webhook("claim.created", claim_created("c-401"), event_id="e1")
    flow.work()
    flow.webhook("claim.created", claim_created("c-402"), event_id="e2")
    flow.webhook("claim.approved", claim_approved("c-401"), event_id="e3")
    flow.work()

    status = flow.stack.admin("GET", f"/internal/integrations/richpanel/stores/{flow.store_id}").json()["status"]
    assert status["state"] == "invalid"
    assert "refused" in status["reason"]
    assert [c["status"] for c in richpanel_calls(sandbox, flow)] == [401]  # one call, then none
    assert flow.messages("RichpanelQueue") == 0  # failed permanently, no retry storm
    notes = [t["note"] for t in flow.claim_view("c-402")["timeline"]]
    assert any("invalid" in note for note in notes)


def test_a_5xx_streak_lands_the_message_in_the_dlq_after_eight_failures_with_its_reason(flow, sandbox, monkeypatch):
    monkeypatch.setattr("claimbridge.jobs.MAX_DELAY_S", 0)  # fast-forward the backoff the worker asks for
    flow.configure_richpanel()
    sandbox["richpanel"].faults(error_rate=1.0, error_status=503)
    flow.webhook("claim.created", claim_created("c-503"), event_id="e1")

    attempts = 0
    for _ in range(12):
        handled = flow.work(rounds=1)
        if not handled:
            break
        attempts += handled

    dead = flow.sqs.receive_message(QueueUrl=flow.queue_url("RichpanelDLQ"), MessageAttributeNames=["All"])
    attributes = dead["Messages"][0]["MessageAttributes"]
    assert attempts == 8
    assert attributes["event_id"]["StringValue"] == "e1"
    assert attributes["failed_before"]["StringValue"] == "8" and attributes["failures"]["StringValue"] == "0"
    assert attributes["reason"]["StringValue"] == "richpanel: HTTP 503"
    assert flow.messages("RichpanelQueue") == 0
    assert all(c["status"] == 503 for c in richpanel_calls(sandbox, flow))


def test_the_worker_backs_off_on_5xx_and_counts_the_failure_on_the_message(flow, sandbox):
    flow.configure_richpanel()
    sandbox["richpanel"].faults(error_rate=1.0, error_status=500)
    flow.webhook("claim.created", claim_created("c-500"), event_id="e1")

    flow.work()

    assert flow.receive("RichpanelWorkerFunction") == []  # sent back delayed by its backoff (at least 5 s)
    assert flow.messages("RichpanelQueue") == 1


def test_waiting_never_spends_the_failure_budget(flow, sandbox, monkeypatch):
    # given a job deferred twelve times (a 429 each time), well past the 8 failures a job may have
    monkeypatch.setattr("claimbridge.jobs.MAX_DELAY_S", 0)
    flow.configure_richpanel()
    limited = {"status": 429, "headers": {"Retry-After": "1"}, "body": {"error": "quota"}}
    sandbox["richpanel"].faults(script=[limited] * 12)
    flow.webhook("claim.created", claim_created("c-429"), event_id="e1")

    for _ in range(16):
        if not flow.work(rounds=1):
            break

    assert len(sandbox["richpanel"].state()["tickets"]) == 1  # opened on the 13th try, never dead-lettered
    assert flow.sqs.receive_message(QueueUrl=flow.queue_url("RichpanelDLQ")).get("Messages") is None
    assert flow.claim_view("c-429")["ticket"]["id"]


def test_a_missing_customer_is_fetched_from_the_order_protection_api(flow, sandbox):
    flow.configure_richpanel()
    flow.configure("order_protection", {"api_token": "op_token_0123456789"})
    sandbox["order_protection"].seed(
        {
            "orders": {
                "order-c-nocust": {
                    "id": "order-c-nocust",
                    "number": "3003",
                    "currency": "EUR",
                    "total": 99.9,
                    "customer": {
                        "id": "9",
                        "email": "cleo@example.com",
                        "firstName": "Cleo",
                        "lastName": "Park",
                        "phone": "+3312",
                    },
                    "items": [{"name": "Lamp", "quantity": 1, "price": 99.9}],
                }
            }
        }
    )

    flow.webhook(
        "claim.created", claim_created("c-nocust", customer=None, order=None, order_number=None), event_id="e1"
    )
    flow.work()

    (fetch,) = sandbox["order_protection"].calls("/v1/orders/order-c-nocust")
    assert fetch["headers"]["authorization"] == "Bearer op_token_0123456789"
    (call,) = richpanel_calls(sandbox, flow, "/v1/tickets", "POST")
    ticket = json.loads(call["body"])["ticket"]
    assert ticket["via"]["source"]["from"] == {"address": "cleo@example.com", "name": "Cleo Park", "number": "+3312"}
    assert "order #3003" in ticket["subject"]
    assert "99.90 EUR" in ticket["comment"]["body"]


def test_a_store_without_richpanel_skips_and_records_the_job(flow, sandbox):
    flow.webhook("claim.created", claim_created("c-skip"), event_id="e1")

    flow.work()

    assert sandbox["richpanel"].calls() == []
    assert flow.messages("RichpanelQueue") == 0
    notes = [t["note"] for t in flow.claim_view("c-skip")["timeline"]]
    assert any("not configured" in note and "skipped" in note for note in notes)


def test_a_message_is_recorded_on_the_timeline_and_never_sent_to_richpanel(flow, sandbox):
    flow.configure_richpanel()
    flow.webhook("claim.created", claim_created("c-msg"), event_id="e1")
    flow.work()

    flow.webhook(
        "message.created", {"claim_id": "c-msg", "order_id": "o", "message": "Where is my refund?"}, event_id="e2"
    )
    flow.work()

    assert len(richpanel_calls(sandbox, flow)) == 1  # the ticket creation only
    notes = [t["note"] for t in flow.claim_view("c-msg")["timeline"]]
    assert any("not forwarded to Richpanel" in note for note in notes)


def test_protection_changes_apply_last_writer_wins(flow):
    from claimbridge.runtime import table_store

    flow.webhook(
        "protection.added",
        {"order_id": "o-p", "amount": 2.5, "currency": "USD"},
        event_id="p1",
        created_at="2026-11-20T10:00:00Z",
    )
    flow.webhook("protection.removed", {"order_id": "o-p"}, event_id="p2", created_at="2026-11-20T12:00:00Z")
    flow.work()
    flow.webhook("protection.added", {"order_id": "o-p"}, event_id="p3", created_at="2026-11-20T11:00:00Z")
    flow.work()

    order = table_store().get(f"STORE#{flow.store_id}#ORDER#o-p", "ORDER")
    assert order["protection_state"] == "UNPROTECTED"
    assert order["protection_changed_at"] == "2026-11-20T12:00:00Z"


def test_protection_times_are_compared_as_times_not_strings(flow):
    from claimbridge.runtime import table_store

    # "…12:00:00Z" sorts after "…12:00:00.500Z" as text; and 13:00+02:00 is 11:00Z, before 12:00Z
    flow.webhook("protection.removed", {"order_id": "o-t"}, event_id="t1", created_at="2026-11-20T12:00:00.500Z")
    flow.webhook("protection.added", {"order_id": "o-t"}, event_id="t2", created_at="2026-11-20T12:00:00Z")
    flow.webhook("protection.added", {"order_id": "o-t"}, event_id="t3", created_at="2026-11-20T13:00:00+02:00")
    flow.work()

    order = table_store().get(f"STORE#{flow.store_id}#ORDER#o-t", "ORDER")
    assert order["protection_state"] == "UNPROTECTED"
    assert order["protection_changed_at"] == "2026-11-20T12:00:00.500Z"


def test_an_event_whose_body_does_not_fit_its_topic_is_refused_and_not_retried(flow, sandbox):
    flow.configure_richpanel()

    flow.webhook("claim.created", {"claim_id": "c-bad"}, event_id="e-bad")  # no order_id
    flow.work()

    assert richpanel_calls(sandbox, flow) == []
    assert flow.messages("RichpanelQueue") == 0
    assert flow.event_record("e-bad")["state"] == "DONE"


def test_an_unknown_claim_is_404_in_the_admin_view(flow):
    assert flow.stack.admin("GET", f"/internal/stores/{flow.store_id}/claims/nope").status == 404
