"""Store credit through `make run`'s stack: a signed approval with STORE_CREDIT becomes one Rise card, one ledger row
ISSUED and one report to Order Protection."""

import json

import requests

from tests.e2e.test_claims_flow import sandbox_url, wait_for


def test_a_signed_store_credit_approval_issues_one_card_and_reports_it(running):
    rise = sandbox_url(running, "rise")
    order_protection = sandbox_url(running, "order_protection")
    headers = {"x-webhook-secret": running.webhook_secret}
    base = f"{running.url}/stores/{running.store_id}/webhooks"
    created = {
        "claim_id": "e2e-credit-1",
        "order_id": "e2e-order-9",
        "claim_type": "MISSING_ITEM",
        "customer": {"id": "8801", "email": "eve@example.com", "first_name": "Eve"},
        "order": {"number": "9009", "currency": "USD", "total": "30.00"},
    }
    approval = {
        "claim_id": "e2e-credit-1",
        "order_id": "e2e-order-9",
        "resolutions": [{"type": "STORE_CREDIT", "details": {"currency": "USD", "total_refund_amount": 30.0}}],
    }

    answers = [
        requests.post(
            f"{base}/claims",
            json={"id": "e2e-c-1", "topic": "claim.created", "body": created},
            headers=headers,
            timeout=10,
        ).status_code,
        requests.post(
            f"{base}/resolutions",
            json={"id": "e2e-c-2", "topic": "claim.approved", "body": approval},
            headers=headers,
            timeout=10,
        ).status_code,
        # the same approval again under another event id: still one card
        requests.post(
            f"{base}/resolutions",
            json={"id": "e2e-c-3", "topic": "claim.approved", "body": approval},
            headers=headers,
            timeout=10,
        ).status_code,
    ]
    reports = wait_for(lambda: requests.get(f"{order_protection}/__sandbox/state", timeout=5).json()["resolutions"])
    issues = requests.get(f"{rise}/__sandbox/calls?path=/v2/gift-cards/issue/", timeout=5).json()["calls"]
    view = running.admin("GET", f"/internal/stores/{running.store_id}/claims/e2e-credit-1").json()

    assert answers == [202, 202, 202]
    assert len(issues) == 1
    body = json.loads(issues[0]["body"])
    assert body["email_details"]["subject"] == "Gift Card for Claim #e2e-credit-1"
    assert body["gift_card"]["balance"] == 30.0
    (row,) = view["ledger"]
    assert row["state"] == "ISSUED" and row["amount"] == "30.00"
    assert [(r["claim_id"], r["type"], r["reference"], r["amount"]) for r in reports] == [
        ("e2e-credit-1", "STORE_CREDIT", row["card_id"], "30.00")
    ]
