"""Rivo loyalty: every action of the specification (seeds/002; shared/CONTRACTS.md "Rivo").

Auth is the raw key in ``Authorization`` (no "Bearer"); POST and PUT bodies are form-encoded; answers are JSON:API
(``data.attributes``; lists add ``links.next_since_id``), while the specification's examples wrap the customer as
``{"customer": {...}}``: both are read. Points events and redemptions are not idempotent: the client sends each once,
and the caller decides (claimbridge.loyalty, claimbridge.providers.rivo) what a lost answer means.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, Field, model_validator

from claimbridge.clients.http import HttpClient, IntegrationResponseError, NotFoundError
from claimbridge.models.rivo import (
    PageIn,
    PointsEventIn,
    RedeemPointsIn,
    RedemptionIn,
)
from claimbridge.models.webhooks import Lenient, Money


def _attributes(body: Any) -> Any:
    """One JSON:API resource's attributes with its id (the resource's own, a string, over an attribute's), or the
    body as it came."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        resource = body["data"]
        attributes = resource.get("attributes") or {}
        return {**attributes, "id": resource.get("id") or attributes.get("id")}
    return body


class RivoRecord(Lenient):
    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, body: Any) -> Any:
        return _attributes(body)


class LoyaltyCustomer(Lenient):
    id: Any = None
    customer_id: Any = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    loyalty_status: str | None = None
    points_tally: int = 0
    credits_tally: Money | None = None
    vip_tier: str | None = None
    points_expire_at: str | None = None
    dob: str | None = None
    referral_code: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap_customer(cls, body: Any) -> Any:
        body = _attributes(body)
        if isinstance(body, dict) and isinstance(body.get("customer"), dict) and "email" not in body:
            body = body["customer"]
        if isinstance(body, dict) and isinstance(body.get("vip_tier"), dict):
            body = {**body, "vip_tier": body["vip_tier"].get("name")}
        return body


class PointsEvent(RivoRecord):
    id: Any = None
    customer_email: str | None = None
    points_amount: int = 0
    credits_amount: Money | None = None
    source: str | None = None
    applied_at: str | None = None
    internal_note: str | None = None
    external_note: str | None = None
    custom_action_name: str | None = None


class Redemption(RivoRecord):
    id: Any = None
    code: str | None = None
    name: str | None = None
    reward: dict[str, Any] | None = None
    applied_at: str | None = None
    expires_at: str | None = None
    points_amount: int = 0
    credits_amount: Money | None = None


class Reward(RivoRecord):
    id: Any = None
    name: str | None = None
    purchase_type: str | None = None
    reward_type: str | None = None
    reward_value: Money | None = None
    points_amount: int | None = None
    source: str | None = None
    enabled: bool | None = None


class EarningRule(RivoRecord):
    id: Any = None
    name: str | None = None
    points_amount: int | None = None
    credits_amount: Money | None = None
    enabled: bool | None = None


class VipTier(RivoRecord):
    id: Any = None
    name: str | None = None
    threshold: Money | None = None


class Membership(Lenient):
    customer: dict[str, Any] | None = None
    membership: dict[str, Any] | None = None
    subscription: dict[str, Any] | None = None


class MembershipCancellation(RivoRecord):
    status: str | None = None
    message: str | None = None
    customer_id: Any = None
    cancellation_policy: str | None = None
    cancellation_request_id: Any = None


RecordT = TypeVar("RecordT", bound=BaseModel)


class Page(BaseModel):
    """One page of a list: its records (of the list's model) and the ``since_id`` of the next page (None: last)."""

    items: list[Any] = Field(default_factory=list)
    next_since_id: int | None = None


