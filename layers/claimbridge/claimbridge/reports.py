"""Reporting a resolution back to Order Protection, once per claim and resolution.

The report is a field set on the ledger row it reports (``report_state``): taken under a lease by one conditional
update, sent with an idempotency key derived from the claim and the resolution, then marked. A report whose outcome is
unknown (timeout, 5xx) is sent again as the same report, with the same key, so Order Protection can tell the two
apart; one it refuses is recorded and not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from claimbridge.clients.http import AuthError, CallRecord, IntegrationError
from claimbridge.directory import StoreDirectory
from claimbridge.money import parse_amount
from claimbridge.observability import logger, metrics
from claimbridge.store import ConditionFailedError, Store, now_iso

REPORT_LEASE_S = 60


def report_key(row: dict[str, Any]) -> str:
    """The report's idempotency key: the claim and the resolution it reports, never the attempt."""
    return f"claimbridge:{row['store_id']}:{row['claim_id']}:{row['slot']}"


class ReportService:
    """Tells Order Protection how a claim was resolved, after the credit is issued: its own retries, no re-issue."""

    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        order_protection: Callable[[str, Callable[[CallRecord], None]], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._order_protection = order_protection
        self._clock = clock

    def handle(self, store_id: str, pk: str, sk: str) -> None:
        row = self._store.get(pk, sk)
        if row is None or row.get("state") != "ISSUED" or row.get("report_state") in ("REPORTED", "FAILED"):
            return
        op = self._directory.integration(store_id, "order_protection")
        if op is None or not op.valid:
            self._mark(pk, sk, "SKIPPED", "Order Protection API not configured or invalid", None)
            return
        now = int(self._clock())
        try:  # one sender at a time: a duplicate job finds the row taken and leaves it
            self._store.update(
                pk,
                sk,
                expression="SET report_state = :sending, report_lease_until = :until, report_key = :key, "
                "report_attempts = if_not_exists(report_attempts, :zero) + :one",
                values={
                    ":sending": "SENDING",
                    ":until": now + REPORT_LEASE_S,
                    ":now": now,
                    ":skipped": "SKIPPED",
                    ":retry": "RETRY",
                    ":key": report_key(row),
                    ":zero": 0,
                    ":one": 1,
                },
                condition="attribute_not_exists(report_state) OR report_state IN (:skipped, :retry) OR "
                "(report_state = :sending AND report_lease_until < :now)",
            )
        except ConditionFailedError:
            return
        recorded: list[CallRecord] = []
        client = self._order_protection(op.secrets["api_token"], recorded.append)
        try:
            client.report_resolution(
                row["claim_id"],
                kind="STORE_CREDIT",
                reference=row["card_id"],
                amount=parse_amount(row["amount"], row["currency"]),
                currency=row["currency"],
                idempotency_key=report_key(row),
            )
        except AuthError:
            self._directory.mark_invalid(store_id, "order_protection", "Order Protection refused the API token")
            self._mark(pk, sk, "FAILED", "Order Protection refused the API token", recorded)
            return
        except IntegrationError as error:
            if error.retryable:  # sent again later as the same report, under the same key
                self._mark(pk, sk, "RETRY", f"{error}; will send the same report again", recorded)
                raise
            self._mark(pk, sk, "FAILED", f"Order Protection refused the report: {error}", recorded)
            return
        self._mark(pk, sk, "REPORTED", "", recorded)
        metrics.add_metric(name="ResolutionReported", unit="Count", value=1)
        logger.info("resolution reported", ledger=row.get("ledger_id"), key=report_key(row))

    def _mark(self, pk: str, sk: str, state: str, reason: str, calls: list[CallRecord] | None) -> None:
        call = calls[-1] if calls else None
        self._store.update(
            pk,
            sk,
            expression="SET report_state = :state, report_reason = :reason, reported_at = :at, report_call = :call "
            "REMOVE report_lease_until",
            values={
                ":state": state,
                ":reason": reason,
                ":at": now_iso(),
                ":call": {
                    "status": call.status,
                    "outcome": call.outcome,
                    "latency_ms": call.latency_ms,
                    "path": call.path,
                }
                if call
                else {},
            },
        )
