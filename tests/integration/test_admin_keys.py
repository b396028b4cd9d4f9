"""Named admin keys (ADMIN_AUTH=KEYS, as `make run` runs): hashed in the table, limited to stores and a scope, each
route allowed or refused as its scope says, and the key's name on every audited action."""

from __future__ import annotations

from typing import Any

import pytest

from claimbridge.admin_auth import Caller, iam_caller, key_digest, needed_scope
from tests.integration.conftest import Flow


def make_key(flow: Flow, name: str, scope: str, stores: list[str] | None) -> str:
    body: dict[str, Any] = {"name": name, "scope": scope}
    if stores is not None:
        body["stores"] = stores
    answer = flow.stack.admin("POST", "/internal/admin-keys", body)
    assert answer.status == 201, answer.body
    return str(answer.json()["key"])


def call(flow: Flow, key: str, method: str, path: str, body: Any = None) -> int:
    import json

    headers = {"x-api-key": key, "content-type": "application/json"}
    return flow.stack.api.invoke(method, path, headers, json.dumps(body) if body is not None else None).status


@pytest.fixture
def other(stack, store_id):
    other = Flow(stack, store_id + "-other")
    other.create_store()
    return other


def test_a_support_agents_key_reads_and_signs_widget_urls_for_its_store_and_issues_nothing(flow, other):
    key = make_key(flow, f"agent-{flow.store_id}", "read", [flow.store_id])
    store = f"/internal/stores/{flow.store_id}"
    bonus = {"customer": {"email": "ann@example.com"}, "order_number": "1", "amount": "5.00", "reason": "r"}

    allowed = [
        call(flow, key, "GET", store),
        call(flow, key, "POST", f"{store}/widget-url", {"customer_email": "ann@example.com"}),
    ]
    refused = [
        call(flow, key, "GET", f"/internal/stores/{other.store_id}"),  # another store
        call(flow, key, "PATCH", store, {"name": "Renamed"}),  # settings
        call(flow, key, "POST", f"/internal/integrations/rise/stores/{flow.store_id}/bonus-credits", bonus),  # money
        call(flow, key, "GET", "/internal/queues"),  # every store's
        call(flow, key, "POST", "/internal/admin-keys", {"name": "sneaky", "scope": "full"}),
    ]

    assert allowed == [200, 200]
    assert refused == [403] * 5
    assert flow.stack.admin("GET", store).json()["name"] == "Flow store"  # the refused PATCH wrote nothing
    assert flow.messages("CreditQueue") == 0


def test_a_no_money_key_saves_integration_settings_but_nothing_that_moves_money(flow):
    key = make_key(flow, f"ops-{flow.store_id}", "no_money", [flow.store_id])
    bonus = {"customer": {"email": "ann@example.com"}, "order_number": "1", "amount": "5.00", "reason": "r"}
    store = f"/internal/stores/{flow.store_id}"

    token = call(
        flow, key, "PUT", f"/internal/integrations/rise/stores/{flow.store_id}", {"credit_api_token": "t" * 20}
    )
    money = call(flow, key, "POST", f"/internal/integrations/rise/stores/{flow.store_id}/bonus-credits", bonus)
    # a webhook secret of its own would let it forge approvals that pay credits; a cap would release held ones
    secret = call(flow, key, "PATCH", store, {"webhook_secrets": ["whsec_attacker_0123456789"]})
    cap = call(flow, key, "PATCH", store, {"max_credit_amount": "9999.00"})
    keys = call(flow, key, "GET", "/internal/admin-keys")

    assert (token, money, secret, cap, keys) == (201, 403, 403, 403, 403)
    assert flow.messages("CreditQueue") == 0
    assert flow.webhook("message.created", {"claim_id": "c", "message": "m"}, event_id="still").status == 202


