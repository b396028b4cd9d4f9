"""Every admin route over the emulators and the Richpanel sandbox, including every bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from claimbridge.store import store_pk

RICHPANEL_KEY = "rp_live_0123456789abcdef"
TEAM = "6f1c1b7e-3a51-4a2b-9f0e-1d2c3b4a5f60"
WEBHOOK_SECRET = "whsec_0123456789abcdef0123"
WIDGET_SECRET = "wgt_abcdef0123456789abcd"


def profile(**patch: Any) -> dict[str, Any]:
    return {
        "name": "Acme",
        "shop_domain": "acme.myshopify.com",
        "webhook_secrets": [WEBHOOK_SECRET],
        "widget_secret": WIDGET_SECRET,
        "credit_provider": "rise",
        "currency": "USD",
        "max_credit_amount": "250.00",
        **patch,
    }


def items_of(stack: Any, store_id: str) -> list[dict[str, Any]]:
    from claimbridge.runtime import table_store

    return table_store().query_partition(store_pk(store_id))


@pytest.fixture
def made_store(stack, store_id):
    answer = stack.admin("PUT", f"/internal/stores/{store_id}", profile())
    assert answer.status == 201, answer.body
    return store_id


def test_a_store_profile_is_created_then_read_back_with_secrets_masked(stack, store_id):
    created = stack.admin("PUT", f"/internal/stores/{store_id}", profile())
    read = stack.admin("GET", f"/internal/stores/{store_id}")

    assert created.status == 201
    assert read.status == 200
    body = read.json()
    assert body["shop_domain"] == "acme.myshopify.com"
    assert body["webhook_secrets"] == ["whsec_****0123"]
    assert body["widget_secret"] == "wgt_****abcd"
    assert body["max_credit_amount"] == "250.00"
    assert WEBHOOK_SECRET not in read.body.decode() and WIDGET_SECRET not in read.body.decode()
    assert read.headers["Cache-Control"] == "no-store"


def test_patching_a_store_without_secrets_keeps_them(stack, made_store):
    answer = stack.admin("PATCH", f"/internal/stores/{made_store}", {"name": "Acme 2"})

    assert answer.status == 200
    assert answer.json()["name"] == "Acme 2"
    assert answer.json()["webhook_secrets"] == ["whsec_****0123"]
    assert answer.json()["widget_secret"] == "wgt_****abcd"


def test_two_webhook_secrets_may_be_active_during_a_rotation(stack, made_store):
    answer = stack.admin("PUT", f"/internal/stores/{made_store}", profile(webhook_secrets=[WEBHOOK_SECRET, "n" * 24]))

    assert answer.json()["webhook_secrets"] == ["whsec_****0123", "****nnnn"]


def test_admin_routes_need_the_api_key(stack, made_store):
    for method, path in [
        ("GET", f"/internal/stores/{made_store}"),
        ("PUT", f"/internal/stores/{made_store}"),
        ("GET", f"/internal/integrations/richpanel/stores/{made_store}"),
        ("DELETE", f"/internal/integrations/richpanel/stores/{made_store}"),
        ("GET", f"/internal/integrations/richpanel/stores/{made_store}/teams"),
    ]:
        missing = stack.api.invoke(method, path, {}, json.dumps(profile(name="Hacked")))
        wrong = stack.api.invoke(method, path, {"x-api-key": "nope"}, json.dumps(profile(name="Hacked")))
        assert (missing.status, wrong.status) == (401, 401), (method, path)
    assert stack.admin("GET", f"/internal/stores/{made_store}").json()["name"] == "Acme"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"shop_domain": "acme.com"}, "shop_domain"),
        ({"shop_domain": "evil.myshopify.com.attacker.io"}, "shop_domain"),
        ({"webhook_secrets": []}, "webhook_secrets"),
        ({"webhook_secrets": ["short"]}, "webhook_secrets"),
        ({"widget_secret": "short"}, "widget_secret"),
        ({"credit_provider": "paypal"}, "credit_provider"),
        ({"currency": "dollars"}, "currency"),
        ({"max_credit_amount": "0"}, "max_credit_amount"),
        ({"name": ""}, "name"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_a_bad_store_field_gets_422_naming_it_and_nothing_is_written(stack, store_id, patch, field):
    answer = stack.admin("PUT", f"/internal/stores/{store_id}", profile(**patch))

    assert answer.status == 422
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert items_of(stack, store_id) == []


def test_a_new_store_without_webhook_secrets_is_refused(stack, store_id):
    body = profile()
    del body["webhook_secrets"]

    answer = stack.admin("PUT", f"/internal/stores/{store_id}", body)

    assert answer.status == 422
    assert answer.json()["errors"][0]["field"] == "webhook_secrets"
    assert items_of(stack, store_id) == []


@pytest.mark.parametrize("raw", ["not json", "", "[1, 2"])
def test_a_body_that_is_not_json_gets_400_and_nothing_is_written(stack, store_id, raw):
    answer = stack.api.invoke("PUT", f"/internal/stores/{store_id}", {"x-api-key": stack.admin_api_key}, raw)

    assert answer.status == 400
    assert "JSON" in answer.json()["message"]
    assert items_of(stack, store_id) == []


def test_a_bad_store_id_is_refused(stack):
    answer = stack.admin("PUT", "/internal/stores/bad%20id!", profile())

    assert answer.status == 422
    assert answer.json()["errors"][0]["field"] == "storeId"


def test_an_unknown_store_is_404(stack, store_id):
    assert stack.admin("GET", f"/internal/stores/{store_id}").status == 404


def test_richpanel_settings_are_checked_with_richpanel_sealed_and_read_back_masked(stack, sandbox, made_store):
    body = {"api_key": RICHPANEL_KEY, "default_team_id": TEAM, "default_channel": "twilio-sms"}

    saved = stack.admin("PUT", f"/internal/integrations/richpanel/stores/{made_store}", body)
    read = stack.admin("GET", f"/internal/integrations/richpanel/stores/{made_store}")

    assert saved.status == 201
    assert read.json() == {
        **saved.json(),
        "api_key": "rp_****cdef",
        "default_team_id": TEAM,
        "default_channel": "twilio-sms",
    }
    assert read.json()["status"]["state"] == "valid"
    (check,) = sandbox["richpanel"].calls("/v1/teams")
    assert check["headers"]["x-richpanel-key"] == RICHPANEL_KEY


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"api_key": "sk_wrong_form_123"}, "api_key"),
        ({"default_team_id": "Claims"}, "default_team_id"),
        ({"default_channel": "fax"}, "default_channel"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_richpanel_settings_get_422_naming_the_field_nothing_saved_nothing_sent(
    stack, sandbox, made_store, patch, field
):
    body = {"api_key": RICHPANEL_KEY, "default_team_id": TEAM, **patch}

    answer = stack.admin("PUT", f"/internal/integrations/richpanel/stores/{made_store}", body)

    assert answer.status == 422
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    assert stack.admin("GET", f"/internal/integrations/richpanel/stores/{made_store}").status == 404
    assert sandbox["richpanel"].calls() == []


def test_a_key_richpanel_refuses_gets_422_and_nothing_is_saved(stack, sandbox, made_store):
    answer = stack.admin(
        "PUT", f"/internal/integrations/richpanel/stores/{made_store}", {"api_key": "rp_revoked_0123456789"}
    )

    assert answer.status == 422
    assert answer.json()["errors"][0]["field"] == "api_key"
    assert stack.admin("GET", f"/internal/integrations/richpanel/stores/{made_store}").status == 404
    assert [c["status"] for c in sandbox["richpanel"].calls("/v1/teams")] == [401]


def test_richpanel_down_at_save_time_gets_503_and_nothing_is_saved(stack, sandbox, made_store):
    sandbox["richpanel"].faults(error_rate=1.0, error_status=503)

    answer = stack.admin("PUT", f"/internal/integrations/richpanel/stores/{made_store}", {"api_key": RICHPANEL_KEY})

    assert answer.status == 503
    assert "nothing was saved" in answer.json()["message"]
    assert stack.admin("GET", f"/internal/integrations/richpanel/stores/{made_store}").status == 404


def test_the_teams_route_lists_the_stores_richpanel_teams(stack, sandbox, made_store):
    stack.admin("PUT", f"/internal/integrations/richpanel/stores/{made_store}", {"api_key": RICHPANEL_KEY})

    answer = stack.admin("GET", f"/internal/integrations/richpanel/stores/{made_store}/teams")

    assert answer.status == 200
    assert {"id": TEAM, "name": "Claims"} in answer.json()["teams"]


def test_teams_of_a_store_without_richpanel_is_404(stack, made_store):
    assert stack.admin("GET", f"/internal/integrations/richpanel/stores/{made_store}/teams").status == 404


@pytest.mark.parametrize(
    ("name", "body", "masked"),
    [
        ("rise", {"credit_api_token": "rise_tok_0123456789"}, {"credit_api_token": "rise_****6789"}),
        ("rivo", {"api_key": "rivo_key_0123456789"}, {"api_key": "rivo_****6789"}),
        (
            "postco",
            {"api_key": "sk_live_0123456789", "bonus": {"type": "percent", "value": "10"}},
            {"api_key": "sk_****6789", "bonus": {"type": "percent", "value": "10"}},
        ),
        ("order_protection", {"api_token": "op_tok_0123456789"}, {"api_token": "op_****6789"}),
    ],
)
def test_each_integration_is_saved_read_masked_and_deleted(stack, made_store, name, body, masked):
    path = f"/internal/integrations/{name}/stores/{made_store}"

    assert stack.admin("PUT", path, body).status == 201
    read = stack.admin("GET", path).json()
    assert {key: read[key] for key in masked} == masked
    assert stack.admin("DELETE", path).status == 204
    assert stack.admin("GET", path).status == 404
    assert stack.admin("DELETE", path).status == 404


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("rise", {"credit_api_token": "has spaces in it"}, "credit_api_token"),
        ("rise", {}, "credit_api_token"),
        ("postco", {"api_key": "pk_live_0123456789"}, "api_key"),
        ("postco", {"api_key": "sk_live_0123456789", "bonus": {"type": "percent", "value": 120}}, "bonus.value"),
        ("postco", {"api_key": "sk_live_0123456789", "bonus": {"type": "double"}}, "bonus.type"),
        ("order_protection", {"api_token": "short"}, "api_token"),
    ],
)
def test_bad_integration_settings_get_422_naming_the_field_and_nothing_is_written(stack, made_store, name, body, field):
    answer = stack.admin("PUT", f"/internal/integrations/{name}/stores/{made_store}", body)

    assert answer.status == 422
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert stack.admin("GET", f"/internal/integrations/{name}/stores/{made_store}").status == 404


def test_an_unknown_integration_name_is_404(stack, made_store):
    for method in ("PUT", "GET", "DELETE"):
        answer = stack.admin(method, f"/internal/integrations/zendesk/stores/{made_store}", {"api_key": "x" * 10})
        assert answer.status == 404
        assert "zendesk" in answer.json()["message"]


def test_integration_settings_need_the_store_first(stack, store_id):
    answer = stack.admin("PUT", f"/internal/integrations/rise/stores/{store_id}", {"credit_api_token": "t" * 12})

    assert answer.status == 404
    assert items_of(stack, store_id) == []


def test_no_plaintext_secret_is_anywhere_in_the_table(stack, sandbox, made_store):
    secrets_sent = {
        "richpanel": ("api_key", RICHPANEL_KEY),
        "rise": ("credit_api_token", "rise_plaintext_canary_42"),
        "rivo": ("api_key", "rivo_plaintext_canary_42"),
        "postco": ("api_key", "sk_plaintext_canary_42"),
        "order_protection": ("api_token", "op_plaintext_canary_42"),
    }
    for name, (field, value) in secrets_sent.items():
        answer = stack.admin("PUT", f"/internal/integrations/{name}/stores/{made_store}", {field: value})
        assert answer.status == 201, answer.body

    dump = json.dumps(stack.emulators.client("dynamodb").scan(TableName=stack.resources.ref("MainTable"))["Items"])

    for _, value in secrets_sent.values():
        assert value not in dump
    assert WEBHOOK_SECRET not in dump
    assert WIDGET_SECRET not in dump
    assert "rp_****cdef" in dump  # the masked form is what is kept readable
