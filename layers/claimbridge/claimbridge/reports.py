"""Reporting a resolution back to Order Protection, once per claim and resolution (seeds/003: "Reshipment Order ID,
or Refund Created").

A store credit's report is a field set on the ledger row it reports (``report_state``), sent once the credit is
issued. A reship or a refund is done by the merchant's systems, which tell claimbridge (``ResolutionReports``): that
makes a report row in the claim's partition (``REPORT#<resolution>``) carrying the same fields. Either way the report
is taken under a lease by one conditional update, sent with an idempotency key derived from the claim and the
resolution, then marked. A report whose outcome is unknown (timeout, 5xx) is sent again as the same report, with the
same key, so Order Protection can tell the two apart; one it refuses is recorded and not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError

from claimbridge.bounds import check_id, check_store_id
from claimbridge.clients.http import AuthError, CallRecord, IntegrationError
from claimbridge.credits import credit_slot
from claimbridge.directory import StoreDirectory
from claimbridge.errors import ConflictError, ResourceNotFoundError, invalid, problems_from_validation
from claimbridge.models.order_protection import RefundReport, ReshipReport, ResolutionReportIn
from claimbridge.money import MoneyError, parse_amount
from claimbridge.observability import logger, metrics
from claimbridge.store import ConditionFailedError, Store, claim_pk, due_shard, now_iso

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
        if row is None or row.get("report_state") in ("REPORTED", "FAILED"):
            return
        if row.get("item_type") != "report" and row.get("state") != "ISSUED":
            return  # a credit is reported once it is issued
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
                kind=row.get("type") or "STORE_CREDIT",
                reference=row.get("reference") or row["card_id"],
                amount=parse_amount(row["amount"], row["currency"]),
                currency=row["currency"],
                idempotency_key=report_key(row),
            )
        except AuthError:
            self._directory.mark_invalid(store_id, "order_protection", "Order Protection refused the API token")
            self._mark(pk, sk, "FAILED", "Order Protection refused the API token", recorded)
            if row.get("item_type") == "report":
                summarize(self._store, row | {"report_state": "FAILED"})
            return
        except IntegrationError as error:
            if error.retryable:  # sent again later as the same report, under the same key
                self._mark(pk, sk, "RETRY", f"{error}; will send the same report again", recorded)
                raise
            self._mark(pk, sk, "FAILED", f"Order Protection refused the report: {error}", recorded)
            if row.get("item_type") == "report":
                summarize(self._store, row | {"report_state": "FAILED"})
            return
        self._mark(pk, sk, "REPORTED", "", recorded)
        if row.get("item_type") == "report":
            self._store.add_note(pk, note=f"{row['type']} {row['reference']} reported to Order Protection")
            summarize(self._store, row | {"report_state": "REPORTED"})
        metrics.add_metric(name="ResolutionReported", unit="Count", value=1)
        logger.info("resolution reported", ledger=row.get("ledger_id"), key=report_key(row))

    def _mark(self, pk: str, sk: str, state: str, reason: str, calls: list[CallRecord] | None) -> None:
        call = calls[-1] if calls else None
        settled = state in ("REPORTED", "FAILED", "SKIPPED")  # a report row is no longer due for the sweeper
        self._store.update(
            pk,
            sk,
            expression="SET report_state = :state, report_reason = :reason, reported_at = :at, report_call = :call "
            "REMOVE report_lease_until" + (", due_shard, due_at" if settled else ""),
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


class ResolutionReports:
    """What the merchant did for a claim's RESHIP or REFUND resolution, to be reported to Order Protection once: a
    report row in the claim's partition, queued for the report worker (and due for the sweeper until it is sent)."""

    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        enqueue_report: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._enqueue_report = enqueue_report
        self._clock = clock

    def request(self, store_id: str, claim_id: str, body: Any, who: str) -> tuple[dict[str, Any], bool]:
        """The report row and whether it was queued now (False: the same report was asked for before)."""
        check_store_id(store_id)
        check_id("claimId", claim_id)
        try:
            report = _REPORT.validate_python(body)
        except ValidationError as error:
            raise problems_from_validation(error) from error
        info = self._directory.store(store_id)
        claim = self._store.get_claim(store_id, claim_id) if info is not None else None
        if info is None or claim is None:
            raise ResourceNotFoundError(f"claim {claim_id} not found for store {store_id}")
        resolution = _resolution_for(claim, report.type, report.resolution_id)
        reference = report.reship_order_id if isinstance(report, ReshipReport) else report.refund_id
        details = resolution.get("details") or {}
        if isinstance(report, RefundReport):
            amount, currency = report.amount, report.currency
        else:  # a reship is reported with the value the resolution gave it, when it says one
            currency = str(details.get("currency") or info.profile.get("currency") or "USD").upper()
            amount = _resolution_value(details, currency)
        slot = credit_slot(resolution) if resolution.get("id") else report.type.lower()
        pk, sk = claim_pk(store_id, claim_id), f"REPORT#{slot}"
        row = {
            "PK": pk,
            "SK": sk,
            "item_type": "report",
            "store_id": store_id,
            "claim_id": claim_id,
            "slot": slot,
            "type": report.type,
            "reference": reference,
            "amount": amount,
            "currency": currency,
            "requested_by": who,
            "requested_at": now_iso(),
            "due_shard": due_shard(f"{store_id}/{claim_id}/{slot}"),
            "due_at": int(self._clock()) + REPORT_DUE_S,
        }
        try:
            self._store.put(row, condition="attribute_not_exists(PK)")
        except ConditionFailedError:
            existing = self._store.get(pk, sk) or {}
            if existing.get("reference") != reference or Decimal(str(existing.get("amount"))) != amount:
                raise ConflictError(
                    f"this claim's {report.type} was reported as {existing.get('reference')} "
                    f"({existing.get('amount')} {existing.get('currency')}); nothing changed"
                ) from None
            if existing.get("report_state") in (None, "RETRY", "SKIPPED"):  # not sent yet: its job may be lost
                self._send(existing)
            return public_report(existing), False
        self._store.add_note(pk, note=f"{report.type} {reference} to be reported to Order Protection (by {who})")
        summarize(self._store, row)
        self._send(row)
        return public_report(row), True

    def _send(self, row: dict[str, Any]) -> None:
        try:
            self._enqueue_report({"store_id": row["store_id"], "pk": row["PK"], "sk": row["SK"]})
        except Exception as error:  # noqa: BLE001 - the row is due: the sweeper queues it
            logger.error("report not queued; the sweeper will", claim_id=row["claim_id"], error=type(error).__name__)


