"""Rivo's actions for the helpdesk (seeds/002; shared/CONTRACTS.md "Rivo"): one named action per row of the
specification, each validated by its model (``claimbridge.models.rivo``) and answered with Rivo's data in our shape.

Reads, and the two writes that are idempotent at Rivo by nature (a date of birth set, a membership cancelled), are
one call. A points event, a redemption and a points redemption are not idempotent at Rivo: each is a ledger row keyed
by the caller's ``Idempotency-Key`` (``rivo:<store>:<key>``) and made by the credit flow's state machine
(``claimbridge.credits`` with ``claimbridge.providers.rivo``): a repeat answers the first result, another body under
the same key is refused, a lost answer is read back (by the note that names the row) before anything is sent again,
and an outcome nobody can know is held for an operator with what was seen.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from claimbridge.bounds import check_store_id
from claimbridge.clients.http import (
    AuthError,
    IntegrationError,
    IntegrationStatusError,
    NotFoundError,
    RateLimitError,
)
from claimbridge.clients.rivo import Page, Redemption, RivoClient
from claimbridge.credits import CreditService, new_row
from claimbridge.crypto import mask_secret
from claimbridge.directory import StoreDirectory
from claimbridge.errors import (
    ConflictError,
    DomainError,
    ResourceNotFoundError,
    UnavailableError,
    invalid,
    problems_from_validation,
)
from claimbridge.jobs import JobDeferredError
from claimbridge.ledger import Ledger, State
from claimbridge.limits import BonusBudget, MoneyLimits
from claimbridge.models.credits import CreditJob
from claimbridge.models.rivo import (
    ActionIn,
    CustomerIn,
    CustomerPageIn,
    PageIn,
    PointsEventIn,
    PurchaseTypeIn,
    RedeemPointsIn,
    RedemptionIn,
    UpdateDobIn,
    VipTierIn,
)
from claimbridge.money import MoneyError, parse_amount
from claimbridge.observability import logger
from claimbridge.store import Store

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{7,99}$")  # a UUID fits; ':' and '#' would break the keys
NOT_SENT_AGAIN_S = 5  # a write Rivo surely did not apply (a refused connection) goes to the credit worker after this


class RateLimitedError(DomainError):
    """Rivo (or our pacing of its key) says wait: 429 with ``Retry-After``; nothing was changed."""

    status = 429

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = max(1, round(retry_after or 1))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class MethodNotAllowedError(DomainError):
    status = 405

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow}


class RefusedByRivoError(DomainError):
    """Rivo refused the request for its content (an unknown reward, too few points): 422 with Rivo's words."""

    status = 422


@dataclass(frozen=True)
class Action:
    """One row of the specification: a read (GET, its input in the query) or a write (POST, a JSON body)."""

    name: str
    method: Literal["GET", "POST"]
    model: type[ActionIn]
    summary: str
    call: Callable[[RivoClient, Any], Any] | None = None  # made with one call
    kind: str | None = None  # made once through the ledger, as a row of this kind


