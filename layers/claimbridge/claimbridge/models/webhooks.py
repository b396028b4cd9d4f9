"""Order Protection's webhook payloads, validated leniently by the worker (shared/CONTRACTS.md "Order Protection").

Money arrives as JSON numbers or decimal strings and becomes ``Decimal``; unknown fields are ignored (the sender may
add some); what a flow cannot work without is required.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field


def _decimal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))  # 12.3 stays 12.3, not 12.300000000000000710542735760100185871124267578125
    return value


# How agents read Order Protection's claim types (tickets, the widget).
CLAIM_TYPES = {
    "DAMAGED": "Damaged",
    "DEFECTIVE_ITEM": "Defective item",
    "MISSING_ITEM": "Missing item",
    "MULTIPLE": "Multiple issues",
    "ORDER_DELIVERED_NOT_RECEIVED": "Delivered, not received",
    "RETURNED_TO_SENDER": "Returned to sender",
    "STOLEN": "Stolen",
    "WRONG_ITEM": "Wrong item",
}

Money = Annotated[Decimal, BeforeValidator(_decimal)]
Id = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Customer(Lenient):
    id: Id | None = None
    email: str | None = None
    first_name: str | None = Field(default=None, validation_alias=AliasChoices("first_name", "firstName"))
    last_name: str | None = Field(default=None, validation_alias=AliasChoices("last_name", "lastName"))
    phone: str | None = None

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part).strip()


class OrderItem(Lenient):
    name: str = Field(default="", validation_alias=AliasChoices("name", "item_name", "title"))
    quantity: int = 1
    price: Money | None = None


class OrderSummary(Lenient):
    number: str | None = Field(
        default=None, validation_alias=AliasChoices("number", "order_number", "orderNumber", "name")
    )
    currency: str | None = None
    total: Money | None = Field(default=None, validation_alias=AliasChoices("total", "total_price", "totalPrice"))
    items: list[OrderItem] = Field(default_factory=list)
    created_at: str | None = Field(default=None, validation_alias=AliasChoices("created_at", "createdAt"))


class ClaimItem(Lenient):
    product_id: Id | None = None
    variant_id: Id | None = None
    sku: str | None = None
    item_id: Id | None = None
    item_name: str = ""
    quantity: int = 1


class ClaimCreated(Lenient):
    claim_id: Id
    order_id: Id
    source_order_id: Id | None = None
    created_at: str | None = None
    claim_description: str = ""
    claim_type: str = "UNKNOWN"
    claim_state: str = "NEW"
    items: list[ClaimItem] = Field(default_factory=list)
    order_number: str | None = None
    customer: Customer | None = None
    order: OrderSummary | None = None


class ResolutionItem(Lenient):
    price: Money | None = None
    quantity: int = 1
    resolution_percentage: Money | None = None
    resolution_flat_amount: Money | None = None


class ResolutionDetails(Lenient):
    items: list[ResolutionItem] = Field(default_factory=list)
    currency: str | None = None
    total_refund_amount: Money | None = None
    shipping_amount: Money | None = None
    shipping_address: dict[str, Any] | None = None


class Resolution(Lenient):
    id: Id | None = Field(default=None, validation_alias=AliasChoices("id", "resolution_id"))
    type: str
    details: ResolutionDetails = Field(default_factory=ResolutionDetails)


class ClaimResolution(Lenient):
    """``claim.approved``, ``claim.resolved``, ``claim.updated`` and ``claim.denied``."""

    claim_id: Id
    order_id: Id | None = None
    source_order_id: Id | None = None
    claim_state: str | None = None
    resolutions: list[Resolution] = Field(default_factory=list)
    order_number: str | None = None
    customer: Customer | None = None


class MessageCreated(Lenient):
    claim_id: Id
    order_id: Id | None = None
    message: Any = None


class ProtectionChanged(Lenient):
    order_id: Id
    source_order_id: Id | None = None
    amount: Money | None = None
    currency: str | None = None


class Envelope(Lenient):
    id: str
    topic: str
    created_at: str | None = None
    body: dict[str, Any]
