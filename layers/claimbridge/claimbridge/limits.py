"""Money limits that hold even when a merchant sets none.

- A per-credit cap: the store's ``max_credit_amount``, else the deployment's default (template parameter
  ``DefaultMaxCreditAmount``). A claim's credit over it is held (``hold_code`` ``cap``); a bonus over it is refused 422.
- A per-store daily total for bonus credits (template parameter ``BonusDailyLimit``, per UTC day, in the store's
  currency): a counter row per store and day, raised with one conditional update, so two requests at once cannot both
  take the last of the room. A bonus that would pass it is refused 422 and nothing is queued.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from claimbridge.store import ConditionFailedError, Store, store_pk

DAY_COUNTER_TTL_S = 8 * 24 * 3600


def parse_limit(raw: str) -> Decimal | None:
    """``"500.00"`` → Decimal; ``""`` or ``"0"`` → no limit. ValueError for anything else."""
    if raw.strip() in ("", "0", "0.00"):
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {raw!r}") from None
    if not value.is_finite() or value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError(f"not an amount with at most two decimals: {raw!r}")
    return value


@dataclass(frozen=True)
class MoneyLimits:
    default_cap: Decimal | None = None
    bonus_daily: Decimal | None = None

    def cap_for(self, profile: dict[str, Any]) -> tuple[Decimal | None, str]:
        """The cap that applies to one credit of this store, and whose it is."""
        own = profile.get("max_credit_amount")
        if own is not None:
            return Decimal(str(own)), "the store's per-credit cap"
        return self.default_cap, "the default per-credit cap"


@dataclass(frozen=True)
class Reservation:
    """Room taken from one day's total (``key`` None: there is no limit, nothing was taken)."""

    key: tuple[str, str] | None
    amount: Decimal


class BonusBudget:
    """Today's bonus total per store, reserved before a bonus is queued and released if it was not."""

    def __init__(self, store: Store, limits: MoneyLimits, clock: Any = time.time) -> None:
        self._store = store
        self._limits = limits
        self._clock = clock

    def _key(self, store_id: str) -> tuple[str, str]:
        day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
        return store_pk(store_id), f"BONUSDAY#{day}"

    def reserve(self, store_id: str, amount: Decimal) -> Reservation | None:
        """Add ``amount`` to today's total if it stays within the limit; None (nothing added) if it would pass it.
        The reservation names its day's counter, so releasing it after midnight gives back that day's room."""
        limit = self._limits.bonus_daily
        if limit is None:
            return Reservation(None, amount)
        if amount > limit:
            return None
        pk, sk = self._key(store_id)
        try:
            self._store.update(
                pk,
                sk,
                expression="ADD day_total :amount SET #ttl = if_not_exists(#ttl, :ttl)",
                names={"#ttl": "ttl"},
                values={":amount": amount, ":room": limit - amount, ":ttl": int(self._clock() + DAY_COUNTER_TTL_S)},
                condition="attribute_not_exists(day_total) OR day_total <= :room",
            )
        except ConditionFailedError:
            return None
        return Reservation((pk, sk), amount)

    def release(self, reservation: Reservation) -> None:
        if reservation.key is not None:
            self._store.update(
                *reservation.key, expression="ADD day_total :minus", values={":minus": -reservation.amount}
            )

    def used_today(self, store_id: str) -> Decimal:
        item = self._store.get(*self._key(store_id))
        return Decimal(str(item.get("day_total", 0))) if item else Decimal(0)
