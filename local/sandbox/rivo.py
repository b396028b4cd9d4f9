"""Rivo's merchant API as the sandbox speaks it (shared/CONTRACTS.md "Rivo"; seeds/002): the raw key in
``Authorization``, form-encoded POST and PUT bodies, JSON:API answers (``{"data": {"id", "type", "attributes"}}``;
lists add ``links.next_since_id``), money as decimal strings, 15 requests per second per key.

Seed with ``PUT /__sandbox/state``: ``customers`` (email -> attributes), ``rewards``, ``earning_rules``, ``vip_tiers``
(lists), ``memberships`` (email -> {"membership", "subscription"}), ``revoked_keys``. Points events and redemptions
made through the API are kept (``points_events``, ``redemptions``) and move the customer's tallies.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from local.sandbox.core import Partner, RateLimiter, Reply, Request

MAX_PAGE = 100


def _error(status: int, title: str, detail: str = "") -> Reply:
    return Reply(status, {"errors": [{"status": str(status), "title": title, "detail": detail or title}]})


def _resource(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(record.get("id", "")), "type": kind, "attributes": record}


def _decimal(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Rivo(Partner):
    """Rivo's merchant API: raw key in ``Authorization``; 15 requests per second per key; JSON:API answers."""

    name = "rivo"

    def setup(self) -> None:
        self.limiter = RateLimiter(15, 1.0)
        for name in ("customers", "memberships"):
            self.state.setdefault(name, {})
        for name in ("points_events", "redemptions", "rewards", "earning_rules", "vip_tiers", "revoked_keys"):
            self.state.setdefault(name, [])
        self.route("GET", "/customers", self.list_customers)
        self.route("GET", r"/customers/(?P<email>[^/]+)", self.customer)
        self.route("PUT", r"/customers/(?P<email>[^/]+)", self.update_customer)
        self.route("POST", "/points_events", self.create_points_event)
        self.route("GET", "/points_events", self.list_points_events)
        self.route("POST", "/points_redemptions", self.create_redemption)
        self.route("GET", "/points_redemptions", self.list_redemptions)
        self.route("GET", "/earning_rules", lambda request: self._page(request, "earning_rule", "earning_rules"))
        self.route("GET", "/rewards", self.list_rewards)
        self.route("GET", "/vip_tiers", lambda request: self._page(request, "vip_tier", "vip_tiers"))
        self.route("GET", r"/vip_tiers/(?P<tier_id>[^/]+)", self.vip_tier)
        self.route("GET", r"/memberships/(?P<email>[^/]+)", self.membership)
        self.route("DELETE", r"/memberships/(?P<email>[^/]+)/cancel", self.cancel_membership)

    def account(self, request: Request) -> str | None:
        return request.headers.get("authorization")

    def authenticate(self, request: Request) -> Reply | None:
        key = request.headers.get("authorization", "")
        if not key or key.startswith(("Bearer ", "revoked")) or key in self.state["revoked_keys"]:
            return _error(401, "Unauthorized", "API key is invalid")
        if request.method in ("POST", "PUT") and request.body:
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith("application/x-www-form-urlencoded"):
                return _error(415, "Unsupported Media Type", "bodies are form-encoded")
        return None

    def rate_limited_body(self) -> Any:
        return {"errors": [{"status": "429", "title": "Too Many Requests"}]}

    # -- customers -------------------------------------------------------------------------------------------------

    def _customer_of(self, identifier: str) -> dict[str, Any] | None:
        identifier = unquote(identifier).strip().lower()
        found = self.state["customers"].get(identifier)
        if found is None:  # a Shopify customer id works as an identifier too
            found = next((c for c in self.state["customers"].values() if str(c.get("customer_id")) == identifier), None)
        return found

    def customer(self, request: Request, email: str) -> Reply:
        attributes = self._customer_of(email)
        if attributes is None:
            return _error(404, "Customer not found")
        return Reply(200, {"data": _resource("customer", {**attributes, "id": attributes.get("customer_id")})})

    def list_customers(self, request: Request) -> Reply:
        records = [{**c, "id": c.get("customer_id")} for c in self.state["customers"].values()]
        return self._listed(request, "customer", records)

    def update_customer(self, request: Request, email: str) -> Reply:
        attributes = self._customer_of(email)
        if attributes is None:
            return _error(404, "Customer not found")
        dob = request.form().get("dob", "")
        try:
            datetime.strptime(dob, "%Y-%m-%d")
        except ValueError:
            return _error(422, "Unprocessable Entity", "dob must be a date YYYY-MM-DD")
        with self.lock:
            attributes.update({"dob": dob, "customer_dob": dob, "dob_last_updated_at": _now()})
        return Reply(200, {"data": _resource("customer", {**attributes, "id": attributes.get("customer_id")})})

    # -- points events and redemptions -------------------------------------------------------------------------

    def create_points_event(self, request: Request) -> Reply:
        form = request.form()
        customer = self._customer_of(form.get("customer_identifier", ""))
        if customer is None:
            return _error(404, "Customer not found")
        points = _decimal(form.get("points_amount", "0"))
        credit_amount = _decimal(form.get("credits_amount", "0"))
        if points is None or credit_amount is None or points != points.to_integral_value():
            return _error(422, "Unprocessable Entity", "points_amount must be an integer, credits_amount a number")
        if points == 0 and credit_amount == 0:
            return _error(422, "Unprocessable Entity", "points_amount or credits_amount is required")
        with self.lock:
            event = {
                "id": self.next_id(),
                "customer_email": customer["email"],
                "customer_id": customer.get("customer_id"),
                "points_amount": int(points),
                "credits_amount": f"{credit_amount:.2f}",
                "source": form.get("source") or "api",
                "applied_at": form.get("applied_at") or _now(),
                "skip_email": form.get("skip_email") == "true",
                "external_note": form.get("external_note") or None,
                "internal_note": form.get("internal_note") or None,
                "custom_action_name": form.get("custom_action_name") or None,
                "created_at": _now(),
            }
            self.state["points_events"].append(event)
            customer["points_tally"] = int(customer.get("points_tally", 0)) + int(points)
            customer["credits_tally"] = f"{Decimal(str(customer.get('credits_tally', '0'))) + credit_amount:.2f}"
        return Reply(201, {"data": _resource("points_event", event)})

    def list_points_events(self, request: Request) -> Reply:
        return self._listed(request, "points_event", self._of_customer(request, self.state["points_events"]))

    def create_redemption(self, request: Request) -> Reply:
        form = request.form()
        customer = self._customer_of(form.get("customer_identifier", ""))
        if customer is None:
            return _error(404, "Customer not found")
        reward = next((r for r in self.state["rewards"] if str(r.get("id")) == form.get("reward_id")), None)
        points = _decimal(form.get("points_amount") or "0")
        credit_amount = _decimal(form.get("credits_amount") or "0")
        if points is None or credit_amount is None:
            return _error(422, "Unprocessable Entity", "points_amount and credits_amount must be numbers")
        if form.get("reward_id") and reward is None:
            return _error(404, "Reward not found")
        balance = Decimal(str(customer.get("credits_tally", 0)))
        if points > int(customer.get("points_tally", 0)) or credit_amount > balance:
            return _error(422, "Unprocessable Entity", "not enough points or credits")
        with self.lock:
            redemption = {
                "id": self.next_id(),
                "code": "REDEEM-" + secrets.token_hex(6),
                "name": (reward or {}).get("name") or f"{points} points redeemed",
                "reward": reward,
                "customer": {k: customer.get(k) for k in ("customer_id", "email", "points_tally", "credits_tally")},
                "customer_email": customer["email"],
                "applied_at": _now(),
                "expires_at": None,
                "points_amount": int(points),
                "credits_amount": f"{credit_amount:.2f}",
            }
            self.state["redemptions"].append(redemption)
            customer["points_tally"] = int(customer.get("points_tally", 0)) - int(points)
            customer["credits_tally"] = f"{Decimal(str(customer.get('credits_tally', '0'))) - credit_amount:.2f}"
        return Reply(201, {"data": _resource("points_redemption", redemption)})

    def list_redemptions(self, request: Request) -> Reply:
        return self._listed(request, "points_redemption", self._of_customer(request, self.state["redemptions"]))

    def _of_customer(self, request: Request, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        wanted = request.arg("filters[customer_identifier]")
        if wanted is None:
            return records
        customer = self._customer_of(wanted)
        email = customer["email"] if customer else None
        return [r for r in records if r.get("customer_email") == email]

    # -- rewards, rules, tiers, memberships ------------------------------------------------------------------------

    def list_rewards(self, request: Request) -> Reply:
        kind = request.arg("filters[purchase_type]")
        rewards = [r for r in self.state["rewards"] if kind is None or r.get("purchase_type") == kind]
        return self._listed(request, "reward", rewards)

    def vip_tier(self, request: Request, tier_id: str) -> Reply:
        tier = next((t for t in self.state["vip_tiers"] if str(t.get("id")) == tier_id), None)
        if tier is None:
            return _error(404, "VIP tier not found")
        return Reply(200, {"data": _resource("vip_tier", tier)})

    def membership(self, request: Request, email: str) -> Reply:
        customer = self._customer_of(email)
        held = self.state["memberships"].get(unquote(email).lower())
        if customer is None or held is None:
            return Reply(404, {"error": "No membership found for this customer"})
        return Reply(200, {"customer": customer, **held})

    def cancel_membership(self, request: Request, email: str) -> Reply:
        customer = self._customer_of(email)
        held = self.state["memberships"].get(unquote(email).lower())
        if customer is None or held is None:
            return _error(404, "Membership not found")
        with self.lock:
            held["membership"]["queued_for_cancellation_at"] = _now()
        return Reply(
            200,
            {
                "data": {
                    "type": "membership_cancellation",
                    "attributes": {
                        "status": "pending",
                        "message": "Membership cancellation initiated",
                        "customer_id": customer.get("customer_id"),
                        "cancellation_policy": "end_of_period",
                        "cancellation_request_id": self.next_id(),
                    },
                }
            },
        )

    # -- paging ----------------------------------------------------------------------------------------------------

    def _page(self, request: Request, kind: str, name: str) -> Reply:
        return self._listed(request, kind, list(self.state[name]))

    def _listed(self, request: Request, kind: str, records: list[dict[str, Any]]) -> Reply:
        """``pagination[since_id]`` (records with a larger id) and ``pagination[limit]`` (at most 100)."""
        try:
            since = int(request.arg("pagination[since_id]") or 0)
            limit = int(request.arg("pagination[limit]") or 25)
        except ValueError:
            return _error(400, "Bad Request", "pagination parameters must be integers")
        if not 1 <= limit <= MAX_PAGE:
            return _error(400, "Bad Request", f"pagination[limit] must be 1 to {MAX_PAGE}")
        ordered = sorted((r for r in records if int(r.get("id") or 0) > since), key=lambda r: int(r.get("id") or 0))
        page = ordered[:limit]
        more = len(ordered) > limit
        return Reply(
            200,
            {
                "data": [_resource(kind, r) for r in page],
                "links": {"next_since_id": int(page[-1]["id"]) if more and page else None},
            },
        )
