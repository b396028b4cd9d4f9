"""The in-helpdesk widget: a signed request, one query on the customer index, a page an agent reads at a glance.

Signature (shared/DESIGN.md "Public interface"): the query carries ``customer_email``, ``timestamp`` (unix seconds)
and ``signature`` = hex(HMAC-SHA256(widget secret, every other parameter sorted by name as ``name=value`` joined by
``&``, ``store_id`` included, ``%``, ``&`` and ``=`` inside them escaped as ``%25``, ``%26``, ``%3D``)); the signature
may come in ``X-Widget-Signature`` instead.
"""

from __future__ import annotations

import hmac
import html
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from claimbridge.bounds import is_email, is_store_id
from claimbridge.claims import phone_identity, phone_number
from claimbridge.clients.http import IntegrationError
from claimbridge.clients.rivo import RivoClient
from claimbridge.crypto import customer_key, sign_widget
from claimbridge.directory import Integration, StoreDirectory
from claimbridge.ledger import card_code_masked
from claimbridge.models.webhooks import CLAIM_TYPES
from claimbridge.observability import logger
from claimbridge.store import Store, customer_pk

MAX_SKEW_S = 300
MAX_PARAMS = 10
TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)  # ASCII digits only: int() would take '²' or '٣' and 5,000 digits
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
UNKNOWN_STORE_KEY = "claimbridge: no such store"  # signs for a store that does not exist, so it costs the same
RIVO_TIMEOUT = (0.3, 0.7)  # the loyalty line is a nice-to-have: it never holds the page for more than a second
LOYALTY_CACHE_S = 60.0
LOYALTY_DOWN_CACHE_S = 15.0  # a slow Rivo is asked again after this, not on every page


def security_headers(frame_ancestors: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": f"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors {frame_ancestors}",
    }


class WidgetAuthError(Exception):
    """The request is not signed as it must be: 401 with this plain reason and no data."""


RETURN_PARTS = {"return_credit": "store credit", "return_bonus": "bonus"}


@dataclass(frozen=True)
class WidgetView:
    store_name: str
    customer_email: str
    orders: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    loyalty: dict[str, Any] | None = None  # None: the store has no Rivo
    returns: list[dict[str, Any]] = field(default_factory=list)  # PostCo returns credited as store credit

    def as_json(self) -> dict[str, Any]:
        return {
            "store": self.store_name,
            "customer_email": self.customer_email,
            "orders": self.orders,
            "claims": self.claims,
            "returns": self.returns,
            "loyalty": self.loyalty,
        }


def signed_query(
    secret: str, store_id: str, customer: str, now: float, *, by: str = "customer_email"
) -> dict[str, str]:
    """The widget's signed parameters for one customer, by email (or ``by="customer_phone"``)."""
    params = {"store_id": store_id, by: customer, "timestamp": str(int(now))}
    return {**params, "signature": sign_widget(secret, params)}


def widget_url(base_url: str, store_id: str, query: Mapping[str, str]) -> str:
    return f"{base_url.rstrip('/')}/widget/stores/{quote(store_id, safe='')}?" + urlencode(
        {k: v for k, v in query.items() if k != "store_id"}
    )


