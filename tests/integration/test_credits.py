"""Store credit through Rise, exactly once: the sandbox's record of calls is the proof."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from claimbridge.clients.rise import RiseClient
from claimbridge.credits import CreditService
from claimbridge.crypto import SecretBox
from claimbridge.directory import StoreDirectory
from claimbridge.jobs import JobDeferredError
from claimbridge.models.credits import CreditCustomer, CreditJob
from claimbridge.pacing import LocalPacer
from claimbridge.runtime import aws_client, table_store
from claimbridge.store import ConditionFailedError, Store, claim_pk
from tests.integration.conftest import claim_approved, claim_created

RISE_TOKEN = "rise_token_0123456789"


def store_credit(amount: Any = 25, currency: str = "USD") -> list[dict[str, Any]]:
    return [{"type": "STORE_CREDIT", "details": {"currency": currency, "total_refund_amount": amount, "items": []}}]


@pytest.fixture
def money(flow, sandbox):
    flow.create_store(currency="USD", max_credit_amount="500.00")
    flow.configure("rise", {"credit_api_token": RISE_TOKEN})
    flow.configure("order_protection", {"api_token": "op_token_0123456789"})
    sandbox["rise"].seed({"customers": {"ann@example.com": "7001"}})
    return flow


def rise_calls(sandbox, path: str = "", method: str | None = None) -> list[dict[str, Any]]:
    return sandbox["rise"].calls(path, method)


def issues(sandbox) -> list[dict[str, Any]]:
    return [c for c in rise_calls(sandbox, "/v2/gift-cards/issue/", "POST") if c.get("status") == 200]


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


def service(clock=time.time, store=None, timeout=(2.0, 5.0)) -> CreditService:
    from claimbridge.config import get_settings

    settings = get_settings()
    real_store = table_store()
    pacer = LocalPacer(0.55)  # Rise's 2 per second, as the worker paces it
    reports: list[dict[str, Any]] = []
    svc = CreditService(
        store=store or real_store,
        directory=StoreDirectory(store=real_store, secret_box=SecretBox(aws_client("kms"), settings.kms_key_id)),
        rise=lambda token, observer: RiseClient(
            token=token, base_url=settings.rise_api_base_url, observer=observer, timeout=timeout, pacer=pacer
        ),
        enqueue_report=reports.append,
        clock=clock,
    )
    svc.reports = reports  # type: ignore[attr-defined]
    return svc


def job_for(flow, claim_id: str = "c-1", amount: str = "25.00", **patch: Any) -> CreditJob:
    fields = {
        "store_id": flow.store_id,
        "pk": claim_pk(flow.store_id, claim_id),
        "sk": "LEDGER#0#claim_credit",
        "kind": "claim_resolution",
        "claim_id": claim_id,
        "order_id": f"order-{claim_id}",
        "order_number": "1001",
        "amount": Decimal(amount),
        "currency": "USD",
        "customer": CreditCustomer(email="ann@example.com", name="Ann Lee", id="7001"),
    }
    fields.update(patch)
    return CreditJob(**fields)


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
    assert "c-1" in body["gift_card"]["note"] and "1001" in body["gift_card"]["note"]
    assert body["email_details"] == {
        "recipient": "Ann Lee",
        "recipient_email": "ann@example.com",
        "title": "Created by Order Protection",
        "subject": "Gift Card for Claim #c-1",
        "body": body["email_details"]["body"],
    }
    assert "checkout" in body["email_details"]["body"]
    (row,) = ledger(money)
    assert row["state"] == "ISSUED" and row["card_type"] == "claim_resolution" and row["operation"] == "issue"
    assert row["card_code"].startswith("RISE-****") or row["card_code"].startswith("****")
    assert row["customer_email"] == "ann@example.com" and row["customer_id"] == "7001"
    assert row["shop_domain"] == f"{money.store_id}.myshopify.com"
    assert [c["operation"] for c in row["calls"]] == ["customer_card", "issue_gift_card"]


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


def test_a_revoked_token_fails_the_credit_for_good_and_marks_rise_invalid(money, sandbox):
    sandbox["rise"].seed({"revoked_tokens": [RISE_TOKEN]})

    approve_with_credit(money)
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "FAILED" and "refused" in row["state_reason"]
    status = money.stack.admin("GET", f"/internal/integrations/rise/stores/{money.store_id}").json()["status"]
    assert status["state"] == "invalid"
    assert money.messages("CreditQueue") == 0


def test_an_unknown_store_domain_fails_the_credit_with_that_reason(money, sandbox):
    sandbox["rise"].seed({"unknown_shops": [f"{money.store_id}.myshopify.com"]})

    approve_with_credit(money)
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "FAILED" and "Store domain not found" in row["state_reason"]


def test_a_429_defers_the_credit_by_retry_after_and_nothing_is_issued_twice(money, sandbox):
    sandbox["rise"].faults(
        script=[
            {"status": 200, "body": None},
            {"status": 429, "headers": {"Retry-After": "2"}, "body": {"error": "slow down"}},
        ]
    )
    sandbox["rise"].faults(script=[{"status": 429, "headers": {"Retry-After": "2"}, "body": {"error": "slow down"}}])

    approve_with_credit(money)
    money.work("CreditWorkerFunction")
    hidden = money.receive("CreditWorkerFunction")
    time.sleep(2.2)
    drain(money)

    assert hidden == []
    assert len(issues(sandbox)) == 1
    assert ledger(money)[0]["state"] == "ISSUED"


def test_the_rise_client_paces_itself_at_two_calls_per_second(money, sandbox):
    client = RiseClient(token=RISE_TOKEN, base_url=money.stack.sandbox.urls["rise"], pacer=LocalPacer(0.55))
    started = time.monotonic()

    for _ in range(6):
        client.customer_card(shop_url=f"{money.store_id}.myshopify.com", customer_id="nobody")

    assert time.monotonic() - started >= 2.7  # five intervals between six calls
    assert [c["status"] for c in rise_calls(sandbox)] == [404] * 6  # none refused for rate


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
    job = job_for(money)
    svc.handle(job)

    svc.handle(job)

    assert len(issues(sandbox)) == 1
    assert len(rise_calls(sandbox)) == 2  # the look-up and the issue, once


def test_twenty_five_concurrent_deliveries_make_one_card(money, sandbox):
    svc = service()
    job = job_for(money)
    outcomes: list[str] = []

    def deliver() -> None:
        try:
            svc.handle(job)
            outcomes.append("done")
        except JobDeferredError:
            outcomes.append("deferred")

    threads = [threading.Thread(target=deliver) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    svc.handle(job)  # the queue drains: one more delivery finds the row settled

    assert len(issues(sandbox)) == 1
    assert outcomes.count("deferred") >= 1
    assert table_store().get(job.pk, job.sk)["state"] == "ISSUED"


class CrashError(Exception):
    """The process dies here (Lambda's timeout, an OOM): the message is not deleted and comes back."""


class CrashingStore:
    """The real store, with a crash injected after the n-th matching write."""

    set_fields = Store.set_fields  # its update goes through this double

    def __init__(self, real, *, on: str, state: str):
        self.real, self.on, self.state, self.armed = real, on, state, True

    def __getattr__(self, name):
        return getattr(self.real, name)

    def put(self, item, **kwargs):
        self.real.put(item, **kwargs)
        if self.armed and self.on == "put" and item.get("state") == self.state:
            self.armed = False
            raise CrashError(f"after put {self.state}")

    def update(self, pk, sk, **kwargs):
        result = self.real.update(pk, sk, **kwargs)
        if self.armed and self.on == "update" and result.get("state") == self.state:
            self.armed = False
            raise CrashError(f"after update {self.state}")
        return result


class CrashAfterCall(RiseClient):
    armed = True

    def issue_gift_card(self, **kwargs):
        card = super().issue_gift_card(**kwargs)
        if CrashAfterCall.armed:
            CrashAfterCall.armed = False
            raise CrashError("after the call, before the settle")
        return card


@pytest.mark.parametrize("boundary", ["after PENDING", "after the call", "after settle"])
def test_a_crash_at_any_step_leaves_at_most_one_card_and_exactly_one_after_the_queue_drains(money, sandbox, boundary):
    now = [time.time()]
    store = table_store()
    if boundary == "after PENDING":
        svc = service(clock=lambda: now[0], store=CrashingStore(store, on="put", state="PENDING"))
    elif boundary == "after settle":
        svc = service(clock=lambda: now[0], store=CrashingStore(store, on="update", state="ISSUED"))
    else:
        from claimbridge.config import get_settings

        svc = service(clock=lambda: now[0])
        CrashAfterCall.armed = True
        pacer = LocalPacer(0.55)
        svc._rise = lambda token, observer: CrashAfterCall(  # type: ignore[method-assign]
            token=token, base_url=get_settings().rise_api_base_url, observer=observer, pacer=pacer
        )
    job = job_for(money)

    with pytest.raises(CrashError):
        svc.handle(job)
    assert len(issues(sandbox)) <= 1
    now[0] += 61  # the crashed attempt's lease runs out; SQS delivers the message again
    svc.handle(job)
    svc.handle(job)  # and once more, as a duplicate delivery would

    assert len(issues(sandbox)) == 1
    row = store.get(job.pk, job.sk)
    assert row["state"] == "ISSUED"
    assert row.get("reconciled") is (True if boundary == "after the call" else None)


def test_a_timeout_after_sending_leaves_the_row_unknown_then_reconciles_without_a_second_card(money, sandbox):
    svc = service(timeout=(2.0, 1.0))
    job = job_for(money)
    # the issue is processed after the client gave up on it
    sandbox["rise"].faults(latency_ms=1500, latency_path="/v2/gift-cards/issue/")

    from claimbridge.clients.http import IntegrationTimeoutError

    with pytest.raises(IntegrationTimeoutError):
        svc.handle(job)
    time.sleep(1.0)
    unknown = table_store().get(job.pk, job.sk)
    sandbox["rise"].faults()
    svc.handle(job)

    assert unknown["state"] == "UNKNOWN"
    assert len(issues(sandbox)) == 1
    row = table_store().get(job.pk, job.sk)
    assert (row["state"], row["reconciled"]) == ("ISSUED", True)


def test_an_unknown_outcome_that_the_card_cannot_explain_is_held_for_an_operator(money, sandbox):
    store = table_store()
    job = job_for(money)
    store.put(
        {
            "PK": job.pk,
            "SK": job.sk,
            "state": "UNKNOWN",
            "operation": "top_up",
            "card_id": "card-x",
            "balance_before": Decimal("10"),
            "amount": Decimal("25.00"),
            "currency": "USD",
            "calls": [],
        }
    )
    shop = f"{money.store_id}.myshopify.com"
    sandbox["rise"].seed(
        {
            "cards": {"card-x": {"id": "card-x", "code": "RISE-X", "balance": "17.00"}},
            "loyalty": {f"{shop}|7001": "card-x"},
        }
    )

    service().handle(job)

    row = store.get(job.pk, job.sk)
    assert row["state"] == "HELD" and "operator" in row["state_reason"]
    assert rise_calls(sandbox, "/v2/gift-cards/card-x", "PUT") == [] and issues(sandbox) == []


def test_the_same_business_key_with_another_amount_is_refused_and_recorded_without_a_call(money, sandbox):
    svc = service()
    svc.handle(job_for(money, amount="25.00"))
    calls_before = len(rise_calls(sandbox))

    svc.handle(job_for(money, amount="30.00"))

    row = table_store().get(claim_pk(money.store_id, "c-1"), "LEDGER#0#claim_credit")
    assert len(rise_calls(sandbox)) == calls_before
    assert row["amount"] == Decimal("25") and "refused" in row["conflicts"][0]["note"]


# -- guardrails ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"amount": "0"}, "must be positive"),
        ({"amount": "-5"}, "must be positive"),
        ({"customer": CreditCustomer(email=None, name="A", id="1")}, "email is missing or invalid"),
        ({"customer": CreditCustomer(email="not-an-email", name="A", id="1")}, "email is missing or invalid"),
        ({"currency": "EUR"}, "currency EUR is not the store's"),
        ({"amount": "500.01"}, "over the store's per-credit cap of 500.00"),
    ],
)
def test_a_guardrail_holds_the_credit_with_its_reason_and_makes_no_call(money, sandbox, patch, reason):
    job = job_for(money, **patch)

    service().handle(job)

    row = table_store().get(job.pk, job.sk)
    assert row["state"] == "HELD" and reason in row["state_reason"]
    assert rise_calls(sandbox) == []


