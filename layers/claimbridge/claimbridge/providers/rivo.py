"""Rivo as a credit provider: a claim's (or a bonus's) store credit becomes one points event with ``credits_amount``
on the customer's Rivo balance.

Rivo has no idempotency key, but a points event keeps our ``internal_note``: the ledger id goes there, so after a lost
answer ``find`` reads the customer's points events back and settles the row on the one that names it, or proves it
absent when every event was read and none does (shared/CONTRACTS.md "Rivo": never re-sent before that look-up).
"""

from __future__ import annotations

from typing import Any

from claimbridge.clients.http import CallObserver, IntegrationResponseError
from claimbridge.clients.rivo import PointsEvent, RivoClient
from claimbridge.models.rivo import PointsEventIn
from claimbridge.providers import Applied, Credit, Evidence, Plan, order_number
from claimbridge.store import now_iso


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
        return Plan("points_event", {"operation": "points_event"})

    def apply(self, credit: Credit) -> Applied:
        event = self._client.create_points_event(
            PointsEventIn(
                customer_email=credit.customer_email,
                credits_amount=credit.amount,
                source="order_protection",
                external_note=_external_note(credit),
                custom_action_name="Order Protection store credit",
            ),
            internal_note=credit.ledger_id,
        )
        return _applied(event)

    def find(self, credit: Credit) -> Evidence:
        seen: dict[str, Any] = {"looked_at": now_iso(), "looked_for": f"a points event noted {credit.ledger_id}"}
        try:  # a look-up that fails (5xx, timeout, 429) raises: the row is looked up again later, never sent blind
            event = self._client.find_points_event(credit.customer_email, credit.ledger_id)
        except IntegrationResponseError as error:  # an answer we cannot read, or too many events to read them all
            seen["lookup_inconclusive"] = str(error)
            return Evidence(seen=seen)
        if event is not None:
            return Evidence(applied=_applied(event), seen=seen | {"points_event_id": str(event.id)})
        return Evidence(conclusive=True, seen=seen | {"found": "none of the customer's points events names it"})


def _applied(event: PointsEvent) -> Applied:
    return Applied(
        card_id=str(event.id or ""),
        code=None,
        balance=None,
        expires_on=None,
        notified="email: Rivo's points event (skip_email false), per the merchant's Rivo notifications",
    )


def _external_note(credit: Credit) -> str:
    if credit.kind == "claim_credit":
        return f"Store credit for your Order Protection claim #{credit.claim_id}"
    if credit.kind in ("return_credit", "return_bonus"):
        return f"Store credit for your return of order #{order_number(credit)}"
    return f"Bonus store credit for order #{credit.order_number}"
