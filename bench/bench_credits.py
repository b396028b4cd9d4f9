"""Draining 40 credits for one store against Rise's 2 requests per second; DynamoDB writes per issued credit."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from decimal import Decimal

from bench.common import make_store, quiet_stack, report
from claimbridge.models.credits import CreditCustomer, CreditJob
from claimbridge.runtime import table_store

CREDITS = 40
RISE_RATE = 2.0
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def run() -> None:
    with quiet_stack(run_pollers=True) as stack:
        store_id = "bench-credit"
        make_store(stack, store_id)
        stack.admin(
            "PUT", f"/internal/integrations/rise/stores/{store_id}", {"credit_api_token": "rise_bench_0123456789"}
        )
        rise = stack.sandbox.urls["rise"]
        urllib.request.urlopen(urllib.request.Request(rise + "/__sandbox/calls", method="DELETE"))

        writes: Counter[str] = Counter()

        def count(params: dict, model: object, **_: object) -> None:
            name = getattr(model, "name", "")
            if name in WRITES and threading.current_thread().name.startswith("poller-CreditWorkerFunction"):
                writes[name] += 1

        table_store()._client.meta.events.register("before-call.dynamodb", count)
        sqs = stack.emulators.client("sqs")
        queue = stack.resources.ref("CreditQueue")
        started = time.monotonic()
        for index in range(CREDITS):
            job = CreditJob(
                store_id=store_id,
                pk=f"STORE#{store_id}#CLAIM#b{index}",
                sk="LEDGER#0#claim_credit",
                kind="claim_resolution",
                claim_id=f"b{index}",
                order_id=f"o{index}",
                order_number=str(index),
                amount=Decimal("10.00"),
                currency="USD",
                customer=CreditCustomer(email=f"c{index}@example.com", name="C", id=f"id{index}"),
            )
            sqs.send_message(QueueUrl=queue, MessageBody=job.model_dump_json())
        issued = 0
        while issued < CREDITS and time.monotonic() - started < 300:
            time.sleep(0.5)
            issued = sum(
                1
                for i in range(CREDITS)
                if (table_store().get(f"STORE#{store_id}#CLAIM#b{i}", "LEDGER#0#claim_credit") or {}).get("state")
                == "ISSUED"
            )
        elapsed = time.monotonic() - started
        calls = json.load(urllib.request.urlopen(rise + "/__sandbox/calls"))["calls"]
        limited = sum(1 for c in calls if c.get("status") == 429)
        report(
            f"drain {CREDITS} credits ({issued} issued, {len(calls)} Rise calls) vs calls / 2 per s",
            elapsed,
            len(calls) / RISE_RATE,
            "<= 1.15",
            unit="s",
        )
        print(f"  Rise calls answered 429: {limited} (goal 0)", flush=True)
        total = sum(writes.values())
        print(
            f"  DynamoDB writes by the credit worker: {total} for {issued} credits = {total / max(1, issued):.2f} "
            f"per credit ({dict(writes)}); beyond the ledger's two: {total / max(1, issued) - 2:.2f} (goal 0)",
            flush=True,
        )
