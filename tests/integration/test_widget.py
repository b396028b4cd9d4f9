"""The widget: signed requests only, one customer's own data, escaped, HTML or JSON."""

from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

import pytest

from claimbridge.crypto import sign_widget
from tests.integration.conftest import claim_approved, claim_created, unpace_richpanel

WIDGET_SECRET = "wgt_integration_0123456789"


def signed(
    store_id: str, email: str, *, secret: str = WIDGET_SECRET, at: float | None = None, **extra: str
) -> dict[str, str]:
    params = {"store_id": store_id, "customer_email": email, "timestamp": str(int(at or time.time())), **extra}
    return {**params, "signature": sign_widget(secret, params)}


def get(flow, store_id: str, query: dict[str, str], *, headers: dict[str, str] | None = None, as_json=False):
    query = {k: v for k, v in query.items() if k != "store_id"}
    h = dict(headers or {})
    if as_json:
        h["accept"] = "application/json"
    return flow.stack.api.invoke("GET", f"/widget/stores/{store_id}?{urlencode(query)}", h)


@pytest.fixture
def shop(flow, sandbox, monkeypatch):
    unpace_richpanel(flow, monkeypatch)
    flow.configure_richpanel()
    flow.webhook("claim.created", claim_created("c-1", claim_description="<script>alert('x')</script>"), event_id="w1")
    flow.webhook("claim.approved", claim_approved("c-1"), event_id="w2")
    flow.webhook(
        "claim.created",
        claim_created("c-bob", customer={"email": "bob@example.com"}, order_number="2002", order={"number": "2002"}),
        event_id="w3",
    )
    flow.work()
    return flow


def test_a_signed_request_shows_the_customers_orders_and_claims_as_html(shop):
    answer = get(shop, shop.store_id, signed(shop.store_id, "ann@example.com"))

    page = answer.body.decode()
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Claim #c-1" in page and "APPROVED" in page and "Order #1001" in page
    assert "https://dashboard.orderprotection.com/claims/c-1" in page
    assert "c-bob" not in page and "2002" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_json_has_the_same_data(shop):
    answer = get(shop, shop.store_id, signed(shop.store_id, "ann@example.com"), as_json=True)

    body = answer.json()
    assert [c["claim_id"] for c in body["claims"]] == ["c-1"]
    assert body["claims"][0]["state"] == "APPROVED" and body["claims"][0]["ticket_id"]
    assert [o["number"] for o in body["orders"]] == ["1001"]


def test_responses_carry_no_store_nosniff_and_frame_ancestors_for_richpanel(shop):
    for answer in (
        get(shop, shop.store_id, signed(shop.store_id, "ann@example.com")),
        get(shop, shop.store_id, {"customer_email": "ann@example.com"}),
    ):
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors https://app.richpanel.com" in answer.headers["Content-Security-Policy"]


def test_the_signature_may_come_in_the_header(shop):
    query = signed(shop.store_id, "ann@example.com")
    signature = query.pop("signature")

    answer = get(shop, shop.store_id, query, headers={"X-Widget-Signature": signature})

    assert answer.status == 200


@pytest.mark.parametrize(
    "tamper",
    [
        "changed email",
        "changed timestamp",
        "changed store",
        "another store's secret",
        "expired",
        "future",
        "missing signature",
        "missing email",
        "missing timestamp",
        "extra parameter",
    ],
)
def test_every_unsigned_or_tampered_request_gets_401_and_no_data(shop, tamper):
    now = time.time()
    query = signed(shop.store_id, "ann@example.com", at=now)
    store_id = shop.store_id
    if tamper == "changed email":
        query["customer_email"] = "bob@example.com"
    elif tamper == "changed timestamp":
        query["timestamp"] = str(int(now) - 1)
    elif tamper == "changed store":
        store_id = "another-store"
    elif tamper == "another store's secret":
        query = signed(shop.store_id, "ann@example.com", secret="wgt_other_store_0123456789")
    elif tamper == "expired":
        query = signed(shop.store_id, "ann@example.com", at=now - 301)
    elif tamper == "future":
        query = signed(shop.store_id, "ann@example.com", at=now + 301)
    elif tamper == "extra parameter":
        query["view"] = "all"
    else:
        query.pop(tamper.removeprefix("missing ").replace("email", "customer_email"))

    answer = get(shop, store_id, query)

    assert answer.status == 401
    assert answer.body.decode().startswith("Unauthorized: ")
    assert "c-1" not in answer.body.decode() and "1001" not in answer.body.decode()


def test_a_store_without_a_widget_secret_gets_the_same_401_as_a_wrong_signature(flow):
    flow.stack.admin(
        "PUT",
        f"/internal/stores/{flow.store_id}-nowidget",
        {"name": "x", "shop_domain": "x.myshopify.com", "webhook_secrets": ["s" * 20]},
    )

    answer = get(flow, f"{flow.store_id}-nowidget", signed(f"{flow.store_id}-nowidget", "ann@example.com"))

    assert (answer.status, answer.body) == (401, b"Unauthorized: the signature does not match")


