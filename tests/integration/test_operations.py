"""Nothing stays stuck without someone being told: the sweeper, re-drive on repair, the health check, the operator's
ledger actions and the queues, over the emulators and the partner sandbox."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from claimbridge.ledger import Ledger
from claimbridge.models.credits import CreditJob
from claimbridge.runtime import table_store
from claimbridge.store import claim_pk
from claimbridge.sweeper import Sweeper
from tests.integration.conftest import RISE_TOKEN, WEBHOOK_SECRET, claim_approved, claim_created, module_of
from tests.integration.test_credits import SLOT, drain, issues, row_of, service, store_credit


def sweeper_for(flow, clock) -> Sweeper:
    def enqueue_event(event: dict[str, Any]) -> None:
        attributes = {
            n: {"DataType": "String", "StringValue": str(event[n])} for n in ("store_id", "event_id", "topic")
        }
        flow.sqs.send_message(
            QueueUrl=flow.queue_url("RichpanelQueue"), MessageBody=event["body"], MessageAttributes=attributes
        )

    def enqueue_claim(store_id: str, claim_id: str) -> None:
        from claimbridge.config import get_settings
        from claimbridge.runtime import reconcile_message

        flow.sqs.send_message(**reconcile_message(get_settings(), store_id, claim_id))

    return Sweeper(
        store=table_store(),
        enqueue_credit=lambda job: flow.sqs.send_message(
            QueueUrl=flow.queue_url("CreditQueue"), MessageBody=job.model_dump_json()
        ),
        enqueue_event=enqueue_event,
        enqueue_claim=enqueue_claim,
        clock=clock,
    )


@pytest.fixture(autouse=True)
def others_out_of_the_way():
    """The table is the whole session's: push what earlier tests left stuck far past this test's clocks."""
    far = time.time() + 10**7
    Sweeper(
        store=table_store(), enqueue_credit=lambda job: None, enqueue_event=lambda event: None, clock=lambda: far
    ).sweep()


def admin(flow, method: str, path: str, body: Any = None):
    return flow.stack.admin(method, path, body)


# -- the sweeper ---------------------------------------------------------------------------------------------------


def queued_bonus_without_a_job(flow, order: str) -> tuple[str, str]:
    """A bonus row written QUEUED as the admin writes it, whose job was never sent (the admin died in between)."""
    from claimbridge.credits import new_row
    from claimbridge.runtime import store_directory

    pk, sk = f"STORE#{flow.store_id}#BONUS#{order}", "LEDGER#bonus#apology"
    row = new_row(
        store_directory().store(flow.store_id),
        pk=pk,
        sk=sk,
        kind="bonus_credit",
        amount="15.00",
        currency="USD",
        order_number=order,
        customer_email="ann@example.com",
        reason="Apology",
    )
    Ledger(table_store()).create(row)
    return pk, sk


def test_a_bonus_whose_enqueue_never_happened_is_issued_once_by_the_sweep(money, sandbox):
    # given the admin wrote the QUEUED row and died before sending its job
    pk, sk = queued_bonus_without_a_job(money, "1001")
    assert money.messages("CreditQueue") == 0
    later = [time.time() + 601]

    first = sweeper_for(money, lambda: later[0]).sweep()
    drain(money)
    second = sweeper_for(money, lambda: later[0] + 1200).sweep()

    assert first.redriven >= 1 and first.stuck.get("ledger:QUEUED", 0) >= 1
    assert table_store().get(pk, sk)["state"] == "ISSUED"
    assert len(issues(sandbox)) == 1
    assert money.messages("CreditQueue") == 0
    assert not any(
        item.get("PK") == pk for shard in range(4) for item in table_store().query_due(f"DUE#{shard}", 2**40)[0]
    )  # settled: gone from the index, so it costs the sweeper nothing any more
    assert second.stuck.get("ledger:QUEUED", 0) < first.stuck.get("ledger:QUEUED", 0) or second.redriven == 0


def test_a_worker_killed_after_taking_a_credit_is_found_by_the_sweep_and_settled_once_never_paid_twice(money, sandbox):
    from tests.integration.test_credits import CrashError, CrashingStore

    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="a")
    money.work()
    job = money.receive("CreditWorkerFunction")  # the job is taken off the queue by the worker that dies
    assert job
    money.sqs.delete_message(QueueUrl=money.queue_url("CreditQueue"), ReceiptHandle=job[0]["ReceiptHandle"])
    with pytest.raises(CrashError):
        service(store=CrashingStore(table_store(), state="PENDING")).handle(
            CreditJob(store_id=money.store_id, pk=claim_pk(money.store_id, "c-1"), sk=SLOT)
        )
    stranded = row_of(money)

    report = sweeper_for(money, lambda: time.time() + 200).sweep()  # past the lease and its grace
    module_of(money, "CreditWorkerFunction").service.cache_clear()
    future = time.time() + 200
    worker = service(clock=lambda: future)
    for message in money.receive("CreditWorkerFunction"):
        worker.handle(CreditJob.model_validate_json(message["Body"]))

    assert stranded["state"] == "PENDING"
    assert report.stuck.get("ledger:PENDING", 0) >= 1
    row = row_of(money)
    assert row["state"] == "HELD" and row["hold_code"] == "outcome_unknown"  # Rise cannot tell: a person settles
    assert issues(sandbox) == []
    held = admin(money, "GET", f"/internal/stores/{money.store_id}/ledger?state=HELD").json()
    assert [r["ledger_id"] for r in held["rows"]] == ["claim:c-1:store_credit:claim_credit"]


def test_a_webhook_recorded_but_never_enqueued_is_enqueued_by_the_sweep(flow, sandbox):
    from claimbridge.receiver import WebhookReceiver

    class DeadSqs:
        def send_message(self, **_: Any) -> None:
            raise SystemExit("the function dies between the write and the send")

    flow.configure_richpanel()
    raw = json.dumps({"id": "evt-lost", "topic": "claim.created", "body": claim_created("c-lost")})
    receiver = WebhookReceiver(store=table_store(), sqs=DeadSqs(), queue_url=flow.queue_url("RichpanelQueue"))
    with pytest.raises(SystemExit):
        receiver.receive(flow.store_id, "whsec_integration_0123456789", raw)

    report = sweeper_for(flow, lambda: time.time() + 120).sweep()
    flow.work()

    assert report.stuck.get("event:PENDING", 0) >= 1
    assert flow.event_record("evt-lost")["state"] == "DONE"
    assert len(sandbox["richpanel"].state()["tickets"]) == 1


def test_a_claim_whose_job_was_lost_after_it_was_recorded_gets_its_ticket_from_the_sweep(flow, sandbox):
    flow.configure_richpanel()
    sandbox["richpanel"].faults(error_rate=1.0, error_status=503)
    flow.webhook("claim.created", claim_created("c-lost"), event_id="c")
    flow.work(rounds=1)  # recorded; Richpanel down; the job goes back to the queue...
    for message in flow.receive("RichpanelWorkerFunction", wait=0) or []:
        flow.sqs.delete_message(QueueUrl=flow.queue_url("RichpanelQueue"), ReceiptHandle=message["ReceiptHandle"])
    flow.sqs.purge_queue(QueueUrl=flow.queue_url("RichpanelQueue"))  # ...and is lost (purged by hand, say)
    sandbox["richpanel"].faults()
    stranded = flow.claim_view("c-lost")["ticket"]["id"]

    report = sweeper_for(flow, lambda: time.time() + 601).sweep()
    flow.work()

    assert stranded is None and report.stuck.get("claim:NEW", 0) >= 1
    assert flow.claim_view("c-lost")["ticket"]["id"]
    assert len(sandbox["richpanel"].state()["tickets"]) == 1


def test_the_sweeper_stops_nudging_an_item_whose_job_keeps_dying_and_says_so(money, sandbox):
    from claimbridge.sweeper import MAX_REDRIVES

    pk, sk = queued_bonus_without_a_job(money, "dying")
    clock = [time.time()]
    redriven = []
    for _ in range(MAX_REDRIVES + 2):  # nobody works the queue: every nudge's job "dies"
        clock[0] += 601
        redriven.append(sweeper_for(money, lambda: clock[0]).sweep().redriven)

    row = table_store().get(pk, sk)
    assert redriven[:MAX_REDRIVES] == [1] * MAX_REDRIVES and redriven[MAX_REDRIVES:] == [0, 0]
    assert "due_shard" not in row and row["state"] == "QUEUED"  # out of the sweep; its queue's DLQ alarm is the signal


def test_a_credit_waiting_for_its_customer_is_due_at_its_deadline_not_every_ten_minutes(money, sandbox):
    money.webhook("claim.approved", claim_approved("w-1", store_credit()), event_id="a")
    money.work()
    with pytest.raises(Exception, match="waiting"):
        service().handle(CreditJob(store_id=money.store_id, pk=claim_pk(money.store_id, "w-1"), sk=SLOT))

    row = row_of(money, "w-1")
    created = datetime.fromisoformat(row["created_at"]).timestamp()
    assert row["wait_code"] == "customer_unknown" and int(row["due_at"]) == int(created + 24 * 3600) + 60


def test_the_sweep_reads_only_what_is_stuck(unpaced, sandbox):
    money = unpaced
    # given settled rows (an ISSUED credit is in no index partition) and a few stuck ones
    for n in range(20):
        money.webhook("claim.created", claim_created(f"ok-{n}"), event_id=f"c{n}")
        money.webhook("claim.approved", claim_approved(f"ok-{n}", store_credit()), event_id=f"a{n}")
    money.work(rounds=20)
    drain(money)
    report = sweeper_for(money, lambda: time.time() + 10).sweep()

    assert report.queries == 4  # one query per shard, whatever the number of settled rows
    assert report.stuck.get("ledger:ISSUED", 0) == 0


# -- re-drive on repair --------------------------------------------------------------------------------------------


def test_a_credit_held_because_rise_was_not_configured_is_issued_on_saving_rise(flow, sandbox):
    flow.create_store(currency="USD")
    flow.webhook("claim.created", claim_created("c-1"), event_id="c")
    flow.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="a")
    flow.work()
    drain(flow)
    held = row_of(flow)
    sandbox["rise"].seed({"customers": {"ann@example.com": "7001"}})

    flow.configure("rise", {"credit_api_token": RISE_TOKEN})  # the one call
    drain(flow)

    assert held["state"] == "HELD" and held["hold_code"] == "provider_not_configured"
    row = row_of(flow)
    assert row["state"] == "ISSUED" and len(issues(sandbox)) == 1
    assert "HELD>QUEUED" in [f"{s['from']}>{s['to']}" for s in row["history"]]


def test_raising_the_cap_re_drives_what_the_old_cap_held_and_only_that(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit("600.00")), event_id="a")
    money.webhook("claim.created", claim_created("c-2"), event_id="c2")
    money.webhook("claim.approved", claim_approved("c-2", store_credit("900.00")), event_id="a2")
    money.work()
    drain(money)

    money.create_store(currency="USD", max_credit_amount="700.00")
    drain(money)

    assert row_of(money, "c-1")["state"] == "ISSUED"
    still = row_of(money, "c-2")
    assert still["state"] == "HELD" and still["hold_code"] == "cap"


def test_a_put_that_leaves_the_cap_out_releases_nothing_the_old_cap_held(money, sandbox):
    money.webhook("claim.created", claim_created("c-3"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-3", store_credit("600.00")), event_id="a")
    money.work()
    drain(money)

    # PUT replaces the profile, so the store's own cap is gone (the 500.00 default applies now), but nobody asked
    # for held money to move: it stays held for a person
    body = {"name": "Flow store", "shop_domain": f"{money.store_id}.myshopify.com", "webhook_secrets": [WEBHOOK_SECRET]}
    replaced = money.stack.admin("PUT", f"/internal/stores/{money.store_id}", body)
    drain(money)

    assert replaced.status == 200
    held = row_of(money, "c-3")
    assert held["state"] == "HELD" and held["hold_code"] == "cap" and issues(sandbox) == []


def test_a_customer_who_arrives_after_the_deadline_re_drives_the_held_credit(money, sandbox):
    now = [time.time()]
    money.webhook("claim.approved", claim_approved("late", store_credit()), event_id="a")
    money.work()
    svc = service(clock=lambda: now[0])
    now[0] += 24 * 3600 + 1
    svc.handle(CreditJob(store_id=money.store_id, pk=claim_pk(money.store_id, "late"), sk=SLOT))
    held = row_of(money, "late")

    money.webhook("claim.created", claim_created("late"), event_id="c")
    money.work()
    drain(money)

    assert held["state"] == "HELD" and held["hold_code"] == "customer_unknown"
    assert row_of(money, "late")["state"] == "ISSUED" and len(issues(sandbox)) == 1


# -- integration health ----------------------------------------------------------------------------------------------


def run_health(flow) -> dict[str, int]:
    return flow.stack.functions["SyncFunction"].invoke({"task": "health"})


def test_a_revoked_then_restored_richpanel_key_is_invalid_then_valid_and_its_skipped_tickets_are_opened(flow, sandbox):
    flow.configure_richpanel()
    sandbox["richpanel"].seed({"revoked_keys": [flow.richpanel_key]})

    run_health(flow)
    invalid = admin(flow, "GET", f"/internal/integrations/richpanel/stores/{flow.store_id}").json()["status"]
    flow.webhook("claim.created", claim_created("c-1"), event_id="c")  # skipped while the key is refused
    flow.work()
    skipped = [c for c in sandbox["richpanel"].calls("/v1/tickets", "POST") if flow.richpanel_key in json.dumps(c)]
    sandbox["richpanel"].seed({"revoked_keys": []})
    run_health(flow)
    valid = admin(flow, "GET", f"/internal/integrations/richpanel/stores/{flow.store_id}").json()["status"]
    flow.work()

    assert invalid["state"] == "invalid" and "health check" in invalid["reason"]
    assert skipped == []  # this store's calls only: the health check may re-drive other tests' leftovers
    assert valid["state"] == "valid"
    opened = [c for c in sandbox["richpanel"].calls("/v1/tickets", "POST") if flow.richpanel_key in json.dumps(c)]
    assert [c["status"] for c in opened] == [201]
    assert flow.claim_view("c-1")["ticket"]["id"]


def test_a_revoked_then_restored_rise_token_holds_then_issues_the_credit(money, sandbox):
    token = f"rise_{money.store_id.replace('-', '_')}_0123"  # this store's own account
    money.configure("rise", {"credit_api_token": token})
    sandbox["rise"].seed({"revoked_tokens": [token]})
    run_health(money)
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="a")
    money.work()
    drain(money)
    held = row_of(money)

    sandbox["rise"].seed({"revoked_tokens": []})
    run_health(money)
    deadline = time.monotonic() + 15  # the health check's own call may use the token's second: a 429 defers 1 s
    while row_of(money)["state"] != "ISSUED" and time.monotonic() < deadline:
        drain(money)
        time.sleep(0.2)

    assert held["state"] == "HELD" and held["hold_code"] == "provider_invalid"
    # This store's cards only: the health check runs over every store of the shared table, and may re-drive a credit
    # an earlier test left held into this test's queue (another store's account, paid once there).
    mine = [call for call in issues(sandbox) if token in json.dumps(call["headers"])]
    assert row_of(money)["state"] == "ISSUED" and len(mine) == 1


def test_a_revoked_postco_key_marks_the_integration_invalid_at_the_health_check_and_valid_when_restored(flow, sandbox):
    key = f"sk_{flow.store_id.replace('-', '_')}_0123456789"
    flow.configure("postco", {"api_key": key, "bonus": {"type": "fixed", "value": "5.00"}})
    path = f"/internal/integrations/postco/stores/{flow.store_id}"
    sandbox["postco"].seed({"revoked_keys": [key]})

    run_health(flow)
    refused = admin(flow, "GET", path).json()["status"]
    sandbox["postco"].seed({"revoked_keys": []})
    run_health(flow)
    restored = admin(flow, "GET", path).json()["status"]

    assert refused["state"] == "invalid" and "invalid_api_key" in refused["reason"]
    assert restored["state"] == "valid"
    mine = [c for c in sandbox["postco"].calls("/return_orders") if c["headers"]["authorization"] == f"Bearer {key}"]
    assert len(mine) == 2  # one check a run (other stores' PostCo keys in the table are checked too)


def test_a_partner_that_is_down_at_the_health_check_leaves_the_status_as_it_was(flow, sandbox):
    flow.configure_richpanel()
    sandbox["richpanel"].faults(error_rate=1.0, error_status=503)

    run_health(flow)

    status = admin(flow, "GET", f"/internal/integrations/richpanel/stores/{flow.store_id}").json()["status"]
    assert status["state"] == "valid"


# -- the operator's actions ----------------------------------------------------------------------------------------


@pytest.fixture
def held(money, sandbox):
    """A credit held by the cap: the operator's starting point."""
    money.webhook("claim.created", claim_created("c-1"), event_id="c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit("600.00")), event_id="a")
    money.work()
    drain(money)
    return money


def act(flow, body: dict[str, Any], entry: str = "claim:c-1:store_credit:claim_credit"):
    return admin(flow, "POST", f"/internal/stores/{flow.store_id}/ledger/{entry}/actions", body)


def test_the_held_list_shows_each_row_with_its_reason_and_pages(held):
    answer = admin(held, "GET", f"/internal/stores/{held.store_id}/ledger?state=HELD").json()

    (row,) = answer["rows"]
    assert row["hold_code"] == "cap" and "cap" in row["state_reason"] and answer["next_cursor"] is None
    assert admin(held, "GET", f"/internal/stores/{held.store_id}/ledger?state=ISSUED").status == 422
    assert admin(held, "GET", f"/internal/stores/{held.store_id}/ledger?state=HELD&cursor=garbage").status == 422
    for forged in ("e30=", "W10=", "eyJzdG9yZV9zdGF0ZSI6IHsiUyI6ICJvdGhlciNIRUxEIn19"):  # {}, [], another listing's
        answer = admin(held, "GET", f"/internal/stores/{held.store_id}/ledger?state=HELD&cursor={forged}")
        assert answer.status == 422 and answer.json()["errors"][0]["field"] == "cursor"


def test_retry_by_an_operator_is_audited_and_goes_through_the_guardrails_again(held, sandbox):
    answer = act(held, {"action": "retry", "reason": "customer confirmed; cap exception"})
    drain(held)

    assert answer.status == 200
    (audit,) = answer.json()["audit"]
    assert audit["who"] == "key:bootstrap" and audit["action"] == "retry" and audit["why"].startswith("customer")
    assert (audit["before"], audit["after"]) == ("HELD", "QUEUED") and audit["at"]
    assert row_of(held)["state"] == "HELD"  # still over the cap: the guardrail holds it again, nothing paid
    assert sandbox["rise"].calls() == []


def test_mark_issued_records_the_card_and_reports_it(held, sandbox):
    answer = act(held, {"action": "mark_issued", "reason": "issued by hand in Rise", "card_id": "card-77"})
    drain(held)

    assert answer.status == 200 and answer.json()["state"] == "ISSUED" and answer.json()["card_id"] == "card-77"
    (report,) = sandbox["order_protection"].state()["resolutions"]
    assert report["reference"] == "card-77"


def test_cancel_then_any_action_is_refused_with_409_naming_the_state(held):
    cancelled = act(held, {"action": "cancel", "reason": "duplicate claim"})
    again = act(held, {"action": "retry", "reason": "changed my mind"})

    assert cancelled.status == 200 and cancelled.json()["state"] == "CANCELLED"
    assert again.status == 409 and "CANCELLED" in again.json()["message"]
    assert len(row_of(held)["audit"]) == 1  # the refused action wrote nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "refund", "reason": "why not"}, "action"),
        ({"action": "retry"}, "reason"),
        ({"action": "mark_issued", "reason": "by hand"}, "body"),
        ({"action": "retry", "reason": "ok then", "extra": 1}, "extra"),
    ],
)
def test_a_bad_action_gets_422_and_nothing_is_written(held, body, field):
    before = row_of(held)

    answer = act(held, body)

    assert answer.status == 422 and field in [e["field"] for e in answer.json()["errors"]]
    assert row_of(held)["version"] == before["version"]


