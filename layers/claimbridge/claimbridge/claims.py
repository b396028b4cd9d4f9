"""The claims flow: every Order Protection event recorded, one Richpanel ticket per claim, snoozed on approval, and
one ledger row per store-credit resolution.

A claim is a state machine: an event moves its state (and its resolutions) only when it is newer than the event that
set them, by the event's own time (parsed) and, for equal times, by the state's rank; a stale event is recorded on the
timeline and changes nothing. What the claim's *current* state asks for is then done, each step idempotent: credit rows
created and enqueued, the ticket opened under a deterministic id (so an uncertain create is settled by reading it
back, never by opening a second), the ticket snoozed. Duplicate, re-sent and out-of-order events therefore converge.

Richpanel is the brand's read-mostly window (seeds/004): a ticket carries the customer, the order, the claim and a link
back to the dashboard; no message body is ever posted to it. Item keys live in ``claimbridge.store``.
"""

from __future__ import annotations

import contextlib
import html
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from claimbridge.clients.http import AuthError, BadRequestError, CallRecord, IntegrationError, NotFoundError
from claimbridge.clients.order_protection import Order, OrderProtectionClient
from claimbridge.clients.richpanel import RichpanelClient
from claimbridge.credits import credit_slot, is_store_credit, new_row
from claimbridge.crypto import customer_key
from claimbridge.directory import Integration, StoreDirectory, StoreInfo
from claimbridge.ledger import Ledger, LostRaceError, Outcome, State
from claimbridge.models.credits import CreditJob
from claimbridge.models.webhooks import (
    CLAIM_TYPES,
    ClaimCreated,
    ClaimResolution,
    Customer,
    Envelope,
    MessageCreated,
    OrderSummary,
    ProtectionChanged,
)
from claimbridge.observability import logger, metrics
from claimbridge.store import ConditionFailedError, Store, claim_pk, customer_pk, due_shard, now_iso, order_pk

SNOOZE_STATES = frozenset({"APPROVED", "RESOLVED"})
# For two events of the same time, the later stage of a claim's life wins.
STATE_RANK = {"NEW": 0, "OPEN": 1, "DENIED": 2, "APPROVED": 3, "RESOLVED": 4}
PROTECTION_RANK = {"protection.added": 1, "protection.removed": 2}
SMS_CHANNEL = "twilio-sms"  # Richpanel's SMS channel (seeds/004's channel list)
CLAIM_DUE_S = 600  # a claim whose event's work is not done this long after is re-driven by the sweeper
RECONCILE_TOPIC = "claim.reconcile"  # an internal job: never accepted from a webhook
TICKET_SKIPPED = "TICKET_SKIPPED"
TICKET_NAMESPACE = uuid.UUID("5d0c6c1e-52f1-4f0b-8d0e-7a1b3c9e2f40")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EventJob:
    """One webhook event as the queue carries it: routing from the message attributes, the envelope as sent, and
    when the receiver enqueued it (the event's time when its envelope has none)."""

    store_id: str
    event_id: str
    topic: str
    raw: str
    sent_at_us: int | None = None
    # Back at a partner account's pacer slot it reserved when it was deferred: its earlier pass did everything that
    # comes before that call (the event recorded, its credit rows made and their jobs sent).
    resumed: bool = False


class InvalidEventError(Exception):
    """The event's body does not carry what its topic needs: recorded, never retried."""


RichpanelFactory = Callable[[str, Callable[[CallRecord], None]], RichpanelClient]
OrderProtectionFactory = Callable[[str, Callable[[CallRecord], None]], OrderProtectionClient]
CreditEnqueuer = Callable[[list[CreditJob]], None]


def event_time_us(value: Any) -> int | None:
    """An ISO 8601 time (``Z``, offsets, fractions) as microseconds since the epoch; None when absent or malformed."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - EPOCH) // timedelta(microseconds=1)


def _iso_us(at_us: int) -> str:
    return (EPOCH + timedelta(microseconds=at_us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def ticket_id_for(store_id: str, claim_id: str) -> str:
    """The claim's ticket id, the same on every attempt: a create that may have happened is read back by it."""
    return str(uuid.uuid5(TICKET_NAMESPACE, f"{store_id}/{claim_id}"))


