"""Order Protection both ways through `make run`'s stack: a claim's reship and refund, told to claimbridge over the
admin API, each reach the Order Protection sandbox once; an order's protection cancelled once; inventory pushed."""

import requests

from tests.e2e.test_claims_flow import sandbox_url, wait_for


def test_a_reship_and_a_refund_each_reach_order_protection_once_and_a_cancel_and_inventory_go_through(running):
    order_protection = sandbox_url(running, "order_protection")
    headers = {"x-webhook-secret": running.webhook_secret}
    base = f"{running.url}/stores/{running.store_id}/webhooks"
    created = {
        "claim_id": "e2e-op-1",
        "order_id": "e2e-op-order-1",
        "source_order_id": "shopify-e2e-op-1",
        "claim_type": "DAMAGED",
        "customer": {"id": "8802", "email": "ola@example.com", "first_name": "Ola"},
        "order": {"number": "9010", "currency": "USD", "total": "50.00"},
    }
    approval = {
        "claim_id": "e2e-op-1",
        "order_id": "e2e-op-order-1",
        "resolutions": [
            {"type": "RESHIP", "details": {"currency": "USD", "total_refund_amount": 30.0}},
            {"type": "REFUND", "details": {"currency": "USD", "total_refund_amount": 20.0}},
        ],
    }
    for event_id, route, topic, body in (
        ("e2e-op-c", "claims", "claim.created", created),
        ("e2e-op-a", "resolutions", "claim.approved", approval),
    ):
        requests.post(
            f"{base}/{route}", json={"id": event_id, "topic": topic, "body": body}, headers=headers, timeout=10
        )
    claim_path = f"/internal/stores/{running.store_id}/claims/e2e-op-1"
    wait_for(lambda: running.admin("GET", claim_path).json().get("claim", {}).get("claim_state") == "APPROVED")

    reports = [
        running.admin("POST", claim_path + "/resolution-report", json=body)
        for body in (
            {"type": "RESHIP", "reship_order_id": "shopify-reship-77"},
            {"type": "REFUND", "refund_id": "re_e2e_1", "amount": "20.00", "currency": "USD"},
            {"type": "RESHIP", "reship_order_id": "shopify-reship-77"},  # asked twice: one report
        )
    ]
    cancel = running.admin(
        "POST",
        f"/internal/stores/{running.store_id}/orders/shopify-e2e-op-1/protection/cancel",
        json={"reason": "the customer removed it at checkout"},
    )
    stock = {"items": [{"sku": f"E2E-{n}", "variant_id": f"e2e-v{n}", "quantity": n} for n in range(1200)]}
    pushed = running.admin("PUT", f"/internal/stores/{running.store_id}/inventory", json=stock)

    sent = wait_for(
        lambda: (
            (
                found := [
                    r
                    for r in requests.get(f"{order_protection}/__sandbox/state", timeout=5).json()["resolutions"]
                    if r["claim_id"] == "e2e-op-1"
                ]
            )
            and len(found) >= 2
            and found
        ),
        timeout=60,
    )
    pushed_last = wait_for(
        lambda: (
            (last := running.admin("GET", f"/internal/stores/{running.store_id}/inventory").json()).get("outcome")
            == "pushed"
            and last
        ),
        timeout=60,
    )
    cancelled = wait_for(
        lambda: (
            (
                c := running.admin(
                    "GET", f"/internal/stores/{running.store_id}/orders/shopify-e2e-op-1/protection/cancel"
                ).json()
            ).get("cancel_state")
            == "SENT"
            and c
        ),
        timeout=60,
    )

    assert [r.status_code for r in reports] == [202, 202, 200] and cancel.status_code == 202
    assert sorted((r["type"], r["reference"]) for r in sent) == [
        ("REFUND", "re_e2e_1"),
        ("RESHIP", "shopify-reship-77"),
    ]
    assert pushed.status_code == 202 and pushed_last["chunks"] == {"SENT": 3} and pushed_last["rows"] == 1200
    assert cancelled["cancel_state"] == "SENT"
    view = running.admin("GET", claim_path).json()
    assert {r["report_state"] for r in view["reports"]} == {"REPORTED"}
