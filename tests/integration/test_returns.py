"""PostCo returns into Rise store credit plus the store's bonus: the sync over the sandbox's PostCo, the credits over
its Rise, once per return whatever the order, the repeats and the failures. The sandbox's record of calls is the
proof."""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest

from claimbridge.models.credits import CreditJob
from claimbridge.returns import SYNC_SK, ReturnSync, return_pk
from claimbridge.runtime import table_store
from claimbridge.store import store_pk
from tests.integration.conftest import Flow, claim_created, module_of, unpace_rise

ISSUE = "/v2/gift-cards/issue/"


@pytest.fixture
def shop(money: Flow, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Flow:
    """The money store with PostCo configured now (its key its own) and a 10% bonus; Rise unthrottled here, so forty
    credits take a second (the pacing has its own tests)."""
    money.postco_key = f"sk_test_{money.store_id.replace('-', '_')}"  # type: ignore[attr-defined]
    configure_postco(money, bonus={"type": "percent", "value": "10"})
    assert money.work("SyncFunction") == 1  # saving the key queued a first sync: nothing to see yet
    unpace_rise(money, sandbox, monkeypatch)
    return money


def unpace_postco(flow: Flow, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostCo's 100 calls a minute lifted, in the sandbox and in the sync, for a test about something else (the
    pacing has its own tests): a page then follows a page at once, not 0.6 s later."""
    sandbox["postco"].faults(no_rate_limit=True)
    for pace in ("POSTCO_KEY_INTERVAL_S", "POSTCO_SHOP_INTERVAL_S"):
        monkeypatch.setattr(module_of(flow, "SyncFunction"), pace, 0.0)


def configure_postco(flow: Flow, **settings: Any) -> None:
    flow.configure("postco", {"api_key": flow.postco_key, **settings})  # type: ignore[attr-defined]


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(timespec="seconds").replace("+00:00", "Z")


def a_return(rid: int, minutes: float, *, qualifies: bool, amount: str = "20.00", **fields: Any) -> dict[str, Any]:
    return {
        "status": "resolved" if qualifies else ("open" if rid % 2 else "resolved"),
        "refund_method": "store_credit" if qualifies else "refund",
        "refund_amount": amount,
        "currency": "USD",
        "cust_email": f"shopper{rid}@example.com",
        "cust_first_name": "Sam",
        "cust_last_name": f"Buyer{rid}",
        "order_id": f"gid-{rid}",
        "order_name": f"#{rid}",
        "submitted_at": at(minutes),
        **fields,
    }


def seed(sandbox: Any, returns: dict[int, dict[str, Any]]) -> None:
    sandbox["postco"].seed({"returns": {str(rid): r for rid, r in returns.items()}})


def sync(flow: Flow) -> dict[str, Any]:
    """The admin's "sync now", then the sync function over its queue; the store's sync state after."""
    answer = flow.stack.admin("POST", f"/internal/integrations/postco/stores/{flow.store_id}/sync")
    assert answer.status == 202, answer.body
    flow.work("SyncFunction")
    return sync_state(flow)


def sync_state(flow: Flow) -> dict[str, Any]:
    answer = flow.stack.admin("GET", f"/internal/integrations/postco/stores/{flow.store_id}")
    assert answer.status == 200, answer.body
    return dict(answer.json()["sync"])


def settle(flow: Flow) -> None:
    for _ in range(8):
        if not flow.work("CreditWorkerFunction") + flow.work("ReportWorkerFunction"):
            return


def issued(sandbox: Any) -> list[dict[str, Any]]:
    return [c for c in sandbox["rise"].calls(ISSUE, "POST") if c.get("status") == 200]


def top_ups(sandbox: Any) -> list[dict[str, Any]]:
    return [c for c in sandbox["rise"].calls("/v2/gift-cards/", "PUT") if c.get("status") == 200]


def rows(flow: Flow, rid: int) -> dict[str, dict[str, Any]]:
    items = table_store().query_partition(return_pk(flow.store_id, rid), sk_prefix="LEDGER#")
    return {item["SK"].removeprefix("LEDGER#"): item for item in items}


def view(flow: Flow, rid: int) -> dict[str, Any]:
    answer = flow.stack.admin("GET", f"/internal/stores/{flow.store_id}/returns/{rid}")
    assert answer.status == 200, answer.body
    return dict(answer.json())


def mixed(count: int, qualifying: set[int], *, first: int = 5000, start: float = 1.0) -> dict[int, dict[str, Any]]:
    """``count`` returns after PostCo was configured, a minute apart; those in ``qualifying`` (by position) resolved
    as store credit with amounts that round differently at 10%."""
    amounts = ["20.00", "19.99", "10.05", "0.04", "123.45"]
    return {
        first + i: a_return(first + i, start + i, qualifies=i in qualifying, amount=amounts[i % len(amounts)])
        for i in range(count)
    }


def with_bonus(returns: dict[int, dict[str, Any]]) -> int:
    """How many qualifying returns earn a 10% bonus (0.04 earns 0.004, which rounds to nothing)."""
    return sum(1 for r in returns.values() if r["refund_method"] == "store_credit" and r["refund_amount"] != "0.04")


def qualifying(returns: dict[int, dict[str, Any]]) -> int:
    return sum(1 for r in returns.values() if r["refund_method"] == "store_credit")


# -- the flow -------------------------------------------------------------------------------------------------------


def test_a_sync_over_250_returns_across_pages_credits_the_40_that_qualify_once_with_the_right_bonuses(shop, sandbox):
    qualifying = set(list(range(3, 250, 6))[:40])
    returns = mixed(250, qualifying)
    seed(sandbox, returns)
    seeded_at = time.time()

    state = sync(shop)
    settle(shop)

    pages = [c for c in sandbox["postco"].calls("/return_orders", "GET") if c["at"] > seeded_at]
    assert len(pages) == 3  # 100 + 100 + 50, nothing read twice
    assert state["last_run"]["outcome"] == "done" and state["last_run"]["qualifying"] == 40
    cards = issued(sandbox)
    assert len(cards) == 40
    bodies = [json.loads(c["body"]) for c in cards]
    assert {b["email_details"]["subject"] for b in bodies} == {
        f"Store Credit for Your Return of Order #{5000 + i}" for i in qualifying
    }
    bonuses = {}
    for rid in (5000 + i for i in qualifying):
        found = rows(shop, rid)
        credit, refund = found["credit"], Decimal(returns[rid]["refund_amount"])
        assert credit["state"] == "ISSUED" and credit["amount"] == refund and credit["operation"] == "issue"
        assert credit["notified"].startswith("email")
        expected = (refund / 10).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
        if expected == 0:  # 10% of 0.04 rounds to nothing: no bonus row, no call
            assert set(found) == {"credit"}
            continue
        bonus = found["bonus"]
        assert bonus["state"] == "ISSUED" and bonus["amount"] == expected, rid
        assert bonus["operation"] == "top_up" and bonus["card_id"] == credit["card_id"]
        assert bonus["notified"].startswith("none")
        bonuses[f"/v2/gift-cards/{credit['card_id']}"] = expected
    topped = {t["path"]: Decimal(str(json.loads(t["body"])["amount"])) for t in top_ups(sandbox)}
    assert topped == bonuses and len(top_ups(sandbox)) == with_bonus(returns)
    # half up, to the cent: 19.99 → 1.999 → 2.00; 10.05 → 1.005 → 1.01; 123.45 → 12.345 → 12.35
    assert {Decimal("2.00"), Decimal("1.01"), Decimal("12.35")} <= set(bonuses.values())


def test_a_customer_with_a_loyalty_card_gets_the_credit_and_the_bonus_topped_up_on_it(shop, sandbox):
    # Ann's Shopify id is known from a claim of hers; Rise has her loyalty card
    shop.webhook("claim.created", claim_created("c-ann"), event_id="ann")
    shop.work()
    shop_url = f"{shop.store_id}.myshopify.com"
    sandbox["rise"].seed(
        {
            "cards": {"77": {"id": "77", "code": "RISE-LOYAL", "balance": "5.00", "shop_url": shop_url}},
            "loyalty": {f"{shop_url}|7001": "77"},
        }
    )
    seed(sandbox, {6001: a_return(6001, 1, qualifies=True, amount="30.00", cust_email="Ann@Example.com")})

    sync(shop)
    settle(shop)

    assert issued(sandbox) == []
    amounts = [json.loads(t["body"])["amount"] for t in top_ups(sandbox)]
    assert [t["path"] for t in top_ups(sandbox)] == ["/v2/gift-cards/77", "/v2/gift-cards/77"]
    assert amounts == [30.0, 3.0]
    assert json.loads(top_ups(sandbox)[0]["body"])["order_id"] == "gid-6001"
    found = rows(shop, 6001)
    assert found["credit"]["customer_id"] == "7001" and found["credit"]["balance_before"] == Decimal("5.00")
    assert {r["notified"].split(":")[0] for r in found.values()} == {"none"}


def test_a_fixed_bonus_is_its_amount_and_a_store_without_a_bonus_gets_only_the_credit(shop, sandbox):
    configure_postco(shop, bonus={"type": "fixed", "value": "5.00"})
    seed(sandbox, {7001: a_return(7001, 1, qualifies=True, amount="12.34")})
    sync(shop)
    configure_postco(shop, bonus=None)
    seed(sandbox, {7002: a_return(7002, 2, qualifies=True, amount="12.34")})
    sync(shop)
    settle(shop)

    assert rows(shop, 7001)["bonus"]["amount"] == Decimal("5.00")
    assert rows(shop, 7001)["bonus"]["bonus_rule"] == "fixed 5.00"
    assert set(rows(shop, 7002)) == {"credit"}
    assert len(issued(sandbox)) == 2 and [json.loads(t["body"])["amount"] for t in top_ups(sandbox)] == [5.0]


# -- once per return ------------------------------------------------------------------------------------------------


def test_the_same_sync_run_twice_credits_nothing_twice_and_reads_only_what_is_new(shop, sandbox):
    seed(sandbox, mixed(30, {1, 5, 9}))
    sync(shop)
    settle(shop)
    first = sync_state(shop)

    again = sync(shop)
    settle(shop)

    assert len(issued(sandbox)) == 3 and len(top_ups(sandbox)) == 3
    assert again["last_run"]["new"] == 0 and again["last_run"]["credits_queued"] == 0
    assert again["checkpoint"] >= first["checkpoint"]  # never back (these returns are dated ahead: clamped to now)


def test_two_syncs_at_once_credit_each_return_once(shop, sandbox):
    returns = mixed(120, set(range(0, 120, 8)))
    seed(sandbox, returns)
    for _ in range(2):
        shop.stack.admin("POST", f"/internal/integrations/postco/stores/{shop.store_id}/sync")
    messages = shop.receive("SyncFunction")
    assert len(messages) == 2

    shop.work_concurrently("SyncFunction", messages)
    settle(shop)

    assert len(issued(sandbox)) == qualifying(returns) == 15 and len(top_ups(sandbox)) == with_bonus(returns)
    state = sync_state(shop)
    assert state["running"] is False and state["last_run"]["outcome"] in ("done", "busy")


def test_two_runs_whose_leases_both_hold_still_credit_each_return_once(shop, sandbox, monkeypatch):
    # a run that outlived its lease while another took it: both page everything; the ledger keeps it once
    returns = mixed(60, set(range(0, 60, 4)))
    seed(sandbox, returns)
    unpace_postco(shop, sandbox, monkeypatch)  # the two runs share the key: a busy key defers a run (the 429 tests)
    base = module_of(shop, "SyncFunction").return_sync()
    holding = threading.Event()

    def postco_then_signal(*args: Any) -> Any:
        holding.set()  # the first run holds its lease now
        return base._postco(*args)

    first = ReturnSync(
        store=table_store(), directory=base._directory, postco=postco_then_signal, enqueue_credit=base._enqueue_credit
    )
    late = ReturnSync(
        store=table_store(),
        directory=base._directory,
        postco=base._postco,
        enqueue_credit=base._enqueue_credit,
        clock=lambda: time.time() + 10_000,  # sees the first run's lease as long expired
    )
    runs: list[Any] = []
    one = threading.Thread(target=lambda: runs.append(first.run(shop.store_id)))
    one.start()
    assert holding.wait(10)
    runs.append(late.run(shop.store_id))
    one.join()
    settle(shop)

    assert sorted(r.outcome for r in runs) == ["done", "done"]
    assert len(issued(sandbox)) == qualifying(returns) and len(top_ups(sandbox)) == with_bonus(returns)


@pytest.mark.parametrize("crash_in", ["_save", "_credit"])
def test_a_crash_between_a_page_and_the_checkpoint_credits_nothing_twice_and_misses_nothing(
    shop, sandbox, monkeypatch, crash_in
):
    unpace_postco(shop, sandbox, monkeypatch)
    returns = mixed(130, set(range(0, 130, 10)))
    seed(sandbox, returns)
    before = sync_state(shop)
    real = getattr(ReturnSync, crash_in)
    calls = {"n": 0}

    def crashing(self, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # after the first page's work (_save), or amid the first page (_credit)
            raise RuntimeError("the function died here")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ReturnSync, crash_in, crashing)
    shop.stack.admin("POST", f"/internal/integrations/postco/stores/{shop.store_id}/sync")
    shop.work("SyncFunction", rounds=1)
    monkeypatch.setattr(ReturnSync, crash_in, real)
    crashed = sync_state(shop)
    assert crashed["checkpoint"] == before["checkpoint"] and crashed["running"] is False

    sync(shop)  # the runner sent the crashed job back too: this run and that one find the same rows
    shop.work("SyncFunction")
    settle(shop)

    assert len(issued(sandbox)) == qualifying(returns) == 13 and len(top_ups(sandbox)) == with_bonus(returns)
    assert sync_state(shop)["checkpoint"] > before["checkpoint"]


def test_first_enable_credits_nothing_from_before_and_backfill_since_asks_for_that_window(shop, sandbox):
    old = {8000 + i: a_return(8000 + i, -60 * 24 * (i + 1), qualifies=True) for i in range(3)}  # 1, 2, 3 days ago
    new = {8100: a_return(8100, 2, qualifies=True)}
    seed(sandbox, old | new)

    first = sync(shop)
    settle(shop)
    assert [json.loads(c["body"])["gift_card"]["note"] for c in issued(sandbox)] == [
        "Store credit for PostCo return #8100 of order #8100 [postco:8100:credit]"
    ]
    assert first["floor"] is not None and view_missing(shop, 8000)

    backfill = (datetime.now(UTC) - timedelta(days=2, hours=12)).isoformat()
    answer = shop.stack.admin(
        "PATCH", f"/internal/integrations/postco/stores/{shop.store_id}", {"backfill_since": backfill}
    )
    assert answer.status == 200, answer.body
    sync(shop)
    settle(shop)

    assert sorted(json.loads(c["body"])["gift_card"]["note"].split("[")[1] for c in issued(sandbox)) == [
        "postco:8000:credit]",
        "postco:8001:credit]",
        "postco:8100:credit]",
    ]
    sync(shop)  # the backfill is done once
    assert sync_state(shop)["last_run"]["new"] == 0


def view_missing(flow: Flow, rid: int) -> bool:
    return flow.stack.admin("GET", f"/internal/stores/{flow.store_id}/returns/{rid}").status == 404


# -- a return that changes -------------------------------------------------------------------------------------------


def test_a_return_that_stops_qualifying_before_its_credit_is_issued_is_not_credited_until_it_qualifies_again(
    shop, sandbox
):
    seed(sandbox, {9001: a_return(9001, 1, qualifies=True)})
    sync(shop)  # its credit is queued, not yet paid
    seed(sandbox, {9001: a_return(9001, 1, qualifies=False, status="open", refund_method="store_credit")})
    sync(shop)
    settle(shop)

    held = rows(shop, 9001)
    assert held["credit"]["state"] == "HELD" and held["credit"]["hold_code"] == "return_changed"
    assert held["bonus"]["state"] == "QUEUED"
    assert issued(sandbox) == [] and top_ups(sandbox) == []
    notes = [entry["note"] for entry in view(shop, 9001)["timeline"]]
    assert any("resolved (store_credit 20.00 USD) → open (store_credit 20.00 USD)" in note for note in notes)

    seed(sandbox, {9001: a_return(9001, 1, qualifies=True)})
    sync(shop)
    settle(shop)

    assert len(issued(sandbox)) == 1 and len(top_ups(sandbox)) == 1
    assert {r["state"] for r in rows(shop, 9001).values()} == {"ISSUED"}


def test_a_return_that_changes_after_its_credit_is_recorded_for_an_operator_and_nothing_is_reversed(shop, sandbox):
    seed(sandbox, {9101: a_return(9101, 1, qualifies=True)})
    sync(shop)
    settle(shop)
    seed(sandbox, {9101: a_return(9101, 1, qualifies=True, refund_amount="15.00")})

    sync(shop)
    settle(shop)

    credit = rows(shop, 9101)["credit"]
    assert credit["state"] == "ISSUED" and credit["amount"] == Decimal("20.00")
    assert "already issued: nothing is reversed" in credit["conflicts"][0]["note"]
    assert len(issued(sandbox)) == 1 and len(top_ups(sandbox)) == 1
    shown = view(shop, 9101)
    assert any("20.00 USD) → resolved (store_credit 15.00 USD)" in e["note"] for e in shown["timeline"])
    assert [r["ledger_id"] for r in shown["ledger"]] == ["postco:9101:bonus", "postco:9101:credit"]
    assert all("card_code_sealed" not in r for r in shown["ledger"])


def older_open_return_then_newer(flow: Flow, sandbox: Any) -> None:
    """Return 9201 seen open, under 250 newer ones; then it resolves as store credit and 5 more arrive: the next run's
    new returns end on its second page (the first whole page older than the checkpoint), above 9201. All dated in
    the past (a backfill window opens them), as PostCo's are."""
    seed(sandbox, {9201: a_return(9201, -400, qualifies=False, status="open", refund_method="store_credit")})
    seed(sandbox, {9401 + i: a_return(9401 + i, -399 + i, qualifies=False, status="rejected") for i in range(250)})
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    flow.stack.admin("PATCH", f"/internal/integrations/postco/stores/{flow.store_id}", {"backfill_since": since})
    flow.work("SyncFunction")  # saving the settings ran the backfill
    assert view(flow, 9201)["watched"] is True
    seed(sandbox, {9201: a_return(9201, -400, qualifies=True)})
    seed(sandbox, {9700 + i: a_return(9700 + i, -10 + i, qualifies=False, status="rejected") for i in range(5)})


def test_an_open_return_is_revisited_one_by_one_and_credited_when_it_resolves(shop, sandbox, monkeypatch):
    older_open_return_then_newer(shop, sandbox)
    monkeypatch.setattr(sys.modules["claimbridge.returns"], "MAX_REVISIT_PAGES", 0)  # too deep to page to

    state = sync(shop)
    settle(shop)

    assert len(sandbox["postco"].calls("/return_orders/9201", "GET")) == 1
    assert state["last_run"]["revisited"] == 1 and state["last_run"]["pages"] == 2
    assert len(issued(sandbox)) == 1 and view(shop, 9201)["watched"] is True  # until its credit is seen settled
    sync(shop)
    assert view(shop, 9201)["watched"] is False and len(issued(sandbox)) == 1


def test_an_open_return_further_down_is_revisited_by_paging_deeper(shop, sandbox):
    older_open_return_then_newer(shop, sandbox)

    state = sync(shop)
    settle(shop)

    assert state["last_run"]["revisited"] == 1 and state["last_run"]["pages"] == 3
    assert sandbox["postco"].calls("/return_orders/9201") == []
    assert len(issued(sandbox)) == 1


# -- PostCo failing -------------------------------------------------------------------------------------------------


def test_a_postco_429_mid_paging_sends_the_sync_back_after_retry_after_and_it_resumes_where_it_stopped(
    shop, sandbox, monkeypatch
):
    unpace_postco(shop, sandbox, monkeypatch)  # the 429 below is scripted
    seed(sandbox, mixed(150, {10, 120}))
    before = sync_state(shop)
    sandbox["postco"].faults(
        script=[
            {"pass": True},
            {
                "status": 429,
                "body": {"error": {"type": "rate_limit_error", "code": "rate_limited", "message": "slow down"}},
                "headers": {"Retry-After": "3"},
            },
        ],
        no_rate_limit=True,
    )
    shop.stack.admin("POST", f"/internal/integrations/postco/stores/{shop.store_id}/sync")
    shop.work("SyncFunction", rounds=1)

    stopped = sync_state(shop)
    (again,) = shop.sqs.receive_message(
        QueueUrl=shop.queue_url("PostcoQueue"), WaitTimeSeconds=0, MessageAttributeNames=["All"]
    ).get("Messages", []) or [None]
    assert stopped["last_run"]["outcome"] == "failed" and "429" in stopped["last_run"]["detail"]
    assert stopped["resume_pending"] is True and stopped["checkpoint"] == before["checkpoint"]
    assert again is None  # delayed by Retry-After: not visible yet

    sandbox["postco"].faults(no_rate_limit=True)
    sync(shop)
    settle(shop)

    calls = sandbox["postco"].calls("/return_orders")
    limited = next(i for i, c in enumerate(calls) if c["status"] == 429)
    assert "cursor" in calls[limited]["query"]  # the second page
    assert calls[limited + 1]["query"] == calls[limited]["query"]  # the next run resumed at that page
    assert len(issued(sandbox)) == 2 and sync_state(shop)["checkpoint"] > before["checkpoint"]


def test_a_postco_5xx_mid_paging_is_retried_later_and_credits_nothing_twice(shop, sandbox, monkeypatch):
    unpace_postco(shop, sandbox, monkeypatch)
    seed(sandbox, mixed(150, {10, 120}))
    script = [{"pass": True}, {"status": 503, "body": {"error": {"code": "unavailable"}}}]
    sandbox["postco"].faults(script=script, no_rate_limit=True)
    shop.stack.admin("POST", f"/internal/integrations/postco/stores/{shop.store_id}/sync")
    shop.work("SyncFunction", rounds=1)
    failed = sync_state(shop)["last_run"]

    sandbox["postco"].faults(no_rate_limit=True)
    sync(shop)
    settle(shop)

    assert failed["outcome"] == "failed" and "503" in failed["detail"]
    assert len(issued(sandbox)) == 2


def test_a_revoked_key_marks_postco_invalid_and_no_sync_runs_until_a_working_key_is_saved(shop, sandbox):
    seed(sandbox, {9501: a_return(9501, 1, qualifies=True)})
    sandbox["postco"].seed({"revoked_keys": [shop.postco_key]})  # type: ignore[attr-defined]

    state = sync(shop)
    integration = shop.stack.admin("GET", f"/internal/integrations/postco/stores/{shop.store_id}").json()
    refused = shop.stack.admin("POST", f"/internal/integrations/postco/stores/{shop.store_id}/sync")
    assert shop.messages("PostcoQueue") == 0
    fanned = shop.stack.functions["SyncFunction"].invoke({"task": "postco"})
    scheduled: list[str] = []
    while batch := shop.receive("SyncFunction"):
        scheduled += [json.loads(m["Body"])["store_id"] for m in batch]

    assert state["last_run"]["outcome"] == "invalid"
    assert integration["status"]["state"] == "invalid" and "invalid_api_key" in integration["status"]["reason"]
    assert refused.status == 409 and "invalid" in refused.json()["message"]
    assert shop.store_id not in scheduled and fanned["skipped_invalid"] >= 1
    shop.sqs.purge_queue(QueueUrl=shop.queue_url("PostcoQueue"))

    shop.postco_key = shop.postco_key + "_new"  # type: ignore[attr-defined]
    configure_postco(shop, bonus={"type": "percent", "value": "10"})  # saving it queues the sync it missed
    shop.work("SyncFunction")
    settle(shop)
    assert len(issued(sandbox)) == 1


def test_the_schedule_queues_one_sync_per_store_with_postco(shop, sandbox):
    answer = shop.stack.functions["SyncFunction"].invoke({"task": "postco"})

    bodies: list[dict[str, Any]] = []
    while batch := shop.receive("SyncFunction"):  # every store of this session's table with PostCo
        bodies += [json.loads(m["Body"]) for m in batch]
    assert answer["queued"] == len(bodies) >= 1
    assert {"store_id": shop.store_id, "reason": "schedule"} in bodies


# -- the admin and the widget ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/internal/integrations/postco/stores/nope-{n}/sync", 404),
        ("POST", "/internal/integrations/postco/stores/bad%20id/sync", 422),
        ("GET", "/internal/stores/{store}/returns/424242", 404),
        ("GET", "/internal/stores/{store}/returns/" + "9" * 70, 422),
    ],
)
def test_a_sync_or_return_that_is_not_there_is_refused_by_name_and_nothing_is_queued(
    shop, sandbox, method, path, status
):
    answer = shop.stack.admin(method, path.format(n=shop.store_id, store=shop.store_id))

    assert answer.status == status, answer.body
    assert answer.json()["message"]
    assert shop.messages("PostcoQueue") == 0


