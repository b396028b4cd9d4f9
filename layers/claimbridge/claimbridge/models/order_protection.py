"""What the merchant's systems (or an operator) tell claimbridge to pass on to Order Protection (seeds/003): how a
claim's resolution was carried out, and the store's inventory."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from claimbridge.models.fields import BoundedId

MAX_INVENTORY_ROWS = 10_000
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReshipReport(_In):
    """The replacement order the merchant created for a RESHIP resolution."""

    type: Literal["RESHIP"]
    reship_order_id: BoundedId
    resolution_id: BoundedId | None = None  # which of the claim's RESHIP resolutions, when it has several with ids


class RefundReport(_In):
    """The refund the merchant made for a REFUND resolution."""

    type: Literal["REFUND"]
    refund_id: BoundedId
    amount: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
    currency: Currency
    resolution_id: BoundedId | None = None


ResolutionReportIn = Annotated[ReshipReport | RefundReport, Field(discriminator="type")]


class InventoryRow(_In):
    sku: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
    variant_id: BoundedId
    quantity: Annotated[int, Field(ge=0, le=10**9)]


class InventoryIn(_In):
    """The store's stock, whole: it replaces the snapshot pushed before."""

    items: Annotated[list[InventoryRow], Field(min_length=1, max_length=MAX_INVENTORY_ROWS)]


class ProtectionCancelIn(_In):
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")]
