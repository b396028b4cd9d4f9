"""Store credit, exactly once: every credit is a ledger row keyed by its business key, written PENDING before the
partner call and settled after it (shared/DESIGN.md "Money is exactly once").

Happy path, per credit: one read of the row, the customer's loyalty card looked up, the row written PENDING (with what
is about to happen: issue or top-up, and the card's balance before), the call, the row settled ISSUED. Two writes.

When the outcome of a call is unknown (a read timeout, a 5xx, a crash between the call and the settle), the next attempt
never sends again blindly: it looks the customer's card up and settles from what it finds, or holds the row for an
operator when it cannot tell.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from claimbridge.clients.http import (
    AuthError,
    BadRequestError,
    CallRecord,
    IntegrationConnectionError,
    IntegrationError,
    IntegrationTimeoutError,
    NotFoundError,
    RateLimitError,
)
from claimbridge.clients.rise import GiftCard, RiseClient, StoreDomainNotFoundError
from claimbridge.crypto import customer_key, mask_secret
from claimbridge.directory import StoreDirectory, StoreInfo
from claimbridge.jobs import JobDeferredError
from claimbridge.models.credits import CreditJob
from claimbridge.observability import logger, metrics
from claimbridge.store import ConditionFailedError, Store, customer_pk, now_iso

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
LEASE_S = 60  # longer than the worker's timeout: a live attempt is never taken over

RiseFactory = Callable[[str, Callable[[CallRecord], None]], RiseClient]
ReportEnqueuer = Callable[[dict[str, Any]], None]


def ledger_entry_id(pk: str, sk: str) -> str:
    """The public id of a ledger row: ``claim:<claim>:<resolution>:<purpose>`` or ``order:<order>:bonus:<reason>``."""
    subject = pk.split("#", 2)[2]  # CLAIM#c1 or ORDER#1001
    kind, _, subject_id = subject.partition("#")
    return ":".join([kind.lower(), subject_id, *sk.removeprefix("LEDGER#").split("#")])


class CreditService:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        rise: RiseFactory,
        enqueue_report: ReportEnqueuer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._rise = rise
        self._enqueue_report = enqueue_report
        self._clock = clock

    # -- entry point ---------------------------------------------------------------------------------------------

    def handle(self, job: CreditJob) -> None:
        info = self._directory.store(job.store_id)
        if info is None:
            logger.warning("credit for a store that no longer exists", store_id=job.store_id)
            return
        row = self._store.get(job.pk, job.sk)
        if row is not None and (Decimal(str(row["amount"])) != job.amount or row["currency"] != job.currency):
            self._refuse_conflict(job, row)
            return
        if row is not None and row["state"] != "QUEUED":
            self._resume(info, job, row)
            return
        problem = self._guardrail(info, job)
        if problem is not None:
            self._settle_new(info, job, row, state="HELD", reason=problem)
            return
        calls: list[dict[str, Any]] = []
        client = self._client(info, job, calls)
        if client is None:
            return
        try:
            card = self._lookup(client, info, job)
        except (AuthError, StoreDomainNotFoundError) as error:
            self._settle_new(info, job, row, state="FAILED", reason=self._permanent_reason(job, info, error))
            return
        operation = "top_up" if card is not None else "issue"
        pending = self._base_row(info, job) | {
            "state": "PENDING",
            "operation": operation,
            "card_id": card.id if card else None,
            "balance_before": card.balance if card else None,
            "lease_until": int(self._clock()) + LEASE_S,
            "attempts": 1,
            "calls": calls,
        }
        try:
            self._store.put(
                pending,
                condition="attribute_not_exists(PK) OR (#state = :queued AND amount = :amount)",
                names={"#state": "state"},
                values={":queued": "QUEUED", ":amount": job.amount},
            )
        except ConditionFailedError:
            raise JobDeferredError(2, "another delivery is making this credit") from None
        self._perform(info, job, client, pending, calls)

    # -- the call and its outcomes -------------------------------------------------------------------------------

    def _perform(
        self, info: StoreInfo, job: CreditJob, client: RiseClient, row: dict[str, Any], calls: list[dict[str, Any]]
    ) -> None:
        shop = info.profile["shop_domain"]
        try:
            if row["operation"] == "top_up":
                card = client.top_up(
                    card_id=row["card_id"],
                    shop_url=shop,
                    amount=job.amount,
                    order_id=job.order_id or job.order_number or "",
                )
            else:
                card = client.issue_gift_card(
                    shop_url=shop,
                    balance=job.amount,
                    note=_note(job),
                    recipient=job.customer.name or job.customer.email or "",
                    recipient_email=job.customer.email or "",
                    subject=_subject(job),
                    body=_email_body(job, info),
                )
        except (RateLimitError, IntegrationConnectionError) as error:
            self._release(job, calls)  # not processed: the next attempt may send again
            raise error
        except IntegrationTimeoutError as error:
            if not error.sent:
                self._release(job, calls)
                raise
            self._settle(job, state="UNKNOWN", reason="Rise did not answer in time; the card may exist", calls=calls)
            metrics.add_metric(name="CreditOutcomeUnknown", unit="Count", value=1)
            raise
        except AuthError as error:
            self._directory.mark_invalid(job.store_id, "rise", "Rise refused the Credit API token (API key not found)")
            self._settle(
                job, state="FAILED", reason=f"Rise refused the Credit API token (HTTP {error.status})", calls=calls
            )
            return
        except StoreDomainNotFoundError:
            self._settle(
                job,
                state="FAILED",
                reason=f"Rise: Store domain not found ({shop}); check the store's shop_domain",
                calls=calls,
            )
            return
        except (BadRequestError, NotFoundError) as error:
            self._settle(
                job,
                state="FAILED",
                reason=f"Rise refused the credit: HTTP {error.status} {error.body[:200]}",
                calls=calls,
            )
            return
        except IntegrationError:
            # A 5xx or a 200 without a card: the card may exist. Look it up next time; never send blindly.
            self._settle(job, state="UNKNOWN", reason="Rise failed mid-call; the card may exist", calls=calls)
            metrics.add_metric(name="CreditOutcomeUnknown", unit="Count", value=1)
            raise
        self._issued(job, row, card, calls, reconciled=False)

    def _issued(
        self, job: CreditJob, row: dict[str, Any], card: GiftCard, calls: list[dict[str, Any]], *, reconciled: bool
    ) -> None:
        top_up = row["operation"] == "top_up"
        settled = self._settle(
            job,
            state="ISSUED",
            reason=None,
            calls=calls,
            extra={
                "card_id": card.id,
                "card_code": card.code,
                "card_balance": card.balance,
                "card_initial_value": None if top_up else job.amount,
                "card_expires_on": card.expires_on,
                "card_type": "top_up" if top_up else job.kind,
                "reconciled": reconciled or None,
            },
        )
        metrics.add_metric(name="CreditIssued", unit="Count", value=1)
        logger.info(
            "credit issued",
            store_id=job.store_id,
            ledger=ledger_entry_id(job.pk, job.sk),
            operation=row["operation"],
            card=mask_secret(card.code or ""),
            reconciled=reconciled,
        )
        self._report(job, settled)

    def _report(self, job: CreditJob, row: dict[str, Any]) -> None:
        if job.kind != "claim_resolution" or row.get("report_state") == "REPORTED":
            return
        self._enqueue_report({"store_id": job.store_id, "pk": job.pk, "sk": job.sk})

    # -- resuming: a row that already exists ---------------------------------------------------------------------

    def _resume(self, info: StoreInfo, job: CreditJob, row: dict[str, Any]) -> None:
        state = row["state"]
        if state == "ISSUED":
            self._report(job, row)
            return
        if state in ("FAILED", "HELD"):
            logger.info("credit already settled", ledger=ledger_entry_id(job.pk, job.sk), state=state)
            return
        now = self._clock()
        if state == "PENDING" and int(row.get("lease_until", 0)) > now:
            raise JobDeferredError(int(row["lease_until"]) - now + 1, "another delivery is making this credit")
        self._reconcile(info, job, row)

    def _reconcile(self, info: StoreInfo, job: CreditJob, row: dict[str, Any]) -> None:
        """The last attempt's outcome is unknown: find out from the customer's card before doing anything."""
        ledger = ledger_entry_id(job.pk, job.sk)
        calls: list[dict[str, Any]] = list(row.get("calls") or [])
        if not job.customer.id:
            self._hold_for_operator(
                job,
                calls,
                "the last attempt's outcome is unknown and the customer has no "
                "Shopify id to look the card up; held for an operator: check Rise, then settle this row by hand",
            )
            return
        client = self._client(info, job, calls)
        if client is None:
            return
        try:
            card = self._lookup(client, info, job)
        except (AuthError, StoreDomainNotFoundError) as error:
            self._settle(job, state="FAILED", reason=self._permanent_reason(job, info, error), calls=calls)
            return
        amount = job.amount
        before = Decimal(str(row["balance_before"])) if row.get("balance_before") is not None else None
        if row["operation"] == "issue":
            if card is None:
                outcome = "not_applied"
            elif card.balance == amount:
                outcome = "applied"
            else:
                outcome = "unclear"
        elif card is None or before is None:
            outcome = "unclear"
        elif card.balance == before:
            outcome = "not_applied"
        elif card.balance == before + amount:
            outcome = "applied"
        else:
            outcome = "unclear"
        logger.info("credit reconciled", ledger=ledger, outcome=outcome)
        if outcome == "applied":
            assert card is not None
            self._issued(job, row, card, calls, reconciled=True)
        elif outcome == "not_applied":
            taken = self._settle(
                job,
                state="PENDING",
                reason=None,
                calls=calls,
                extra={"lease_until": int(self._clock()) + LEASE_S, "attempts": int(row.get("attempts", 1)) + 1},
            )
            self._perform(info, job, client, taken, calls)
        else:
            self._hold_for_operator(
                job,
                calls,
                "the last attempt's outcome is unknown and the customer's card does "
                "not tell; held for an operator: check Rise, then settle this row by hand",
            )

    def _permanent_reason(self, job: CreditJob, info: StoreInfo, error: IntegrationError) -> str:
        if isinstance(error, AuthError):
            self._directory.mark_invalid(job.store_id, "rise", "Rise refused the Credit API token (API key not found)")
            return f"Rise refused the Credit API token (HTTP {error.status}: API key not found)"
        return f"Rise: Store domain not found ({info.profile['shop_domain']}); check the store's shop_domain"

    # -- guardrails, conflicts, clients ---------------------------------------------------------------------------

    def _guardrail(self, info: StoreInfo, job: CreditJob) -> str | None:
        profile = info.profile
        if job.amount <= 0:
            return f"amount must be positive, not {job.amount}"
        if not job.customer.email or not EMAIL.match(job.customer.email):
            return "the customer's email is missing or invalid"
        if job.currency != profile.get("currency", "USD"):
            return f"currency {job.currency} is not the store's ({profile.get('currency', 'USD')})"
        cap = profile.get("max_credit_amount")
        if cap is not None and job.amount > Decimal(str(cap)):
            return f"amount {job.amount} is over the store's per-credit cap of {Decimal(str(cap)):.2f}"
        if profile.get("credit_provider", "rise") != "rise":
            return f"credit provider {profile.get('credit_provider')} is not wired for credits yet; use rise"
        return None

    def _refuse_conflict(self, job: CreditJob, row: dict[str, Any]) -> None:
        note = (
            f"refused: same business key asked for {job.amount} {job.currency}, the row has {row['amount']} "
            f"{row['currency']}; no call made"
        )
        logger.error(
            "credit refused: amount differs for the same business key",
            ledger=ledger_entry_id(job.pk, job.sk),
            asked=str(job.amount),
            recorded=str(row["amount"]),
        )
        metrics.add_metric(name="CreditConflict", unit="Count", value=1)
        self._store.update(
            job.pk,
            job.sk,
            expression="SET conflicts = list_append(if_not_exists(conflicts, :none), :note)",
            values={":none": [], ":note": [{"at": now_iso(), "note": note}]},
        )

    def _client(self, info: StoreInfo, job: CreditJob, calls: list[dict[str, Any]]) -> RiseClient | None:
        rise = self._directory.integration(job.store_id, "rise")
        if rise is None or not rise.valid:
            reason = (
                "Rise is not configured for this store" if rise is None else f"Rise integration invalid: {rise.reason}"
            )
            row = self._store.get(job.pk, job.sk)
            if row is None or row["state"] == "QUEUED":
                self._settle_new(info, job, row, state="HELD", reason=reason + "; no call made")
            else:
                self._settle(job, state="HELD", reason=reason, calls=calls)
            return None

        def observe(call: CallRecord) -> None:
            calls.append({"at": now_iso(), **call.fields()})

        return self._rise(rise.secrets["credit_api_token"], observe)

    def _lookup(self, client: RiseClient, info: StoreInfo, job: CreditJob) -> GiftCard | None:
        if not job.customer.id:
            return None
        return client.customer_card(shop_url=info.profile["shop_domain"], customer_id=job.customer.id)

    # -- rows ----------------------------------------------------------------------------------------------------

    def _base_row(self, info: StoreInfo, job: CreditJob) -> dict[str, Any]:
        return new_ledger_row(info, job)

    def _settle_new(
        self, info: StoreInfo, job: CreditJob, row: dict[str, Any] | None, *, state: str, reason: str
    ) -> None:
        """Settle a credit that never reached a partner (held by a guardrail): one conditional write."""
        item = self._base_row(info, job) | {"state": state, "state_reason": reason, "settled_at": now_iso()}
        if row is not None:
            item["created_at"] = row.get("created_at", item["created_at"])
        try:
            self._store.put(
                item,
                condition="attribute_not_exists(PK) OR #state = :queued",
                names={"#state": "state"},
                values={":queued": "QUEUED"},
            )
        except ConditionFailedError:
            return  # someone settled it first
        metrics.add_metric(name=f"Credit{state.title()}", unit="Count", value=1)
        logger.warning("credit held, no call made", ledger=ledger_entry_id(job.pk, job.sk), reason=reason)

    def _settle(
        self,
        job: CreditJob,
        *,
        state: str,
        reason: str | None,
        calls: list[dict[str, Any]],
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "state": state,
            "state_reason": reason or "",
            "settled_at": now_iso(),
            "calls": calls,
            **(extra or {}),
        }
        if state != "PENDING":
            values["lease_until"] = 0
        return self._store.set_fields(job.pk, job.sk, values)

    def _release(self, job: CreditJob, calls: list[dict[str, Any]]) -> None:
        self._settle(
            job, state="PENDING", reason="not processed by Rise; will retry", calls=calls, extra={"lease_until": 0}
        )

    def _hold_for_operator(self, job: CreditJob, calls: list[dict[str, Any]], reason: str) -> None:
        self._settle(job, state="HELD", reason=reason, calls=calls)
        metrics.add_metric(name="CreditHeldForOperator", unit="Count", value=1)
        logger.error("credit held for an operator", ledger=ledger_entry_id(job.pk, job.sk), reason=reason)


def new_ledger_row(info: StoreInfo, job: CreditJob) -> dict[str, Any]:
    """A ledger row's permanent fields (no TTL: the ledger is kept for good)."""
    created = now_iso()
    row: dict[str, Any] = {
        "PK": job.pk,
        "SK": job.sk,
        "ledger_id": ledger_entry_id(job.pk, job.sk),
        "store_id": job.store_id,
        "kind": job.kind,
        "claim_id": job.claim_id,
        "order_id": job.order_id,
        "order_number": job.order_number,
        "amount": job.amount,
        "currency": job.currency,
        "customer_email": job.customer.email,
        "customer_name": job.customer.name or None,
        "customer_id": job.customer.id,
        "reason": job.reason,
        "provider": "rise",
        "shop_domain": info.profile.get("shop_domain"),
        "created_at": created,
    }
    if job.customer.email:
        row["GSI1PK"] = customer_pk(job.store_id, customer_key(info.customer_hash_key, job.customer.email))
        row["GSI1SK"] = f"CREDIT#{created}#{row['ledger_id']}"
    return row


