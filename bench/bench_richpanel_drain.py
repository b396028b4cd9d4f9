"""Draining 100 ticket jobs for one store against the sandbox's Richpanel quota (50 requests per 30 s)."""

from __future__ import annotations

import json
import time
import urllib.request

from bench.common import WEBHOOK_SECRET, make_store, quiet_stack, report

JOBS = 100
QUOTA_MINIMUM_S = (JOBS / 50) * 30  # 100 calls at 50 per 30 s


def run() -> None:
    with quiet_stack(run_pollers=True) as stack:
        make_store(stack, "bench-drain", richpanel_key="rp_bench_drain_0123456789")
        richpanel = stack.sandbox.urls["richpanel"]
        urllib.request.urlopen(urllib.request.Request(richpanel + "/__sandbox/calls", method="DELETE"))
        started = time.monotonic()
        for index in range(JOBS):
            body = {
                "id": f"drain-{index}",
                "topic": "claim.created",
                "body": {
                    "claim_id": f"drain-{index}",
                    "order_id": f"o-{index}",
                    "claim_type": "DAMAGED",
                    "customer": {"email": f"c{index}@example.com"},
                    "order": {"number": str(index)},
                },
            }
            answer = stack.api.invoke(
                "POST", "/stores/bench-drain/webhooks/claims", {"x-webhook-secret": WEBHOOK_SECRET}, json.dumps(body)
            )
            assert answer.status == 202, answer.body
        created = 0
        calls: list[dict] = []
        while created < JOBS and time.monotonic() - started < QUOTA_MINIMUM_S * 3:
            time.sleep(0.5)
            calls = json.load(urllib.request.urlopen(richpanel + "/__sandbox/calls?path=/v1/tickets"))["calls"]
            created = sum(1 for c in calls if c.get("status") == 201)
        elapsed = time.monotonic() - started
        limited = sum(1 for c in calls if c.get("status") in (429, 492))
        report(
            f"drain {JOBS} ticket jobs ({created} opened) vs the quota's minimum",
            elapsed,
            QUOTA_MINIMUM_S,
            "<= 1.15",
            unit="s",
        )
        print(
            f"  calls answered 429/492: {limited} of {len(calls)} ({100 * limited / max(1, len(calls)):.1f}%, "
            "goal < 2%)",
            flush=True,
        )