class WidgetService:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        dashboard_claim_url_template: str,
        rivo: Callable[[str], RivoClient] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._dashboard = dashboard_claim_url_template
        self._rivo = rivo
        self._clock = clock
        self._loyalty: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def view(self, store_id: str, query: Mapping[str, str], header_signature: str | None) -> WidgetView:
        # Every parameter is parsed and bounded before any look-up; an unknown store, one without a widget secret
        # and a wrong signature then get the same answer, so store ids cannot be probed.
        email, signature = self._check_shape(store_id, query, header_signature)
        info, rivo = self._directory.store_with(store_id, "rivo")  # one read: the secret as it is now, and Rivo
        secret = (info.secrets.get("widget_secret") if info else None) or ""
        signed = {k: v for k, v in query.items() if k != "signature"} | {"store_id": store_id}
        expected = sign_widget(secret or UNKNOWN_STORE_KEY, signed)  # the same work whether the store exists or not
        if not hmac.compare_digest(expected, signature) or info is None or not secret:
            raise WidgetAuthError("the signature does not match")
        index = customer_pk(store_id, customer_key(info.customer_hash_key, email))
        items = self._store.query_customer(index)
        credit_rows: dict[str, list[dict[str, Any]]] = {}
        returns: dict[str, dict[str, Any]] = {}
        for item in items:
            if item["GSI1SK"].startswith("CREDIT#") and item.get("claim_id"):
                credit_rows.setdefault(item["claim_id"], []).append(_credit(item))
            elif item["GSI1SK"].startswith("CREDIT#") and item.get("return_id"):
                credited = returns.setdefault(
                    item["return_id"],
                    {"return_id": item["return_id"], "order_number": item.get("order_number"), "credits": []},
                )
                credited["credits"].append({"kind": RETURN_PARTS.get(item["kind"], item["kind"]), **_credit(item)})
        orders = [_order(i) for i in items if i["GSI1SK"].startswith("ORDER#")]
        claims = [self._claim(i, credit_rows.get(i["claim_id"], [])) for i in items if i["GSI1SK"].startswith("CLAIM#")]
        by_phone = email.startswith("phone:")
        loyalty = None if by_phone else self._loyalty_of(store_id, email, rivo)  # Rivo knows customers by email
        who = "+" + email.removeprefix("phone:") if by_phone else email
        return WidgetView(info.profile.get("name", store_id), who, orders, claims, loyalty, list(returns.values()))

    def _loyalty_of(self, store_id: str, email: str, integration: Integration | None) -> dict[str, Any] | None:
        """Points, credits and VIP tier from Rivo: short timeout, cached; a slow or failing Rivo becomes a note."""
        if integration is None or not integration.valid or self._rivo is None:
            return None
        now = time.monotonic()
        cached = self._loyalty.get((store_id, email))
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            customer = self._rivo(integration.secrets["api_key"]).customer(email)
        except IntegrationError as error:
            logger.warning("widget: Rivo unavailable", store_id=store_id, error=type(error).__name__)
            loyalty: dict[str, Any] = {"available": False, "note": "Loyalty (Rivo) is unavailable right now"}
            self._loyalty[(store_id, email)] = (now + LOYALTY_DOWN_CACHE_S, loyalty)
            return loyalty
        if customer is None:
            loyalty = {"available": True, "member": False}
        else:
            loyalty = {
                "available": True,
                "member": True,
                "status": customer.loyalty_status,
                "points": customer.points_tally,
                "credits": _money(customer.credits_tally),
                "vip_tier": customer.vip_tier,
                "points_expire_at": customer.points_expire_at,  # when the points held now expire (Rivo's field)
            }
        self._loyalty[(store_id, email)] = (now + LOYALTY_CACHE_S, loyalty)
        return loyalty

    def _check_shape(self, store_id: str, query: Mapping[str, str], header_signature: str | None) -> tuple[str, str]:
        """The email and the signature of a well-formed, fresh request; WidgetAuthError naming what is wrong."""
        if not is_store_id(store_id):
            raise WidgetAuthError("the signature does not match")
        if len(query) > MAX_PARAMS or any(len(k) > 64 or len(v) > 512 for k, v in query.items()):
            raise WidgetAuthError(f"at most {MAX_PARAMS} query parameters of at most 512 characters")
        signature = query.get("signature") or header_signature or ""
        email = query.get("customer_email", "")
        phone = query.get("customer_phone", "")
        timestamp = query.get("timestamp", "")
        if not signature or not (email or phone) or not timestamp:
            raise WidgetAuthError("customer_email (or customer_phone), timestamp and signature are required")
        if not TIMESTAMP.fullmatch(timestamp):
            raise WidgetAuthError("timestamp must be unix seconds")
        if abs(self._clock() - int(timestamp)) > MAX_SKEW_S:
            raise WidgetAuthError("the signature has expired or is dated in the future")
        if not SIGNATURE.fullmatch(signature):
            raise WidgetAuthError("the signature must be 64 hexadecimal characters")
        if "store_id" in query and query["store_id"] != store_id:
            raise WidgetAuthError("the signature does not match")
        if not email:  # a customer known only by phone (claimbridge.claims.phone_identity)
            number = phone_number(phone)
            if number is None:
                raise WidgetAuthError("customer_phone must be a phone number (6 to 15 digits)")
            return phone_identity(number), signature.lower()
        if not is_email(email.strip().lower()):
            raise WidgetAuthError("customer_email must be an email address")
        return email.strip().lower(), signature.lower()

    def _claim(self, item: dict[str, Any], credit_rows: list[dict[str, Any]]) -> dict[str, Any]:
        resolutions = [
            {
                "type": r.get("type"),
                "amount": _money((r.get("details") or {}).get("total_refund_amount")),
                "currency": (r.get("details") or {}).get("currency"),
            }
            for r in item.get("resolutions") or []
        ]
        return {
            "claim_id": item["claim_id"],
            "type": item.get("claim_type"),
            "state": item.get("claim_state"),
            "created_at": item.get("created_at") or item.get("first_seen_at"),
            "description": item.get("description"),
            "order_number": item.get("order_number"),
            "resolutions": resolutions,
            "ticket_id": item.get("ticket_id"),
            "dashboard_url": self._dashboard.format(claim_id=item["claim_id"]),
            "credits": credit_rows,
            # what the merchant did for a reship or refund, and whether Order Protection has been told
            "reports": [
                {**report, "amount": _money(report.get("amount"))}
                for _, report in sorted((item.get("resolution_reports") or {}).items())
            ],
        }


