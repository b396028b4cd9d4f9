"""Nothing stays stuck unseen: the sweeper nudges what is past due, and repairs re-drive what a fixed cause held.

The sweeper reads only the sparse ``DueIndex`` (what is not final carries ``due_shard``/``due_at``), so its cost grows
with what is stuck, never with what settled. It decides nothing: it sends each item's job again (a credit job, the
webhook event as it came, a claim's reconcile job) and pushes its due time on; the item's own state machine decides
what, if anything, to do. It reports the count and the oldest age per kind and state as metrics.

A repair re-drives at once the rows a guardrail held for a cause that is now fixed: saving an integration (Rise not
configured or invalid), raising a store's cap, a claim's customer arriving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from claimbridge.ledger import Ledger, LostRaceError, Outcome, State
from claimbridge.models.credits import CreditJob
from claimbridge.observability import logger, metrics
from claimbridge.store import DUE_SHARDS, Store

NUDGE_AGAIN_S = 600  # an item re-driven now is due again this much later if it is still stuck
MAX_REDRIVES = 12  # two hours of nudges; a job that still dies is in its DLQ, where its alarm fires

# Which hold a repaired cause lifts (hold_code -> what was fixed).
REPAIRS = {
    "rise": ("provider_not_configured", "provider_invalid"),
    "rivo": ("provider_not_configured", "provider_invalid"),
    "cap": ("cap",),
    "customer": ("customer_unknown",),
}


@dataclass
class SweepReport:
    stuck: dict[str, int] = field(default_factory=dict)  # "<kind>:<state>" -> count
    oldest_s: dict[str, int] = field(default_factory=dict)  # "<kind>:<state>" -> seconds past due
    redriven: int = 0
    queries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"stuck": self.stuck, "oldest_s": self.oldest_s, "redriven": self.redriven, "queries": self.queries}


class Sweeper:
    def __init__(
        self,
        *,
        store: Store,
        enqueue_credit: Callable[[CreditJob], None],
        enqueue_event: Callable[[dict[str, Any]], None],
        enqueue_claim: Callable[[str, str], None] | None = None,
        enqueue_report: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._enqueue_report = enqueue_report
        self._enqueue_claim = enqueue_claim
        self._ledger = Ledger(store, clock=clock)
        self._enqueue_credit = enqueue_credit
        self._enqueue_event = enqueue_event
        self._clock = clock

    def sweep(self) -> SweepReport:
        now = int(self._clock())
        report = SweepReport()
        for shard in range(DUE_SHARDS):
            items, pages = self._store.query_due(f"DUE#{shard}", now)
            report.queries += pages
            for item in items:
                label = f"{item.get('item_type', '?')}:{item.get('state') or item.get('claim_state') or '?'}"
                report.stuck[label] = report.stuck.get(label, 0) + 1
                report.oldest_s[label] = max(report.oldest_s.get(label, 0), now - int(item["due_at"]))
                if self._redrive(item, now):
                    report.redriven += 1
        for label, count in report.stuck.items():
            metrics.add_metric(name=f"Stuck_{label.replace(':', '_')}", unit="Count", value=count)
        metrics.add_metric(name="SweeperOldestStuckAge", unit="Seconds", value=max(report.oldest_s.values(), default=0))
        metrics.add_metric(name="SweeperRedriven", unit="Count", value=report.redriven)
        logger.info("sweep", report=report.as_dict())
        return report

    def _redrive(self, item: dict[str, Any], now: int) -> bool:
        redrives = self._store.nudge(item["PK"], item["SK"], due_at=now + NUDGE_AGAIN_S, was=int(item["due_at"]))
        if redrives is None:
            return False  # it moved meanwhile
        if redrives > MAX_REDRIVES:  # its job keeps dying (its DLQ alarm says so): stop nudging, say so once
            self._store.update(item["PK"], item["SK"], expression="REMOVE due_shard, due_at")
            logger.error("sweeper gave up on an item; see its queue's DLQ", pk=item["PK"], sk=item["SK"])
            metrics.add_metric(name="SweeperGaveUp", unit="Count", value=1)
            return False
        kind = item.get("item_type")
        if kind == "ledger":
            self._enqueue_credit(CreditJob(store_id=item["store_id"], pk=item["PK"], sk=item["SK"]))
        elif kind == "event":
            event = self._store.get(item["PK"], item["SK"]) or {}
            if event.get("state") == "DONE" or not event.get("body"):
                return False
            self._enqueue_event(event)
        elif kind == "claim" and self._enqueue_claim is not None:
            self._enqueue_claim(item["store_id"], str(item["claim_id"]))
        elif kind in ("report", "protection_cancel") and self._enqueue_report is not None:  # not sent yet
            task = {"task": "cancel"} if kind == "protection_cancel" else {}
            self._enqueue_report({**task, "store_id": item["store_id"], "pk": item["PK"], "sk": item["SK"]})
        else:
            return False
        return True

    # -- repairs --------------------------------------------------------------------------------------------------

    def repaired(self, store_id: str, cause: str, *, cap: Decimal | None = None) -> int:
        """Move the store's rows held for ``cause`` back to QUEUED and enqueue them; return how many."""
        codes = REPAIRS[cause]
        moved = 0
        cursor: str | None = None
        while True:
            rows, cursor = self._ledger.in_state(store_id, State.HELD, limit=100, after=cursor)
            for row in rows:
                if row.get("hold_code") not in codes:
                    continue
                if cause == "cap" and cap is not None and Decimal(str(row["amount"])) > cap:
                    continue  # still over the new cap
                try:
                    self._ledger.move(row, Outcome.REPAIR, reason=f"re-driven: {cause} repaired")
                except LostRaceError:
                    continue
                self._enqueue_credit(CreditJob(store_id=store_id, pk=row["PK"], sk=row["SK"]))
                moved += 1
            if not cursor:
                break
        if moved:
            logger.info("held credits re-driven", store_id=store_id, cause=cause, count=moved)
            metrics.add_metric(name="CreditRedriven", unit="Count", value=moved)
        return moved
