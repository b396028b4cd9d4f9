"""``make soak``: many claims through the local stack while every partner misbehaves; then count, from the partners'
own records, what happened once, twice or never.

Four stores (each with its own Richpanel, Rise and Order Protection accounts) and 50 claims each, every claim approved
with a store credit. Every event is delivered twice (a share of them concurrently), a quarter of the approvals come
before their claims, a tenth of the approvals are re-sent later under new event ids. The sandbox meanwhile answers
errors before acting, 429s with ``Retry-After``, slow answers, and acts-then-never-answers. The truth is the sandbox's:
the tickets Richpanel holds, the cards and top-ups Rise made (answered or not), the reports Order Protection recorded.

Prints one line and exits non-zero on any duplicate or missing ticket, credit or report.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import WEBHOOK_SECRET, quiet_stack
from local.stack import LocalStack

STORES = 4
CLAIMS_PER_STORE = 50
SEED = 20261126
DEADLINE_S = 20 * 60
QUEUES = ("RichpanelQueue", "CreditQueue", "OrderProtectionQueue")

# What each partner does wrong meanwhile. hang_s outlasts the worker's read timeout for that partner.
FAULTS = {
    "richpanel": {  # 5xx before acting; creates that act and never answer; slow snoozes
        "error_rate": 0.05,
        "error_status": 503,
        "apply_timeout_rate": 0.04,
        "apply_timeout_path": "/v1/tickets",
        "apply_timeout_method": "POST",
        "latency_ms": 150,
        "latency_path": "/v1/tickets/",
        "hang_s": 6,
    },
    "rise": {  # 429 with Retry-After before acting; cards and top-ups made and never answered; slow answers
        "error_rate": 0.08,
        "error_status": 429,
        "retry_after": 1,
        "apply_timeout_rate": 0.03,
        "apply_timeout_path": "/v2/gift-cards/",
        "apply_timeout_method": "POST",
        "latency_ms": 120,
        "hang_s": 11,
    },
    "order_protection": {  # 5xx before recording; reports recorded and never answered
        "error_rate": 0.06,
        "error_status": 502,
        "apply_timeout_rate": 0.04,
        "apply_timeout_path": "/v1/claims/",
        "hang_s": 11,
    },
}


def _call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, None


def setup(stack: LocalStack, rng: random.Random) -> list[dict[str, Any]]:
    """The stores and their partner accounts; the claims to send (a quarter of the customers own a loyalty card)."""
    rise = stack.sandbox.urls["rise"]
    claims = []
    cards: dict[str, Any] = {}
    loyalty: dict[str, str] = {}
    for s in range(STORES):
        store_id = f"soak-{s}"
        shop = f"{store_id}.myshopify.com"
        for path, body in (
            (
                f"/internal/stores/{store_id}",
                {
                    "name": f"Soak {s}",
                    "shop_domain": shop,
                    "webhook_secrets": [WEBHOOK_SECRET],
                    "currency": "USD",
                    "max_credit_amount": "500.00",
                },
            ),
            (f"/internal/integrations/richpanel/stores/{store_id}", {"api_key": f"rp_soak_{s}_0123456789"}),
            (f"/internal/integrations/rise/stores/{store_id}", {"credit_api_token": f"rise_soak_{s}_0123456789"}),
            (f"/internal/integrations/order_protection/stores/{store_id}", {"api_token": f"op_soak_{s}_0123"}),
        ):
            answer = stack.admin("PUT", path, body)
            assert answer.status in (200, 201), (path, answer.body)
        for n in range(CLAIMS_PER_STORE):
            claim_id = f"s{s}-c{n:03d}"
            customer_id = f"{s}{n:04d}"
            if rng.random() < 0.25:
                cards[f"card-{claim_id}"] = {"id": f"card-{claim_id}", "code": f"RISE-L{claim_id}", "balance": "5.00"}
                loyalty[f"{shop}|{customer_id}"] = f"card-{claim_id}"
            claims.append(
                {
                    "store_id": store_id,
                    "claim_id": claim_id,
                    "customer_id": customer_id,
                    "amount": f"{rng.randint(5, 80)}.{rng.choice(['00', '50', '99'])}",
                }
            )
    _call(rise + "/__sandbox/state", "PUT", {"cards": cards, "loyalty": loyalty})
    return claims


def events_of(claim: dict[str, Any], rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    claim_id = claim["claim_id"]
    created = {
        "id": f"{claim_id}-created",
        "topic": "claim.created",
        "created_at": "2026-11-26T10:00:00Z",
        "body": {
            "claim_id": claim_id,
            "order_id": f"o-{claim_id}",
            "claim_type": "DAMAGED",
            "claim_state": "NEW",
            "order_number": f"#{claim_id}",
            "claim_description": "Arrived broken",
            "customer": {"id": claim["customer_id"], "email": f"{claim_id}@example.com", "first_name": "Soak"},
            "order": {"number": claim_id, "currency": "USD", "total": "99.00"},
        },
    }
    credit = [{"type": "STORE_CREDIT", "details": {"currency": "USD", "total_refund_amount": claim["amount"]}}]
    approved = {
        "id": f"{claim_id}-approved",
        "topic": "claim.approved",
        "created_at": "2026-11-26T10:01:00Z",
        "body": {"claim_id": claim_id, "order_id": f"o-{claim_id}", "resolutions": credit},
    }
    first, second = (approved, created) if rng.random() < 0.25 else (created, approved)
    events = [("claims", first), ("resolutions", second)]
    if rng.random() < 0.10:  # the approval re-sent later under a new event id
        events.append(
            ("resolutions", {**approved, "id": f"{claim_id}-approved-again", "created_at": "2026-11-26T10:02:00Z"})
        )
    return events


def deliver(stack: LocalStack, claims: list[dict[str, Any]], rng: random.Random) -> Counter[int]:
    """Every event twice: half of the pairs at the same moment, the others apart; claims interleaved."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def post(store_id: str, route: str, envelope: dict[str, Any]) -> None:
        status, _ = _call(
            f"{stack.url}/stores/{store_id}/webhooks/{route}", "POST", envelope, {"x-webhook-secret": WEBHOOK_SECRET}
        )
        with lock:
            statuses[status] += 1

    def twice_at_once(store_id: str, route: str, envelope: dict[str, Any]) -> None:
        pair = [threading.Thread(target=post, args=(store_id, route, envelope)) for _ in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()

    later: list[tuple[str, str, dict[str, Any]]] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for claim in claims:
            for route, envelope in events_of(claim, rng):
                if rng.random() < 0.5:
                    pool.submit(twice_at_once, claim["store_id"], route, envelope)
                else:
                    pool.submit(post, claim["store_id"], route, envelope)
                    later.append((claim["store_id"], route, envelope))
        rng.shuffle(later)
        for store_id, route, envelope in later:
            pool.submit(post, store_id, route, envelope)
    return statuses


def settled(stack: LocalStack) -> bool:
    sqs = stack.emulators.client("sqs")
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    for queue in QUEUES:
        attributes = sqs.get_queue_attributes(QueueUrl=stack.resources.ref(queue), AttributeNames=names)["Attributes"]
        if sum(int(value) for value in attributes.values()):
            return False
    return True


def tally(stack: LocalStack, claims: list[dict[str, Any]]) -> tuple[str, bool]:
    from claimbridge.runtime import table_store
    from claimbridge.store import claim_pk

    urls = stack.sandbox.urls
    _, tickets = _call(urls["richpanel"] + "/__sandbox/state")
    by_claim: Counter[str] = Counter()
    snoozed: Counter[str] = Counter()
    for ticket in tickets["tickets"].values():
        found = re.search(r"claim #(\S+):", ticket.get("subject", ""))
        if found:
            by_claim[found.group(1)] += 1
            snoozed[found.group(1)] += ticket.get("status") == "SNOOZED"
    ids = [c["claim_id"] for c in claims]
    ticket_dup = sum(max(0, by_claim[i] - 1) for i in ids)
    ticket_missing = sum(1 for i in ids if by_claim[i] == 0)

    _, rise_calls = _call(urls["rise"] + "/__sandbox/calls")
    made = ("applied, then timed out", 200)
    applied: Counter[str] = Counter()
    lost_answer: set[str] = set()
    for call in rise_calls["calls"]:
        if call["method"] not in ("POST", "PUT") or call.get("status") not in made:
            continue
        body = json.loads(call["body"])
        found = re.search(r"\[claim:([^:]+):", json.dumps(body)) if call["method"] == "POST" else None
        claim_id = found.group(1) if found else str(body.get("order_id", "")).removeprefix("o-")
        applied[claim_id] += 1
        if call["status"] != 200:
            lost_answer.add(claim_id)
    rows = {
        i: table_store().get(claim_pk(c["store_id"], i), "LEDGER#store_credit#claim_credit") or {}
        for c in claims
        for i in [c["claim_id"]]
    }
    held = [i for i in ids if rows[i].get("state") == "HELD"]
    held_justified = [i for i in held if i in lost_answer]
    credit_dup = sum(max(0, applied[i] - 1) for i in ids)
    credit_missing = sum(1 for i in ids if applied[i] == 0)
    credit_once = sum(1 for i in ids if applied[i] == 1)

    _, reports = _call(urls["order_protection"] + "/__sandbox/state")
    reported = Counter(r["claim_id"] for r in reports["resolutions"])
    issued = [i for i in ids if rows[i].get("state") == "ISSUED"]
    report_dup = sum(max(0, reported[i] - 1) for i in ids)
    report_missing = sum(1 for i in issued if reported[i] == 0)
    report_once = sum(1 for i in issued if reported[i] == 1)
    states = Counter(rows[i].get("state", "none") for i in ids)

    line = (
        f"soak: {len(ids)} claims; tickets once {sum(1 for i in ids if by_claim[i] == 1)}/{len(ids)} "
        f"({ticket_dup} duplicated, {ticket_missing} missing; snoozed {sum(1 for i in ids if snoozed[i])}); "
        f"credits once {credit_once}/{len(ids)} ({credit_dup} duplicated, {credit_missing} missing, "
        f"{len(held)} held for an operator: {len(held_justified)} where Rise applied then timed out, "
        f"{len(held) - len(held_justified)} otherwise); reports {report_once}/{len(issued)} "
        f"({report_dup} duplicated, {report_missing} missing); ledger {dict(sorted(states.items()))}"
    )
    clean = not (ticket_dup or ticket_missing or credit_dup or credit_missing or report_dup or report_missing)
    clean = clean and len(held) == len(held_justified)
    missing = [c for c in claims if by_claim[c["claim_id"]] == 0]
    return line + "".join(_evidence(stack, claim) for claim in missing), clean


def _evidence(stack: LocalStack, claim: dict[str, Any]) -> str:
    """What the table, the dead-letter queues and Richpanel's calls say of a claim whose ticket is missing."""
    from claimbridge.runtime import table_store
    from claimbridge.store import claim_pk

    claim_id = claim["claim_id"]
    items = table_store().query_partition(claim_pk(claim["store_id"], claim_id))
    sqs = stack.emulators.client("sqs")
    dead = {
        queue: sqs.get_queue_attributes(
            QueueUrl=stack.resources.ref(queue.replace("Queue", "DLQ")), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        for queue in QUEUES
    }
    _, calls = _call(stack.sandbox.urls["richpanel"] + "/__sandbox/calls")
    about = [(c["method"], c["path"], c.get("status")) for c in calls["calls"] if claim_id in c.get("body", "")]
    kept = [{k: v for k, v in item.items() if k not in ("secrets",)} for item in items]
    return f"\n  missing ticket {claim_id}: items {kept}; DLQs {dead}; Richpanel calls naming it {about}"


def main() -> None:
    rng = random.Random(SEED)
    # The functions' own log lines (their worker processes', and this process's) would bury the one line it prints.
    with quiet_stack(log_level="CRITICAL", run_pollers=True) as stack:
        from claimbridge.observability import logger

        logger.setLevel("CRITICAL")
        claims = setup(stack, rng)
        for partner, faults in FAULTS.items():
            _call(stack.sandbox.urls[partner] + "/__sandbox/faults", "PUT", faults)
        started = time.monotonic()
        statuses = deliver(stack, claims, rng)
        sent_s = time.monotonic() - started
        quiet_for = 0
        while quiet_for < 3 and time.monotonic() - started < DEADLINE_S:
            time.sleep(2)
            quiet_for = quiet_for + 1 if settled(stack) else 0
        for partner in FAULTS:
            _call(stack.sandbox.urls[partner] + "/__sandbox/faults", "PUT", {})
        drained_s = time.monotonic() - started
        line, clean = tally(stack, claims)
    fivexx = sum(n for status, n in statuses.items() if status >= 500)
    print(
        f"  webhooks {sum(statuses.values())} sent in {sent_s:.0f} s: {dict(sorted(statuses.items()))}; "
        f"queues drained in {drained_s:.0f} s",
        flush=True,
    )
    print(f"{line}; webhook 5xx {fivexx}", flush=True)
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
