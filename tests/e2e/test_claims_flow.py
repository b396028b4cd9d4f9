"""A claim through `make run`'s stack over HTTP: signed webhooks in, one ticket and one snooze in the sandbox."""

import re
import time

import requests


def sandbox_url(running, partner: str) -> str:
    found = re.search(rf"{partner}=(http://\S+)", running.banner)
    assert found, partner
    return found.group(1)


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    return check()


def test_a_signed_claim_then_its_approval_open_one_ticket_and_snooze_it(running):
    richpanel = sandbox_url(running, "richpanel")
    headers = {"x-webhook-secret": running.webhook_secret}
    claim = {
        "claim_id": "e2e-claim-1",
        "order_id": "e2e-order-1",
        "claim_type": "STOLEN",
        "claim_state": "NEW",
        "customer": {"email": "dee@example.com", "first_name": "Dee"},
        "order": {"number": "5005", "currency": "USD", "total": "19.99", "items": []},
    }
    base = f"{running.url}/stores/{running.store_id}/webhooks"

    created = requests.post(
        f"{base}/claims", json={"id": "e2e-evt-1", "topic": "claim.created", "body": claim}, headers=headers, timeout=10
    )
    unsigned = requests.post(
        f"{base}/claims", json={"id": "e2e-evt-x", "topic": "claim.created", "body": claim}, timeout=10
    )
    ticket_calls = wait_for(
        lambda: requests.get(f"{richpanel}/__sandbox/calls?path=/v1/tickets", timeout=5).json()["calls"]
    )
    approved = requests.post(
        f"{base}/resolutions",
        json={
            "id": "e2e-evt-2",
            "topic": "claim.approved",
            "body": {"claim_id": "e2e-claim-1", "order_id": "e2e-order-1", "resolutions": [{"type": "REFUND"}]},
        },
        headers=headers,
        timeout=10,
    )
    calls = wait_for(
        lambda: (
            [
                c
                for c in requests.get(f"{richpanel}/__sandbox/calls?path=/v1/tickets", timeout=5).json()["calls"]
                if c["method"] == "PUT"
            ]
            and requests.get(f"{richpanel}/__sandbox/calls?path=/v1/tickets", timeout=5).json()["calls"]
        )
    )

    assert (created.status_code, unsigned.status_code, approved.status_code) == (202, 401, 202)
    assert len(ticket_calls) == 1
    assert [(c["method"], c["status"]) for c in calls] == [("POST", 201), ("PUT", 200)]
    assert calls[1]["body"] == '{"snoozed_till": "0"}'
    # the worker records the snooze just after Richpanel answers it: wait for that, not for the call alone
    view = wait_for(
        lambda: (
            answer
            if (answer := running.admin("GET", f"/internal/stores/{running.store_id}/claims/e2e-claim-1").json())[
                "ticket"
            ]["snoozed_at"]
            else None
        )
    )
    assert view["claim"]["claim_state"] == "APPROVED"
    assert view["ticket"]["snoozed_at"]