class ClaimsService:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        richpanel: RichpanelFactory,
        order_protection: OrderProtectionFactory,
        dashboard_claim_url_template: str,
        enqueue_credits: CreditEnqueuer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ledger = Ledger(store, clock=clock)
        self._directory = directory
        self._richpanel = richpanel
        self._order_protection = order_protection
        self._dashboard = dashboard_claim_url_template
        self._enqueue_credits = enqueue_credits
        self._clock = clock

    # -- entry point ---------------------------------------------------------------------------------------------

    def handle(self, job: EventJob) -> None:
        info = self._directory.store(job.store_id, with_integration="richpanel")  # one read: most events make a call
        if info is None:
            logger.warning("event for a store that no longer exists", store_id=job.store_id, event_id=job.event_id)
            self._store.mark_event_done(job.store_id, job.event_id)
            return
        try:
            envelope = Envelope.model_validate_json(job.raw)
            at = event_time_us(envelope.created_at) or job.sent_at_us or int(self._clock() * 1_000_000)
            handler = {
                "claim.created": self._on_claim_created,
                "claim.approved": self._on_resolution,
                "claim.resolved": self._on_resolution,
                "claim.updated": self._on_resolution,
                "claim.denied": self._on_resolution,
                "message.created": self._on_message,
                "protection.added": self._on_protection,
                "protection.removed": self._on_protection,
                RECONCILE_TOPIC: self._on_reconcile,
            }[job.topic]
            if job.resumed and (claim := self._resumed_claim(info, envelope)) is not None:
                # Done once, not once per deferral: no second timeline entry, no second credit job (which would
                # reserve a pacer slot of its own). The claim as it is now decides the rest.
                self._effects(info, claim, credits_done=True)
            else:
                handler(info, job, envelope, at)
        except (ValidationError, InvalidEventError) as error:
            logger.error(
                "event refused: its body does not fit its topic",
                store_id=job.store_id,
                event_id=job.event_id,
                topic=job.topic,
                problem=_first_problem(error),
            )
            metrics.add_metric(name="EventRefused", unit="Count", value=1)
        self._store.mark_event_done(job.store_id, job.event_id)

    def _resumed_claim(self, info: StoreInfo, envelope: Envelope) -> dict[str, Any] | None:
        claim_id = envelope.body.get("claim_id")
        return self._store.get_claim(info.store_id, claim_id) if isinstance(claim_id, str) and claim_id else None

    # -- topics --------------------------------------------------------------------------------------------------

    def _on_claim_created(self, info: StoreInfo, job: EventJob, envelope: Envelope, at: int) -> None:
        event = ClaimCreated.model_validate(envelope.body)
        customer, order = event.customer, event.order
        if customer is None or not customer.email or order is None:
            fetched = self._fetch_order(info, event.claim_id, event.order_id)
            if fetched is not None:
                customer = _merge_customer(customer, fetched.customer)
                order = order or fetched
        facts = {
            "order_id": event.order_id,
            "source_order_id": event.source_order_id,
            "order_number": event.order_number or (order.number if order else None),
            "claim_type": event.claim_type,
            "description": event.claim_description,
            "items": [item.model_dump(mode="json") for item in event.items],
            "order_total": order.total if order else None,
            "order_currency": order.currency if order else None,
            "order_items": [item.model_dump(mode="json") for item in order.items] if order else None,
            "created_at": event.created_at or envelope.created_at or now_iso(),
        }
        # Its state is the claim's first: it never moves a state a later event (an approval handled first) set.
        claim = self._record(info, job, event.claim_id, facts, customer, state=event.claim_state, at=at, initial=True)
        if order is not None:
            self._record_order(info, event.order_id, order, customer)
        if event.source_order_id and event.order_id:
            self._store.note_source_order(info.store_id, event.source_order_id, event.order_id)
        self._effects(info, claim)

    def _on_resolution(self, info: StoreInfo, job: EventJob, envelope: Envelope, at: int) -> None:
        event = ClaimResolution.model_validate(envelope.body)
        state = (
            event.claim_state
            or {"claim.approved": "APPROVED", "claim.resolved": "RESOLVED", "claim.denied": "DENIED"}.get(job.topic, "")
        ).upper()
        facts = {
            "order_id": event.order_id,
            "source_order_id": event.source_order_id,
            "order_number": event.order_number,
        }
        ordered = {"resolutions": [r.model_dump(mode="json") for r in event.resolutions]} if event.resolutions else {}
        claim = self._record(info, job, event.claim_id, facts, event.customer, state=state, at=at, ordered=ordered)
        approved = claim.get("claim_state") in SNOOZE_STATES
        if approved:  # before anything else can fail: an Order Protection outage never delays money
            self._ensure_credits(info, claim)
        if approved and not claim.get("customer_email"):
            fetched = self._fetch_order(info, event.claim_id, claim.get("order_id"))
            if fetched is not None:
                claim = self._record(info, job, event.claim_id, {"order_number": fetched.number}, fetched.customer)
                self._record_order(info, claim.get("order_id") or "", fetched, fetched.customer)
        self._effects(info, claim, credits_done=approved)

    def _on_reconcile(self, info: StoreInfo, job: EventJob, envelope: Envelope, at: int) -> None:
        """Ours, not Order Protection's: do again what the claim's current state asks for (a repair, the sweeper)."""
        claim = self._store.get_claim(info.store_id, str(envelope.body.get("claim_id", "")))
        if claim is not None:
            self._effects(info, claim)

    def _on_message(self, info: StoreInfo, job: EventJob, envelope: Envelope, at: int) -> None:
        # Recorded on the timeline only: on Richpanel's email channel a posted message e-mails the customer (seeds/004).
        event = MessageCreated.model_validate(envelope.body)
        self._timeline(info.store_id, event.claim_id, note="message.created (kept here; not forwarded to Richpanel)")

    def _on_protection(self, info: StoreInfo, job: EventJob, envelope: Envelope, at: int) -> None:
        event = ProtectionChanged.model_validate(envelope.body)
        state = "PROTECTED" if job.topic == "protection.added" else "UNPROTECTED"
        order = self._store.get(order_pk(info.store_id, event.order_id), "ORDER") or {}
        if state == "UNPROTECTED" and order.get("protection_state") == "CANCELLED":
            # the webhook that follows our cancel (claimbridge.protection): it confirms it, and changes nothing
            logger.info("protection.removed after our cancel: nothing to change", order_id=event.order_id)
            return
        applied = self._store.set_protection(
            info.store_id,
            event.order_id,
            state=state,
            changed_at=envelope.created_at or _iso_us(at),
            at_us=at,
            rank=PROTECTION_RANK[job.topic],
            amount=event.amount,
            currency=event.currency,
            source_order_id=event.source_order_id,
        )
        logger.info("protection state", store_id=info.store_id, order_id=event.order_id, state=state, applied=applied)

    # -- the claim's state, then what it asks for ---------------------------------------------------------------------

    def _record(
        self,
        info: StoreInfo,
        job: EventJob,
        claim_id: str,
        facts: dict[str, Any],
        customer: Customer | None,
        *,
        state: str = "",
        at: int = 0,
        ordered: dict[str, Any] | None = None,
        initial: bool = False,
    ) -> dict[str, Any]:
        """Record the event's facts; move the claim's state (and resolutions) only if the event is the newest."""
        values = {key: value for key, value in facts.items() if value not in (None, "", [])}
        # Due until what this event asks for is done (``_effects``): the sweeper re-drives a claim whose job died.
        values |= {
            "item_type": "claim",
            "due_shard": due_shard(f"{info.store_id}/{claim_id}"),
            "due_at": int(self._clock()) + CLAIM_DUE_S,
        }
        # A customer known only by phone is indexed by it, until an email (which wins) is known.
        phone = phone_number(customer.phone) if customer is not None else None
        by_phone: frozenset[str] = frozenset()
        if customer is not None and (customer.email or phone):
            identity = customer.email or phone_identity(phone or "")
            values.update(
                {
                    "customer_email": customer.email,
                    "customer_name": customer.name or None,
                    "customer_phone": phone or customer.phone,
                    "customer_id": customer.id,
                    "GSI1PK": customer_pk(info.store_id, customer_key(info.customer_hash_key, identity)),
                }
            )
            by_phone = frozenset() if customer.email else frozenset({"GSI1PK"})
        if not state:
            return self._store.upsert_claim(info.store_id, claim_id, values, keep=by_phone)
        if initial:
            first = {
                "claim_state": state,
                "state_at_us": at,
                "state_rank": STATE_RANK.get(state, 1),
                "state_event": f"{job.topic} {job.event_id}",
            }
            claim = self._store.upsert_claim(info.store_id, claim_id, values | first, keep=frozenset(first) | by_phone)
            self._timeline(info.store_id, claim_id, note=f"{job.topic}: {state}, now {claim.get('claim_state')}")
            return claim
        moved = values | (ordered or {}) | {"claim_state": state, "state_event": f"{job.topic} {job.event_id}"}
        kinds = ", ".join(r["type"] for r in (ordered or {}).get("resolutions", [])) or "no resolution"
        try:
            claim = self._store.upsert_claim(
                info.store_id, claim_id, moved, keep=by_phone, newer_than=(at, STATE_RANK.get(state, 1))
            )
        except ConditionFailedError:
            claim = self._store.upsert_claim(info.store_id, claim_id, values, keep=by_phone)
            self._timeline(
                info.store_id,
                claim_id,
                note=f"{job.topic} ({state}, {kinds}) of {_iso_us(at)} is older than the claim's state "
                f"{claim.get('claim_state')} of {_iso_us(int(claim.get('state_at_us', 0)))}: recorded, changed nothing",
            )
            metrics.add_metric(name="StaleEvent", unit="Count", value=1)
            return claim
        self._timeline(info.store_id, claim_id, note=f"{job.topic}: {state} ({kinds})")
        return claim

    def _effects(self, info: StoreInfo, claim: dict[str, Any], *, credits_done: bool = False) -> None:
        """What the claim's current state asks for, each step idempotent. Credits first: a Richpanel outage never
        delays money."""
        approved = claim.get("claim_state") in SNOOZE_STATES
        if approved and not credits_done:
            self._ensure_credits(info, claim)
        ticket_id = self._ensure_ticket(info, claim)
        # Snoozed once for each event that moved the claim into APPROVED or RESOLVED (a duplicate moves nothing).
        if ticket_id is not None and approved and claim.get("ticket_snoozed_for") != claim.get("state_event"):
            self._snooze(info, claim, ticket_id)
        self._store.settle_claim(info.store_id, claim["claim_id"])

    def _ensure_credits(self, info: StoreInfo, claim: dict[str, Any]) -> None:
        """One ledger row per store-credit resolution, keyed by the claim and the resolution (never its position);
        every row still QUEUED is enqueued (again): the ledger makes a second job harmless."""
        claim_id = claim["claim_id"]
        jobs: list[CreditJob] = []
        for resolution in claim.get("resolutions") or []:
            if not is_store_credit(resolution):
                continue
            details = resolution.get("details") or {}
            pk, sk = claim_pk(info.store_id, claim_id), f"LEDGER#{credit_slot(resolution)}#claim_credit"
            asked = new_row(
                info,
                pk=pk,
                sk=sk,
                kind="claim_credit",
                amount=details.get("total_refund_amount") or 0,
                currency=details.get("currency") or "",
                claim_id=claim_id,
                order_id=claim.get("order_id"),
                order_number=claim.get("order_number"),
                customer_email=claim.get("customer_email"),
                customer_name=claim.get("customer_name"),
                customer_id=claim.get("customer_id"),
            )
            row, created = self._ledger.create(asked)
            if created:
                self._timeline(
                    info.store_id,
                    claim_id,
                    note=f"store credit {row['amount']} {row['currency']} queued as {row['ledger_id']}",
                )
            elif Decimal(str(row["amount"])) != asked["amount"]:
                self._ledger.note_conflict(
                    row, f"a later event asked for {asked['amount']} {asked['currency']}; the row keeps {row['amount']}"
                )
            if (
                row["state"] == State.HELD
                and row.get("hold_code") in ("customer_unknown", "no_email")
                and claim.get("customer_email")
            ):
                with contextlib.suppress(LostRaceError):  # the customer came after the deadline: go on now
                    row = self._ledger.move(
                        row, Outcome.REPAIR, reason="re-driven: the claim's customer's email arrived"
                    )
            if row["state"] == State.QUEUED:
                jobs.append(CreditJob(store_id=info.store_id, pk=pk, sk=sk))
        if jobs and self._enqueue_credits is not None:
            self._enqueue_credits(jobs)

    def _record_order(self, info: StoreInfo, order_id: str, order: OrderSummary, customer: Customer | None) -> None:
        if not order_id:
            return
        values: dict[str, Any] = {
            "order_number": order.number,
            "currency": order.currency,
            "total": order.total,
            "items": [item.model_dump(mode="json") for item in order.items],
            "ordered_at": order.created_at,
        }
        if customer is not None and customer.email:
            values["GSI1PK"] = customer_pk(info.store_id, customer_key(info.customer_hash_key, customer.email))
        self._store.upsert_order(info.store_id, order_id, {k: v for k, v in values.items() if v not in (None, [])})

    def _timeline(self, store_id: str, claim_id: str, *, note: str, call: CallRecord | None = None) -> None:
        self._store.add_timeline(store_id, claim_id, note=note, call=call)

    def _observer(self, store_id: str, claim_id: str) -> Callable[[CallRecord], None]:
        return lambda call: self._timeline(store_id, claim_id, note=f"{call.partner} {call.operation}", call=call)

    # -- Order Protection ----------------------------------------------------------------------------------------

    def _fetch_order(self, info: StoreInfo, claim_id: str, order_id: str | None) -> Order | None:
        """The claim's customer and order from Order Protection when the webhook lacks them: its confirmed claims list
        first (``authorEmail``, ``sourceOrderNumber``), the order endpoint (our choice, not public) only when that
        finds no email."""
        op = self._directory.integration(info.store_id, "order_protection")
        if op is None or not op.valid:
            self._timeline(
                info.store_id,
                claim_id,
                note="customer or order missing and the Order Protection API is "
                "not configured or invalid: nothing to fetch them from",
            )
            return None
        client = self._order_protection(op.secrets["api_token"], self._observer(info.store_id, claim_id))
        try:
            node = client.find_claim(claim_id)
            if node is not None and node.author_email:
                self._timeline(info.store_id, claim_id, note="customer found in Order Protection's claims list")
                return Order.model_validate(
                    {"number": node.source_order_number, "customer": {"email": node.author_email}}
                )
            if not order_id:
                return None
            return client.get_order(order_id)
        except AuthError:
            self._directory.mark_invalid(info.store_id, "order_protection", "Order Protection refused the API token")
            return None
        except (NotFoundError, BadRequestError) as error:
            self._timeline(info.store_id, claim_id, note=f"order {order_id}: Order Protection answered {error.status}")
            return None

    # -- Richpanel -----------------------------------------------------------------------------------------------

    def _richpanel_for(self, info: StoreInfo, claim_id: str) -> tuple[Integration, RichpanelClient] | None:
        integration = self._directory.integration_of(info, "richpanel")
        if integration is None or not integration.valid:
            why = (
                "not configured for this store"
                if integration is None
                else f"integration invalid ({integration.reason})"
            )
            self._timeline(info.store_id, claim_id, note=f"richpanel {why}: skipped, no call made")
            metrics.add_metric(name="RichpanelJobSkipped", unit="Count", value=1)
            # Listed by store, so saving Richpanel (or its key becoming valid again) re-drives this claim.
            self._store.upsert_claim(
                info.store_id,
                claim_id,
                {"store_state": f"{info.store_id}#{TICKET_SKIPPED}", "state_since": f"{now_iso()}#{claim_id}"},
            )
            return None
        return integration, self._richpanel(integration.secrets["api_key"], self._observer(info.store_id, claim_id))

    def _ensure_ticket(self, info: StoreInfo, claim: dict[str, Any]) -> str | None:
        """The claim's one ticket, opened under its deterministic id unless the claim names it already. A create whose
        outcome is unknown is settled by reading that id back, never by a create under another id."""
        claim_id = claim["claim_id"]
        if claim.get("ticket_id"):
            return str(claim["ticket_id"])
        if not claim.get("customer_email") and not claim.get("customer_phone"):
            self._timeline(info.store_id, claim_id, note="no customer email or phone known: no ticket opened")
            return None
        found = self._richpanel_for(info, claim_id)
        if found is None:
            return None
        integration, client = found
        wanted = ticket_id_for(info.store_id, claim_id)
        try:
            if claim.get("ticket_uncertain_at") and client.ticket_exists(wanted):
                ticket_id = wanted
            else:
                ticket_id = client.create_ticket(
                    ticket_for(claim, integration.settings, self._dashboard.format(claim_id=claim_id)),
                    ticket_id=wanted,
                )
        except AuthError:
            self._directory.mark_invalid(info.store_id, "richpanel", "Richpanel refused the API key (401/403)")
            metrics.add_metric(name="RichpanelAuthFailed", unit="Count", value=1)
            return None
        except BadRequestError as error:
            if not client.ticket_exists(wanted):
                self._timeline(info.store_id, claim_id, note=f"Richpanel refused the ticket: {error.body[:200]}")
                return None
            ticket_id = wanted
        except IntegrationError as error:
            if error.may_have_applied:  # the next attempt reads the id back before creating
                self._store.upsert_claim(info.store_id, claim_id, {"ticket_uncertain_at": now_iso()})
            raise
        if ticket_id != wanted:  # CONTRACTS.md: Richpanel takes our id; if it ever does not, a retry could open two
            logger.error(
                "richpanel did not keep the ticket id we chose", claim_id=claim_id, wanted=wanted, got=ticket_id
            )
            metrics.add_metric(name="RichpanelTicketIdNotKept", unit="Count", value=1)
        try:
            self._store.set_ticket(info.store_id, claim_id, ticket_id=ticket_id)
        except ConditionFailedError:
            recorded = (self._store.get_claim(info.store_id, claim_id) or {}).get("ticket_id")
            logger.error("claim names another ticket", claim_id=claim_id, recorded=recorded, opened=ticket_id)
            return str(recorded)
        metrics.add_metric(name="TicketOpened", unit="Count", value=1)
        logger.info("ticket opened", store_id=info.store_id, claim_id=claim_id, ticket_id=ticket_id)
        return ticket_id

    def _snooze(self, info: StoreInfo, claim: dict[str, Any], ticket_id: str) -> None:
        claim_id = claim["claim_id"]
        found = self._richpanel_for(info, claim_id)
        if found is None:
            return
        _, client = found
        try:
            client.snooze_ticket(ticket_id)
        except AuthError:
            self._directory.mark_invalid(info.store_id, "richpanel", "Richpanel refused the API key (401/403)")
            metrics.add_metric(name="RichpanelAuthFailed", unit="Count", value=1)
            return
        except (BadRequestError, NotFoundError) as error:
            self._timeline(info.store_id, claim_id, note=f"Richpanel refused the snooze: HTTP {error.status}")
            return
        self._store.snoozed(info.store_id, claim_id, for_event=str(claim.get("state_event")))
        metrics.add_metric(name="TicketSnoozed", unit="Count", value=1)