def _found(value: Any, what: str) -> Any:
    if value is None:
        raise ResourceNotFoundError(f"rivo has no {what}")
    return value


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action(
            "get_customer",
            "GET",
            CustomerIn,
            "A customer's loyalty profile: points, credits, VIP tier, when the points expire",
            lambda c, i: _found(c.customer(i.customer_email), f"customer {i.customer_email}"),
        ),
        Action(
            "list_customers",
            "GET",
            PageIn,
            "The program's customers, a page at a time",
            lambda c, i: c.list_customers(i),
        ),
        Action("list_earning_rules", "GET", PageIn, "The ways to earn points", lambda c, i: c.list_earning_rules(i)),
        Action(
            "list_points_events",
            "GET",
            PageIn,
            "Every points event, newest first",
            lambda c, i: c.list_points_events(i),
        ),
        Action(
            "list_customer_points_events",
            "GET",
            CustomerPageIn,
            "A customer's points events (with their notes)",
            lambda c, i: c.list_points_events(i, customer_email=i.customer_email),
        ),
        Action(
            "list_customer_redemptions",
            "GET",
            CustomerPageIn,
            "A customer's redemptions (codes masked)",
            lambda c, i: c.list_redemptions(i, customer_email=i.customer_email),
        ),
        Action("list_rewards", "GET", PageIn, "The rewards a customer can redeem", lambda c, i: c.list_rewards(i)),
        Action(
            "list_rewards_by_purchase_type",
            "GET",
            PurchaseTypeIn,
            "The rewards of one purchase type (points or credits)",
            lambda c, i: c.list_rewards(i, purchase_type=i.purchase_type),
        ),
        Action(
            "get_vip_tier",
            "GET",
            VipTierIn,
            "One VIP tier",
            lambda c, i: _found(c.get_vip_tier(i.vip_tier_id), f"VIP tier {i.vip_tier_id}"),
        ),
        Action("list_vip_tiers", "GET", PageIn, "The program's VIP tiers", lambda c, i: c.list_vip_tiers(i)),
        Action(
            "get_membership",
            "GET",
            CustomerIn,
            "A customer's paid membership and subscription",
            lambda c, i: _found(c.get_membership(i.customer_email), f"membership for {i.customer_email}"),
        ),
        Action(
            "update_customer_dob",
            "POST",
            UpdateDobIn,
            "Set a customer's date of birth (the same date twice is the same)",
            lambda c, i: c.update_customer_dob(i.customer_email, i.dob.isoformat()),
        ),
        Action(
            "cancel_membership",
            "POST",
            CustomerIn,
            "Cancel a customer's paid membership (cancelling twice is the same)",
            lambda c, i: c.cancel_membership(i.customer_email),
        ),
        Action(
            "create_points_event",
            "POST",
            PointsEventIn,
            "Grant (or take) points and credits, once per Idempotency-Key",
            kind="rivo_points_event",
        ),
        Action(
            "create_redemption",
            "POST",
            RedemptionIn,
            "Redeem a reward for a customer, once per Idempotency-Key",
            kind="rivo_redemption",
        ),
        Action(
            "redeem_points",
            "POST",
            RedeemPointsIn,
            "Take points from a customer's balance, once per Idempotency-Key",
            kind="rivo_redeem_points",
        ),
    )
}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class RivoActions:
    """The action API's service: which action, is its input right, is Rivo there, then the call or the ledger row."""

    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        client_for: Callable[[str], RivoClient],
        flow: CreditService,
        enqueue_credit: Callable[[CreditJob, int], None],
        limits: MoneyLimits | None = None,
    ) -> None:
        self._directory = directory
        self._ledger = Ledger(store)
        self._client_for = client_for
        self._flow = flow
        self._enqueue_credit = enqueue_credit
        self._limits = limits or MoneyLimits()
        self._budget = BonusBudget(store, self._limits)

    def catalogue(self, store_id: str) -> dict[str, Any]:
        """Every action with its method, path and JSON schema (what a helpdesk macro or a person needs)."""
        check_store_id(store_id)
        if self._directory.store(store_id) is None:
            raise ResourceNotFoundError(f"store {store_id} not found")
        base = f"/internal/integrations/rivo/stores/{store_id}/actions"
        return {
            "actions": [
                {
                    "name": action.name,
                    "method": action.method,
                    "path": f"{base}/{action.name}",
                    "summary": action.summary,
                    "input": "query" if action.method == "GET" else "body",
                    "idempotency_key": "required" if action.kind else "not needed",
                    "schema": action.model.model_json_schema(),
                }
                for action in ACTIONS.values()
            ]
        }

    def run(self, store_id: str, name: str, method: str, given: Any, idempotency_key: str | None = None) -> Answer:
        """Validate, then answer the action; a refusal names its reason, and nothing was sent or written."""
        check_store_id(store_id)
        action = ACTIONS.get(name)
        if action is None:
            raise ResourceNotFoundError(f"no Rivo action {name[:64]!r}: GET .../actions lists them")
        if method != action.method:
            raise MethodNotAllowedError(f"{name} is a {action.method}", action.method)
        if action.kind and not IDEMPOTENCY_KEY.match(idempotency_key or ""):
            raise invalid(
                "Idempotency-Key",
                "the header is required for this write: 8 to 100 letters, digits, '_', '.' or '-' (a UUID), one "
                "per request you mean once",
            )
        if not isinstance(given, dict):
            raise invalid("body", "must be a JSON object")
        try:
            request = action.model.model_validate(given)
        except ValidationError as error:
            raise problems_from_validation(error) from error
        info, integration = self._directory.usable(store_id, "rivo")
        if action.kind:
            return self._once(info, action, request, idempotency_key or "")
        client = self._client_for(integration.secrets["api_key"])
        return Answer(200, {"action": name, **_shaped(self._call(store_id, action, client, request))})

    # -- one call ----------------------------------------------------------------------------------------------------

    def _call(self, store_id: str, action: Action, client: RivoClient, request: ActionIn) -> Any:
        assert action.call is not None
        doing = "nothing was changed" if action.method == "GET" else "it may have been applied; repeating it is safe"
        try:
            return action.call(client, request)
        except JobDeferredError as deferred:  # our pacing of this Rivo key has no slot within a second
            raise RateLimitedError("rivo's rate limit for this key is in use; retry", deferred.delay_s) from None
        except RateLimitError as error:
            raise RateLimitedError(
                "rivo is rate limiting this key; retry after Retry-After", error.retry_after
            ) from None
        except AuthError as error:
            if error.status != 401:  # a 403 refuses this action (a plan without it), not the key
                raise RefusedByRivoError(f"rivo refused {action.name}: {_detail(error) or error}") from None
            reason = f"rivo refused the key ({error})"
            self._directory.mark_invalid(store_id, "rivo", reason)
            raise ConflictError(f"{reason}: the rivo integration is marked invalid until a key is saved") from None
        except NotFoundError as error:
            raise ResourceNotFoundError(f"rivo: {_detail(error) or 'not found'}") from None
        except IntegrationStatusError as error:
            if error.retryable:  # a 5xx
                raise UnavailableError(f"rivo failed ({error}); {doing}") from None
            raise RefusedByRivoError(f"rivo refused {action.name}: {_detail(error) or error}") from None
        except IntegrationError as error:
            raise UnavailableError(f"rivo did not answer ({type(error).__name__}); {doing}") from None

    # -- once, through the ledger ------------------------------------------------------------------------------------

    def _once(self, info: Any, action: Action, request: ActionIn, key: str) -> Answer:
        store_id = info.store_id
        dumped = request.model_dump(mode="json")
        digest = hashlib.sha256(json.dumps([action.name, _canonical(request)], sort_keys=True).encode()).hexdigest()
        pk, sk = f"STORE#{store_id}#RIVO#{key}", "LEDGER#action"
        existing = self._ledger.get(pk, sk)
        if existing is not None:
            return self._replay(existing, digest, key)
        currency = info.profile.get("currency", "USD")
        granted = request.credits_amount if isinstance(request, PointsEventIn) else Decimal(0)
        try:
            granted = parse_amount(granted, currency)
        except MoneyError as error:
            raise invalid("credits_amount", f"{error}; nothing was sent") from None
        cap, whose = self._limits.cap_for(info.profile)
        if cap is not None and granted > cap:
            raise invalid("credits_amount", f"{granted} is over {whose} of {cap:.2f}; nothing was sent")
        # Credits granted by hand draw on the store's daily room for credits granted by hand (as bonus credits do).
        reservation = self._budget.reserve(store_id, granted) if granted > 0 else None
        if granted > 0 and reservation is None:
            raise invalid(
                "credits_amount",
                f"{granted} would take this store's credits granted by hand today past its daily limit "
                f"({self._budget.used_today(store_id):.2f} used); nothing was sent",
            )
        asked = new_row(
            info,
            pk=pk,
            sk=sk,
            kind=action.kind or "",
            amount=granted,
            currency=currency,
            provider="rivo",
            action=action.name,
            customer_email=str(getattr(request, "customer_email", "")),
            request=dumped,
            request_hash=digest,
            idempotency_key=key,
        )
        # Not in the customer's index: the widget lists claims and return credits there, not loyalty actions.
        row, created = self._ledger.create({k: v for k, v in asked.items() if k not in ("GSI1PK", "GSI1SK")})
        if not created:  # the same key, at the same moment, from another request: its reservation stands
            if reservation is not None:
                self._budget.release(reservation)
            return self._replay(row, digest, key)
        self._make(CreditJob(store_id=store_id, pk=pk, sk=sk))
        return _answer(self._ledger.get(pk, sk) or row, replayed=False)

    def _make(self, job: CreditJob) -> None:
        """The credit flow moves the row now; what it cannot finish (a lost answer, a 429) goes to the credit
        worker, and if that send fails the sweeper finds the row by its due time: nothing is dropped."""
        try:
            self._flow.handle(job)
            return
        except JobDeferredError as deferred:
            delay = deferred.delay_s
        except IntegrationError as error:  # not applied (a 429, a refused connection): sent again by the worker
            delay = getattr(error, "retry_after", None) or NOT_SENT_AGAIN_S
        try:
            self._enqueue_credit(job, min(900, max(0, round(delay))))
        except Exception as error:  # noqa: BLE001 - the row's due time brings the sweeper to it
            logger.error("rivo action not queued; the sweeper will send it", sk=job.pk, error=type(error).__name__)

    def _replay(self, row: dict[str, Any], digest: str, key: str) -> Answer:
        if row.get("request_hash") != digest:
            raise ConflictError(
                f"Idempotency-Key {key} was used for another request ({row.get('action')} with other fields); "
                "nothing sent: use a new key for a new request"
            )
        if row["state"] == State.QUEUED and self._ledger.lease_left(row) == 0 and not row.get("wait_code"):
            # Its first request may have died before making it, or its job may be delayed: move it now (the ledger
            # makes a second attempt harmless), rather than leave it for the sweeper.
            self._make(CreditJob(store_id=row["store_id"], pk=row["PK"], sk=row["SK"]))
            row = self._ledger.get(row["PK"], row["SK"]) or row
        return _answer(row, replayed=True)


