"""A PostCo sync of 1,000 returns (100 qualifying) to 100 credits and 100 bonuses, against both quotas."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from datetime import UTC, datetime, timedelta

from bench.common import make_store, quiet_stack, report
from claimbridge.returns import return_pk
from claimbridge.runtime import table_store

RETURNS = 1000
QUALIFYING = 100
POSTCO_PER_MIN = 100
RISE_PER_S = 2.0


def returns() -> dict[str, dict]:
    start = datetime.now(UTC) + timedelta(minutes=1)
    made = {}
    for i in range(RETURNS):
        qualifies = i % (RETURNS // QUALIFYING) == 0
        made[str(20000 + i)] = {
            "status": "resolved" if qualifies or i % 3 else "open",
            "refund_method": "store_credit" if qualifies else "refund",
            "refund_amount": "25.00",
            "currency": "USD",
            "cust_email": f"r{i}@example.com",
            "cust_first_name": "R",
            "order_id": f"gid-{i}",
            "order_name": f"#{i}",
            "submitted_at": (start + timedelta(seconds=i)).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
    return made


def _call(url: str, method: str = "GET", body: object = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else {}


def run() -> None:
    with quiet_stack(run_pollers=True) as stack:
        store_id = "bench-postco"
        make_store(stack, store_id)
        stack.admin("PUT", f"/internal/integrations/rise/stores/{store_id}", {"credit_api_token": "rise_bench_postco"})
        stack.admin(
            "PUT",
            f"/internal/integrations/postco/stores/{store_id}",
            {"api_key": "sk_bench_0123456789", "bonus": {"type": "percent", "value": "10"}},
        )
        postco, rise = stack.sandbox.urls["postco"], stack.sandbox.urls["rise"]
        deadline = time.monotonic() + 30  # the first sync, queued by saving the key, finds nothing yet
        while not (stack.admin("GET", f"/internal/integrations/postco/stores/{store_id}").json()["sync"]["last_run"]):
            assert time.monotonic() < deadline, "the first sync did not run"
            time.sleep(0.2)
        _call(postco + "/__sandbox/state", "PUT", {"returns": returns()})
        for partner in (postco, rise):
            _call(partner + "/__sandbox/calls", "DELETE")

        started = time.monotonic()
        stack.admin("POST", f"/internal/integrations/postco/stores/{store_id}/sync")
        keys = [
            (return_pk(store_id, 20000 + i), sk)
            for i in range(0, RETURNS, RETURNS // QUALIFYING)
            for sk in ("LEDGER#credit", "LEDGER#bonus")
        ]
        pending = set(keys)
        while pending and time.monotonic() - started < 600:
            time.sleep(0.5)
            pending = {key for key in pending if (table_store().get(*key) or {}).get("state") != "ISSUED"}
        elapsed = time.monotonic() - started

        pages = [c for c in _call(postco + "/__sandbox/calls")["calls"] if c["path"] == "/return_orders"]
        rise_calls = _call(rise + "/__sandbox/calls")["calls"]
        floor_pages, floor_calls = math.ceil(RETURNS / 100), 2 * QUALIFYING  # a credit and a bonus each
        floor = floor_pages / POSTCO_PER_MIN * 60 + floor_calls / RISE_PER_S
        report(
            f"sync {RETURNS} returns to {len(keys) - len(pending)}/{len(keys)} credits+bonuses vs quota floors",
            elapsed,
            floor,
            "<= 1.15",
            unit="s",
        )
        limited = sum(1 for c in [*pages, *rise_calls] if c.get("status") == 429)
        print(
            f"  PostCo pages read: {len(pages)} (floor {floor_pages}); Rise calls: {len(rise_calls)} (floor "
            f"{floor_calls}); answered 429: {limited} (goal 0)",
            flush=True,
        )