def _report_line(report: dict[str, Any]) -> str:
    done = "Reshipped as order" if report.get("type") == "RESHIP" else "Refunded"
    amount = f" {report['amount']} {report.get('currency') or ''}" if report.get("type") == "REFUND" else ""
    told = "reported to Order Protection" if report.get("report_state") == "REPORTED" else "being reported"
    return (
        f"<div>{done} {html.escape(str(report.get('reference')))}{html.escape(amount)}"
        f" <span class=muted>({told})</span></div>"
    )


def _money(value: Any) -> str | None:
    return f"{Decimal(str(value)):.2f}" if value is not None else None


def _order(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": item.get("order_id"),
        "number": item.get("order_number"),
        "ordered_at": item.get("ordered_at"),
        "total": _money(item.get("total")),
        "currency": item.get("currency"),
        "protection": item.get("protection_state") or "UNKNOWN",
    }


def _credit(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": item.get("state"),
        "amount": _money(item.get("amount")),
        "currency": item.get("currency"),
        "code": card_code_masked(item),
        "reason": item.get("state_reason") or None,
    }


def _when(iso: Any) -> str:
    """``2026-11-22T20:53:00.463Z`` → ``2026-11-22 20:53 UTC``; anything else as it came."""
    text = str(iso or "")
    found = re.match(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})", text)
    return f"{found.group(1)} {found.group(2)} UTC" if found else text


def _credit_line(label: str, credit: dict[str, Any]) -> str:
    e = html.escape
    detail = f" · code {e(credit['code'])}" if credit["code"] else ""
    why = f" · {e(credit['reason'])}" if credit["reason"] and credit["state"] != "ISSUED" else ""
    return (
        f"<div>{e(label)}: {e(str(credit['state']).lower())} {e(str(credit['amount']))} "
        f"{e(str(credit['currency']))}{detail}{why}</div>"
    )


