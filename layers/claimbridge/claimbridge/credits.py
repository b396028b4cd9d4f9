"""Store credit, exactly once: a ledger row is taken, the provider is called, the row is settled.

``CreditService.handle`` reads the row a job names and moves it with ``claimbridge.ledger``'s table, from wherever it
stands: an ISSUED row is reported, a live lease defers, an abandoned or unknown attempt is reconciled (settled only on
evidence that names the credit, else held for an operator), a QUEUED row is checked, taken, paid and settled. The
row, not the job, is the truth: jobs name a row and may come any number of times, in any order.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from claimbridge.clients.http import AuthError, CallRecord, IntegrationError
from claimbridge.crypto import SecretBox, customer_key, mask_secret
from claimbridge.directory import StoreDirectory, StoreInfo
from claimbridge.jobs import JobDeferredError
from claimbridge.ledger import SETTLED, Ledger, LostRaceError, Outcome, State, ledger_id
from claimbridge.limits import MoneyLimits
from claimbridge.models.credits import CreditJob
from claimbridge.money import MoneyError, parse_amount
from claimbridge.observability import logger, metrics
from claimbridge.pacing import account_key, calls_after
from claimbridge.providers import RIVO_ACTION_KINDS, Applied, Credit, CreditProvider, Plan, ProviderFactory
from claimbridge.store import Store, customer_pk, iso_at, now_iso

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
CLAIM_CREDIT_STATES = frozenset({"APPROVED", "RESOLVED"})
LIVE_LEASE_RECHECK_S = 20
MAX_CALLS = 40  # the last calls kept on a row (the evidence an operator reads)
UNKNOWN_PAUSE_S = 30  # look for evidence a little after an unknown outcome, not while the partner may still act
DEFAULT_CUSTOMER_WAIT_S = 24 * 3600
PLAN_REUSE_S = 300  # a plan made this recently for a take that was not sent is used again

ReportEnqueuer = Callable[[dict[str, Any]], None]
CreditEnqueuer = Callable[[CreditJob], None]
RETURN_KINDS = frozenset({"return_credit", "return_bonus"})


@dataclass(frozen=True)
class Stop:
    """Why a QUEUED row does not go to the partner now: ``wait`` (it comes back) or ``hold`` (an operator decides).
    A wait comes back after ``again_s`` and is due for the sweeper at ``due_at``; one without ``again_s`` is sent
    again by what it waits for (a bonus, by its credit's settlement)."""

    outcome: Outcome
    code: str
    reason: str
    again_s: float | None = None
    due_at: int | None = None


class CreditService:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        providers: Mapping[str, ProviderFactory],
        enqueue_report: ReportEnqueuer,
        secret_box: SecretBox,
        enqueue_credit: CreditEnqueuer | None = None,
        limits: MoneyLimits | None = None,
        customer_wait_s: float = DEFAULT_CUSTOMER_WAIT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._box = secret_box
        self._limits = limits or MoneyLimits()
        self._ledger = Ledger(store, clock=clock)
        self._directory = directory
        self._providers = providers
        self._enqueue_report = enqueue_report
        self._enqueue_credit = enqueue_credit
        self._customer_wait_s = customer_wait_s
        self._clock = clock

    def handle(self, job: CreditJob) -> None:
        row = self._ledger.get(job.pk, job.sk)
        if row is None:
            logger.error("credit job names no ledger row; dropped", pk=job.pk, sk=job.sk)
            return
        try:
            self._advance(row)
        except LostRaceError:
            raise JobDeferredError(2, "another worker moved this credit first") from None

    # -- the machine, in the order a row moves ---------------------------------------------------------------------

    def _advance(self, row: dict[str, Any]) -> None:
        state = row["state"]
        if state == State.ISSUED:
            self._follow_up(row)
            return
        if state in SETTLED:
            logger.info("credit already settled", ledger=row["ledger_id"], state=state)
            return
        if (left := self._ledger.lease_left(row)) > 0:
            # A live holder settles within its call's timeout; look again soon, and later if it died.
            raise JobDeferredError(min(left + 1, LIVE_LEASE_RECHECK_S), "another worker holds this credit")
        if state == State.PENDING:
            row = self._ledger.move(
                row,
                Outcome.ABANDONED,
                reason="the worker that took this credit stopped before settling it; the partner may have applied it",
            )
        if row["state"] == State.UNKNOWN:
            row = self._reconcile(row)
            if row["state"] != State.QUEUED:
                return
        self._pay(row)

    def _pay(self, row: dict[str, Any]) -> None:
        """QUEUED → (checks) → PENDING → the call → ISSUED, or the state the call's failure says."""
        info = self._directory.store(row["store_id"], with_integration=row.get("provider"))
        stop, customer = self._check(row, info)
        if stop is not None:
            self._stop(row, stop)
            return
        assert info is not None
        calls: list[dict[str, Any]] = list(row.get("calls") or [])
        found = self._provider(info, row, calls)
        if isinstance(found, Stop):
            self._stop(row, found)
            return
        provider, account_id = found
        credit = _credit(row | customer, info)
        planned = self._recent_plan(row)
        try:
            with calls_after(1):  # its look-up is followed by the credit: deferred there, a job reserves both slots
                plan = planned or provider.plan(credit)  # a read: whatever fails here, nothing was paid
        except IntegrationError as error:
            self._refused_or_retry(row, error, calls, taken=False)
            return
        account = {"account": account_id}  # which partner account the call goes to (see _reconcile)
        row = self._ledger.move(row, Outcome.TAKE, fields=customer | plan.fields | account, calls=calls)
        try:
            applied = provider.apply(_credit(row, info))
        except IntegrationError as error:
            self._refused_or_retry(row, error, calls, taken=True)
            return
        except JobDeferredError:  # the account's pacer had no slot: the request never left
            self._ledger.move(row, Outcome.NOT_SENT, reason="waiting for the partner account's pace; not sent")
            raise
        self._issued(row, Outcome.APPLIED, applied, calls)

    def _recent_plan(self, row: dict[str, Any]) -> Plan | None:
        """The plan of a take that did not send (its account's pace was full) moments ago: reused, so a credit
        deferred to its pacer slot spends that slot on the credit, not on looking its card up again."""
        history = row.get("history") or []
        last = history[-1] if history else {}
        if not row.get("operation") or last.get("outcome") != Outcome.NOT_SENT.value:
            return None
        if self._clock() - _epoch(last["at"]) > PLAN_REUSE_S:
            return None
        return Plan(str(row["operation"]), {})

    def _refused_or_retry(
        self, row: dict[str, Any], error: IntegrationError, calls: list[dict[str, Any]], *, taken: bool
    ) -> None:
        """A failed call moves the row by what the failure says about the partner's side; retries are the runner's."""
        if taken and error.may_have_applied:
            self._ledger.move(row, Outcome.UNCERTAIN, reason=f"{error}; the partner may have applied it", calls=calls)
            metrics.add_metric(name="CreditOutcomeUnknown", unit="Count", value=1)
            logger.warning("credit outcome unknown", ledger=row["ledger_id"], error=str(error))
            raise JobDeferredError(UNKNOWN_PAUSE_S, "outcome unknown; looking for evidence after a pause") from error
        if error.retryable:  # a 429, a refused connection, or a failed look-up: nothing was paid; again later
            if taken:
                self._ledger.move(row, Outcome.NOT_SENT, reason=f"{error}; not applied, will retry", calls=calls)
            raise error
        if isinstance(error, AuthError):  # nothing was made; held, and re-driven when the key is saved or valid again
            reason = f"{row['provider']} refused the credential ({error})"
            self._directory.mark_invalid(row["store_id"], row["provider"], reason)
            asked_now = row["kind"] in RIVO_ACTION_KINDS  # by a person: not made later without asking again
            self._ledger.move(
                row,
                Outcome.REFUSE if asked_now else Outcome.HOLD,
                reason=f"{reason}; "
                + ("not made (ask again once a working key is saved)" if asked_now else "no credit made"),
                calls=calls,
                fields={"hold_code": "provider_invalid"},
            )
            if not asked_now:
                metrics.add_metric(name="CreditHeld", unit="Count", value=1)
            return
        body = str(getattr(error, "body", ""))[:200]
        self._ledger.move(
            row, Outcome.REFUSE, reason=f"{row['provider']} refused the credit: {error} {body}".strip(), calls=calls
        )
        metrics.add_metric(name="CreditFailed", unit="Count", value=1)

    def _reconcile(self, row: dict[str, Any]) -> dict[str, Any]:
        """UNKNOWN: settle on evidence that names this credit, retry on proof it was not made, else hold it."""
        info = self._directory.store(row["store_id"], with_integration=row.get("provider"))
        calls: list[dict[str, Any]] = list(row.get("calls") or [])
        found = self._provider(info, row, calls) if info is not None else Stop(Outcome.HOLD, "store", "no store")
        if isinstance(found, Stop):
            return self._hold_unknown(row, calls, {"why_not_looked": found.reason})
        assert info is not None
        provider, account_id = found
        if row.get("account") and row["account"] != account_id:
            # The key was changed since the call: the new account's records prove nothing about the old one's.
            why = "the partner credential was changed since the call; check the account it was sent to"
            return self._hold_unknown(row, calls, {"why_not_looked": why})
        row = self._ledger.move(row, Outcome.RECONCILE, calls=calls)
        try:
            evidence = provider.find(_credit(row, info))
        except IntegrationError as error:
            self._ledger.move(row, Outcome.RELEASE, calls=calls)
            raise error
        if evidence.applied is not None:
            return self._issued(row, Outcome.FOUND, evidence.applied, calls, evidence=evidence.seen)
        if evidence.conclusive:
            return self._ledger.move(
                row,
                Outcome.ABSENT,
                reason="the partner shows it was not made; will retry",
                fields={"evidence": evidence.seen},
                calls=calls,
            )
        return self._hold_unknown(row, calls, evidence.seen)

    def _hold_unknown(self, row: dict[str, Any], calls: list[dict[str, Any]], seen: dict[str, Any]) -> dict[str, Any]:
        evidence = {
            "balance_before": row.get("balance_before"),
            "operation": row.get("operation"),
            "card_id": row.get("card_id"),
            "taken_at": _last_step(row, "take"),
            "unknown_since": _last_step(row, "uncertain") or _last_step(row, "abandoned"),
            **seen,
        }
        reason = (
            "the call may have reached the partner and nothing names this credit there; held for an operator: "
            "check the partner (the evidence and calls are on this row), then settle it by hand"
        )
        held = self._ledger.move(
            row,
            Outcome.NO_EVIDENCE,
            reason=reason,
            fields={"hold_code": "outcome_unknown", "evidence": evidence},
            calls=calls,
        )
        metrics.add_metric(name="CreditHeldForOperator", unit="Count", value=1)
        logger.error("credit held for an operator", ledger=row["ledger_id"], reason=reason)
        return held

    def _issued(
        self,
        row: dict[str, Any],
        outcome: Outcome,
        applied: Applied,
        calls: list[dict[str, Any]],
        *,
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        top_up = row.get("operation") == "top_up"
        fields = {
            "card_id": applied.card_id,
            # The code is bearer money: sealed like a partner secret (the card's store and ledger row in its KMS
            # context); the table and every view show only its masked form.
            "card_code_sealed": self._sealed_code(row, applied.code),
            "card_code_masked": mask_secret(applied.code) if applied.code else None,
            "card_balance": applied.balance,
            "card_initial_value": None if top_up else row["amount"],
            "card_expires_on": applied.expires_on,
            "card_type": "top_up" if top_up else row["kind"],
            "notified": applied.notified,
            "result": applied.record,
            "reconciled": True if outcome == Outcome.FOUND else None,
            "evidence": evidence,
        }
        try:
            settled = self._ledger.move(row, outcome, reason="", fields=fields, calls=calls)
        except LostRaceError:
            settled = self._late_answer(row, fields, calls)
        metrics.add_metric(name="CreditIssued", unit="Count", value=1)
        logger.info("credit issued", ledger=row["ledger_id"], operation=row.get("operation"), outcome=outcome.value)
        self._follow_up(settled)
        return settled

    def _sealed_code(self, row: dict[str, Any], code: str | None) -> str | None:
        """The code sealed; None, logged, if KMS fails now: the card exists, so the row is settled all the same (the
        customer has the code by email, and the row keeps its masked form)."""
        if not code:
            return None
        try:
            return self._box.seal({"code": code}, store_id=row["store_id"], purpose=f"card_code:{row['ledger_id']}")
        except Exception as error:  # noqa: BLE001 - never lose an issued card's settlement to a sealing failure
            logger.error("card code not sealed; kept masked only", ledger=row["ledger_id"], error=type(error).__name__)
            return None

    def _late_answer(self, row: dict[str, Any], fields: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
        """Our lease ran out mid-call and another worker moved the row; our answer is evidence that names it."""
        current = self._ledger.get(row["PK"], row["SK"]) or row
        if current["state"] == State.UNKNOWN:
            return self._ledger.move(
                current, Outcome.FOUND, reason="", fields=fields | {"reconciled": True}, calls=calls
            )
        self._store.update(row["PK"], row["SK"], expression="SET late_answer = :answer", values={":answer": fields})
        logger.error("a late partner answer was recorded on a settled credit", ledger=row["ledger_id"])
        return current

    def _follow_up(self, row: dict[str, Any]) -> None:
        follow_up(row, ledger=self._ledger, enqueue_report=self._enqueue_report, enqueue_credit=self._enqueue_credit)

    # -- what a QUEUED row needs before it goes out ------------------------------------------------------------------

    def _check(self, row: dict[str, Any], info: StoreInfo | None) -> tuple[Stop | None, dict[str, Any]]:
        """A reason not to call now (wait, or hold with a reason), and the customer's fields to record on the take."""
        if info is None:
            return Stop(Outcome.HOLD, "store", "the store no longer exists; no call made"), {}
        customer: dict[str, Any] = {}
        if row["kind"] in ("claim_credit", *RETURN_KINDS):
            check = self._claim_check if row["kind"] == "claim_credit" else self._return_check
            stop, customer = check(row, info)
            if stop is not None:
                return stop, {}
        email = customer.get("customer_email") or row.get("customer_email")
        profile = info.profile
        currency = profile.get("currency", "USD")
        try:
            amount = parse_amount(row["amount"], row["currency"])
        except MoneyError as error:
            return Stop(Outcome.HOLD, "amount", f"{error}; no call made"), {}
        cap, whose = self._limits.cap_for(profile)
        # A Rivo action may move points without credits (amount 0); everything else must pay something.
        enough = amount >= 0 if row["kind"] in RIVO_ACTION_KINDS else amount > 0
        problem = (
            ("amount", f"amount must be positive, not {amount}")
            if not enough
            else ("email", "the customer's email is missing or invalid")
            if not email or not EMAIL.match(email)
            else ("currency", f"currency {row['currency']} is not the store's ({currency})")
            if row["currency"] != currency
            else ("cap", f"amount {amount} is over {whose} of {cap:.2f}")
            if cap is not None and amount > cap
            else None
        )
        if problem is not None:
            return Stop(Outcome.HOLD, problem[0], f"{problem[1]}; no call made"), {}
        return None, customer

    def _claim_check(self, row: dict[str, Any], info: StoreInfo) -> tuple[Stop | None, dict[str, Any]]:
        """A claim's credit follows its claim: approved still, the same resolution still, the customer known."""
        found, ledger = self._store.get_claim_and_ledger(row["store_id"], row["claim_id"])
        claim = found or {}
        state = claim.get("claim_state")
        if state not in CLAIM_CREDIT_STATES:
            return Stop(
                Outcome.HOLD,
                "claim_state",
                f"the claim is {state or 'unknown'} now, not approved; held for an operator, no call made",
            ), {}
        wanted = [r for r in claim.get("resolutions") or [] if is_store_credit(r)]
        resolution = next((r for r in wanted if credit_slot(r) == row["slot"]), None)
        if resolution is None:
            return Stop(
                Outcome.HOLD,
                "claim_changed",
                "the claim's resolutions no longer include this credit; held for an operator, no call made",
            ), {}
        slots = {credit_slot(r) for r in wanted}
        others = [
            other["ledger_id"]
            for other in ledger
            if other["SK"] != row["SK"] and other.get("slot") not in slots and other.get("state") != "CANCELLED"
        ]
        if others:  # e.g. the approval came without resolution ids and a later event with them: one credit, two keys
            return Stop(
                Outcome.HOLD,
                "claim_changed",
                f"this claim has another credit under {', '.join(others)} that its resolutions no longer name; "
                "held for an operator, no call made",
            ), {}
        now_says = resolution_amount(resolution)
        if now_says is not None and now_says != Decimal(str(row["amount"])):
            return Stop(
                Outcome.HOLD,
                "claim_changed",
                f"the claim's resolution now says {now_says}, this credit "
                f"{row['amount']}; held for an operator, no call made",
            ), {}
        if claim.get("customer_email"):
            customer = {
                "customer_email": claim["customer_email"],
                "customer_name": claim.get("customer_name") or None,
                "customer_id": claim.get("customer_id"),
                "GSI1PK": customer_pk(info.store_id, customer_key(info.customer_hash_key, claim["customer_email"])),
                "GSI1SK": f"CREDIT#{row['created_at']}#{row['ledger_id']}",
            }
            return None, customer
        if row.get("customer_email"):
            return None, {}
        if claim.get("customer_phone"):  # known, but only by phone: a gift card goes to an email address
            return Stop(
                Outcome.HOLD,
                "no_email",
                "no email for the gift card: the claim's customer is known only by phone; held for an operator "
                "(sent when an email arrives), no call made",
            ), {}
        waited = self._clock() - _epoch(row["created_at"])
        if waited < self._customer_wait_s:
            return Stop(
                Outcome.WAIT,
                "customer_unknown",
                "waiting for the claim's customer (the approval came before the claim)",
                again_s=min(900.0, max(30.0, waited / 2)),
                due_at=int(_epoch(row["created_at"]) + self._customer_wait_s) + 60,  # when the wait runs out
            ), {}
        hours = self._customer_wait_s / 3600
        return Stop(
            Outcome.HOLD,
            "customer_unknown",
            f"the claim's customer was still unknown {hours:g} h after the "
            "approval; held for an operator, no call made",
        ), {}

    def _return_check(self, row: dict[str, Any], info: StoreInfo) -> tuple[Stop | None, dict[str, Any]]:
        """A return's credit follows its return as the sync last saw it: still resolved as store credit. Its bonus
        goes onto the card its credit landed on, so it follows the credit."""
        seen = self._store.get(row["PK"], "RETURN") or {}
        if not seen.get("qualifies"):
            what = f"{seen.get('status') or 'unknown'} ({seen.get('refund_method') or 'no refund method'})"
            return Stop(
                Outcome.HOLD,
                "return_changed",
                f"the return is {what} now, not resolved as store credit; not credited, no call made "
                "(queued again if it qualifies again)",
            ), {}
        credit = row if row["kind"] == "return_credit" else self._ledger.get(row["PK"], "LEDGER#credit")
        refund = _amount_or_none(seen.get("refund_amount"))
        if credit is not None and refund is not None and refund != Decimal(str(credit["amount"])):
            return Stop(
                Outcome.HOLD,
                "return_changed",
                f"the return's refund is {refund} now, its credit {credit['amount']}; held for an operator, no call "
                "made (queued again if the refund comes back to that amount)",
            ), {}
        if row["kind"] != "return_bonus":
            return None, {}
        state = credit["state"] if credit else None
        if credit is not None and state == State.ISSUED and credit.get("card_id"):
            return None, {"onto_card_id": credit["card_id"]}
        if state in (None, State.QUEUED, State.PENDING, State.UNKNOWN):
            return Stop(
                Outcome.WAIT, "credit_first", "the bonus goes onto the card of its credit, which is not issued yet"
            ), {}
        return Stop(
            Outcome.HOLD,
            "credit_not_issued",
            f"its credit is {state}: the bonus goes onto the credit's card, so it waits for that credit "
            "(queued again when the credit is issued); no call made",
        ), {}

    def _stop(self, row: dict[str, Any], stop: Stop) -> None:
        if stop.outcome == Outcome.WAIT:
            if stop.again_s is None:  # what it waits for sends it again (the sweeper, if that send was lost)
                logger.info("credit waits", ledger=row["ledger_id"], code=stop.code, reason=stop.reason)
                return
            if row.get("wait_code") != stop.code:
                fields = {"wait_code": stop.code, **({"due_at": stop.due_at} if stop.due_at else {})}
                self._ledger.move(row, Outcome.WAIT, reason=stop.reason, fields=fields)
            raise JobDeferredError(stop.again_s, stop.reason)
        self._ledger.move(row, Outcome.HOLD, reason=stop.reason, fields={"hold_code": stop.code})
        metrics.add_metric(name="CreditHeld", unit="Count", value=1)
        logger.warning("credit held", ledger=row["ledger_id"], code=stop.code, reason=stop.reason)

    def _provider(
        self, info: StoreInfo | None, row: dict[str, Any], calls: list[dict[str, Any]]
    ) -> tuple[CreditProvider, str] | Stop:
        """The store's provider for this row and a fingerprint of the partner account it calls (of its credential,
        never the credential), or the Stop that says why there is none. One read of the integration for both."""
        assert info is not None
        name = row.get("provider") or info.profile.get("credit_provider", "rise")
        factory = self._providers.get(name)
        if factory is None:
            return Stop(Outcome.HOLD, "provider_not_wired", f"credit provider {name} is not wired for credits yet")
        integration = self._directory.integration_of(info, name)
        if integration is None:
            return Stop(
                Outcome.HOLD, "provider_not_configured", f"{name} is not configured for this store; no call made"
            )
        if not integration.valid:
            return Stop(
                Outcome.HOLD, "provider_invalid", f"{name} integration invalid: {integration.reason}; no call made"
            )

        def observe(call: CallRecord) -> None:
            calls.append({"at": iso_at(self._clock()), **call.fields()})
            del calls[:-MAX_CALLS]  # a long 429 storm must not grow the row toward DynamoDB's 400 KB

        provider: CreditProvider = factory(integration.secrets, observe)
        return provider, account_key(name, json.dumps(integration.secrets, sort_keys=True, default=str))


# -- rows ---------------------------------------------------------------------------------------------------------


def follow_up(
    row: Mapping[str, Any],
    *,
    ledger: Ledger,
    enqueue_report: ReportEnqueuer | None,
    enqueue_credit: CreditEnqueuer | None,
) -> None:
    """What an issued credit sets going (by a worker or marked by an operator): a claim's credit is reported to
    Order Protection; a return's credit lets its bonus go onto the card it landed on."""
    if row.get("state") != State.ISSUED:
        return  # a late answer recorded beside a row another worker settled otherwise sets nothing going
    kind = row.get("kind")
    if kind == "claim_credit" and row.get("report_state") != "REPORTED" and enqueue_report is not None:
        enqueue_report({"store_id": row["store_id"], "pk": row["PK"], "sk": row["SK"]})
    if kind == "return_credit" and enqueue_credit is not None:
        release_bonus(row, ledger=ledger, enqueue_credit=enqueue_credit, lifting="credit_not_issued")


def release_bonus(credit: Mapping[str, Any], *, ledger: Ledger, enqueue_credit: CreditEnqueuer, lifting: str) -> None:
    """A return's bonus held for ``lifting`` (its credit not issued, its return changed) is queued again; it is sent
    now when its ``credit`` is issued, else that credit's settlement sends it."""
    bonus = ledger.get(credit["PK"], "LEDGER#bonus")
    if bonus is None:
        return
    if bonus["state"] == State.HELD and bonus.get("hold_code") == lifting:
        try:
            bonus = ledger.move(bonus, Outcome.REPAIR, reason=f"re-driven: {lifting.replace('_', ' ')} no more")
        except LostRaceError:
            return  # someone else moved it; whoever did sends it
    if bonus["state"] == State.QUEUED and credit["state"] == State.ISSUED:
        enqueue_credit(CreditJob(store_id=credit["store_id"], pk=bonus["PK"], sk=bonus["SK"]))


def is_store_credit(resolution: Mapping[str, Any]) -> bool:
    return str(resolution.get("type", "")).upper() in ("STORE_CREDIT", "GIFT_CARD")


def credit_slot(resolution: Mapping[str, Any]) -> str:
    """A resolution's place in the ledger key: its own id when Order Protection sends one, else its kind.
    Never its position in a list (a later event may list it elsewhere)."""
    own = str(resolution.get("id") or "").strip()
    if own:
        return "id-" + re.sub(r"[^A-Za-z0-9_-]", "_", own)[:64]
    return "store_credit"  # STORE_CREDIT and GIFT_CARD are one resolution, named two ways


def resolution_amount(resolution: Mapping[str, Any]) -> Decimal | None:
    return _amount_or_none((resolution.get("details") or {}).get("total_refund_amount"))


def new_row(info: StoreInfo, *, pk: str, sk: str, kind: str, amount: Any, currency: str, **fields: Any) -> dict:
    """A ledger row's permanent fields (no TTL: the ledger is kept for good). Amounts are quantized when they can be;
    one that cannot (too precise) is kept as sent, and the credit flow holds it with the reason."""
    currency = (currency or info.profile.get("currency") or "USD").upper()
    try:
        amount = parse_amount(amount, currency)
    except MoneyError:
        amount = Decimal(str(amount)) if _is_number(amount) else Decimal(0)
    row: dict[str, Any] = {
        "PK": pk,
        "SK": sk,
        "ledger_id": ledger_id(pk, sk),
        "slot": sk.removeprefix("LEDGER#").split("#")[0],
        "store_id": info.store_id,
        "kind": kind,
        "amount": amount,
        "currency": currency,
        "provider": info.profile.get("credit_provider", "rise"),
        "shop_domain": info.profile.get("shop_domain"),
        **{key: value for key, value in fields.items() if value not in (None, "")},
    }
    if row.get("customer_email"):
        row["GSI1PK"] = customer_pk(info.store_id, customer_key(info.customer_hash_key, row["customer_email"]))
        row["GSI1SK"] = f"CREDIT#{now_iso()}#{row['ledger_id']}"
    return row


def _credit(row: Mapping[str, Any], info: StoreInfo) -> Credit:
    return Credit(
        ledger_id=row["ledger_id"],
        kind=row["kind"],
        amount=parse_amount(row["amount"], row["currency"]),
        currency=row["currency"],
        customer_email=row.get("customer_email") or "",
        customer_name=row.get("customer_name") or "",
        customer_id=row.get("customer_id"),
        claim_id=row.get("claim_id"),
        order_id=row.get("order_id"),
        order_number=row.get("order_number"),
        reason=row.get("reason"),
        store_name=info.profile.get("name", ""),
        shop_domain=info.profile.get("shop_domain", ""),
        operation=row.get("operation"),
        card_id=row.get("card_id"),
        return_id=row.get("return_id"),
        onto_card_id=row.get("onto_card_id"),
        request=row.get("request"),
        created_at=row.get("created_at"),
    )


def _amount_or_none(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value not in (None, "") and _is_number(value) else None


def _is_number(value: Any) -> bool:
    try:
        return Decimal(str(value)).is_finite()
    except ArithmeticError:
        return False


def _last_step(row: Mapping[str, Any], outcome: str) -> str | None:
    return next((step["at"] for step in reversed(row.get("history") or []) if step.get("outcome") == outcome), None)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