def test_a_store_without_postco_cannot_be_synced_and_says_so(flow, sandbox):
    answer = flow.stack.admin("POST", f"/internal/integrations/postco/stores/{flow.store_id}/sync")

    assert answer.status == 404 and "postco is not configured" in answer.json()["message"]
    assert flow.messages("PostcoQueue") == 0
    assert table_store().get(store_pk(flow.store_id), SYNC_SK) is None


def test_a_backfill_in_the_future_or_too_old_is_refused_and_nothing_is_saved(shop, sandbox):
    before = shop.stack.admin("GET", f"/internal/integrations/postco/stores/{shop.store_id}").json()
    for when, words in ((at(60 * 24), "future"), ("2020-01-01T00:00:00Z", "365 days"), ("2026-11-01", "timezone")):
        answer = shop.stack.admin(
            "PATCH", f"/internal/integrations/postco/stores/{shop.store_id}", {"backfill_since": when}
        )
        assert answer.status == 422 and words in answer.body.decode(), answer.body
    after = shop.stack.admin("GET", f"/internal/integrations/postco/stores/{shop.store_id}").json()
    assert after == before


def test_the_widget_lists_a_customers_return_credits_beside_their_claims(shop, sandbox):
    seed(sandbox, {9601: a_return(9601, 1, qualifies=True, cust_email="ann@example.com")})
    sync(shop)
    settle(shop)
    url = urlsplit(
        shop.stack.admin(
            "POST", f"/internal/stores/{shop.store_id}/widget-url", {"customer_email": "ann@example.com"}
        ).json()["url"]
    )

    answer = shop.stack.api.invoke("GET", f"{url.path}?{url.query}", {"accept": "application/json"})
    page = shop.stack.api.invoke("GET", f"{url.path}?{url.query}", {}).body.decode()

    (credited,) = json.loads(answer.body)["returns"]
    assert credited["return_id"] == "9601" and credited["order_number"] == "#9601"
    assert sorted((c["kind"], c["state"], c["amount"]) for c in credited["credits"]) == [
        ("bonus", "ISSUED", "2.00"),
        ("store credit", "ISSUED", "20.00"),
    ]
    assert "Return #9601" in page and "Store credit: issued 20.00 USD" in page


