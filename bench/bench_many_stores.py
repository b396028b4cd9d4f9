"""Many merchants at once: throughput that grows with accounts, and one store's flood never delays another's.

Scale with accounts: one store's 30 claims (each a ticket, its snooze, a store credit and its report) alone, then 10
stores with 30 each, each store's claims in one burst, the stores one after another; drain time for tickets and for
credits with 10 stores ÷ with one (goal <= 1.3: 10 accounts run at 10 quotas).

Noisy neighbour: store B's 10 tickets alone; then store A sends 300 claims and, 5 s later, B its 10; B's p95 time from
webhook to ticket ÷ B's alone (goal <= 2), and A's drain ÷ its quota's floor (300 tickets at 50 per 30 s; goal <= 1.15).

Every store has its own Richpanel key and Rise token (its own accounts); the sandbox holds each to its limits. Also
printed: DynamoDB writes and SQS messages per claim, counted by the emulators, for the README's scaling arithmetic.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import WEBHOOK_SECRET, make_store, quiet_stack, report
from local.functions import MAX_ENVIRONMENTS
from local.stack import LocalStack

CLAIMS = 30
STORES = 10
NOISY, QUIET = 300, 10
RICHPANEL_INTERVAL_S = 30 / 50
SENDERS = 8  # concurrent webhook deliveries


def _get(url: str) -> Any:
    return json.load(urllib.request.urlopen(url, timeout=10))


def _setup(stack: LocalStack, store_id: str) -> None:
    make_store(stack, store_id, richpanel_key=f"rp_{store_id}_0123456789")
    stack.admin("PUT", f"/internal/integrations/rise/stores/{store_id}", {"credit_api_token": f"rise_{store_id}_0123"})
    stack.admin("PUT", f"/internal/integrations/order_protection/stores/{store_id}", {"api_token": f"op_{store_id}_01"})
    stack.admin("PATCH", f"/internal/stores/{store_id}", {"currency": "USD", "max_credit_amount": "500.00"})


def _send(stack: LocalStack, store_id: str, claims: int, *, credit: bool) -> dict[str, float]:
    """One store's burst, sent as Order Protection sends it (several deliveries at once); when each claim's webhooks
    were answered."""
    sent: dict[str, float] = {}

    def one(n: int) -> None:
        claim_id = f"{store_id}-c{n}"
        created = {
            "claim_id": claim_id,
            "order_id": f"{claim_id}-o",
            "claim_type": "DAMAGED",
            "customer": {"id": str(9000 + n), "email": f"{claim_id}@example.com", "first_name": "Bench"},
            "order": {"number": str(n), "currency": "USD", "total": "20.00"},
        }
        events = [("claims", "claim.created", created)]
        if credit:
            resolution = {"type": "STORE_CREDIT", "details": {"currency": "USD", "total_refund_amount": 20.0}}
            events.append(("resolutions", "claim.approved", {"claim_id": claim_id, "resolutions": [resolution]}))
        for route, topic, body in events:
            answer = stack.api.invoke(
                "POST",
                f"/stores/{store_id}/webhooks/{route}",
                {"x-webhook-secret": WEBHOOK_SECRET},
                json.dumps({"id": f"{claim_id}-{topic}", "topic": topic, "body": body}),
            )
            assert answer.status == 202, answer.body
        sent[claim_id] = time.monotonic()

    with ThreadPoolExecutor(max_workers=SENDERS) as senders:
        list(senders.map(one, range(claims)))
    return sent


def _tickets(stack: LocalStack) -> dict[str, float]:
    """Each opened ticket's claim and when the sandbox made it (wall clock, as the sandbox records it)."""
    calls = _get(stack.sandbox.urls["richpanel"] + "/__sandbox/calls?path=/v1/tickets&method=POST")["calls"]
    opened: dict[str, float] = {}
    for call in calls:
        if call.get("status") == 201:  # "Order Protection claim #<claim>: ..."
            subject = json.loads(call["body"])["ticket"].get("subject", "")
            opened[subject.split("#", 1)[1].split(":", 1)[0]] = call["at"]
    return opened


def _issued(stack: LocalStack) -> int:
    calls = _get(stack.sandbox.urls["rise"] + "/__sandbox/calls?path=/v2/gift-cards/issue/&method=POST")["calls"]
    return sum(1 for c in calls if c.get("status") in (200, 201))


def _wait(done: Callable[[], bool], limit_s: float) -> float:
    started = time.monotonic()
    while not done() and time.monotonic() - started < limit_s:
        time.sleep(0.5)
    return time.monotonic() - started


def _clear(stack: LocalStack) -> None:
    for partner in ("richpanel", "rise", "order_protection"):
        urllib.request.urlopen(
            urllib.request.Request(stack.sandbox.urls[partner] + "/__sandbox/calls", method="DELETE"), timeout=10
        )


