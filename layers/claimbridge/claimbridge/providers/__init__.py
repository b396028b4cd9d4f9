"""Credit providers: the one interface the credit flow calls, and one adapter per partner (Rise.ai, Rivo).

The flow (``claimbridge.credits``) owns the ledger, the guardrails and the state machine; an adapter only speaks its
partner: ``plan`` looks up what to do (top up the customer's card, or issue one), ``apply`` does it once, ``find``
looks for evidence that names a credit after an unknown outcome. An adapter raises the HTTP error tree; the flow reads
``may_have_applied`` on the error to know which way the ledger moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from claimbridge.clients.http import CallObserver


@dataclass(frozen=True)
class Credit:
    """A ledger row as a provider reads it."""

    ledger_id: str
    kind: str  # claim_credit | bonus_credit | return_credit | return_bonus | a Rivo action (RIVO_ACTION_KINDS)
    amount: Decimal
    currency: str
    customer_email: str
    customer_name: str
    customer_id: str | None
    claim_id: str | None
    order_id: str | None
    order_number: str | None
    reason: str | None
    store_name: str
    shop_domain: str
    operation: str | None = None  # what the plan chose: issue | top_up
    card_id: str | None = None  # the card the plan chose to top up
    return_id: str | None = None  # a PostCo return's id (return_credit, return_bonus)
    onto_card_id: str | None = None  # the card this credit must go onto (a return's bonus: its credit's card)
    request: Mapping[str, Any] | None = None  # a Rivo action's validated body (claimbridge.loyalty)
    created_at: str | None = None  # when the row was made: partner records older than this cannot be its own


# Rivo actions asked through the action API (claimbridge.loyalty) that the ledger makes exactly once: they are not
# idempotent at Rivo, so each is a row like a credit, moved by the same state machine.
RIVO_ACTION_KINDS = frozenset({"rivo_points_event", "rivo_redemption", "rivo_redeem_points"})


def order_number(credit: Credit) -> str:
    """The order's number as a shopper knows it, without the ``#`` that PostCo's ``order_name`` carries."""
    return str(credit.order_number or credit.order_id or "").lstrip("#")


@dataclass(frozen=True)
class Applied:
    """What the partner answered for a credit it made."""

    card_id: str
    code: str | None
    balance: Decimal | None
    expires_on: str | None
    notified: str | None = None  # how the partner told the customer: "email", or "none" (and why)
    record: dict[str, Any] | None = None  # the partner's answer in our shape (secrets masked), kept as ``result``


@dataclass(frozen=True)
class Plan:
    operation: str  # issue | top_up
    fields: dict[str, Any]  # recorded on the row when it is taken (the card to top up, its balance before)


@dataclass(frozen=True)
class Evidence:
    """What a look-up after an unknown outcome found. ``applied`` only when a partner record names this credit;
    ``conclusive`` only when the partner's answer proves it was not made. ``seen`` is kept for an operator."""

    applied: Applied | None = None
    conclusive: bool = False
    seen: dict[str, Any] = field(default_factory=dict)


class CreditProvider(Protocol):
    name: str

    def plan(self, credit: Credit) -> Plan: ...

    def apply(self, credit: Credit) -> Applied: ...

    def find(self, credit: Credit) -> Evidence: ...


# A provider for one store: its opened secrets and a call observer in, the adapter out.
ProviderFactory = Callable[[dict[str, Any], CallObserver], CreditProvider]
