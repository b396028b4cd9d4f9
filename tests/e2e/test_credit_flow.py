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


def test_postco_returns_seeded_in_the_sandbox_become_a_credit_and_a_bonus_in_rises_record_when_the_schedule_fires(
    running,
):
    from datetime import UTC, datetime, timedelta

    rise, postco = sandbox_url(running, "rise"), sandbox_url(running, "postco")
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
    returns = {
        "70001": {
            "status": "resolved",
            "refund_method": "store_credit",
            "refund_amount": "45.00",
            "currency": "USD",
            "cust_email": "rae@example.com",
            "cust_first_name": "Rae",
            "order_id": "gid-70001",
            "order_name": "#7001",
            "submitted_at": soon,
        },
        "70002": {"status": "open", "refund_method": "refund", "refund_amount": "9.00", "submitted_at": soon},
    }
    seeded = requests.put(f"{postco}/__sandbox/state", json={"returns": returns}, timeout=5)

    fired = running.admin("POST", "/__local/schedules/SyncFunction.PostcoSync")

    def rise_calls() -> list[dict]:
        calls = requests.get(f"{rise}/__sandbox/calls?path=/v2/gift-cards/", timeout=5).json()["calls"]
        ours = [
            c for c in calls if c.get("status") == 200 and ("postco:70001" in c["body"] or "gid-70001" in c["body"])
        ]
        return ours if len(ours) >= 2 else []

    issue, top_up = wait_for(rise_calls, timeout=60)
    view = wait_for(
        lambda: (
            (v := running.admin("GET", f"/internal/stores/{running.store_id}/returns/70001").json())
            and all(r.get("state") == "ISSUED" for r in v.get("ledger", [{}]))
            and v
        )
    )

    assert seeded.status_code == 200 and fired.status_code == 200
    assert issue["path"] == "/v2/gift-cards/issue/" and top_up["method"] == "PUT"
    assert json.loads(issue["body"])["email_details"]["subject"] == "Store Credit for Your Return of Order #7001"
    assert json.loads(issue["body"])["gift_card"]["balance"] == 45.0
    assert json.loads(top_up["body"])["amount"] == 4.5 and json.loads(top_up["body"])["order_id"] == "gid-70001"
    assert sorted((r["ledger_id"], r["amount"]) for r in view["ledger"]) == [
        ("postco:70001:bonus", "4.50"),
        ("postco:70001:credit", "45.00"),
    ]
    assert top_up["path"] == f"/v2/gift-cards/{next(r['card_id'] for r in view['ledger'])}"


def test_with_rivo_as_the_credit_provider_an_approved_store_credit_is_one_points_event_reported_back(running):
    from urllib.parse import parse_qs

    rivo, order_protection = sandbox_url(running, "rivo"), sandbox_url(running, "order_protection")
    store, secret = "e2e-rivo-store", "whsec_e2e_rivo_0123456789"
    saved = [
        running.admin(
            "PUT",
            f"/internal/stores/{store}",
            json={
                "name": "Rivo store",
                "shop_domain": "e2e-rivo.myshopify.com",
                "webhook_secrets": [secret],
                "credit_provider": "rivo",
            },
        ).status_code,
        running.admin(
            "PUT", f"/internal/integrations/rivo/stores/{store}", json={"api_key": "rivo_e2e_0123456789"}
        ).status_code,
        running.admin(
            "PUT", f"/internal/integrations/order_protection/stores/{store}", json={"api_token": "op_e2e_0123456789"}
        ).status_code,
    ]
    customers = requests.get(f"{rivo}/__sandbox/state", timeout=5).json()["customers"]
    customers["zoe@example.com"] = {"customer_id": 9901, "email": "zoe@example.com", "points_tally": 0}
    requests.put(f"{rivo}/__sandbox/state", json={"customers": customers}, timeout=5)
    base, headers = f"{running.url}/stores/{store}/webhooks", {"x-webhook-secret": secret}
    created = {
        "claim_id": "e2e-rivo-1",
        "order_id": "e2e-order-r1",
        "customer": {"id": "9901", "email": "zoe@example.com", "first_name": "Zoe"},
        "order": {"number": "9901", "currency": "USD", "total": "12.00"},
    }
    approval = {
        "claim_id": "e2e-rivo-1",
        "order_id": "e2e-order-r1",
        "resolutions": [{"type": "STORE_CREDIT", "details": {"currency": "USD", "total_refund_amount": 12.0}}],
    }
    answers = [
        requests.post(
            f"{base}/claims", json={"id": "r-1", "topic": "claim.created", "body": created}, headers=headers, timeout=10
        ).status_code,
        requests.post(
            f"{base}/resolutions",
            json={"id": "r-2", "topic": "claim.approved", "body": approval},
            headers=headers,
            timeout=10,
        ).status_code,
    ]

    reported = wait_for(
        lambda: [
            r
            for r in requests.get(f"{order_protection}/__sandbox/state", timeout=5).json()["resolutions"]
            if r["claim_id"] == "e2e-rivo-1"
        ],
        timeout=60,
    )
    made = [
        c
        for c in requests.get(f"{rivo}/__sandbox/calls?path=/points_events", timeout=5).json()["calls"]
        if c["method"] == "POST"
    ]

    assert saved == [201, 201, 201] and answers == [202, 202]
    (event,) = made
    sent = {k: v[-1] for k, v in parse_qs(event["body"]).items()}
    assert sent["customer_identifier"] == "zoe@example.com" and sent["credits_amount"] == "12.00"
    assert sent["internal_note"] == "claim:e2e-rivo-1:store_credit:claim_credit"
    (report,) = reported
    assert report["amount"] == "12.00" and report["type"] == "STORE_CREDIT"

    # A helpdesk agent's goodwill through the action API, as the README's curl example does it: once per key.
    goodwill = f"/internal/integrations/rivo/stores/{store}/actions/create_points_event"
    body = {"customer_email": "zoe@example.com", "points_amount": 100, "external_note": "Sorry for the wait"}
    given = [
        running.admin("POST", goodwill, json=body, headers={"Idempotency-Key": k})
        for k in ("e2e-goodwill-0001", "e2e-goodwill-0001")
    ]
    points = running.admin(
        "GET",
        f"/internal/integrations/rivo/stores/{store}/actions/get_customer",
        params={"customer_email": "zoe@example.com"},
    )

    assert [a.status_code for a in given] == [201, 200] and given[1].json()["replayed"] is True
    assert points.status_code == 200 and points.json()["data"]["points_tally"] == 100
