"""Rise.ai Credit API v2: issue a gift card, read a customer's loyalty card, top it up (shared/CONTRACTS.md "Rise.ai").

No idempotency key exists: a retried issue can create a second card. The ledger (claimbridge.credits) prevents that.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests
from pydantic import AliasChoices, Field, model_validator

from claimbridge.clients.http import (
    AuthError,
    HttpClient,
    IntegrationResponseError,
    IntegrationStatusError,
    NotFoundError,
)
from claimbridge.models.webhooks import Lenient, Money
from claimbridge.money import wire_number


class StoreDomainNotFoundError(IntegrationStatusError):
    """Rise does not know the shop domain: permanent until the store's profile is corrected."""


class GiftCard(Lenient):
    id: str | None = Field(default=None, validation_alias=AliasChoices("id", "gift_card_id"))
    code: str | None = None
    balance: Money | None = Field(default=None, validation_alias=AliasChoices("balance", "amount"))
    expires_on: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, body: Any) -> Any:
        if isinstance(body, dict) and isinstance(body.get("gift_card"), dict):
            return body["gift_card"]
        if isinstance(body, dict) and isinstance(body.get("id"), int):
            return {**body, "id": str(body["id"])}
        return body


class RiseClient(HttpClient):
    partner = "rise"

    def __init__(self, *, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._token = token

    def _auth_headers(self) -> dict[str, str]:
        return {"x-rise-access-token": self._token}

    def _status_error(self, response: requests.Response) -> IntegrationStatusError:
        # Rise names its permanent errors in the body (seeds/000 "Troubleshooting"): match the text, any case.
        text = response.text.lower()
        common: dict[str, Any] = {"partner": self.partner, "status": response.status_code, "body": response.text[:2000]}
        if "api key not found" in text:
            return AuthError("rise: API key not found", **common)
        if "store domain not found" in text:
            return StoreDomainNotFoundError("rise: Store domain not found", **common)
        return super()._status_error(response)

    def _card(self, response: requests.Response) -> GiftCard:
        card = self._parse(response, GiftCard)
        if not card.id:
            raise IntegrationResponseError(
                "rise: answer without a gift card id",
                partner=self.partner,
                status=response.status_code,
                body=response.text[:2000],
            )
        return card

    def issue_gift_card(
        self,
        *,
        shop_url: str,
        balance: Decimal,
        note: str,
        recipient: str,
        recipient_email: str,
        subject: str,
        body: str,
    ) -> GiftCard:
        """Create a gift card and have Rise e-mail it to the customer."""
        payload = {
            "shop_url": shop_url,
            "gift_card": {"balance": _wire(balance), "note": note},
            "email_details": {
                "recipient": recipient,
                "recipient_email": recipient_email,
                "title": "Created by Order Protection",
                "subject": subject,
                "body": body,
            },
        }
        return self._card(self._request("issue_gift_card", "POST", "/v2/gift-cards/issue/", json=payload))

    def customer_card(self, *, shop_url: str, customer_id: str) -> GiftCard | None:
        """The customer's loyalty card, or None when the customer has none (404)."""
        try:
            response = self._request(
                "customer_card", "GET", "/v2/gift-cards/", params={"shop_url": shop_url, "customer_id": customer_id}
            )
        except NotFoundError:
            return None
        return self._card(response)

    def top_up(self, *, card_id: str, shop_url: str, amount: Decimal, order_id: str) -> GiftCard:
        """Add ``amount`` to a card, typed "refund" with the order for the merchant's accounting."""
        payload = {"shop_url": shop_url, "amount": _wire(amount), "type": "refund", "order_id": order_id}
        return self._card(self._request("top_up", "PUT", f"/v2/gift-cards/{quote(card_id, safe='')}", json=payload))


def _wire(amount: Decimal) -> float:
    # A JSON number that prints as the quantized amount itself (19.99, not 19.989999...); refused if it cannot.
    return wire_number(amount)