def _drain(stack: LocalStack, stores: list[str], claims: int) -> tuple[float, float]:
    """Send each store's burst, one store after another; the seconds until every ticket, and every credit."""
    _clear(stack)
    started = time.monotonic()
    for store_id in stores:
        _send(stack, store_id, claims, credit=True)
    print(f"  ({len(stores)} store(s)' webhooks answered in {time.monotonic() - started:.1f} s)", flush=True)
    want = len(stores) * claims
    _wait(lambda: len(_tickets(stack)) >= want, 600)
    tickets_s = time.monotonic() - started
    _wait(lambda: _issued(stack) >= want, 600)
    credits_s = time.monotonic() - started
    return tickets_s, credits_s


def _warm(stack: LocalStack) -> None:
    """Every environment of the functions a claim goes through started: the two loads compared then pay no cold start
    (the first would pay them all, and the second those of the environments it adds)."""
    warming = [
        threading.Thread(target=stack.functions[f"{name}Function"].warm, args=(MAX_ENVIRONMENTS,))
        for name in ("WebhookReceiver", "RichpanelWorker", "CreditWorker", "ReportWorker")
    ]
    for thread in warming:
        thread.start()
    for thread in warming:
        thread.join()


def scale_with_accounts(stack: LocalStack) -> None:
    stores = [f"scale-{n}" for n in range(STORES + 1)]
    for store_id in stores:
        _setup(stack, store_id)
    _warm(stack)
    one_tickets, one_credits = _drain(stack, stores[:1], CLAIMS)
    many_tickets, many_credits = _drain(stack, stores[1:], CLAIMS)
    report(f"tickets: {STORES} stores x {CLAIMS} ÷ one store's {CLAIMS}", many_tickets, one_tickets, "<= 1.3", "s")
    report(f"credits: {STORES} stores x {CLAIMS} ÷ one store's {CLAIMS}", many_credits, one_credits, "<= 1.3", "s")


def noisy_neighbour(stack: LocalStack) -> None:
    for store_id in ("noisy-a", "quiet-b", "quiet-alone"):
        _setup(stack, store_id)
    _warm(stack)
    _clear(stack)
    alone = _send(stack, "quiet-alone", QUIET, credit=False)
    _wait(lambda: sum(1 for c in _tickets(stack) if c.startswith("quiet-alone")) >= QUIET, 120)
    opened = _tickets(stack)
    alone_s = [opened[c] - _wall(alone[c]) for c in alone]
    _clear(stack)
    a_started = time.monotonic()
    _send(stack, "noisy-a", NOISY, credit=False)
    time.sleep(max(0.0, 5 - (time.monotonic() - a_started)))
    quiet = _send(stack, "quiet-b", QUIET, credit=False)
    _wait(lambda: sum(1 for c in _tickets(stack) if c.startswith("quiet-b")) >= QUIET, 300)
    opened = _tickets(stack)
    b_s = [opened[c] - _wall(quiet[c]) for c in quiet if c in opened]
    _wait(lambda: sum(1 for c in _tickets(stack) if c.startswith("noisy-a")) >= NOISY, 900)
    a_s = time.monotonic() - a_started
    report(
        f"quiet store B's p95 webhook->ticket beside A's {NOISY} ÷ alone",
        _p95(b_s),
        _p95(alone_s),
        "<= 2",
        "s",
    )
    report(f"noisy store A's {NOISY} tickets ÷ its quota's floor", a_s, NOISY * RICHPANEL_INTERVAL_S, "<= 1.15", "s")


_OFFSET = time.time() - time.monotonic()  # monotonic send times to the sandbox's wall-clock call times


def _wall(monotonic: float) -> float:
    return monotonic + _OFFSET


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else float("inf")


COUNTED = 20


def per_claim_counts() -> None:
    """DynamoDB reads and writes, SQS calls and function invocations per claim (a ticket, its snooze, a store credit
    and its report), counted on the clients of an in-process stack: the README's scaling arithmetic uses them."""
    from collections import Counter

    from claimbridge.runtime import aws_client, table_store

    with quiet_stack(run_pollers=True, inline=True) as stack:
        _setup(stack, "counted")
        calls: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            calls[getattr(model, "name", "?")] += 1

        table_store()._client.meta.events.register("before-call.dynamodb", count)
        aws_client("sqs").meta.events.register("before-call.sqs", count)
        _drain(stack, ["counted"], COUNTED)
        time.sleep(3)  # the last reports
        writes = sum(calls[n] for n in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"))
        reads = sum(calls[n] for n in ("GetItem", "Query", "BatchGetItem"))
        sends = sum(calls[n] for n in ("SendMessage", "SendMessageBatch"))
        invocations = sum(p.invocations for p in stack.pollers)
        print(
            f"  per claim: {writes / COUNTED:.1f} DynamoDB writes, {reads / COUNTED:.1f} reads, {sends / COUNTED:.1f} "
            f"SQS sends, {calls['DeleteMessageBatch'] / COUNTED:.1f} delete batches, "
            f"{invocations / COUNTED:.1f} worker invocations (webhooks: 2 API calls)",
            flush=True,
        )


def run() -> None:
    import sys

    parts = sys.argv[2:] or ["scale", "noisy", "counts"]  # python -m bench bench_many_stores [scale|noisy|counts]
    with quiet_stack(run_pollers=True) as stack:
        if "scale" in parts:
            scale_with_accounts(stack)
        if "noisy" in parts:
            noisy_neighbour(stack)
    if "counts" in parts:
        per_claim_counts()