def test_a_held_credit_is_visible_on_the_claim(money, sandbox):
    approve_with_credit(money, amount=0)
    drain(money)

    (row,) = ledger(money)
    assert row["state"] == "HELD" and "positive" in row["state_reason"]
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
        "type": "STORE_CREDIT",
        "reference": row["card_id"],
        "amount": "25.00",
        "currency": "USD",
    }
    assert row["report_state"] == "REPORTED"


def test_a_failing_report_retries_on_its_own_and_never_reissues_the_card(money, sandbox):
    sandbox["order_protection"].faults(script=[{"status": 503, "body": {"error": "down"}}])
    approve_with_credit(money)
    money.work("CreditWorkerFunction")
    money.work("ReportWorkerFunction")  # 503: the report job backs off
    queue = money.queue_url("OrderProtectionQueue")
    assert money.receive("ReportWorkerFunction") == []  # hidden for its backoff
    assert money.messages("OrderProtectionQueue") == 1

    from claimbridge.runtime import table_store as store

    row = store().get(claim_pk(money.store_id, "c-1"), "LEDGER#0#claim_credit")
    money.stack.functions["ReportWorkerFunction"]  # the same function, a later delivery:
    from claimbridge.credits import ReportService  # noqa: F401 - documented path of the retry

    json_job = {"store_id": money.store_id, "pk": row["PK"], "sk": row["SK"]}
    money.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(json_job))
    money.work("ReportWorkerFunction")

    assert len(issues(sandbox)) == 1
    assert [c["status"] for c in sandbox["order_protection"].calls("/v1/claims/")] == [503, 200]
    assert ledger(money)[0]["report_state"] == "REPORTED"


