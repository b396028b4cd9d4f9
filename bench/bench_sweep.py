"""The sweeper's cost: index reads for 10 stuck rows beside 10,000 settled ones, against 10 stuck rows alone."""

from __future__ import annotations

import time

from bench.common import quiet_stack, report
from claimbridge.runtime import table_store
from claimbridge.store import due_shard, to_attributes
from claimbridge.sweeper import Sweeper

SETTLED = 10_000
STUCK = 10


def _write(rows: list[dict]) -> None:
    store = table_store()
    client = store._client
    for start in range(0, len(rows), 25):
        client.batch_write_item(
            RequestItems={
                store.table_name: [{"PutRequest": {"Item": to_attributes(r)}} for r in rows[start : start + 25]]
            }
        )


def _rows(prefix: str, count: int, *, stuck: bool) -> list[dict]:
    rows = []
    for n in range(count):
        ledger = f"bonus:{prefix}{n}:bonus:bench"
        row = {
            "PK": f"STORE#bench-sweep#BONUS#{prefix}{n}",
            "SK": "LEDGER#bonus#bench",
            "ledger_id": ledger,
            "store_id": "bench-sweep",
            "item_type": "ledger",
            "state": "QUEUED" if stuck else "ISSUED",
            "store_state": f"bench-sweep#{'QUEUED' if stuck else 'ISSUED'}",
            "state_since": f"2026-11-26T00:00:00.000Z#{ledger}",
        }
        if stuck:  # only what is not final carries the due index's keys
            row |= {"due_shard": due_shard(ledger), "due_at": int(time.time()) - 60}
        rows.append(row)
    return rows


def _sweep() -> tuple[int, int]:
    sent: list[object] = []
    result = Sweeper(store=table_store(), enqueue_credit=sent.append, enqueue_event=sent.append).sweep()
    return result.queries, sum(result.stuck.values())


def run() -> None:
    with quiet_stack(run_pollers=False, inline=True) as stack:  # the handler's own cost, not the IPC
        del stack
        _write(_rows("alone", STUCK, stuck=True))
        floor_queries, floor_found = _sweep()
        _write(_rows("settled", SETTLED, stuck=False) + _rows("stuck", STUCK, stuck=True))
        queries, found = _sweep()
    report(
        f"index queries per sweep: {STUCK} stuck + {SETTLED} settled vs {STUCK} stuck alone",
        queries,
        floor_queries,
        "1.00",
        unit="q",
    )
    print(f"  items read: {found} (stuck rows due now; settled rows read: 0) vs {floor_found} alone", flush=True)