class RivoClient(HttpClient):
    partner = "rivo"

    def __init__(self, *, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api_key = api_key

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": self._api_key}

    # -- customers -------------------------------------------------------------------------------------------------

    def customer(self, email: str) -> LoyaltyCustomer | None:
        """The customer's loyalty profile, or None when Rivo does not know the email."""
        try:
            response = self._request("get_customer", "GET", f"/customers/{_path(email)}")
        except NotFoundError:
            return None
        return self._parse(response, LoyaltyCustomer)

    def list_customers(self, page: PageIn) -> Page:
        return self._list("list_customers", "/customers", LoyaltyCustomer, page)

    def update_customer_dob(self, email: str, dob: str) -> LoyaltyCustomer:
        """Set the customer's date of birth (``YYYY-MM-DD``)."""
        response = self._request("update_customer_dob", "PUT", f"/customers/{_path(email)}", data={"dob": dob})
        return self._parse(response, LoyaltyCustomer)

    # -- points events and redemptions (not idempotent: each call may add one) ---------------------------------

    def create_points_event(self, event: PointsEventIn, *, internal_note: str) -> PointsEvent:
        """Grant (or take) points and credits; ``internal_note`` names the request on Rivo's side."""
        applied = event.applied_at or datetime.now(UTC)
        form = {
            "customer_identifier": event.customer_email,
            "source": event.source,
            "applied_at": applied.isoformat(),
            "skip_email": "true" if event.skip_email else "false",
            "external_note": event.external_note or "",
            "internal_note": internal_note,
            "points_amount": str(event.points_amount),
            "credits_amount": f"{event.credits_amount:.2f}",
            "custom_action_name": event.custom_action_name or "",
        }
        return self._parse(self._request("create_points_event", "POST", "/points_events", data=form), PointsEvent)

    def create_redemption(self, redemption: RedemptionIn) -> Redemption:
        form = {
            "customer_identifier": redemption.customer_email,
            "reward_id": str(redemption.reward_id),
            "points_amount": str(redemption.points_amount),
            "credits_amount": f"{redemption.credits_amount:.2f}",
        }
        return self._parse(self._request("create_redemption", "POST", "/points_redemptions", data=form), Redemption)

    def redeem_points(self, redemption: RedeemPointsIn) -> Redemption:
        form = {"customer_identifier": redemption.customer_email, "points_amount": str(redemption.points_amount)}
        return self._parse(self._request("redeem_points", "POST", "/points_redemptions", data=form), Redemption)

    def list_points_events(self, page: PageIn, *, customer_email: str | None = None) -> Page:
        return self._list("list_points_events", "/points_events", PointsEvent, page, customer_email)

    def list_redemptions(self, page: PageIn, *, customer_email: str | None = None) -> Page:
        return self._list("list_redemptions", "/points_redemptions", Redemption, page, customer_email)

    def find_points_event(self, customer_email: str, internal_note: str, *, pages: int = 20) -> PointsEvent | None:
        """The customer's points event whose ``internal_note`` is ours, read back page by page; None when none is.
        IntegrationResponseError when the customer has more events than ``pages`` pages: absence is then unproven."""
        since: int | None = None
        for _ in range(pages):
            page = self.list_points_events(PageIn(since_id=since, limit=100), customer_email=customer_email)
            found = next((e for e in page.items if e.internal_note == internal_note), None)
            if found is not None or page.next_since_id is None:
                return found
            since = page.next_since_id
        raise IntegrationResponseError(f"rivo: over {pages * 100} points events; not all read", partner=self.partner)

    # -- rewards, rules, tiers, memberships ------------------------------------------------------------------------

    def list_earning_rules(self, page: PageIn) -> Page:
        return self._list("list_earning_rules", "/earning_rules", EarningRule, page)

    def list_rewards(self, page: PageIn, *, purchase_type: str | None = None) -> Page:
        extra = {"filters[purchase_type]": purchase_type} if purchase_type else {}
        return self._list("list_rewards", "/rewards", Reward, page, extra=extra)

    def get_vip_tier(self, tier_id: int) -> VipTier | None:
        try:
            response = self._request("get_vip_tier", "GET", f"/vip_tiers/{int(tier_id)}")
        except NotFoundError:
            return None
        return self._parse(response, VipTier)

    def list_vip_tiers(self, page: PageIn) -> Page:
        return self._list("list_vip_tiers", "/vip_tiers", VipTier, page)

    def get_membership(self, email: str) -> Membership | None:
        """The customer's membership and subscription, or None when they have none (Rivo answers an error body)."""
        try:
            response = self._request("get_membership", "GET", f"/memberships/{_path(email)}")
        except NotFoundError:
            return None
        return self._parse(response, Membership)

    def cancel_membership(self, email: str) -> MembershipCancellation:
        response = self._request("cancel_membership", "DELETE", f"/memberships/{_path(email)}/cancel")
        if response.status_code == 204 or not response.content:
            return MembershipCancellation(status="cancelled", message="Rivo answered 204")
        return self._parse(response, MembershipCancellation)

    # -- paging ----------------------------------------------------------------------------------------------------

    def _list(
        self,
        operation: str,
        path: str,
        model: type[RecordT],
        page: PageIn,
        customer_email: str | None = None,
        *,
        extra: dict[str, str] | None = None,
    ) -> Page:
        params: dict[str, Any] = {"pagination[limit]": page.limit, **(extra or {})}
        if page.since_id:
            params["pagination[since_id]"] = page.since_id
        if customer_email:
            params["filters[customer_identifier]"] = customer_email
        listed = self._parse(self._request(operation, "GET", path, params=params), _Listing)
        return Page(
            items=[model.model_validate(_attributes({"data": item})) for item in listed.data],
            next_since_id=listed.next_since_id,
        )


class _Listing(Lenient):
    data: list[dict[str, Any]] = Field(default_factory=list)
    next_since_id: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _links(cls, body: Any) -> Any:
        if isinstance(body, dict) and isinstance(body.get("links"), dict):
            return {**body, "next_since_id": body["links"].get("next_since_id")}
        return body


def _path(email: str) -> str:
    return quote(email.strip().lower(), safe="@")