# -- Rise failing under a return's credit -----------------------------------------------------------------------------


def test_a_credit_rise_applied_then_lost_is_held_and_its_bonus_follows_only_once_an_operator_settles_it(
    shop, sandbox, monkeypatch
):
    worker = module_of(shop, "CreditWorkerFunction")
    monkeypatch.setattr(worker, "RISE_TIMEOUT", (2.0, 1.0))
    seed(sandbox, {9701: a_return(9701, 1, qualifies=True, amount="40.00")})
    sync(shop)
    sandbox["rise"].faults(no_rate_limit=True, apply_timeout_rate=1.0, apply_timeout_path=ISSUE, hang_s=1.5)
    shop.work("CreditWorkerFunction")  # Rise makes the card, its answer never comes
    sandbox["rise"].faults(no_rate_limit=True)
    job = CreditJob(store_id=shop.store_id, pk=return_pk(shop.store_id, 9701), sk="LEDGER#credit")
    worker.service().handle(job)  # the deferred job, come back: no evidence names it, so an operator decides
    held = rows(shop, 9701)
    shop.work("CreditWorkerFunction")

    assert held["credit"]["state"] == "HELD" and held["credit"]["hold_code"] == "outcome_unknown"
    assert held["bonus"]["state"] == "QUEUED" and top_ups(sandbox) == []
    card_id = next(iter(sandbox["rise"].state()["cards"]))
    marked = shop.stack.admin(
        "POST",
        f"/internal/stores/{shop.store_id}/ledger/postco:9701:credit/actions",
        {"action": "mark_issued", "card_id": card_id, "reason": "Rise shows the card with our ledger id"},
    )
    settle(shop)

    assert marked.status == 200, marked.body
    assert [t["path"] for t in top_ups(sandbox)] == [f"/v2/gift-cards/{card_id}"]
    assert json.loads(top_ups(sandbox)[0]["body"])["amount"] == 4.0
    assert len(sandbox["rise"].calls(ISSUE, "POST")) == 1
    assert rows(shop, 9701)["bonus"]["state"] == "ISSUED"