def render_html(view: WidgetView) -> str:
    """Server-rendered, no script, no external asset, every value escaped; readable at ~350 px."""
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'><title>Order Protection</title><style>",
        "body{font:13px/1.4 system-ui,sans-serif;margin:8px;color:#1d2330;max-width:420px}",
        "h1{font-size:14px;margin:0 0 8px}h2{font-size:13px;margin:12px 0 4px;color:#555}",
        ".card{border:1px solid #dde;border-radius:6px;padding:6px 8px;margin:4px 0}",
        ".muted{color:#667}.tag{display:inline-block;padding:0 5px;border-radius:8px;background:#eef;font-size:11px}",
        "a{color:#2457c5}</style></head><body>",
        f"<h1>{e(view.store_name)}: {e(view.customer_email)}</h1>",
    ]
    loyalty = view.loyalty
    if loyalty is not None and not loyalty["available"]:
        parts.append(f"<p class=muted>{e(loyalty['note'])}</p>")
    elif loyalty is not None and loyalty["member"]:
        tier = f" · VIP {e(str(loyalty['vip_tier']))}" if loyalty.get("vip_tier") else ""
        expiry = loyalty.get("points_expire_at")
        expires = f" · points expire {e(_when(expiry))}" if expiry and loyalty["points"] else ""
        parts.append(
            f"<p class=card>Loyalty: {e(str(loyalty['points']))} points · "
            f"{e(str(loyalty['credits'] or '0.00'))} credits{tier}{expires}</p>"
        )
    elif loyalty is not None:
        parts.append("<p class=muted>Not a loyalty member.</p>")
    if not view.orders and not view.claims and not view.returns:
        parts.append("<p class=muted>This customer has no orders or claims with Order Protection yet.</p>")
    if view.claims:
        parts.append(f"<h2>Claims ({len(view.claims)})</h2>")
        for claim in view.claims:
            parts.append("<div class=card>")
            parts.append(
                f"<b>Claim #{e(str(claim['claim_id']))}</b> <span class=tag>{e(str(claim['state']))}</span><br>"
            )
            kind = CLAIM_TYPES.get(str(claim["type"]), str(claim["type"]))
            parts.append(
                f"{e(kind)} · order #{e(str(claim['order_number'] or '?'))}"
                f" · <span class=muted>{e(_when(claim['created_at']))}</span>"
            )
            if claim.get("description"):
                parts.append(f"<div class=muted>{e(str(claim['description']))}</div>")
            for resolution in claim["resolutions"]:
                amount = (
                    f" {e(resolution['amount'])} {e(str(resolution['currency'] or ''))}" if resolution["amount"] else ""
                )
                parts.append(f"<div>Resolution: {e(str(resolution['type']))}{amount}</div>")
            parts.extend(_credit_line("Credit", credit) for credit in claim["credits"])
            parts.extend(_report_line(report) for report in claim["reports"])
            parts.append(
                f"<a href='{e(claim['dashboard_url'])}' target=_blank rel=noopener>Open in Order Protection</a>"
            )
            if claim.get("ticket_id"):
                parts.append(f" · <span class=muted>ticket {e(str(claim['ticket_id']))}</span>")
            parts.append("</div>")
    if view.returns:
        parts.append(f"<h2>Return credits ({len(view.returns)})</h2>")
        for credited in view.returns:
            parts.append(
                f"<div class=card><b>Return #{e(str(credited['return_id']))}</b> · "
                f"order #{e(str(credited['order_number'] or '?'))}"
            )
            parts.extend(_credit_line(credit["kind"].capitalize(), credit) for credit in credited["credits"])
            parts.append("</div>")
    if view.orders:
        parts.append(f"<h2>Orders ({len(view.orders)})</h2>")
        for order in view.orders:
            total = f"{e(str(order['total']))} {e(str(order['currency'] or ''))}" if order["total"] else ""
            parts.append(
                f"<div class=card><b>Order #{e(str(order['number'] or order['order_id']))}</b> {total}<br>"
                f"<span class=muted>{e(_when(order['ordered_at']))}</span> "
                f"<span class=tag>protection: {e(str(order['protection']).lower())}</span></div>"
            )
    parts.append("</body></html>")
    return "".join(parts)