def test_an_action_on_an_unknown_row_is_404(held):
    assert (
        act(held, {"action": "retry", "reason": "why not"}, entry="claim:nope:store_credit:claim_credit").status == 404
    )


# -- queues --------------------------------------------------------------------------------------------------------


def test_the_queues_show_depth_and_dlq_depth_and_a_redrive_processes_ten_dead_jobs_once(unpaced, sandbox):
    money = unpaced
    # given ten credits whose jobs went to the DLQ during an outage
    for n in range(10):
        money.webhook("claim.created", claim_created(f"d{n}"), event_id=f"c{n}")
        money.webhook("claim.approved", claim_approved(f"d{n}", store_credit()), event_id=f"a{n}")
    money.work(rounds=10)
    for message in money.receive("CreditWorkerFunction") + money.receive("CreditWorkerFunction"):
        money.sqs.send_message(QueueUrl=money.queue_url("CreditDLQ"), MessageBody=message["Body"])
        money.sqs.delete_message(QueueUrl=money.queue_url("CreditQueue"), ReceiptHandle=message["ReceiptHandle"])

    overview = admin(money, "GET", "/internal/queues").json()
    redrive = admin(money, "POST", "/internal/queues/credit/redrive")
    drain(money)

    credit = next(q for q in overview["queues"] if q["name"] == "credit")
    assert credit["dlq_depth"] == 10
    assert redrive.status == 200 and redrive.json()["moved"] == 10
    made = [c for c in sandbox["rise"].calls() if c["method"] in ("POST", "PUT") and c.get("status") == 200]
    assert len(made) == 10  # one card, then nine top-ups of it: the ten credits once each
    assert all(row_of(money, f"d{n}")["state"] == "ISSUED" for n in range(10))
    assert admin(money, "POST", "/internal/queues/nope/redrive").status == 404