def test_a_returns_credit_job_delivered_ten_times_at_once_makes_one_card_and_one_top_up(shop, sandbox):
    seed(sandbox, {9801: a_return(9801, 1, qualifies=True)})
    sync(shop)
    body = CreditJob(store_id=shop.store_id, pk=return_pk(shop.store_id, 9801), sk="LEDGER#credit").model_dump_json()
    for _ in range(9):
        shop.sqs.send_message(QueueUrl=shop.queue_url("CreditQueue"), MessageBody=body)
    messages: list[dict[str, Any]] = []
    while len(messages) < 10:
        got = shop.receive("CreditWorkerFunction")
        assert got, "the ten jobs are on the queue"
        messages += got

    shop.work_concurrently("CreditWorkerFunction", messages)
    settle(shop)

    assert len(issued(sandbox)) == 1 and len(top_ups(sandbox)) == 1
    assert {r["state"] for r in rows(shop, 9801).values()} == {"ISSUED"}


# -- found by review: changes, holds, cursors, dates ------------------------------------------------------------------


def test_a_refund_raised_after_the_credit_creates_no_bonus_that_was_not_there(shop, sandbox):
    seed(sandbox, {9901: a_return(9901, 1, qualifies=True, amount="0.04")})  # 10% of 0.04 rounds to no bonus
    sync(shop)
    settle(shop)
    seed(sandbox, {9901: a_return(9901, 1, qualifies=True, amount="100.00")})

    sync(shop)
    settle(shop)

    assert set(rows(shop, 9901)) == {"credit"} and top_ups(sandbox) == []
    assert "nothing is reversed" in rows(shop, 9901)["credit"]["conflicts"][0]["note"]


