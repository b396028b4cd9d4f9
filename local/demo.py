"""``make demo``: a claim and its store-credit approval sent to the running ``make run`` stack, as Order Protection
sends them, and what came of them: the Richpanel ticket, its snooze, the Rise card, the report back.

It reads the admin key and the demo store's webhook secret from the data folder ``make run`` keeps them in
(``CLAIMBRIDGE_LOCAL_DATA``, default ``.local-data``) and the API from ``PORT`` (default 3000).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from local.stack import DEFAULT_DATA_DIR

STORE = "demo-store"
WAIT_S = 60.0


def _post(url: str, secret: str, envelope: dict[str, Any]) -> int:
    answer = requests.post(url, json=envelope, headers={"x-webhook-secret": secret}, timeout=15)
    return answer.status_code


def main() -> int:
    data = Path(os.environ.get("CLAIMBRIDGE_LOCAL_DATA") or DEFAULT_DATA_DIR)
    kept_file = data / "stack.json"
    if not kept_file.exists():
        print(f"no {kept_file}: start the stack first with `make run` (in another terminal)")
        return 1
    kept = json.loads(kept_file.read_text())
    api = f"http://127.0.0.1:{os.environ.get('PORT', '3000')}"
    admin = {"x-api-key": os.environ.get("CLAIMBRIDGE_ADMIN_API_KEY") or kept["admin_api_key"]}
    secret = os.environ.get("CLAIMBRIDGE_DEMO_WEBHOOK_SECRET") or kept["demo_webhook_secret"]
    try:
        requests.get(f"{api}/internal/stores/{STORE}", headers=admin, timeout=5).raise_for_status()
    except requests.RequestException as error:
        print(f"the stack does not answer at {api} ({error}): start it with `make run` (in another terminal)")
        return 1

    claim_id = "demo-" + uuid.uuid4().hex[:8]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    created = {
        "id": f"evt-{claim_id}-created",
        "topic": "claim.created",
        "created_at": now,
        "body": {
            "claim_id": claim_id,
            "order_id": f"ord-{claim_id}",
            "source_order_id": "5551001",
            "claim_type": "DAMAGED",
            "claim_state": "NEW",
            "claim_description": "The mug arrived in pieces",
            "order_number": "1001",
            "customer": {"id": "7001", "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"},
            "order": {"number": "1001", "currency": "USD", "total": "25.00"},
        },
    }
    approved = {
        "id": f"evt-{claim_id}-approved",
        "topic": "claim.approved",
        "created_at": now,
        "body": {
            "claim_id": claim_id,
            "order_id": f"ord-{claim_id}",
            "resolutions": [{"type": "STORE_CREDIT", "details": {"currency": "USD", "total_refund_amount": 25.0}}],
        },
    }
    print(f"claim {claim_id} for demo-store, order #1001, ann@example.com, damaged; approved with $25.00 store credit")
    for route, envelope in (("claims", created), ("resolutions", approved)):
        status = _post(f"{api}/stores/{STORE}/webhooks/{route}", secret, envelope)
        print(f"  POST /stores/{STORE}/webhooks/{route:<12} {envelope['topic']:<15} -> {status}")

    view_url = f"{api}/internal/stores/{STORE}/claims/{claim_id}"
    deadline = time.monotonic() + WAIT_S
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = requests.get(view_url, headers=admin, timeout=10)
        view = answer.json() if answer.status_code == 200 else {}
        ledger = view.get("ledger") or [{}]
        if (
            view.get("ticket", {}).get("snoozed_at")
            and ledger[0].get("state") in ("ISSUED", "HELD", "FAILED")
            and (ledger[0].get("state") != "ISSUED" or ledger[0].get("report_state") == "REPORTED")
        ):
            break
        time.sleep(0.5)
    ticket = view.get("ticket", {})
    ledger = view.get("ledger") or [{}]
    row = ledger[0]
    print()
    print(f"  ticket    {ticket.get('id') or 'not yet'}   opened {ticket.get('opened_at') or '-'}")
    print(f"  snooze    {ticket.get('snoozed_at') or 'not yet'}")
    money = f"{row.get('amount', '')} {row.get('currency', '')}"
    print(f"  credit    {row.get('state', 'not yet')} {money}   card {row.get('card_id') or '-'}")
    print(f"  report    {row.get('report_state') or 'not yet'}")
    print()
    key = admin["x-api-key"]
    print("See it in the admin API:")
    print(f"  curl -s -H 'x-api-key: {key}' {view_url}")
    print(f"  curl -s -H 'x-api-key: {key}' {api}/internal/stores/{STORE}/ledger")
    print(f"  curl -s -H 'x-api-key: {key}' {api}/internal/queues")
    done = bool(ticket.get("snoozed_at")) and row.get("state") == "ISSUED" and row.get("report_state") == "REPORTED"
    if not done:
        print(f"\nnot everything happened within {WAIT_S:.0f} s: the timeline above and the logs say why")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