def test_the_ledger_row_is_written_twice_for_an_issued_credit(money, sandbox):
    writes: list[str] = []

    class CountingStore:
        set_fields = Store.set_fields  # its update goes through this double

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def put(self, item, **kwargs):
            writes.append("put " + item["state"])
            return self.real.put(item, **kwargs)

        def update(self, pk, sk, **kwargs):
            result = self.real.update(pk, sk, **kwargs)
            writes.append("update " + result["state"])
            return result

    service(store=CountingStore(table_store())).handle(job_for(money))

    assert writes == ["put PENDING", "update ISSUED"]


def test_concurrent_conditional_writes_are_what_keeps_one_card(money):
    # the ledger's condition is the mechanism under every test above: a second PENDING write is refused
    store = table_store()
    job = job_for(money)
    item = {"PK": job.pk, "SK": job.sk, "state": "PENDING", "amount": Decimal("25")}
    store.put(item, condition="attribute_not_exists(PK)")

    with pytest.raises(ConditionFailedError):
        store.put(item, condition="attribute_not_exists(PK)")


def test_two_report_jobs_for_one_credit_report_it_once(money, sandbox):
    approve_with_credit(money)
    money.work("CreditWorkerFunction")  # issued; one report job queued
    row = table_store().get(claim_pk(money.store_id, "c-1"), "LEDGER#0#claim_credit")
    money.sqs.send_message(
        QueueUrl=money.queue_url("OrderProtectionQueue"),
        MessageBody=json.dumps({"store_id": money.store_id, "pk": row["PK"], "sk": row["SK"]}),
    )
    messages = money.receive("ReportWorkerFunction")
    poller = money.poller("ReportWorkerFunction")

    threads = [threading.Thread(target=poller.poll_once, args=([m],)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(messages) == 2
    assert len(sandbox["order_protection"].state()["resolutions"]) == 1