REPORT_DUE_S = 600  # a report row not sent by then is queued again by the sweeper
_REPORT: TypeAdapter[Any] = TypeAdapter(ResolutionReportIn)


def _resolution_for(claim: dict[str, Any], kind: str, resolution_id: str | None) -> dict[str, Any]:
    """The claim's resolution this report is for; 409 when the claim has none of that type, 422 when it has
    several and the report does not say which."""
    state = claim.get("claim_state")
    if state not in ("APPROVED", "RESOLVED"):
        raise ConflictError(f"the claim is {state or 'unknown'}, not approved: it has no resolution to report")
    matching = [r for r in claim.get("resolutions") or [] if str(r.get("type", "")).upper() == kind]
    if resolution_id is not None:
        matching = [r for r in matching if str(r.get("id") or "") == resolution_id]
    if not matching:
        named = f" {resolution_id}" if resolution_id else ""
        raise ConflictError(f"the claim has no {kind} resolution{named}; nothing reported")
    if len(matching) > 1:
        raise invalid("resolution_id", f"the claim has {len(matching)} {kind} resolutions: name the one reported")
    return dict(matching[0])


def _resolution_value(details: dict[str, Any], currency: str) -> Decimal:
    try:
        return parse_amount(details.get("total_refund_amount") or 0, currency)
    except MoneyError:
        return parse_amount(0, currency)


def summarize(store: Store, row: dict[str, Any]) -> None:
    """The report as the claim shows it (``resolution_reports.<resolution>``): the widget reads claims, not rows."""
    pk = row["PK"]
    summary = {k: row.get(k) for k in ("type", "reference", "amount", "currency")}
    summary["report_state"] = row.get("report_state") or "QUEUED"
    store.update(
        pk,
        "CLAIM",
        expression="SET resolution_reports = if_not_exists(resolution_reports, :none)",
        values={":none": {}},
    )
    store.update(
        pk,
        "CLAIM",
        expression="SET resolution_reports.#slot = :summary",
        names={"#slot": row["slot"]},
        values={":summary": summary},
    )


def public_report(row: dict[str, Any]) -> dict[str, Any]:
    hidden = ("PK", "SK", "due_shard", "due_at", "report_lease_until")
    shown = {k: v for k, v in row.items() if k not in hidden}
    shown["report_state"] = row.get("report_state") or "QUEUED"
    return shown
