"""Draining 40 credits for one store against Rise's 2 requests per second; DynamoDB writes per issued credit (the
ledger's two, and the Rise pace's slots, shared through the table since every worker paces one account together)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from decimal import Decimal

from bench.common import make_store, quiet_stack, report
from claimbridge.credits import new_row
from claimbridge.ledger import Ledger
from claimbridge.models.credits import CreditJob
from claimbridge.runtime import store_directory, table_store

CREDITS = 40
RISE_RATE = 2.0
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def run() -> None:
    # Inline: the writes are counted on this process's DynamoDB client (worker processes have their own).
    with quiet_stack(run_pollers=True, inline=True) as stack:
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
                writes["pacer slot" if name == "PutItem" else name] += 1  # the worker puts only pacer slots

        table_store()._client.meta.events.register("before-call.dynamodb", count)
        sqs = stack.emulators.client("sqs")
        queue = stack.resources.ref("CreditQueue")
        started = time.monotonic()
        info = store_directory().store(store_id)
        assert info is not None
        ledger = Ledger(table_store())
        for index in range(CREDITS):  # bonus credits: rows written QUEUED as the admin API writes them
            pk, sk = f"STORE#{store_id}#BONUS#b{index}", "LEDGER#bonus#bench"
            ledger.create(
                new_row(
                    info,
                    pk=pk,
                    sk=sk,
                    kind="bonus_credit",
                    amount=Decimal("10.00"),
                    currency="USD",
                    order_number=str(index),
                    customer_email=f"c{index}@example.com",
                    customer_name="C",
                    customer_id=f"id{index}",
                    reason="bench",
                )
            )
            job = CreditJob(store_id=store_id, pk=pk, sk=sk)
            sqs.send_message(QueueUrl=queue, MessageBody=job.model_dump_json())
        issued = 0
        while issued < CREDITS and time.monotonic() - started < 300:
            time.sleep(0.5)
            issued = sum(
                1
                for i in range(CREDITS)
                if (table_store().get(f"STORE#{store_id}#BONUS#b{i}", "LEDGER#bonus#bench") or {}).get("state")
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
        ledger = total - writes["pacer slot"]  # a slot per Rise call (or per two, when a deferred job reserved them)
        print(
            f"  DynamoDB writes by the credit worker: {total} for {issued} credits = {total / max(1, issued):.2f} "
            f"per credit ({dict(writes)}); pacer slots {writes['pacer slot'] / max(1, issued):.2f} per credit "
            f"(at most one per call); beyond the ledger's two: {ledger / max(1, issued) - 2:.2f} (goal 0)",
            flush=True,
        )
