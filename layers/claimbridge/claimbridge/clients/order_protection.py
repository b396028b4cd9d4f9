"""The Order Protection API (shared/CONTRACTS.md "Order Protection"; seeds/003): fetch an order, report a resolution,
push inventory.

Confirmed: ``GET /v1/claims`` (a Relay list: ``edges[].node``, ``pageInfo``; nodes carry ``authorEmail`` and
``sourceOrderNumber``) and ``PUT /v1/orders/{sourceOrderId}``. A claim is found in that list by paging it with
``first`` and ``after`` (our choice: no filter by id is confirmed, so ``find_claim`` reads at most a few pages, newest
first). This project's choices where nothing is public, each kept behind its one method here:

- ``GET /v1/orders/{id}`` reads an order with its customer (a fallback when a webhook lacks them);
- ``POST /v1/claims/{id}/resolution`` reports a resolution, with an ``Idempotency-Key`` naming the claim and the
  resolution;
- cancelling an order's protection is ``PUT /v1/orders/{sourceOrderId}`` (confirmed: it updates an order) with
  ``{"protectionStatus": "CANCELLED", "cancellationReason"}`` (the body is our choice);
- ``PUT /v1/inventory`` takes ``{"items": [{"sourceVariantId", "sku", "quantity"}]}``, a chunk at a time, with an
  ``Idempotency-Key`` naming the push and the chunk, so a chunk sent again after a lost answer is the same chunk.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from pydantic import AliasChoices, Field

from claimbridge.clients.http import HttpClient
from claimbridge.models.webhooks import Customer, Lenient, OrderItem, OrderSummary
from claimbridge.money import wire_text


class Order(OrderSummary):
    id: str | None = None
    customer: Customer | None = None
    line_items: list[OrderItem] = Field(default_factory=list, validation_alias=AliasChoices("line_items", "lineItems"))


class ClaimNode(Lenient):
    """A claim as ``GET /v1/claims`` lists it: who filed it and for which order."""

    id: str | None = None
    author_email: str | None = Field(default=None, validation_alias=AliasChoices("authorEmail", "author_email"))
    source_order_number: str | None = Field(
        default=None, validation_alias=AliasChoices("sourceOrderNumber", "source_order_number")
    )
    claim_state: str | None = Field(default=None, validation_alias=AliasChoices("claimState", "claim_state"))
    claim_type: str | None = Field(default=None, validation_alias=AliasChoices("claimType", "claim_type"))


class _Edge(Lenient):
    node: ClaimNode


class _PageInfo(Lenient):
    has_next_page: bool = Field(default=False, validation_alias=AliasChoices("hasNextPage", "has_next_page"))
    end_cursor: str | None = Field(default=None, validation_alias=AliasChoices("endCursor", "end_cursor"))


class ClaimsPage(Lenient):
    edges: list[_Edge] = Field(default_factory=list)
    page_info: _PageInfo = Field(default_factory=_PageInfo, validation_alias=AliasChoices("pageInfo", "page_info"))


class ReportAnswer(Lenient):
    id: str | None = None


class OrderProtectionClient(HttpClient):
    partner = "order_protection"

    def __init__(self, *, api_token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._token = api_token

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._token}"}

    def get_order(self, order_id: str) -> Order:
        """The order with its customer and items (used when a webhook lacks them)."""
        return self._parse(self._request("get_order", "GET", f"/v1/orders/{quote(order_id, safe='')}"), Order)

    def list_claims(self, *, first: int = 50, after: str | None = None) -> ClaimsPage:
        params: dict[str, Any] = {"first": first, **({"after": after} if after else {})}
        return self._parse(self._request("list_claims", "GET", "/v1/claims", params=params), ClaimsPage)

    def find_claim(self, claim_id: str, *, pages: int = 10) -> ClaimNode | None:
        """The claim's node, read page by page (50 a page, at most ``pages``); None when not among them."""
        after: str | None = None
        for _ in range(pages):
            page = self.list_claims(after=after)
            found = next((edge.node for edge in page.edges if edge.node.id == claim_id), None)
            if found is not None or not page.page_info.has_next_page or not page.page_info.end_cursor:
                return found
            after = page.page_info.end_cursor
        return None

    def check_token(self) -> None:
        """The cheapest authenticated read (``GET /v1/claims``, one node): the health check of the token."""
        self._request("list_claims", "GET", "/v1/claims", params={"first": 1})

    def cancel_protection(self, source_order_id: str, reason: str) -> None:
        """Cancel the order's protection (a state set: sending it twice is the same)."""
        self._request(
            "cancel_protection",
            "PUT",
            f"/v1/orders/{quote(source_order_id, safe='')}",
            json={"protectionStatus": "CANCELLED", "cancellationReason": reason},
        )

    def push_inventory(self, rows: list[dict[str, Any]], *, idempotency_key: str) -> None:
        """One chunk of the store's stock (``sku``, ``variant_id``, ``quantity`` rows)."""
        items = [{"sourceVariantId": r["variant_id"], "sku": r["sku"], "quantity": int(r["quantity"])} for r in rows]
        self._request(
            "push_inventory",
            "PUT",
            "/v1/inventory",
            json={"items": items},
            headers={"Idempotency-Key": idempotency_key},
        )

    def report_resolution(
        self,
        claim_id: str,
        *,
        kind: str,
        reference: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
    ) -> None:
        """Tell Order Protection how a claim was resolved (the reship order, refund or gift card id).

        Choice (CONTRACTS.md: the report call is not public): ``Idempotency-Key`` names the claim and resolution, so
        a report repeated after an unknown outcome is the same report, not a second one.
        """
        self._request(
            "report_resolution",
            "POST",
            f"/v1/claims/{quote(claim_id, safe='')}/resolution",
            json={"type": kind, "reference": reference, "amount": wire_text(amount, currency), "currency": currency},
            headers={"Idempotency-Key": idempotency_key},
        )
