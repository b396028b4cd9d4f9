"""Rivo as a credit provider: a claim's (or a bonus's) store credit becomes one points event with ``credits_amount``
on the customer's Rivo balance; a Rivo action asked through the action API (claimbridge.loyalty) is one points event,
redemption or points redemption, made once through the same ledger.

Rivo has no idempotency key, but a points event keeps our ``internal_note``: the ledger id goes there, so after a lost
answer ``find`` reads the customer's points events back and settles the row on the one that names it, or proves it
absent when every event was read and none does (shared/CONTRACTS.md "Rivo": never re-sent before that look-up).
A redemption keeps no note: after a lost answer the customer's redemptions since the row was made are read; none
that could be it proves it absent, and any that could be it are the evidence an operator decides on (never guessed).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from claimbridge.clients.http import CallObserver, IntegrationResponseError
from claimbridge.clients.rivo import PointsEvent, Redemption, RivoClient
from claimbridge.crypto import mask_secret
from claimbridge.models.rivo import PageIn, PointsEventIn, RedeemPointsIn, RedemptionIn
from claimbridge.providers import Applied, Credit, Evidence, Plan, order_number
from claimbridge.store import now_iso

CLOCK_SKEW = timedelta(minutes=5)  # Rivo's clock and ours may differ: a redemption this much older may still be ours
REDEMPTION_PAGES = 5  # the customer's redemptions read back after a lost answer (100 a page)
NOTIFIED = "email: Rivo's points event (skip_email false), per the merchant's Rivo notifications"


class RivoProvider:
    name = "rivo"

    def __init__(self, client: RivoClient) -> None:
        self._client = client

    @classmethod
    def factory(cls, client_for: Any) -> Any:
        """``client_for(api_key, observer)`` builds the Rivo client; returns a ProviderFactory."""

        def build(secrets: dict[str, Any], observer: CallObserver) -> RivoProvider:
            return cls(client_for(secrets["api_key"], observer))

        return build

    def plan(self, credit: Credit) -> Plan:
        # Nothing to look up: Rivo credits land on the customer's balance, whatever they hold.
        operation = credit.kind.removeprefix("rivo_") if credit.request is not None else "points_event"
        return Plan(operation, {"operation": operation})

    def apply(self, credit: Credit) -> Applied:
        if credit.kind == "rivo_redemption":
            return _redeemed(self._client.create_redemption(RedemptionIn.model_validate(credit.request)))
        if credit.kind == "rivo_redeem_points":
            return _redeemed(self._client.redeem_points(RedeemPointsIn.model_validate(credit.request)))
        if credit.kind == "rivo_points_event":
            event = PointsEventIn.model_validate(credit.request)
        else:
            event = PointsEventIn(
                customer_email=credit.customer_email,
                credits_amount=credit.amount,
                source="order_protection",
                external_note=_external_note(credit),
                custom_action_name="Order Protection store credit",
            )
        return _applied(self._client.create_points_event(event, internal_note=credit.ledger_id))

    def find(self, credit: Credit) -> Evidence:
        if credit.kind in ("rivo_redemption", "rivo_redeem_points"):
            return self._find_redemption(credit)
        seen: dict[str, Any] = {"looked_at": now_iso(), "looked_for": f"a points event noted {credit.ledger_id}"}
        try:  # a look-up that fails (5xx, timeout, 429) raises: the row is looked up again later, never sent blind
            event = self._client.find_points_event(credit.customer_email, credit.ledger_id)
        except IntegrationResponseError as error:  # an answer we cannot read, or too many events to read them all
            seen["lookup_inconclusive"] = str(error)
            return Evidence(seen=seen)
        if event is not None:
            return Evidence(applied=_applied(event), seen=seen | {"points_event_id": str(event.id)})
        return Evidence(conclusive=True, seen=seen | {"found": "none of the customer's points events names it"})

    def _find_redemption(self, credit: Credit) -> Evidence:
        """The customer's redemptions that could be this one (same reward and amounts, made since the row, less the
        clocks' skew). None proves it absent; any are candidates for an operator: a redemption names no request."""
        wanted = dict(credit.request or {})
        since = (_when(credit.created_at or "") or datetime.now(UTC)) - CLOCK_SKEW
        seen: dict[str, Any] = {
            "looked_at": now_iso(),
            "looked_for": f"a redemption of {wanted} made since {since.isoformat()}",
        }
        candidates: list[dict[str, Any]] = []
        cursor: int | None = None
        for _ in range(REDEMPTION_PAGES):
            try:
                page = self._client.list_redemptions(
                    PageIn(since_id=cursor, limit=100), customer_email=credit.customer_email
                )
            except IntegrationResponseError as error:
                return Evidence(seen=seen | {"lookup_inconclusive": str(error)})
            candidates += [_public(r) for r in page.items if _could_be(r, wanted, since)]
            cursor = page.next_since_id
            if cursor is None:
                break
        else:
            more = "more redemptions than were read"
            return Evidence(seen=seen | {"lookup_inconclusive": more, "candidates": candidates})
        if not candidates:
            return Evidence(conclusive=True, seen=seen | {"found": "no redemption of the customer's could be it"})
        return Evidence(seen=seen | {"candidates": candidates})


def _applied(event: PointsEvent) -> Applied:
    return Applied(
        card_id=str(event.id or ""),
        code=None,
        balance=None,
        expires_on=None,
        notified=NOTIFIED,
        record=event.model_dump(mode="json"),
    )


def _redeemed(redemption: Redemption) -> Applied:
    return Applied(
        card_id=str(redemption.id or ""),
        code=redemption.code,  # bearer money: sealed on the row, shown masked
        balance=None,
        expires_on=redemption.expires_at,
        notified="none: Rivo shows the reward in the customer's account",
        record=_public(redemption),
    )


def _public(redemption: Redemption) -> dict[str, Any]:
    shown = redemption.model_dump(mode="json", exclude={"reward"})
    shown["reward_id"] = (redemption.reward or {}).get("id")
    shown["code"] = mask_secret(redemption.code) if redemption.code else None
    return shown


def _could_be(redemption: Redemption, wanted: dict[str, Any], since: datetime) -> bool:
    """Whether a redemption could be the one asked for: only a field that is there and differs rules it out (Rivo
    may charge a reward's own cost when none was sent, or name the reward only as a relationship)."""
    made = _when(redemption.applied_at or "")
    if made is not None and made < since:  # one whose date cannot be read stays a candidate
        return False
    reward = (redemption.reward or {}).get("id")
    if wanted.get("reward_id") is not None and reward is not None and str(reward) != str(wanted["reward_id"]):
        return False
    points = int(wanted.get("points_amount") or 0)
    return not (points and redemption.points_amount and points != redemption.points_amount)


def _when(iso: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _external_note(credit: Credit) -> str:
    if credit.kind == "claim_credit":
        return f"Store credit for your Order Protection claim #{credit.claim_id}"
    if credit.kind in ("return_credit", "return_bonus"):
        return f"Store credit for your return of order #{order_number(credit)}"
    return f"Bonus store credit for order #{credit.order_number}"
