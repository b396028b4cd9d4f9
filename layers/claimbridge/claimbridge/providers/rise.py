"""Rise.ai as a credit provider: top up the customer's loyalty card when there is one, else issue a gift card.

Rise has no idempotency key and no read that names a credit (shared/CONTRACTS.md "Rise.ai"): a card's balance moves
with the customer's spending and other credits, and an issued card need not show up under the customer. So ``find``
never settles an unknown outcome; it records what the card looks like now, for the operator who will.
"""

from __future__ import annotations

from typing import Any

from claimbridge.clients.http import CallObserver, IntegrationError
from claimbridge.clients.rise import GiftCard, RiseClient
from claimbridge.money import wire_text
from claimbridge.providers import Applied, Credit, Evidence, Plan, order_number
from claimbridge.store import now_iso


class RiseProvider:
    name = "rise"

    def __init__(self, client: RiseClient) -> None:
        self._client = client

    @classmethod
    def factory(cls, client_for: Any) -> Any:
        """``client_for(token, observer)`` builds the Rise client; returns a ProviderFactory."""

        def build(secrets: dict[str, Any], observer: CallObserver) -> RiseProvider:
            return cls(client_for(secrets["credit_api_token"], observer))

        return build

    def plan(self, credit: Credit) -> Plan:
        if credit.onto_card_id:  # a return's bonus: onto the card its credit landed on
            return Plan("top_up", {"operation": "top_up", "card_id": credit.onto_card_id})
        card = self._card(credit)
        if card is None:
            return Plan("issue", {"operation": "issue"})
        return Plan("top_up", {"operation": "top_up", "card_id": card.id, "balance_before": card.balance})

    def apply(self, credit: Credit) -> Applied:
        if credit.operation == "top_up" and credit.card_id:
            card = self._client.top_up(
                card_id=credit.card_id,
                shop_url=credit.shop_domain,
                amount=credit.amount,
                order_id=credit.order_id or credit.order_number or "",
            )
            notified = "none: Rise's top-up call carries no e-mail (the merchant's Rise flows may send one)"
        else:
            card = self._client.issue_gift_card(
                shop_url=credit.shop_domain,
                balance=credit.amount,
                note=_note(credit),
                recipient=credit.customer_name or credit.customer_email,
                recipient_email=credit.customer_email,
                subject=_subject(credit),
                body=_email_body(credit),
            )
            notified = "email: Rise e-mailed the card to the customer (email_details of the issue call)"
        return Applied(
            card_id=card.id or "", code=card.code, balance=card.balance, expires_on=card.expires_on, notified=notified
        )

    def find(self, credit: Credit) -> Evidence:
        seen: dict[str, Any] = {"looked_at": now_iso(), "why_not_settled": "Rise has no read that names a credit"}
        try:
            card = self._card(credit)
        except IntegrationError as error:
            seen["card_lookup_failed"] = str(error)
            return Evidence(seen=seen)
        if card is not None:
            seen |= {"card_id": card.id, "balance_after": card.balance}
        elif credit.customer_id:
            seen["card"] = "the customer has no loyalty card in Rise"
        else:
            seen["card"] = "no Shopify customer id: the customer's card cannot be looked up"
        return Evidence(seen=seen)

    def _card(self, credit: Credit) -> GiftCard | None:
        if not credit.customer_id:
            return None
        return self._client.customer_card(shop_url=credit.shop_domain, customer_id=credit.customer_id)


def _subject(credit: Credit) -> str:
    if credit.kind in ("bonus_credit", "return_bonus"):
        return f"Bonus Store Credit for Order #{order_number(credit)}"
    if credit.kind == "return_credit":
        return f"Store Credit for Your Return of Order #{order_number(credit)}"
    return f"Gift Card for Claim #{credit.claim_id}"


def _note(credit: Credit) -> str:
    # The ledger id names this credit on Rise's side, for whoever reconciles by hand in Rise's dashboard.
    if credit.kind == "bonus_credit":
        what = f"Bonus store credit ({credit.reason}) for order #{order_number(credit)}"
    elif credit.kind in ("return_credit", "return_bonus"):
        part = "Bonus for" if credit.kind == "return_bonus" else "Store credit for"
        what = f"{part} PostCo return #{credit.return_id} of order #{order_number(credit)}"
    else:
        what = f"Order Protection claim #{credit.claim_id} for order #{credit.order_number or credit.order_id}"
    return f"{what} [{credit.ledger_id}]"


def _email_body(credit: Credit) -> str:
    store = credit.store_name or "our store"
    what = {
        "bonus_credit": "as bonus store credit",
        "return_bonus": "as bonus store credit for your return",
        "return_credit": "as store credit for your return",
    }.get(credit.kind, f"to resolve your claim #{credit.claim_id}")
    return (
        f"Hi {credit.customer_name or 'there'}, you have received {wire_text(credit.amount, credit.currency)} "
        f"{credit.currency} {what} (order #{credit.order_number or credit.order_id}). Use your gift card code at "
        f"checkout on {store}: enter it in the discount or gift card field. Your balance carries over until it is "
        "used up."
    )
