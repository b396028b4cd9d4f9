"""Store credit through Rise, exactly once: the sandbox's record of calls is the proof."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from claimbridge.clients.http import IntegrationTimeoutError, RateLimitError
from claimbridge.clients.rise import RiseClient
from claimbridge.credits import CreditService
from claimbridge.crypto import SecretBox
from claimbridge.directory import StoreDirectory
from claimbridge.jobs import PACE_RESERVATIONS, JobDeferredError, PaceReservations
from claimbridge.models.credits import CreditJob
from claimbridge.pacing import TablePacer, account_key
from claimbridge.providers.rise import RiseProvider
from claimbridge.runtime import aws_client, table_store
from claimbridge.store import Store, claim_pk
from tests.integration.conftest import RISE_TOKEN, claim_approved, claim_created, module_of

SLOT = "LEDGER#store_credit#claim_credit"


def store_credit(amount: Any = 25, currency: str = "USD", **extra: Any) -> list[dict[str, Any]]:
    details = {"currency": currency, "total_refund_amount": amount, "items": []}
    return [{"type": "STORE_CREDIT", "details": details, **extra}]


def rise_calls(sandbox, path: str = "", method: str | None = None) -> list[dict[str, Any]]:
    return sandbox["rise"].calls(path, method)


def issues(sandbox) -> list[dict[str, Any]]:
    """Cards Rise made: answered 200, or applied and then never answered."""
    made = ("applied, then timed out", 200)
    return [c for c in rise_calls(sandbox, "/v2/gift-cards/issue/", "POST") if c.get("status") in made]


def approve_with_credit(flow, claim_id: str = "c-1", *, event_id: str = "e-approve", amount: Any = 25, **kw) -> None:
    flow.webhook("claim.created", claim_created(claim_id, **kw), event_id=f"{event_id}-created")
    flow.webhook("claim.approved", claim_approved(claim_id, store_credit(amount)), event_id=event_id)
    flow.work()


def drain(flow) -> None:
    for _ in range(5):
        handled = flow.work("CreditWorkerFunction") + flow.work("ReportWorkerFunction")
        if not handled:
            return


def ledger(flow, claim_id: str = "c-1") -> list[dict[str, Any]]:
    return flow.claim_view(claim_id)["ledger"]


def row_of(flow, claim_id: str = "c-1") -> dict[str, Any]:
    row = table_store().get(claim_pk(flow.store_id, claim_id), SLOT)
    assert row is not None
    return row


def service(clock=time.time, store=None, timeout=(2.0, 5.0), client=RiseClient, interval_s=0.55) -> CreditService:
    from claimbridge.config import get_settings

    settings = get_settings()
    real_store = table_store()
    # Rise's 2 per second, as the worker paces it (a wait of any length: this service is not run by the job runner)
    pacer = TablePacer(real_store, account_key("rise", RISE_TOKEN), interval_s=interval_s, max_wait_s=60)
    reports: list[dict[str, Any]] = []
    svc = CreditService(
        store=store or real_store,
        directory=StoreDirectory(store=real_store, secret_box=SecretBox(aws_client("kms"), settings.kms_key_id)),
        providers={
            "rise": RiseProvider.factory(
                lambda token, observer: client(
                    token=token, base_url=settings.rise_api_base_url, observer=observer, timeout=timeout, pacer=pacer
                )
            )
        },
        enqueue_report=reports.append,
        secret_box=SecretBox(aws_client("kms"), settings.kms_key_id),
        clock=clock,
    )
    svc.reports = reports  # type: ignore[attr-defined]
    return svc


def queued(flow, claim_id: str = "c-1", amount: Any = 25, **kw: Any) -> CreditJob:
    """A claim approved with a store credit, its ledger row QUEUED; the job that names it."""
    approve_with_credit(flow, claim_id, amount=amount, **kw)
    return CreditJob(store_id=flow.store_id, pk=claim_pk(flow.store_id, claim_id), sk=SLOT)


def steps(row: dict[str, Any]) -> list[str]:
    return [f"{step['from']}>{step['to']}" for step in row.get("history", [])]


# -- the client's wire shape ------------------------------------------------------------------------------------


def test_an_approved_store_credit_issues_one_gift_card_with_the_contracts_wire_shape(money, sandbox):
    approve_with_credit(money)
    drain(money)

    (lookup,) = rise_calls(sandbox, "/v2/gift-cards/", "GET")
    (issue,) = issues(sandbox)
    body = json.loads(issue["body"])
    assert lookup["query"] == {"shop_url": f"{money.store_id}.myshopify.com", "customer_id": "7001"}
    assert issue["headers"]["x-rise-access-token"] == RISE_TOKEN
    assert issue["path"] == "/v2/gift-cards/issue/"
    assert body["shop_url"] == f"{money.store_id}.myshopify.com"
    assert Decimal(str(body["gift_card"]["balance"])) == Decimal("25")
    note = body["gift_card"]["note"]
    assert "c-1" in note and "1001" in note and "[claim:c-1:store_credit:claim_credit]" in note
    assert body["email_details"] == {
        "recipient": "Ann Lee",
        "recipient_email": "ann@example.com",
        "title": "Created by Order Protection",
        "subject": "Gift Card for Claim #c-1",
        "body": body["email_details"]["body"],
    }
    assert "checkout" in body["email_details"]["body"] and "25.00 USD" in body["email_details"]["body"]
    (row,) = ledger(money)
    assert row["ledger_id"] == "claim:c-1:store_credit:claim_credit"
    assert row["state"] == "ISSUED" and row["card_type"] == "claim_credit" and row["operation"] == "issue"
    assert row["amount"] == "25.00"
    assert row["card_code"].startswith("RISE-****") or row["card_code"].startswith("****")
    assert row["customer_email"] == "ann@example.com" and row["customer_id"] == "7001"
    assert [c["operation"] for c in row["calls"]] == ["customer_card", "issue_gift_card"]
    assert [f"{s['from']}>{s['to']}" for s in row["history"]] == ["QUEUED>PENDING", "PENDING>ISSUED"]


def test_a_customer_with_a_loyalty_card_gets_a_top_up_and_its_balance_before_is_recorded(money, sandbox):
    shop = f"{money.store_id}.myshopify.com"
    sandbox["rise"].seed(
        {
            "cards": {"card-9": {"id": "card-9", "code": "RISE-LOYAL9", "balance": "10.00"}},
            "loyalty": {f"{shop}|7001": "card-9"},
        }
    )

    approve_with_credit(money, amount="12.50")
    drain(money)

    assert issues(sandbox) == []
    (top_up,) = rise_calls(sandbox, "/v2/gift-cards/card-9", "PUT")
    assert json.loads(top_up["body"]) == {"shop_url": shop, "amount": 12.5, "type": "refund", "order_id": "order-c-1"}
    (row,) = ledger(money)
    assert (row["state"], row["operation"], row["card_type"]) == ("ISSUED", "top_up", "top_up")
    assert (Decimal(row["balance_before"]), Decimal(row["card_balance"])) == (Decimal("10"), Decimal("22.5"))
    assert sandbox["rise"].state()["cards"]["card-9"]["balance"] == "22.50"


def test_a_revoked_token_holds_the_credit_until_rise_is_repaired_and_marks_rise_invalid(money, sandbox):
    sandbox["rise"].seed({"revoked_tokens": [RISE_TOKEN]})

    approve_with_credit(money)
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "HELD" and row["hold_code"] == "provider_invalid" and "refused" in row["state_reason"]
    assert issues(sandbox) == []
    status = money.stack.admin("GET", f"/internal/integrations/rise/stores/{money.store_id}").json()["status"]
    assert status["state"] == "invalid"
    assert money.messages("CreditQueue") == 0


def test_an_unknown_store_domain_fails_the_credit_with_that_reason(money, sandbox):
    sandbox["rise"].seed({"unknown_shops": [f"{money.store_id}.myshopify.com"]})

    approve_with_credit(money)
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "FAILED" and "Store domain not found" in row["state_reason"]


def test_a_429_on_the_issue_call_is_retried_after_retry_after_never_held_and_issued_once(money, sandbox):
    # the look-up passes; the issue call is answered 429 with Retry-After: 2
    sandbox["rise"].faults(script=[{"pass": True}, {"status": 429, "headers": {"Retry-After": "2"}, "body": {}}])

    approve_with_credit(money)
    money.work("CreditWorkerFunction")
    hidden = money.receive("CreditWorkerFunction")
    after_429 = row_of(money)
    time.sleep(2.2)  # the message's own delay: Retry-After is a time, not a guess
    drain(money)

    assert hidden == []
    assert after_429["state"] == "QUEUED" and "not applied" in after_429["state_reason"]
    assert len(issues(sandbox)) == 1
    row = row_of(money)
    assert row["state"] == "ISSUED"
    assert steps(row) == ["QUEUED>PENDING", "PENDING>QUEUED", "QUEUED>PENDING", "PENDING>ISSUED"]
    assert len(rise_calls(sandbox, "/v2/gift-cards/", "GET")) == 1  # the card look-up of the take is reused


def test_the_rise_client_paces_itself_at_two_calls_per_second(money, sandbox):
    client = RiseClient(
        token=RISE_TOKEN,
        base_url=money.stack.sandbox.urls["rise"],
        pacer=TablePacer(
            table_store(), account_key("rise", "pace-test-" + money.store_id), interval_s=0.55, max_wait_s=60
        ),
    )
    started = time.monotonic()

    for _ in range(6):
        client.customer_card(shop_url=f"{money.store_id}.myshopify.com", customer_id="nobody")

    assert time.monotonic() - started >= 2.7  # five intervals between six calls
    assert [c["status"] for c in rise_calls(sandbox)] == [404] * 6  # none refused for rate


def test_concurrent_workers_take_distinct_evenly_spaced_slots_of_one_account_in_about_a_write_each(money):
    """The pacer's move is DynamoDB's own arithmetic: four workers at once never take one slot, never lose one."""
    from claimbridge import pacing

    class Counted(Store):
        writes = 0

        def advance_pacer(self, *args: Any, **kwargs: Any) -> Decimal:
            Counted.writes += 1
            return super().advance_pacer(*args, **kwargs)

    store = Counted(table_store()._client, table_store().table_name)
    waits: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            waits.append(round(seconds, 3))

    key = account_key("rise", "concurrent-" + money.store_id)
    pacing._SEEN.pop(f"PACER#{key}", None)

    def worker() -> None:  # a job runner's thread: each its own job
        PACE_RESERVATIONS.set(PaceReservations())
        pacer = TablePacer(store, key, interval_s=0.05, max_wait_s=60, clock=lambda: 1000.0, sleep=sleep)
        for _ in range(10):
            pacer.acquire()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == [round(0.05 * n, 3) for n in range(1, 40)]  # slot 0 is now: no wait
    assert table_store().get(f"PACER#{key}", "PACER")["next_at"] == Decimal("1002.000")
    # a lost condition only where a worker's first guess was wrong (was a read and a write each, and more when two
    # wrote at once)
    assert Counted.writes <= 44


# -- exactly once ------------------------------------------------------------------------------------------------


def test_the_same_claim_approved_twice_under_different_event_ids_gets_one_card(money, sandbox):
    approve_with_credit(money, event_id="e-1")
    money.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="e-2")
    money.work()
    drain(money)

    assert len(issues(sandbox)) == 1
    assert [r["state"] for r in ledger(money)] == ["ISSUED"]


def test_a_redelivered_job_after_success_makes_no_call(money, sandbox):
    svc = service()
    job = queued(money)
    svc.handle(job)

    svc.handle(job)

    assert len(issues(sandbox)) == 1
    assert len(rise_calls(sandbox)) == 2  # the look-up and the issue, once


def deliver_concurrently(svc: CreditService, job: CreditJob, times: int = 25) -> list[str]:
    outcomes: list[str] = []

    def deliver() -> None:
        try:
            svc.handle(job)
            outcomes.append("done")
        except JobDeferredError:
            outcomes.append("deferred")

    threads = [threading.Thread(target=deliver) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_twenty_five_concurrent_deliveries_make_one_card(unpaced, sandbox):
    # unpaced: twenty-five look-ups at once are for the pacer to spread (its own tests); here they race for the row
    svc = service(interval_s=0.0)
    job = queued(unpaced)

    outcomes = deliver_concurrently(svc, job)
    svc.handle(job)  # the queue drains: one more delivery finds the row settled

    assert len(issues(sandbox)) == 1
    assert outcomes.count("deferred") >= 1
    assert row_of(unpaced)["state"] == "ISSUED"


class CrashError(Exception):
    """The process dies here (Lambda's timeout, an OOM): the message is not deleted and comes back."""


class CrashingStore:
    """The real store, with a crash injected after the first update that leaves a row in ``state``."""

    set_fields = Store.set_fields  # its update goes through this double

    def __init__(self, real, *, state: str):
        self.real, self.state, self.armed = real, state, True

    def __getattr__(self, name):
        return getattr(self.real, name)

    def update(self, pk, sk, **kwargs):
        result = self.real.update(pk, sk, **kwargs)
        if self.armed and result.get("state") == self.state:
            self.armed = False
            raise CrashError(f"after {self.state}")
        return result


class CrashAfterCall(RiseClient):
    armed = True

    def issue_gift_card(self, **kwargs):
        card = super().issue_gift_card(**kwargs)
        if CrashAfterCall.armed:
            CrashAfterCall.armed = False
            raise CrashError("after the call, before the settle")
        return card


@pytest.mark.parametrize(
    ("boundary", "cards", "final"),
    [
        ("after the take, before the call", 0, "HELD"),
        ("after the call, before the settle", 1, "HELD"),
        ("after the settle, before the report", 1, "ISSUED"),
    ],
)
def test_a_crash_between_any_two_steps_never_pays_twice_and_never_guesses(money, sandbox, boundary, cards, final):
    now = [time.time()]
    store = table_store()
    if boundary.startswith("after the take"):
        svc = service(clock=lambda: now[0], store=CrashingStore(store, state="PENDING"))
    elif boundary.startswith("after the settle"):
        svc = service(clock=lambda: now[0], store=CrashingStore(store, state="ISSUED"))
    else:
        CrashAfterCall.armed = True
        svc = service(clock=lambda: now[0], client=CrashAfterCall)
    job = queued(money)

    with pytest.raises(CrashError):
        svc.handle(job)
    now[0] += 91  # the crashed attempt's lease runs out; SQS delivers the message again
    for _ in range(3):  # and again, as duplicate deliveries would
        svc.handle(job)

    assert len(issues(sandbox)) == cards
    row = row_of(money)
    assert row["state"] == final
    if final == "HELD":  # whether Rise acted is unknowable: held with what was seen, never re-sent
        assert row["hold_code"] == "outcome_unknown" and "operator" in row["state_reason"]
        assert row["evidence"]["operation"] == "issue" and row["evidence"]["taken_at"]
        assert steps(row)[-3:] == ["PENDING>UNKNOWN", "UNKNOWN>UNKNOWN", "UNKNOWN>HELD"]
    else:
        assert svc.reports == [{"store_id": money.store_id, "pk": row["PK"], "sk": row["SK"]}] * 3  # type: ignore[attr-defined]


def test_a_crash_after_the_row_is_written_but_before_its_job_is_sent_is_redone_by_the_events_retry(money, sandbox):
    # given the claims worker writes the row and then cannot enqueue its job (SQS down for a moment)
    claims = module_of(money, "RichpanelWorkerFunction").service()
    real = claims._enqueue_credits
    failing = [True]

    def enqueue(jobs):
        if failing[0]:
            failing[0] = False
            raise RuntimeError("SQS unavailable")
        real(jobs)

    claims._enqueue_credits = enqueue
    try:
        money.webhook("claim.created", claim_created("c-1"), event_id="e-c")
        money.work()
        money.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="e-a")
        messages = money.receive("RichpanelWorkerFunction")
        money.poller("RichpanelWorkerFunction").poll_once(messages)  # fails: the message stays on the queue
        stranded = row_of(money)["state"]
        for message in messages:  # when its visibility timeout has passed, Lambda delivers it again
            money.sqs.change_message_visibility(
                QueueUrl=money.queue_url("RichpanelQueue"), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        money.work()
    finally:
        claims._enqueue_credits = real
    drain(money)

    assert stranded == "QUEUED" and money.messages("CreditQueue") == 0
    assert len(issues(sandbox)) == 1 and row_of(money)["state"] == "ISSUED"


def test_events_deferred_to_their_richpanel_slot_are_recorded_once_and_send_one_credit_job(money, sandbox):
    # given the store's Richpanel account is busy for the next 2 s (another worker took its slots)
    money.configure_richpanel()
    pacer_pk = f"PACER#{account_key('richpanel', money.richpanel_key)}"
    table_store().put({"PK": pacer_pk, "SK": "PACER", "next_at": Decimal(str(round(time.time() + 2.5, 3)))})
    money.webhook("claim.created", claim_created("c-1"), event_id="e-c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="e-a")

    # when both events are handled: each is deferred to a slot of its own, comes back and makes its call
    money.work()
    credit_jobs_first = money.messages("CreditQueue")
    deferred = money.messages("RichpanelQueue")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(money.event_record(e)["state"] != "DONE" for e in ("e-c", "e-a")):
        money.work()
        time.sleep(0.2)

    # then each event was recorded once, and the credit's job sent once, by the approval's first pass: the passes
    # back at their slots only made their calls (a second credit job would reserve a Rise slot of its own)
    assert deferred == 2 and credit_jobs_first == 1
    view = money.claim_view("c-1")
    assert view["ticket"]["snoozed_at"] is not None and view["claim"]["claim_state"] == "APPROVED"
    notes = [t["note"] for t in view["timeline"]]
    assert len([n for n in notes if n.startswith("claim.created")]) == 1, notes
    assert len([n for n in notes if n.startswith("claim.approved")]) == 1, notes
    assert len([n for n in notes if n.startswith("store credit")]) == 1, notes
    assert [t.get("operation") for t in view["timeline"] if t.get("partner") == "richpanel"] == [
        "create_ticket",
        "snooze_ticket",
    ]
    assert money.messages("CreditQueue") == 1
    drain(money)
    assert len(issues(sandbox)) == 1 and row_of(money)["state"] == "ISSUED"


def fail_once(money, sandbox, svc: CreditService, **faults: Any) -> CreditJob:
    """Queue a credit and deliver it once while Rise has ``faults``; the outcome is unknown, so it is deferred."""
    job = queued(money)
    sandbox["rise"].faults(**faults)
    with pytest.raises(JobDeferredError):
        svc.handle(job)
    sandbox["rise"].faults()
    return job


# -- unknown outcomes: evidence, never guesses -------------------------------------------------------------------


def test_a_partner_that_applies_then_times_out_is_held_for_an_operator_with_evidence_and_never_paid_twice(
    money, sandbox
):
    svc = service(timeout=(2.0, 1.0))
    job = queued(money)
    sandbox["rise"].faults(apply_timeout_rate=1.0, apply_timeout_path="/v2/gift-cards/issue/", hang_s=1.5)

    with pytest.raises(JobDeferredError):
        svc.handle(job)
    unknown = row_of(money)
    sandbox["rise"].faults()
    for _ in range(3):
        svc.handle(job)

    assert unknown["state"] == "UNKNOWN" and "read timeout" in unknown["state_reason"]
    assert len(issues(sandbox)) == 1  # the one Rise made before its answer was lost
    row = row_of(money)
    assert row["state"] == "HELD" and row["hold_code"] == "outcome_unknown"
    evidence = row["evidence"]
    assert evidence["operation"] == "issue" and evidence["unknown_since"] and evidence["taken_at"]
    assert evidence["why_not_settled"] == "Rise has no read that names a credit"
    # the look-up (no card yet), the issue (applied, answer lost), the look-up for evidence (the new card)
    assert [c["outcome"] for c in row["calls"]] == ["NotFoundError", "ReadTimeout", "ok"]


def test_no_card_found_after_an_unknown_issue_is_not_evidence_that_nothing_was_issued(money, sandbox):
    # the issue call carries no customer id: a card Rise made need not show up under the customer
    sandbox["rise"].reset()  # Rise links no card to Ann
    svc = service(timeout=(2.0, 1.0))
    job = fail_once(money, sandbox, svc, apply_timeout_rate=1.0, apply_timeout_path="/v2/gift-cards/issue/", hang_s=1.5)

    svc.handle(job)

    assert len(issues(sandbox)) == 1
    row = row_of(money)
    assert row["state"] == "HELD" and row["evidence"]["card"] == "the customer has no loyalty card in Rise"


@pytest.mark.parametrize("balance_after", ["10.00", "35.00", "40.00"], ids=["spent", "before+amount", "other"])
def test_a_balance_after_an_unknown_top_up_never_settles_it_either_way(money, sandbox, balance_after):
    # unchanged: applied then spent; before + amount: perhaps another credit; neither names this one
    shop = f"{money.store_id}.myshopify.com"
    sandbox["rise"].seed(
        {
            "cards": {"card-9": {"id": "card-9", "code": "RISE-LOYAL9", "balance": "10.00"}},
            "loyalty": {f"{shop}|7001": "card-9"},
        }
    )
    svc = service(timeout=(2.0, 1.0))
    job = fail_once(money, sandbox, svc, apply_timeout_rate=1.0, apply_timeout_path="/v2/gift-cards/card-9", hang_s=1.5)
    sandbox["rise"].seed({"cards": {"card-9": {"balance": balance_after}}})

    svc.handle(job)

    top_ups = rise_calls(sandbox, "/v2/gift-cards/card-9", "PUT")
    assert len(top_ups) == 1
    row = row_of(money)
    assert row["state"] == "HELD" and row["evidence"]["balance_after"] == Decimal(balance_after)
    assert row["evidence"]["balance_before"] == Decimal("10")


def test_twenty_five_concurrent_deliveries_of_one_unknown_row_reconcile_it_once_and_send_nothing(money, sandbox):
    svc = service(timeout=(2.0, 1.0))
    job = fail_once(money, sandbox, svc, timeout_rate=1.0, timeout_path="/v2/gift-cards/issue/", hang_s=1.5)
    before = len(rise_calls(sandbox))

    outcomes = deliver_concurrently(svc, job)

    row = row_of(money)
    assert row["state"] == "HELD"
    assert steps(row).count("UNKNOWN>UNKNOWN") == 1  # one reconciler took it; the others deferred
    assert outcomes.count("deferred") >= 1
    assert issues(sandbox) == []  # Rise never applied it, and nothing was sent again
    sent_after = rise_calls(sandbox)[before:]
    assert [c["path"] for c in sent_after] == ["/v2/gift-cards/"]  # the one look-up for evidence


def test_a_5xx_on_the_issue_call_is_an_unknown_outcome_not_a_retry(money, sandbox):
    svc = service()
    job = queued(money)
    sandbox["rise"].faults(error_rate=1.0, error_status=502, error_path="/v2/gift-cards/issue/")

    with pytest.raises(JobDeferredError):
        svc.handle(job)
    sandbox["rise"].faults()
    svc.handle(job)

    assert len(rise_calls(sandbox, "/v2/gift-cards/issue/")) == 1
    assert row_of(money)["state"] == "HELD"


def test_a_5xx_on_the_look_up_is_retried_safely_the_credit_stays_queued(money, sandbox):
    svc = service()
    job = queued(money)
    sandbox["rise"].faults(error_rate=1.0, error_status=503, error_path="/v2/gift-cards/", error_method="GET")

    with pytest.raises(Exception) as failed:
        svc.handle(job)
    waiting = row_of(money)["state"]
    sandbox["rise"].faults()
    svc.handle(job)

    assert "503" in str(failed.value)
    assert waiting == "QUEUED"
    assert len(issues(sandbox)) == 1 and row_of(money)["state"] == "ISSUED"


def test_a_refused_connection_is_not_sent_and_is_retried(money, sandbox):
    from claimbridge.clients.http import IntegrationConnectionError

    class Refusing(RiseClient):
        refused = True

        def issue_gift_card(self, **kwargs):
            if Refusing.refused:
                Refusing.refused = False
                raise IntegrationConnectionError("rise: connection failed", partner="rise")
            return super().issue_gift_card(**kwargs)

    svc = service(client=Refusing)
    job = queued(money)
    with pytest.raises(IntegrationConnectionError):
        svc.handle(job)
    svc.handle(job)

    assert len(issues(sandbox)) == 1
    assert steps(row_of(money)) == ["QUEUED>PENDING", "PENDING>QUEUED", "QUEUED>PENDING", "PENDING>ISSUED"]


def test_a_rate_limit_error_from_the_client_moves_the_row_back_to_queued(money, sandbox):
    class Limited(RiseClient):
        def issue_gift_card(self, **kwargs):
            raise RateLimitError("rise: HTTP 429", retry_after=3, partner="rise", status=429)

    with pytest.raises(RateLimitError):
        service(client=Limited).handle(queued(money))

    assert row_of(money)["state"] == "QUEUED"


def test_the_same_business_key_with_another_amount_is_recorded_and_holds_the_queued_credit(money, sandbox):
    money.webhook("claim.created", claim_created("c-1"), event_id="e-c", created_at="2026-11-20T10:00:00Z")
    money.webhook(
        "claim.approved", claim_approved("c-1", store_credit(25)), event_id="e-a1", created_at="2026-11-20T10:01:00Z"
    )
    money.webhook(
        "claim.resolved", claim_approved("c-1", store_credit(30)), event_id="e-a2", created_at="2026-11-20T10:02:00Z"
    )
    money.work()
    drain(money)

    row = row_of(money)
    assert rise_calls(sandbox) == []  # neither amount was paid: a person decides
    assert row["amount"] == Decimal("25") and "30" in row["conflicts"][0]["note"]
    assert row["state"] == "HELD" and row["hold_code"] == "claim_changed"


# -- guardrails ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "customer", "reason"),
    [
        (0, "USD", None, "must be positive"),
        (-5, "USD", None, "must be positive"),
        (25, "USD", {"id": "1", "email": "not-an-email"}, "email is missing or invalid"),
        (25, "EUR", None, "currency EUR is not the store's"),
        ("500.01", "USD", None, "over the store's per-credit cap of 500.00"),
        ("10.005", "USD", None, "more precision than USD allows"),
    ],
)
def test_a_guardrail_holds_the_credit_with_its_reason_and_makes_no_call(
    money, sandbox, amount, currency, customer, reason
):
    patch = {"customer": customer} if customer else {}
    money.webhook("claim.created", claim_created("c-1", **patch), event_id="e-c")
    money.webhook("claim.approved", claim_approved("c-1", store_credit(amount, currency)), event_id="e-a")
    money.work()
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "HELD" and reason in row["state_reason"]
    assert rise_calls(sandbox) == []


def test_a_store_without_rise_holds_the_credit_and_says_why(flow, sandbox):
    flow.webhook("claim.created", claim_created("c-1"), event_id="c")
    flow.webhook("claim.approved", claim_approved("c-1", store_credit()), event_id="a")
    flow.work()
    drain(flow)

    (row,) = ledger(flow)
    assert row["state"] == "HELD" and "not configured" in row["state_reason"]


# -- bonus credit and reporting back -----------------------------------------------------------------------------


def test_a_bonus_credit_is_queued_once_per_order_and_reason_and_issued_with_its_subject(money, sandbox):
    body = {
        "customer": {"email": "ann@example.com", "name": "Ann Lee"},
        "order_number": "1001",
        "amount": "15.00",
        "reason": "Apology",
    }
    path = f"/internal/integrations/rise/stores/{money.store_id}/bonus-credits"

    first = money.stack.admin("POST", path, body)
    again = money.stack.admin("POST", path, body)
    other = money.stack.admin("POST", path, {**body, "amount": "20.00"})
    drain(money)

    assert first.status == 202 and first.json()["ledger_id"] == "bonus:1001:bonus:apology"
    assert again.status == 200 and again.json()["ledger_id"] == first.json()["ledger_id"]
    assert other.status == 422 and other.json()["errors"][0]["field"] == "amount"
    (issue,) = issues(sandbox)
    assert json.loads(issue["body"])["email_details"]["subject"] == "Bonus Store Credit for Order #1001"
    entry = money.stack.admin("GET", f"/internal/stores/{money.store_id}/ledger/bonus:1001:bonus:apology").json()
    assert entry["state"] == "ISSUED" and entry["kind"] == "bonus_credit" and "RISE-" not in json.dumps(entry)
    assert sandbox["order_protection"].state()["resolutions"] == []  # a bonus is not a claim resolution


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "10.005"}, "amount"),
        ({"amount": "1.5", "currency": "JPY"}, "amount"),
        ({"reason": ""}, "reason"),
        ({"order_number": "a b"}, "order_number"),
        ({"currency": "usd"}, "currency"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_bonus_credit_body_gets_422_and_nothing_is_written_or_queued(money, sandbox, patch, field):
    body = {
        "customer": {"email": "ann@example.com"},
        "order_number": "1001",
        "amount": "15.00",
        "reason": "Apology",
        **patch,
    }

    answer = money.stack.admin("POST", f"/internal/integrations/rise/stores/{money.store_id}/bonus-credits", body)

    assert answer.status == 422
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert money.messages("CreditQueue") == 0
    assert money.stack.admin("GET", f"/internal/stores/{money.store_id}/ledger/bonus:1001:bonus:apology").status == 404


def test_an_issued_credit_is_reported_back_to_order_protection_once(money, sandbox):
    approve_with_credit(money)
    drain(money)

    (report,) = sandbox["order_protection"].state()["resolutions"]
    (row,) = ledger(money)
    assert report == {
        "claim_id": "c-1",
        "idempotency_key": f"claimbridge:{money.store_id}:c-1:store_credit",
        "type": "STORE_CREDIT",
        "reference": row["card_id"],
        "amount": "25.00",
        "currency": "USD",
    }
    assert row["report_state"] == "REPORTED"


def test_a_report_whose_answer_is_lost_is_sent_again_as_the_same_report_and_recorded_once(money, sandbox, monkeypatch):
    monkeypatch.setattr("claimbridge.jobs.MAX_DELAY_S", 0)
    module = __import__("sys").modules["claimbridge_fn_ReportWorkerFunction"]
    monkeypatch.setattr(module, "REPORT_TIMEOUT", (2.0, 1.0))
    module.service.cache_clear()
    sandbox["order_protection"].faults(apply_timeout_rate=1.0, apply_timeout_path="/v1/claims/", hang_s=1.5)
    approve_with_credit(money)
    money.work("CreditWorkerFunction")
    money.work("ReportWorkerFunction", rounds=1)  # Order Protection records it; its answer never comes
    sandbox["order_protection"].faults()
    drain(money)

    calls = sandbox["order_protection"].calls("/v1/claims/")
    assert [c["status"] for c in calls] == ["applied, then timed out", 200]
    assert calls[0]["headers"]["idempotency-key"] == calls[1]["headers"]["idempotency-key"]
    assert calls[0]["body"] == calls[1]["body"]
    assert len(sandbox["order_protection"].state()["resolutions"]) == 1
    assert len(issues(sandbox)) == 1
    assert ledger(money)[0]["report_state"] == "REPORTED"


def test_a_failing_report_retries_on_its_own_and_never_reissues_the_card(money, sandbox):
    sandbox["order_protection"].faults(script=[{"status": 503, "body": {"error": "down"}}])
    approve_with_credit(money)
    money.work("CreditWorkerFunction")
    money.work("ReportWorkerFunction")  # 503: the report job is sent back, delayed by its backoff

    assert money.receive("ReportWorkerFunction") == []
    assert money.messages("OrderProtectionQueue") == 1
    assert ledger(money)[0]["report_state"] == "RETRY"
    assert len(issues(sandbox)) == 1


def test_the_credit_worker_writes_the_row_twice_for_an_issued_credit(money, sandbox):
    writes: list[str] = []

    class CountingStore:
        set_fields = Store.set_fields

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def put(self, item, **kwargs):
            writes.append("put " + item.get("state", "?"))
            return self.real.put(item, **kwargs)

        def update(self, pk, sk, **kwargs):
            result = self.real.update(pk, sk, **kwargs)
            writes.append("update " + result.get("state", "?"))
            return result

    service(store=CountingStore(table_store())).handle(queued(money))

    assert writes == ["update PENDING", "update ISSUED"]


def test_two_report_jobs_for_one_credit_report_it_once(money, sandbox):
    approve_with_credit(money)
    money.work("CreditWorkerFunction")  # issued; one report job queued
    row = row_of(money)
    money.sqs.send_message(
        QueueUrl=money.queue_url("OrderProtectionQueue"),
        MessageBody=json.dumps({"store_id": money.store_id, "pk": row["PK"], "sk": row["SK"]}),
    )
    messages = money.receive("ReportWorkerFunction")
    money.work_concurrently("ReportWorkerFunction", messages)

    assert len(messages) == 2
    assert len(sandbox["order_protection"].state()["resolutions"]) == 1


def test_an_unknown_credit_job_names_no_row_and_is_dropped_without_a_call(money, sandbox):
    service().handle(CreditJob(store_id=money.store_id, pk=claim_pk(money.store_id, "nope"), sk=SLOT))

    assert rise_calls(sandbox) == []


def test_a_unknown_outcome_pause_is_a_deferral_not_a_failure(money, sandbox):
    svc = service(timeout=(2.0, 1.0))
    job = queued(money)
    sandbox["rise"].faults(timeout_rate=1.0, timeout_path="/v2/gift-cards/issue/", hang_s=1.5)

    with pytest.raises(JobDeferredError) as deferred:
        svc.handle(job)

    assert deferred.value.delay_s == 30
    assert isinstance(deferred.value.__cause__, IntegrationTimeoutError)