def test_a_refund_changed_before_the_credit_is_paid_holds_it_and_pays_nothing(shop, sandbox):
    seed(sandbox, {9902: a_return(9902, 1, qualifies=True, amount="20.00")})
    sync(shop)  # queued at 20.00, not yet paid
    seed(sandbox, {9902: a_return(9902, 1, qualifies=True, amount="5.00")})
    sync(shop)
    settle(shop)

    found = rows(shop, 9902)
    assert found["credit"]["state"] == "HELD" and "refund is 5.00 now" in found["credit"]["state_reason"]
    assert issued(sandbox) == [] and top_ups(sandbox) == []


def test_a_bonus_held_while_its_return_did_not_qualify_is_paid_when_it_qualifies_again(shop, sandbox):
    seed(sandbox, {9903: a_return(9903, 1, qualifies=True)})
    sync(shop)
    seed(sandbox, {9903: a_return(9903, 1, qualifies=False, status="open", refund_method="store_credit")})
    sync(shop)
    bonus_job = CreditJob(store_id=shop.store_id, pk=return_pk(shop.store_id, 9903), sk="LEDGER#bonus")
    shop.sqs.send_message(QueueUrl=shop.queue_url("CreditQueue"), MessageBody=bonus_job.model_dump_json())
    settle(shop)  # the sweeper's nudge of the bonus, and the credit's job: both held
    held = rows(shop, 9903)

    seed(sandbox, {9903: a_return(9903, 1, qualifies=True)})
    sync(shop)
    settle(shop)

    assert {r["state"] for r in held.values()} == {"HELD"}
    assert {r["state"] for r in rows(shop, 9903).values()} == {"ISSUED"}
    assert len(issued(sandbox)) == 1 and len(top_ups(sandbox)) == 1