def _subject(job: CreditJob) -> str:
    if job.kind == "bonus_credit":
        return f"Bonus Store Credit for Order #{job.order_number}"
    return f"Gift Card for Claim #{job.claim_id}"


def _note(job: CreditJob) -> str:
    if job.kind == "bonus_credit":
        return f"Bonus store credit ({job.reason}) for order #{job.order_number}"
    return f"Order Protection claim #{job.claim_id} for order #{job.order_number or job.order_id}"


def _email_body(job: CreditJob, info: StoreInfo) -> str:
    store = info.profile.get("name", "our store")
    what = "as bonus store credit" if job.kind == "bonus_credit" else f"to resolve your claim #{job.claim_id}"
    return (
        f"Hi {job.customer.name or 'there'}, you have received {job.amount:.2f} {job.currency} {what} "
        f"(order #{job.order_number or job.order_id}). Use your gift card code at checkout on {store}: enter it in "
        "the discount or gift card field. Your balance carries over until it is used up."
    )


class ReportService:
    """Tells Order Protection how a claim was resolved, after the credit is issued: its own retries, no re-issue."""

    REPORT_LEASE_S = 60

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
        try:  # one report at a time: a duplicate job finds the row taken and leaves it
            self._store.update(
                pk,
                sk,
                expression="SET report_state = :sending, report_lease_until = :until",
                values={":sending": "SENDING", ":until": now + self.REPORT_LEASE_S, ":now": now, ":skipped": "SKIPPED"},
                condition="attribute_not_exists(report_state) OR report_state = :skipped OR "
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
                amount=Decimal(str(row["amount"])),
                currency=row["currency"],
            )
        except AuthError:
            self._directory.mark_invalid(store_id, "order_protection", "Order Protection refused the API token")
            self._mark(pk, sk, "FAILED", "Order Protection refused the API token", recorded)
            return
        except (BadRequestError, NotFoundError) as error:
            self._mark(pk, sk, "FAILED", f"Order Protection refused the report: HTTP {error.status}", recorded)
            return
        except IntegrationError:
            self._store.update(pk, sk, expression="REMOVE report_state, report_lease_until")  # a retry may take it
            raise
        self._mark(pk, sk, "REPORTED", "", recorded)
        metrics.add_metric(name="ResolutionReported", unit="Count", value=1)

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
