"""Money at the boundary: amounts are ``Decimal`` held to their currency's minor unit (ISO 4217), never floats.

An amount with more precision than its currency has (``10.005`` USD, ``1.5`` JPY) is refused, not rounded: rounding
money someone asked for is a decision for a person. ``"1e2"`` is accepted and becomes ``100.00``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

# ISO 4217 minor units that are not 2. Every other well-formed code has 2.
_MINOR_UNITS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF"], 0
    ),
    **dict.fromkeys(["XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}
MAX_AMOUNT = Decimal("1000000000")


class MoneyError(ValueError):
    """An amount that cannot be money in its currency; the message names why."""


def minor_unit(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def parse_amount(value: Any, currency: str) -> Decimal:
    """``value`` (a JSON number, a decimal string or a Decimal) as an exact amount in ``currency``'s minor unit."""
    if isinstance(value, bool) or value is None:
        raise MoneyError("amount is missing or not a number")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise MoneyError(f"amount {str(value)[:40]!r} is not a number") from None
    if not amount.is_finite():
        raise MoneyError("amount must be a finite number")
    if abs(amount) >= MAX_AMOUNT:
        raise MoneyError(f"amount must be less than {MAX_AMOUNT}")
    digits = minor_unit(currency)
    step = Decimal(1).scaleb(-digits)
    quantized = amount.quantize(step)
    if quantized != amount:
        raise MoneyError(f"amount {amount} has more precision than {currency.upper()} allows ({digits} decimal places)")
    return quantized


def wire_number(amount: Decimal) -> float:
    """A quantized amount as the JSON number a partner takes; refused if a float cannot carry it exactly."""
    number = float(amount)
    if Decimal(repr(number)) != amount:
        raise MoneyError(f"amount {amount} cannot be sent as an exact JSON number")
    return number


def wire_text(amount: Decimal, currency: str) -> str:
    """A quantized amount as a decimal string with the currency's minor digits (``"10.00"``, ``"1000"``)."""
    return str(amount.quantize(Decimal(1).scaleb(-minor_unit(currency))))
