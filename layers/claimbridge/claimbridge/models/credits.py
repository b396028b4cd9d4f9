"""Credit jobs and the bonus credit body: what the credit worker is asked to do, and the business key it does it once
for (shared/DESIGN.md "Money is exactly once")."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from claimbridge.models.fields import BoundedId, Email


class BonusCustomer(BaseModel):
    """The customer of a bonus credit: the card is sent to this address, so it must be one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: Email
    name: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f<>]*$")] = ""
    id: BoundedId | None = None


class CreditJob(BaseModel):
    """A credit job names a ledger row; the row says what to do (a job may come any number of times)."""

    model_config = ConfigDict(extra="ignore")

    store_id: str
    pk: str
    sk: str


REASON_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$"


class BonusCreditIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    customer: BonusCustomer
    order_number: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9#_-]+$")]
    order_id: BoundedId | None = None
    amount: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    reason: Annotated[str, StringConstraints(pattern=REASON_PATTERN)]


def reason_slug(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", reason.lower()).strip("-")


class LedgerActionIn(BaseModel):
    """An operator's decision on one ledger row; ``reason`` is required and kept in the row's audit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Literal["retry", "mark_issued", "cancel"]
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500)]
    card_id: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")] | None = (
        None
    )

    @model_validator(mode="after")
    def _card_for_mark_issued(self) -> LedgerActionIn:
        if self.action == "mark_issued" and not self.card_id:
            raise ValueError("card_id is required to mark a credit issued (the partner's card id)")
        if self.action != "mark_issued" and self.card_id:
            raise ValueError("card_id goes only with mark_issued")
        return self