def test_keys_are_stored_as_digests_listed_without_values_and_refused_at_once_when_deleted(flow):
    from claimbridge.runtime import table_store

    name = f"temp-{flow.store_id}"
    key = make_key(flow, name, "full", None)
    listed = flow.stack.admin("GET", "/internal/admin-keys").json()["keys"]
    stored = table_store().get(f"ADMINKEY#{key_digest(key)}", "KEY")
    before = call(flow, key, "GET", "/internal/queues")
    deleted = flow.stack.admin("DELETE", f"/internal/admin-keys/{name}")
    after = call(flow, key, "GET", "/internal/queues")

    assert stored is not None and key not in str(stored)
    entry = next(k for k in listed if k["name"] == name)
    assert entry["scope"] == "full" and entry["stores"] is None and entry["created_by"] == "key:bootstrap"
    assert key not in str(listed)
    assert (before, deleted.status, after) == (200, 204, 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "UPPER", "scope": "read"}, "name"),
        ({"name": "x", "scope": "root"}, "scope"),
        ({"name": "x", "scope": "read", "stores": []}, "stores"),
        ({"name": "x", "scope": "read", "stores": ["s" * 3000]}, "stores"),
    ],
)
def test_a_bad_key_request_is_422_and_makes_no_key(flow, body, field):
    answer = flow.stack.admin("POST", "/internal/admin-keys", body)

    assert answer.status == 422 and answer.json()["errors"][0]["field"] == field
    assert all(k["name"] != body["name"] for k in flow.stack.admin("GET", "/internal/admin-keys").json()["keys"])


def test_a_second_key_with_the_same_name_is_409(flow):
    make_key(flow, f"dup-{flow.store_id}", "read", None)

    again = flow.stack.admin("POST", "/internal/admin-keys", {"name": f"dup-{flow.store_id}", "scope": "full"})

    assert again.status == 409


def test_the_key_that_acted_is_named_in_the_audit(money):
    from claimbridge.credits import new_row
    from claimbridge.ledger import Ledger
    from claimbridge.runtime import store_directory, table_store

    info = store_directory().store(money.store_id)
    assert info is not None
    row, _ = Ledger(table_store()).create(
        new_row(
            info,
            pk=f"STORE#{money.store_id}#BONUS#9",
            sk="LEDGER#bonus#audit",
            kind="bonus_credit",
            amount=5,
            currency="USD",
            order_number="9",
            customer_email="ann@example.com",
            reason="audit",
        )
    )
    key = make_key(money, f"lead-{money.store_id}", "full", [money.store_id])
    path = f"/internal/stores/{money.store_id}/ledger/{row['ledger_id']}"

    status = call(money, key, "POST", f"{path}/actions", {"action": "cancel", "reason": "duplicate request"})

    assert status == 200
    (entry,) = money.stack.admin("GET", path).json()["audit"]
    assert entry["who"] == f"key:lead-{money.store_id}"


def test_scopes_nest_and_routes_need_what_they_touch():
    agent = Caller("key:a", "read", frozenset({"s1"}))

    assert needed_scope("GET", "/internal/queues") == "read"
    assert needed_scope("POST", "/internal/stores/{storeId}/widget-url") == "read"
    assert needed_scope("PUT", "/internal/stores/{storeId}") == "full"
    assert needed_scope("PATCH", "/internal/integrations/{name}/stores/{storeId}") == "no_money"
    assert needed_scope("GET", "/internal/admin-keys") == "full"
    assert needed_scope("POST", "/internal/stores/{storeId}/ledger/{entryId}/actions") == "full"
    assert needed_scope("POST", "/internal/queues/{name}/redrive") == "full"
    assert needed_scope("POST", "/internal/integrations/rivo/stores/{storeId}/actions/{action}") == "full"
    assert needed_scope("GET", "/internal/integrations/rivo/stores/{storeId}/actions/{action}") == "read"
    assert needed_scope("DELETE", "/internal/admin-keys/{name}") == "full"
    agent.check("read", "s1")
    with pytest.raises(Exception, match="scope read; this needs no_money"):
        agent.check("no_money", "s1")
    with pytest.raises(Exception, match="not allowed store s2"):
        agent.check("read", "s2")
    assert iam_caller({"userArn": "arn:aws:iam::1:user/ann"}).name == "arn:aws:iam::1:user/ann"