def test_a_cursor_postco_refuses_mid_run_fails_the_run_instead_of_paging_from_the_top_again(shop, sandbox):
    seed(sandbox, mixed(150, {10}))
    before = len(sandbox["postco"].calls("/return_orders"))
    sandbox["postco"].faults(
        script=[{"pass": True}, {"status": 400, "body": {"error": {"code": "cursor_invalid", "message": "bad"}}}]
    )
    shop.stack.admin("POST", f"/internal/integrations/postco/stores/{shop.store_id}/sync")
    shop.work("SyncFunction", rounds=1)

    assert len(sandbox["postco"].calls("/return_orders")) - before == 2
    assert sync_state(shop)["last_run"]["outcome"] == "failed"


def test_one_return_dated_long_ago_on_the_first_page_does_not_end_the_run_before_the_new_ones(shop, sandbox):
    newer = {9950 + i: a_return(9950 + i, 10 + i, qualifies=i % 50 == 0) for i in range(150)}
    # made last (listed first), dated long before the checkpoint: PostCo lists by when a return was made
    back_dated = {99999: a_return(99999, -60 * 24 * 30, qualifies=False, status="rejected")}
    seed(sandbox, newer | back_dated)

    state = sync(shop)
    settle(shop)

    assert state["last_run"]["pages"] == 2
    assert len(issued(sandbox)) == qualifying(newer) == 3
