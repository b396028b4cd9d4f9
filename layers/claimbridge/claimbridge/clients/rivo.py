"""Rivo loyalty: a customer's points, credits and VIP tier (shared/CONTRACTS.md "Rivo").

Auth is the raw key in ``Authorization`` (no "Bearer"); answers are JSON:API (``data.attributes``), while the
specification's examples wrap the customer as ``{"customer": {...}}``: both are read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import model_validator

from claimbridge.clients.http import HttpClient, NotFoundError
from claimbridge.models.webhooks import Lenient, Money


class LoyaltyCustomer(Lenient):
    email: str | None = None
    loyalty_status: str | None = None
    points_tally: int = 0
    credits_tally: Money | None = None
    vip_tier: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, body: Any) -> Any:
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"].get("attributes") or {}
        elif isinstance(body, dict) and isinstance(body.get("customer"), dict):
            body = body["customer"]
        if isinstance(body, dict) and isinstance(body.get("vip_tier"), dict):
            body = {**body, "vip_tier": body["vip_tier"].get("name")}
        return body


class RivoClient(HttpClient):
    partner = "rivo"

    def __init__(self, *, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api_key = api_key

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": self._api_key}

    def customer(self, email: str) -> LoyaltyCustomer | None:
        """The customer's loyalty profile, or None when Rivo does not know the email."""
        try:
            response = self._request("get_customer", "GET", f"/customers/{quote(email, safe='@')}")
        except NotFoundError:
            return None
        return self._parse(response, LoyaltyCustomer)
