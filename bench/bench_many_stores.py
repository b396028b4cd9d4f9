"""Many merchants at once: throughput that grows with accounts, and one store's flood never delays another's.

Scale with accounts: one store's 30 claims (each a ticket, its snooze, a store credit and its report) alone, then 3
stores and then 10 with 30 each, each store's claims in one burst, the stores one after another; drain time for
tickets and for credits with N stores ÷ with one (goal <= 1.3 with 10: 10 accounts run at 10 quotas). Each load also
prints its slowest store's drain from that store's own burst, and how busy the machine's cores were: the emulated
stack's own work (DynamoDB Local, moto, the functions) grows with the claims, and two cores carry about 3 stores' worth.

Noisy neighbour: store B's 10 tickets alone; then store A sends 300 claims and, 5 s later, B its 10; B's p95 time from
webhook to ticket ÷ B's alone (goal <= 2), and A's drain ÷ its quota's floor (300 tickets at 50 per 30 s; goal <= 1.15).

Every store has its own Richpanel key and Rise token (its own accounts); the sandbox holds each to its limits. Also
printed: DynamoDB writes and SQS messages per claim, counted by the emulators, for the README's scaling arithmetic.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.common import WEBHOOK_SECRET, make_store, quiet_stack, report
from local.functions import MAX_ENVIRONMENTS
from local.stack import LocalStack

CLAIMS = 30
STORES = 10
SCALES = (3, STORES)  # stores at once: a load two cores carry, then the ten
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


def _calls(stack: LocalStack, partner: str, path: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"path": path, "method": "POST"})
    calls = _get(f"{stack.sandbox.urls[partner]}/__sandbox/calls?{query}")["calls"]
    return [call for call in calls if call.get("status") in (200, 201)]


def _tickets(stack: LocalStack) -> dict[str, float]:
    """Each opened ticket's claim and when the sandbox made it (wall clock, as the sandbox records it)."""
    opened: dict[str, float] = {}
    for call in _calls(stack, "richpanel", "/v1/tickets"):  # "Order Protection claim #<claim>: ..."
        subject = json.loads(call["body"])["ticket"].get("subject", "")
        opened[subject.split("#", 1)[1].split(":", 1)[0]] = call["at"]
    return opened


def _issued(stack: LocalStack) -> list[dict[str, Any]]:
    return _calls(stack, "rise", "/v2/gift-cards/issue/")


def _store_of(claim_id: str) -> str:
    return claim_id.rsplit("-c", 1)[0]


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


@dataclass
class Drain:
    """How long a load took to drain from its first webhook; how long its slowest store took from its own burst's
    first webhook (the stores' bursts come one after another); how busy the machine's cores were meanwhile."""

    tickets_s: float
    credits_s: float
    slowest_store_tickets_s: float
    slowest_store_credits_s: float
    cpu_busy: float  # the share of every core's time that was busy
    cpu_s: float  # the busy CPU-seconds, all cores


def _cpu_jiffies() -> tuple[int, int]:
    """The machine's CPU time so far, busy and in all (Linux's /proc/stat, every core)."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _drain(stack: LocalStack, stores: list[str], claims: int) -> Drain:
    """Send each store's burst, one store after another; how long until every ticket, and every credit, was made."""
    _clear(stack)
    busy_before, all_before = _cpu_jiffies()
    started = time.monotonic()
    burst_at: dict[str, float] = {}
    for store_id in stores:
        burst_at[store_id] = _wall(time.monotonic())
        _send(stack, store_id, claims, credit=True)
    print(f"  ({len(stores)} store(s)' webhooks answered in {time.monotonic() - started:.1f} s)", flush=True)
    want = len(stores) * claims
    _wait(lambda: len(_tickets(stack)) >= want, 600)
    tickets_s = time.monotonic() - started
    _wait(lambda: len(_issued(stack)) >= want, 600)
    credits_s = time.monotonic() - started
    busy_after, all_after = _cpu_jiffies()
    last_ticket: dict[str, float] = {}
    for claim_id, at in _tickets(stack).items():
        last_ticket[_store_of(claim_id)] = max(at, last_ticket.get(_store_of(claim_id), 0.0))
    last_credit: dict[str, float] = {}
    for call in _issued(stack):  # each store's Rise token names the store
        store_id = next(s for s in stores if f"rise_{s}_" in json.dumps(call["headers"]))
        last_credit[store_id] = max(call["at"], last_credit.get(store_id, 0.0))
    return Drain(
        tickets_s,
        credits_s,
        max(last_ticket[s] - burst_at[s] for s in stores),
        max(last_credit[s] - burst_at[s] for s in stores),
        (busy_after - busy_before) / max(1, all_after - all_before),
        (busy_after - busy_before) / os.sysconf("SC_CLK_TCK"),
    )


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
    stores = [f"scale-{n}" for n in range(1 + sum(SCALES))]
    for store_id in stores:
        _setup(stack, store_id)
    _warm(stack)
    one = _drain(stack, stores[:1], CLAIMS)
    print(f"    (one store: CPU {one.cpu_busy:.0%} busy, {one.cpu_s:.0f} CPU-s on {os.cpu_count()} cores)", flush=True)
    rest = stores[1:]
    for count in SCALES:
        many, rest = _drain(stack, rest[:count], CLAIMS), rest[count:]
        name = f"{count} stores x {CLAIMS} ÷ one store's {CLAIMS}"
        goal = "<= 1.3" if count == STORES else "(fewer stores)"
        report(f"tickets: {name}", many.tickets_s, one.tickets_s, goal, "s")
        report(f"credits: {name}", many.credits_s, one.credits_s, goal, "s")
        cores = os.cpu_count() or 1
        least_s = many.cpu_s / cores  # the drain this much work allows on this machine's cores
        print(
            f"    (the slowest store from its own burst: tickets {many.slowest_store_tickets_s:.1f} s, credits "
            f"{many.slowest_store_credits_s:.1f} s; CPU {many.cpu_busy:.0%} busy: {many.cpu_s:.0f} CPU-s on {cores} "
            f"cores, so no less than {least_s:.0f} s on this machine, {least_s / one.tickets_s:.2f} of the tickets' "
            "floor)",
            flush=True,
        )


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
        stack.pollers[0].sqs.meta.events.register("before-call.sqs", count)  # the pollers' deletes (one client)
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
