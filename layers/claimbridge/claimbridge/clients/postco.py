"""PostCo's public returns API (shared/CONTRACTS.md "PostCo"): ``GET /return_orders`` newest first with cursor
paging, ``GET /return_orders/{id}``; ``Authorization: Bearer sk_...``; 100 requests per minute per key and 500 per
shop (callers pace through the table, as for Richpanel); errors as ``{"error": {"type", "code", "message"}}``.

PostCo has no webhooks and no confirmed filter by time: a sync pages from the newest until it reaches what it has
seen, and revisits the open returns it knows (they resolve later).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
from pydantic import Field

from claimbridge.clients.http import HttpClient, IntegrationStatusError
from claimbridge.models.webhooks import Lenient

PAGE_LIMIT = 100  # PostCo's most per page: the fewest requests against 100 per minute


class ReturnOrder(Lenient):
    id: int
    status: str = ""
    cust_email: str | None = None
    cust_first_name: str | None = None
    cust_last_name: str | None = None
    currency: str | None = None
    order_id: str | None = None
    order_name: str | None = None
    submitted_at: str | None = None
    refund_method: str | None = None
    refund_amount: Any = None  # exact as sent: parsed with claimbridge.money in the return's currency

    @property
    def qualifies(self) -> bool:
        """Our choice (CONTRACTS.md): resolved, and refunded as store credit."""
        return self.status == "resolved" and self.refund_method == "store_credit"

    @property
    def is_open(self) -> bool:
        """Not settled yet: it may still come to qualify, so a sync revisits it."""
        return self.status not in ("resolved", "rejected", "cancelled", "canceled", "closed")


class ReturnPage(Lenient):
    data: list[ReturnOrder] = Field(default_factory=list)
    has_more: bool = False
    next_cursor: str | None = None


class _One(Lenient):
    data: ReturnOrder


class PostcoClient(HttpClient):
    partner = "postco"

    def __init__(self, *, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key = api_key

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._key}"}

    def list_returns(self, *, cursor: str | None = None, limit: int = PAGE_LIMIT) -> ReturnPage:
        """One page, newest first; ``next_cursor`` (None on the last page) asks for the next."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._parse(self._request("list_returns", "GET", "/return_orders", params=params), ReturnPage)

    def get_return(self, return_id: int) -> ReturnOrder:
        path = f"/return_orders/{quote(str(return_id), safe='')}"
        return self._parse(self._request("get_return", "GET", path), _One).data

    def check_key(self) -> None:
        """The cheapest authenticated read: the integration's health check and the check on save."""
        self.list_returns(limit=1)

    def _status_error(self, response: requests.Response) -> IntegrationStatusError:
        """PostCo's own words (``error.code``: ``message``) in the error, for the timeline and the operator."""
        error = super()._status_error(response)
        try:
            detail = response.json().get("error") or {}
        except ValueError:
            return error
        if isinstance(detail, dict) and detail.get("code"):
            error.args = (f"{error.args[0]} {detail.get('code')}: {str(detail.get('message', ''))[:200]}",)
        return error