def _answer(row: dict[str, Any], *, replayed: bool) -> Answer:
    """A ledgered write's answer: made (201, 200 when repeated), refused by Rivo (422), cancelled by an operator
    (409), or still on its way, or held for a person (202, with the reason)."""
    state = row["state"]
    status = {State.ISSUED: 200 if replayed else 201, State.FAILED: 422, State.CANCELLED: 409}.get(state, 202)
    if state == State.FAILED and row.get("hold_code") == "provider_invalid":
        status = 409  # Rivo refused the key: nothing made, and the integration is marked invalid
    body: dict[str, Any] = {
        "action": row.get("action"),
        "ledger_id": row["ledger_id"],
        "state": state,
        "replayed": replayed,
        "data": _counts(row.get("result")),
        "entry": f"/internal/stores/{row['store_id']}/ledger/{row['ledger_id']}",
    }
    if state != State.ISSUED and row.get("state_reason"):
        body["reason"] = row["state_reason"]
    if state == State.HELD and row.get("evidence"):
        body["evidence"] = _counts(row["evidence"])
    return Answer(status, body, {"Idempotent-Replayed": "true"} if replayed else {})


def _canonical(request: ActionIn) -> Any:
    """The request as compared for a repeated key: amounts by value (5 and 5.00 are one request)."""
    return {
        name: format(value.normalize(), "f") if isinstance(value, Decimal) else value
        for name, value in request.model_dump(mode="python").items()
    } | {"applied_at": str(getattr(request, "applied_at", None))}


def _counts(value: Any) -> Any:
    """Rivo's answer as kept on the row, its counts (points, ids) back to integers: the table reads every number as a
    Decimal, and money is already text there."""
    if isinstance(value, dict):
        return {k: _counts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_counts(v) for v in value]
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def _shaped(result: Any) -> dict[str, Any]:
    if isinstance(result, Page):
        return {"data": [_plain(item) for item in result.items], "next_since_id": result.next_since_id}
    return {"data": _plain(result)}


def _plain(record: Any) -> Any:
    if not isinstance(record, BaseModel):
        return record
    shown = record.model_dump(mode="json")
    if isinstance(record, Redemption) and record.code:
        shown["code"] = mask_secret(record.code)  # bearer value: Rivo shows it to the customer; we never do
    return shown


def _detail(error: IntegrationError) -> str:
    """Rivo's own words from a JSON:API error body, when it gave some."""
    body = getattr(error, "body", None)
    try:
        errors = (json.loads(body) if isinstance(body, str) else body or {}).get("errors") or []
        return "; ".join(str(e.get("detail") or e.get("title")) for e in errors if isinstance(e, dict))[:300]
    except (ValueError, AttributeError):
        return ""