def ticket_for(claim: dict[str, Any], settings: dict[str, Any], claim_url: str) -> dict[str, Any]:
    """The Richpanel ticket of a claim (shared/CONTRACTS.md "Richpanel"): everything escaped, the link clickable."""
    claim_id = claim["claim_id"]
    kind = CLAIM_TYPES.get(str(claim.get("claim_type", "")).upper(), str(claim.get("claim_type", "Claim")))
    order_number = str(claim.get("order_number") or claim.get("order_id") or "unknown").lstrip("#")
    lines = [
        f"<p><b>Order Protection claim #{_e(claim_id)}</b>: {_e(kind)}, "
        f"status {_e(claim.get('claim_state', 'NEW'))}</p>",
        f"<p>Customer: {_e(claim.get('customer_name') or '')}"
        + (f" &lt;{_e(claim['customer_email'])}&gt;" if claim.get("customer_email") else "")
        + (f", {_e(claim['customer_phone'])}" if claim.get("customer_phone") else "")
        + "</p>",
        f"<p>Order #{_e(order_number)}</p>",
    ]
    items = claim.get("items") or []
    if items:
        claimed = "".join(
            f"<li>{_e(i.get('quantity', 1))} x {_e(i.get('item_name') or i.get('sku') or '')}</li>" for i in items
        )
        lines.append(f"<p>Claimed items:</p><ul>{claimed}</ul>")
    order_items = claim.get("order_items") or []
    if order_items:
        priced = "".join(
            f"<li>{_e(i.get('quantity', 1))} x {_e(i.get('name', ''))}"
            + (f" at {_e(_money(i['price']))}" if i.get("price") is not None else "")
            + "</li>"
            for i in order_items
        )
        lines.append(f"<p>Order items:</p><ul>{priced}</ul>")
    order_total = claim.get("order_total")
    if order_total is not None:
        lines.append(f"<p>Order total: {_e(_money(order_total))} {_e(claim.get('order_currency') or '')}</p>")
    if claim.get("description"):
        lines.append(f"<p>Customer's description: {_e(claim['description'])}</p>")
    lines.append(
        f'<p><a href="{_e(claim_url)}">View the full claim conversation in Order Protection</a><br>{_e(claim_url)}</p>'
    )
    lines.append("<p>Reply to the customer from Order Protection, not from here; use Add Note for internal notes.</p>")
    sender: dict[str, Any] = {"address": claim["customer_email"]} if claim.get("customer_email") else {}
    if claim.get("customer_name"):
        sender["name"] = claim["customer_name"]
    if claim.get("customer_phone"):
        sender["number"] = claim["customer_phone"]
    ticket: dict[str, Any] = {
        "status": "OPEN",
        "subject": f"Order Protection claim #{claim_id}: {kind} (order #{order_number})",
        "comment": {"body": "".join(lines), "sender_type": "customer"},
        # a customer known only by phone is reached on the SMS channel, the phone as the contact
        "via": {
            "channel": (settings.get("default_channel") or "email") if claim.get("customer_email") else SMS_CHANNEL,
            "source": {"from": sender},
        },
        "tags": ["order-protection", f"claim-{str(claim.get('claim_type', 'unknown')).lower()}"],
    }
    if settings.get("default_team_id"):
        ticket["assignee_team_id"] = settings["default_team_id"]
    return ticket


def phone_number(value: str | None) -> str | None:
    """A phone number as one key: ``+`` and digits only (spaces, dashes, dots and brackets dropped); None when it is
    not one (6 to 15 digits)."""
    if not value:
        return None
    digits = re.sub(r"[\s().-]", "", value)
    return digits if re.fullmatch(r"\+?[0-9]{6,15}", digits) else None


def phone_identity(phone: str) -> str:
    """What a phone-only customer is indexed by (in place of an email): the widget asks by it."""
    return f"phone:{phone.lstrip('+')}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _money(value: Any) -> str:
    return f"{Decimal(str(value)):.2f}"


def _merge_customer(given: Customer | None, fetched: Customer | None) -> Customer | None:
    if given is None:
        return fetched
    if fetched is None:
        return given
    return Customer.model_validate({**fetched.model_dump(exclude_none=True), **given.model_dump(exclude_none=True)})


def _first_problem(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(error)
