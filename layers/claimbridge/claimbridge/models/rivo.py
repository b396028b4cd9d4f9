"""The Rivo actions' inputs (seeds/002; shared/CONTRACTS.md "Rivo"): one model per action, validated before any call.

The action API (``claimbridge.loyalty``) validates a body or a query against these and shows their JSON schemas, so a
helpdesk macro or a person can discover what each action takes.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from claimbridge.models.fields import Email

Note = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]
Credits = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
Points = Annotated[int, Field(ge=0, le=10_000_000)]
RivoId = Annotated[int, Field(ge=1, le=10**15)]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PageIn(ActionIn):
    since_id: Annotated[int, Field(ge=0)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 25


class CustomerIn(ActionIn):
    customer_email: Email


class CustomerPageIn(PageIn):
    customer_email: Email


class PurchaseTypeIn(PageIn):
    purchase_type: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]


class VipTierIn(ActionIn):
    vip_tier_id: RivoId


class PointsEventIn(ActionIn):
    """Points and/or credits granted (or taken, negative points) for a customer; ``internal_note`` is ours (the
    ledger id that lets a lost answer be found again)."""

    customer_email: Email
    points_amount: Annotated[int, Field(ge=-10_000_000, le=10_000_000)] = 0
    credits_amount: Annotated[Credits, Field(validate_default=True)] = Decimal(0)  # checked with the points
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "claimbridge"
    applied_at: datetime | None = None
    skip_email: bool = False
    external_note: Note | None = None
    custom_action_name: Annotated[str, StringConstraints(max_length=100)] | None = None

    @field_validator("credits_amount")
    @classmethod
    def _something(cls, amount: Decimal, info: ValidationInfo) -> Decimal:
        if amount == 0 and info.data.get("points_amount") == 0:
            raise ValueError("points_amount or credits_amount must be given (not both zero)")
        return amount


class RedemptionIn(ActionIn):
    """A reward redeemed for a customer, paid with points or credits."""

    customer_email: Email
    reward_id: RivoId
    points_amount: Points = 0
    credits_amount: Credits = Decimal(0)


class RedeemPointsIn(ActionIn):
    """Points taken from a customer's balance (without a reward)."""

    customer_email: Email
    points_amount: Annotated[int, Field(ge=1, le=10_000_000)]


class UpdateDobIn(ActionIn):
    customer_email: Email
    dob: date

    @field_validator("dob")
    @classmethod
    def _in_the_past(cls, dob: date) -> date:
        if dob >= date.today() or dob.year < 1900:
            raise ValueError("must be a date in the past, after 1900")
        return dob
