"""The fakes of Richpanel, Rise.ai and the Order Protection API (shared/CONTRACTS.md), as strict as the contracts."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from local.sandbox.core import Partner, RateLimiter, Reply, Request
from local.sandbox.rivo import Rivo

RICHPANEL_CHANNELS = {
    "email",
    "message",
    "twilio-sms",
    "attentive",
    "aircall",
    "facebook_message",
    "instagram",
    "facebook_feed_comment",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _money(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


SMS_CHANNELS = frozenset({"twilio-sms", "attentive", "aircall"})


class Richpanel(Partner):
    """``x-richpanel-key``; 50 requests per 30 s per key, answered 429 (or 492: ``rate_limit_status``) + Retry-After."""

    name = "richpanel"

    def setup(self) -> None:
        self.limiter = RateLimiter(50, 30.0)
        self.state.setdefault(
            "teams",
            [
                {"id": "6f1c1b7e-3a51-4a2b-9f0e-1d2c3b4a5f60", "name": "Claims"},
                {"id": "0b8f2f0a-7c1d-4e8a-a1b2-c3d4e5f60718", "name": "Tier 2"},
            ],
        )
        self.state.setdefault("tickets", {})
        self.state.setdefault("revoked_keys", [])
        self.route("GET", "/v1/teams", self.teams)
        self.route("POST", "/v1/tickets", self.create_ticket)
        self.route("GET", r"/v1/tickets/(?P<ticket_id>[^/]+)", self.get_ticket)
        self.route("PUT", r"/v1/tickets/(?P<ticket_id>[^/]+)/snooze", self.snooze)

    def account(self, request: Request) -> str | None:
        return request.headers.get("x-richpanel-key")

    def authenticate(self, request: Request) -> Reply | None:
        key = request.headers.get("x-richpanel-key", "")
        if not key.startswith("rp_") or key.startswith("rp_revoked") or key in self.state["revoked_keys"]:
            return Reply(401, {"error": "Unauthorized", "message": "InvalidRequestError API key"})
        return None

    def teams(self, request: Request) -> Reply:
        return Reply(200, list(self.state["teams"]))

    def create_ticket(self, request: Request) -> Reply:
        body = request.json()
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, dict):
            return Reply(400, {"error": 'body must be {"ticket": {...}}'})
        via = ticket.get("via") or {}
        sender = (via.get("source") or {}).get("from") or {}
        problems = []
        if ticket.get("status") not in ("OPEN", "CLOSED", "SNOOZED"):
            problems.append("ticket.status must be OPEN, CLOSED or SNOOZED")
        if not isinstance((ticket.get("comment") or {}).get("body"), str):
            problems.append("ticket.comment.body is required")
        if via.get("channel") not in RICHPANEL_CHANNELS:
            problems.append("ticket.via.channel is not a known channel")
        if via.get("channel") in SMS_CHANNELS:  # an SMS conversation's contact is a phone number
            if not re.fullmatch(r"\+?[0-9]{6,15}", str(sender.get("number", ""))):
                problems.append("ticket.via.source.from.number must be a phone number on an SMS channel")
        elif not EMAIL.match(str(sender.get("address", ""))):
            problems.append("ticket.via.source.from.address must be an email")
        if problems:
            return Reply(400, {"error": "; ".join(problems)})
        ticket_id = str(ticket.get("id") or uuid.uuid4())  # the caller may choose the id (CONTRACTS.md)
        with self.lock:
            if ticket_id in self.state["tickets"]:
                return Reply(409, {"error": f"a ticket with id {ticket_id} already exists"})
            self.state["tickets"][ticket_id] = {**ticket, "id": ticket_id}
        return Reply(201, {"ticket": {"id": ticket_id, "status": ticket["status"]}})

    def get_ticket(self, request: Request, ticket_id: str) -> Reply:
        ticket = self.state["tickets"].get(ticket_id)
        if ticket is None:
            return Reply(404, {"error": "ticket not found"})
        return Reply(200, {"ticket": {"id": ticket_id, "status": ticket.get("status")}})

    def snooze(self, request: Request, ticket_id: str) -> Reply:
        if request.json() != {"snoozed_till": "0"}:
            return Reply(400, {"error": 'body must be {"snoozed_till": "0"}'})
        with self.lock:
            ticket = self.state["tickets"].get(ticket_id)
            if ticket is None:
                return Reply(404, {"error": "ticket not found"})
            ticket["status"] = "SNOOZED"
        return Reply(200, {"ticket": {"id": ticket_id, "status": "SNOOZED"}})


class Rise(Partner):
    """Rise.ai Credit API v2: ``x-rise-access-token``, 2 requests per second per token (429 above it)."""

    name = "rise"

    def setup(self) -> None:
        self.limiter = RateLimiter(2, 1.0)
        self.state.setdefault("cards", {})  # id -> card
        self.state.setdefault("loyalty", {})  # "<shop>|<customer id>" -> card id
        self.state.setdefault("revoked_tokens", [])
        self.state.setdefault("unknown_shops", [])
        self.state.setdefault("customers", {})  # email -> Shopify customer id, for cards Rise links to a customer
        self.route("POST", "/v2/gift-cards/issue/", self.issue)
        self.route("GET", "/v2/gift-cards/", self.customer_card)
        self.route("PUT", r"/v2/gift-cards/(?P<card_id>[^/]+)", self.top_up)

    def account(self, request: Request) -> str | None:
        return request.headers.get("x-rise-access-token")

    def _refused(self, request: Request, shop_url: str | None) -> Reply | None:
        token = request.headers.get("x-rise-access-token", "")
        if not token or token.startswith("revoked") or token in self.state["revoked_tokens"]:
            return Reply(401, {"error": "API key not found"})
        if not shop_url or not shop_url.endswith(".myshopify.com") or shop_url in self.state["unknown_shops"]:
            return Reply(404, {"error": "Store domain not found"})
        return None

    def issue(self, request: Request) -> Reply:
        body = request.json() or {}
        if refused := self._refused(request, body.get("shop_url")):
            return refused
        card = body.get("gift_card") or {}
        email = body.get("email_details") or {}
        balance = _money(card.get("balance"))
        if balance is None or balance <= 0:
            return Reply(422, {"error": "amount must be a positive number"})
        if not EMAIL.match(str(email.get("recipient_email", ""))):
            return Reply(422, {"error": "invalid email"})
        card_id = str(self.next_id())
        record = {
            "id": card_id,
            "code": "RISE-" + secrets.token_hex(6).upper(),
            "balance": str(balance),
            "initial_value": str(balance),
            "expires_on": None,
            "shop_url": body["shop_url"],
            "note": card.get("note"),
            "recipient_email": email.get("recipient_email"),
            "subject": email.get("subject"),
        }
        with self.lock:
            self.state["cards"][card_id] = record
            # A card issued to a known customer without one becomes their loyalty card.
            customer_id = self.state["customers"].get(str(email.get("recipient_email", "")).lower())
            loyalty_key = f"{body['shop_url']}|{customer_id}"
            if customer_id is not None and loyalty_key not in self.state["loyalty"]:
                self.state["loyalty"][loyalty_key] = card_id
        return Reply(200, {"id": card_id, "code": record["code"], "balance": record["balance"], "expires_on": None})

    def customer_card(self, request: Request) -> Reply:
        shop_url = request.arg("shop_url")
        if refused := self._refused(request, shop_url):
            return refused
        card_id = self.state["loyalty"].get(f"{shop_url}|{request.arg('customer_id')}")
        if card_id is None or card_id not in self.state["cards"]:
            return Reply(404, {"error": "Gift card not found"})
        card = self.state["cards"][card_id]
        return Reply(
            200,
            {
                "gift_card_id": card_id,
                "amount": card["balance"],
                "code": card["code"],
                "expires_on": card.get("expires_on"),
            },
        )

    def top_up(self, request: Request, card_id: str) -> Reply:
        body = request.json() or {}
        if refused := self._refused(request, body.get("shop_url")):
            return refused
        amount = _money(body.get("amount"))
        if amount is None or amount <= 0:
            return Reply(422, {"error": "amount must be a positive number"})
        if body.get("type") != "refund":
            return Reply(422, {"error": "type must be refund"})
        with self.lock:
            card = self.state["cards"].get(card_id)
            if card is None:
                return Reply(404, {"error": "Gift card not found"})
            card["balance"] = str(Decimal(card["balance"]) + amount)
        return Reply(
            200,
            {
                "gift_card_id": card_id,
                "amount": card["balance"],
                "code": card["code"],
                "expires_on": card.get("expires_on"),
            },
        )


class OrderProtection(Partner):
    """The Order Protection API: ``Authorization: Bearer``; orders to fetch, resolutions and inventory reported."""

    name = "order_protection"

    def setup(self) -> None:
        self.state.setdefault("orders", {})
        self.state.setdefault("resolutions", [])
        self.route("GET", r"/v1/orders/(?P<order_id>[^/]+)", self.get_order)
        self.route("PUT", r"/v1/orders/(?P<order_id>[^/]+)", self.put_order)
        self.route("GET", "/v1/claims", self.list_claims)
        self.route("POST", r"/v1/claims/(?P<claim_id>[^/]+)/resolution", self.report_resolution)
        self.route("PUT", "/v1/inventory", self.put_inventory)

    def authenticate(self, request: Request) -> Reply | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ").startswith("revoked"):
            return Reply(401, {"error": "Unauthorized"})
        return None

    def get_order(self, request: Request, order_id: str) -> Reply:
        order = self.state["orders"].get(order_id)
        return Reply(200, order) if order else Reply(404, {"error": "order not found"})

    def put_order(self, request: Request, order_id: str) -> Reply:
        body = request.json()
        if not isinstance(body, dict) or body.get("protectionStatus") not in (None, "ACTIVE", "CANCELLED"):
            return Reply(422, {"error": "body must be an object; protectionStatus is ACTIVE or CANCELLED"})
        with self.lock:
            self.state["orders"].setdefault(order_id, {}).update(request.json() or {})
        return Reply(200, self.state["orders"][order_id])

    def list_claims(self, request: Request) -> Reply:
        """Seeded ``claims`` (nodes), newest first, Relay paging: ``first`` (1 to 100) and ``after`` (an opaque
        cursor from ``pageInfo.endCursor``)."""
        try:
            first = int(request.arg("first") or 20)
            start = int(base64.b64decode(request.arg("after") or "").decode() or 0) if request.arg("after") else 0
        except ValueError:
            return Reply(400, {"error": "first must be a number and after a cursor from pageInfo.endCursor"})
        if not 1 <= first <= 100:
            return Reply(400, {"error": "first must be 1 to 100"})
        nodes = list(reversed(self.state.get("claims") or []))
        page = nodes[start : start + first]
        more = start + first < len(nodes)
        cursor = base64.b64encode(str(start + first).encode()).decode() if more else None
        return Reply(
            200,
            {
                "edges": [{"cursor": cursor, "node": node} for node in page],
                "pageInfo": {"hasNextPage": more, "endCursor": cursor},
            },
        )

    def report_resolution(self, request: Request, claim_id: str) -> Reply:
        body = request.json() or {}
        if body.get("type") not in ("RESHIP", "REFUND", "STORE_CREDIT") or not body.get("reference"):
            return Reply(422, {"error": "type and reference are required"})
        key = request.headers.get("idempotency-key")
        with self.lock:
            # The same key again is the same report: its first answer, nothing recorded twice (our contract choice).
            first = self.state.setdefault("reports_by_key", {}).get(key) if key else None
            if first is not None:
                return Reply(200, first)
            answer = {"id": str(self.next_id()), "claimId": claim_id}
            self.state["resolutions"].append({"claim_id": claim_id, "idempotency_key": key, **body})
            if key:
                self.state["reports_by_key"][key] = answer
        return Reply(200, answer)

    def put_inventory(self, request: Request) -> Reply:
        """Stock by variant; the same ``Idempotency-Key`` again is the same chunk: its first answer, applied once."""
        items = (request.json() or {}).get("items")
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and i.get("sourceVariantId") and isinstance(i.get("quantity"), int) for i in items
        ):
            return Reply(422, {"error": "items must be a list of {sourceVariantId, sku, quantity}"})
        key = request.headers.get("idempotency-key")
        with self.lock:
            first = self.state.setdefault("inventory_by_key", {}).get(key) if key else None
            if first is not None:
                return Reply(200, first)
            answer = {"updated": len(items)}
            self.state.setdefault("inventory_pushes", []).append({"idempotency_key": key, "rows": len(items)})
            stock = self.state.setdefault("inventory", {})
            for item in items:
                stock[str(item["sourceVariantId"])] = {"sku": item.get("sku"), "quantity": item["quantity"]}
            if key:
                self.state["inventory_by_key"][key] = answer
        return Reply(200, answer)


PARTNERS: dict[str, type[Partner]] = {
    "richpanel": Richpanel,
    "rise": Rise,
    "order_protection": OrderProtection,
}


PARTNERS["rivo"] = Rivo


class Postco(Partner):
    """PostCo's public API: ``Authorization: Bearer sk_...``; 100 requests per minute per key and 500 per shop (the
    key's shop: ``key_shops``); returns seeded with ``PUT /__sandbox/state`` ``{"returns": {"<id>": {...}}}``, listed
    newest first with an opaque cursor; errors as ``{"error": {"type", "code", "message"}}``."""

    name = "postco"

    def setup(self) -> None:
        self.limiter = RateLimiter(100, 60.0)
        self.shop_limiter = RateLimiter(500, 60.0)
        self.state.setdefault("returns", {})  # id -> return order (with an optional "shop")
        self.state.setdefault("key_shops", {})  # key -> shop; a key not listed is its own shop
        self.state.setdefault("revoked_keys", [])
        self.route("GET", "/return_orders", self.list_returns)
        self.route("GET", r"/return_orders/(?P<return_id>[^/]+)", self.get_return)

    def rate_limited_body(self) -> Any:
        return {"error": {"type": "rate_limit_error", "code": "rate_limited", "message": "Too many requests"}}

    def _key(self, request: Request) -> str:
        return request.headers.get("authorization", "").removeprefix("Bearer ").strip()

    def account(self, request: Request) -> str | None:
        return self._key(request) or None

    def authenticate(self, request: Request) -> Reply | None:
        key = self._key(request)
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer sk_") or key.startswith("sk_revoked") or key in self.state["revoked_keys"]:
            return _postco_error(401, "authentication_error", "invalid_api_key", "Invalid API key provided")
        wait = self.shop_limiter.check(self._shop(key))
        if wait is not None:
            reply = _postco_error(429, "rate_limit_error", "shop_rate_limited", "Too many requests for this shop")
            reply.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
            return reply
        return None

    def _shop(self, key: str) -> str:
        return str(self.state["key_shops"].get(key, key))

    def _returns_of(self, key: str) -> list[dict[str, Any]]:
        shop = self._shop(key)
        found = [
            {"id": int(return_id), **{k: v for k, v in record.items() if k != "shop"}}
            for return_id, record in self.state["returns"].items()
            if record.get("shop") in (None, shop)
        ]
        # Newest first: the most recently made (by id), whatever the return's own dates say.
        return sorted(found, key=lambda r: r["id"], reverse=True)

    def list_returns(self, request: Request) -> Reply:
        import base64

        try:
            limit = int(request.arg("limit") or "25")
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return _postco_error(400, "invalid_request_error", "parameter_invalid", "limit must be between 1 and 100")
        cursor = request.arg("cursor")
        start = 0
        if cursor:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
            except ValueError:
                return _postco_error(400, "invalid_request_error", "cursor_invalid", "cursor is not valid")
        with self.lock:
            returns = self._returns_of(self._key(request))
        page = returns[start : start + limit]
        more = start + limit < len(returns)
        next_cursor = base64.urlsafe_b64encode(f"offset:{start + limit}".encode()).decode() if more else None
        return Reply(200, {"data": page, "has_more": more, "next_cursor": next_cursor})

    def get_return(self, request: Request, return_id: str) -> Reply:
        with self.lock:
            found = next((r for r in self._returns_of(self._key(request)) if str(r["id"]) == return_id), None)
        if found is None:
            return _postco_error(404, "invalid_request_error", "resource_missing", f"No return order {return_id}")
        return Reply(200, {"data": found})


def _postco_error(status: int, kind: str, code: str, message: str) -> Reply:
    return Reply(status, {"error": {"type": kind, "code": code, "message": message}})


PARTNERS["postco"] = Postco