def test_a_customer_without_orders_or_claims_sees_an_empty_state(shop):
    answer = get(shop, shop.store_id, signed(shop.store_id, "nobody@example.com"))

    assert answer.status == 200
    assert "no orders or claims" in answer.body.decode()


def test_two_stores_and_two_customers_each_see_only_their_own(shop, stack, sandbox):
    from tests.integration.conftest import Flow

    other = Flow(stack, shop.store_id + "-b")
    other.create_store()
    other.webhook(
        "claim.created", claim_created("c-other", order={"number": "7777"}, order_number="7777"), event_id="o1"
    )
    other.work()

    views = {
        (store, email): get(shop, store, signed(store, email), as_json=True).json()
        for store in (shop.store_id, other.store_id)
        for email in ("ann@example.com", "bob@example.com")
    }

    assert [c["claim_id"] for c in views[(shop.store_id, "ann@example.com")]["claims"]] == ["c-1"]
    assert [c["claim_id"] for c in views[(shop.store_id, "bob@example.com")]["claims"]] == ["c-bob"]
    assert [c["claim_id"] for c in views[(other.store_id, "ann@example.com")]["claims"]] == ["c-other"]
    assert views[(other.store_id, "bob@example.com")]["claims"] == []


def test_the_admin_api_provisions_a_signed_widget_url_that_works(shop):
    answer = shop.stack.admin(
        "POST", f"/internal/stores/{shop.store_id}/widget-url", {"customer_email": "Ann@Example.com"}
    )
    bad = shop.stack.admin("POST", f"/internal/stores/{shop.store_id}/widget-url", {"customer_email": "nope"})

    url = answer.json()["url"]
    parts = urlsplit(url)
    page = shop.stack.api.invoke("GET", f"{parts.path}?{parts.query}", {})
    assert answer.status == 200 and url.startswith("http") and "signature=" in url
    assert page.status == 200 and "Claim #c-1" in page.body.decode()
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "customer_email"


RIVO_KEY = "rivo_key_0123456789"
ANN = {
    "customer_id": 42,
    "email": "ann@example.com",
    "loyalty_status": "member",
    "points_tally": 150,
    "credits_tally": "25.50",
    "vip_tier": {"id": 7, "name": "Gold"},
    "points_expire_at": "2027-03-01T00:00:00Z",
}


def test_with_rivo_the_widget_shows_tier_points_credits_and_their_expiry_fetched_with_the_raw_key(shop, sandbox):
    shop.configure("rivo", {"api_key": RIVO_KEY})
    sandbox["rivo"].seed({"customers": {"ann@example.com": ANN}})

    page = get(shop, shop.store_id, signed(shop.store_id, "ann@example.com")).body.decode()
    data = get(shop, shop.store_id, signed(shop.store_id, "ann@example.com"), as_json=True).json()

    assert "Loyalty: 150 points · 25.50 credits · VIP Gold · points expire 2027-03-01 00:00 UTC" in page
    assert data["loyalty"] == {
        "available": True,
        "member": True,
        "status": "member",
        "points": 150,
        "credits": "25.50",
        "vip_tier": "Gold",
        "points_expire_at": "2027-03-01T00:00:00Z",
    }
    (call,) = sandbox["rivo"].calls("/customers/")  # the second page came from the cache
    assert call["headers"]["authorization"] == RIVO_KEY


def test_a_customer_rivo_does_not_know_is_shown_as_not_a_member(shop, sandbox):
    shop.configure("rivo", {"api_key": RIVO_KEY})

    page = get(shop, shop.store_id, signed(shop.store_id, "ann@example.com")).body.decode()

    assert "Not a loyalty member." in page and "Claim #c-1" in page


@pytest.mark.parametrize("fault", [{"latency_ms": 2500}, {"error_rate": 1.0, "error_status": 503}])
def test_with_rivo_slow_or_down_the_widget_still_renders_and_says_so(shop, sandbox, fault):
    shop.configure("rivo", {"api_key": RIVO_KEY})
    sandbox["rivo"].seed({"customers": {"ann@example.com": ANN}})
    sandbox["rivo"].faults(**fault)

    answer = get(shop, shop.store_id, signed(shop.store_id, "ann@example.com"))

    page = answer.body.decode()
    assert answer.status == 200
    assert "Loyalty (Rivo) is unavailable right now" in page
    assert "Claim #c-1" in page and "Order #1001" in page


def test_the_loyalty_line_is_bounded_by_a_short_timeout():
    from claimbridge.widget import RIVO_TIMEOUT

    assert sum(RIVO_TIMEOUT) <= 1.0  # connect + read: the widget's budget for an optional line


def test_without_rivo_there_is_no_loyalty_line(shop):
    data = get(shop, shop.store_id, signed(shop.store_id, "ann@example.com"), as_json=True).json()

    assert data["loyalty"] is None
