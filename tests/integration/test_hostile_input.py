"""Input an attacker sends (issue 9's probe, each item reproduced): a clear 4xx naming the problem, never a 5xx, and
nothing written, sent or lost."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from claimbridge.crypto import sign_widget
from claimbridge.store import store_pk
from tests.integration.conftest import WEBHOOK_SECRET, Flow, claim_created

WIDGET_SECRET = "wgt_integration_0123456789"


def table_items(store_id: str) -> list[dict[str, Any]]:
    from claimbridge.runtime import table_store

    return table_store().query_partition(store_pk(store_id))


def widget(flow: Flow, store_id: str, query: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    from urllib.parse import urlencode

    return flow.stack.api.invoke("GET", f"/widget/stores/{store_id}?{urlencode(query)}", headers or {})


def signed(store_id: str, email: str = "ann@example.com", secret: str = WIDGET_SECRET) -> dict[str, str]:
    params = {"store_id": store_id, "customer_email": email, "timestamp": str(int(time.time()))}
    return {k: v for k, v in params.items() if k != "store_id"} | {"signature": sign_widget(secret, params)}


# -- the widget, which needs no authentication to reach --------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [("\u00b2", "timestamp must be unix seconds"), ("9" * 5000, "at most 10 query parameters")],
)
def test_a_widget_timestamp_that_is_not_ascii_digits_or_is_huge_is_refused_401(flow, timestamp, reason):
    query = signed(flow.store_id) | {"timestamp": timestamp}

    answer = widget(flow, flow.store_id, query)

    assert answer.status == 401
    assert reason in answer.body.decode()


def test_an_unknown_store_answers_exactly_as_a_known_store_with_a_wrong_signature(flow):
    wrong = signed(flow.store_id, secret="wgt_not_the_secret_0000000")
    unknown = signed("no-such-store-here", secret="wgt_not_the_secret_0000000")
    huge = signed("s" * 3000, secret="wgt_not_the_secret_0000000")

    answers = [
        widget(flow, flow.store_id, wrong),
        widget(flow, "no-such-store-here", unknown),
        widget(flow, "s" * 3000, huge),
    ]

    assert {(a.status, a.body) for a in answers} == {(401, b"Unauthorized: the signature does not match")}


def test_a_non_ascii_signature_is_refused_401_not_a_crash(flow):
    query = signed(flow.store_id) | {"signature": "\u00e9" * 64}

    answer = widget(flow, flow.store_id, query)

    assert answer.status == 401
    assert b"64 hexadecimal" in answer.body


def test_a_well_signed_widget_request_still_opens(flow):
    answer = widget(flow, flow.store_id, signed(flow.store_id), {"accept": "application/json"})

    assert answer.status == 200
    assert answer.json()["customer_email"] == "ann@example.com"


# -- webhooks -------------------------------------------------------------------------------------------------------


def _raw_webhook(flow: Flow, raw: str) -> Any:
    headers = {"content-type": "application/json", "x-webhook-secret": WEBHOOK_SECRET}
    return flow.stack.api.invoke("POST", f"/stores/{flow.store_id}/webhooks/claims", headers, raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[" * 100_000, "body nests too deeply"),
        ('{"id": "x\\ud800", "topic": "claim.created", "body": {"claim_id": "c1"}}', "field id must be printable"),
        ('{"id": "e1", "topic": "claim.created\\u0000", "body": {"claim_id": "c1"}}', "field topic must be printable"),
        (json.dumps({"id": "e" * 201, "topic": "claim.created", "body": {}}), "field id must be at most 200"),
        (
            json.dumps({"id": "e1", "topic": "claim.created", "body": claim_created("c" * 3000)}),
            "body.claim_id must be at most 200 characters",
        ),
        (
            json.dumps({"id": "e1", "topic": "protection.added", "body": {"order_id": "o\n1"}}),
            "body.order_id must be printable",
        ),
    ],
    ids=["deep", "surrogate-id", "nul-topic", "long-id", "long-claim-id", "newline-order-id"],
)
def test_a_webhook_that_could_never_be_worked_is_refused_400_and_nothing_is_written_or_sent(flow, raw, message):
    answer = _raw_webhook(flow, raw)

    assert answer.status == 400
    assert message in answer.json()["message"]
    assert [i for i in table_items(flow.store_id) if i["SK"] != "PROFILE"] == []
    assert flow.messages("RichpanelQueue") == 0


def test_a_webhook_with_a_non_ascii_secret_header_is_refused_401(flow):
    headers = {"content-type": "application/json", "x-webhook-secret": "\u00e9" * 20}
    envelope = {"id": "e1", "topic": "claim.created", "body": claim_created("c1")}

    answer = flow.stack.api.invoke("POST", f"/stores/{flow.store_id}/webhooks/claims", headers, json.dumps(envelope))

    assert answer.status == 401
    assert flow.messages("RichpanelQueue") == 0


def test_a_rotated_out_webhook_secret_is_refused_on_the_very_next_request(flow):
    accepted = flow.webhook("message.created", {"claim_id": "c1", "message": "hi"}, event_id="rot-1")
    new_secret = "whsec_rotated_0123456789abcdef"
    rotated = flow.stack.admin("PATCH", f"/internal/stores/{flow.store_id}", {"webhook_secrets": [new_secret]})

    old = flow.webhook("message.created", {"claim_id": "c1", "message": "hi"}, event_id="rot-2")
    new = flow.webhook("message.created", {"claim_id": "c1", "message": "hi"}, event_id="rot-3", secret=new_secret)

    assert (accepted.status, rotated.status, old.status, new.status) == (202, 200, 401, 202)


# -- the admin API ---------------------------------------------------------------------------------------------------


def test_deeply_nested_json_to_the_admin_is_400_and_writes_nothing(stack, store_id):
    answer = stack.api.invoke("PUT", f"/internal/stores/{store_id}", {"x-api-key": stack.admin_api_key}, "[" * 100_000)

    assert answer.status == 400
    assert answer.json()["message"] == "request body nests too deeply"
    assert table_items(store_id) == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/ledger/claim:" + "c" * 3000 + ":r1:claim_credit", "entryId"),
        ("/claims/" + "c" * 3000, "claimId"),
    ],
)
def test_an_oversized_id_in_the_path_is_422_naming_it(flow, path, field):
    answer = flow.stack.admin("GET", f"/internal/stores/{flow.store_id}{path}")

    assert answer.status == 422
    assert answer.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(
    "email", ["nope", "", "a@b.co\r\nBcc: evil@x.io", "<script>@x.io", "ann@example", "ann @example.com"]
)
def test_a_bonus_for_an_address_that_is_not_one_is_422_and_nothing_is_queued(money, email):
    body = {"customer": {"email": email}, "order_number": "1001", "amount": "5.00", "reason": "sorry"}

    answer = money.stack.admin("POST", f"/internal/integrations/rise/stores/{money.store_id}/bonus-credits", body)

    assert answer.status == 422
    assert answer.json()["errors"][0]["field"] == "customer.email"
    assert not [i for i in table_items(money.store_id) if "LEDGER" in i["SK"]]
    assert money.messages("CreditQueue") == 0


@pytest.mark.parametrize(
    "token", ["rise_token_\u00e9\u00e9\u00e9\u00e9", "rise_token_\u4e2d\u6587xx", "rise\x00token_0123"]
)
def test_a_partner_token_an_http_header_cannot_carry_is_422_and_not_saved(flow, token):
    answer = flow.stack.admin("PUT", f"/internal/integrations/rise/stores/{flow.store_id}", {"credit_api_token": token})

    assert answer.status == 422
    assert answer.json()["errors"][0]["field"] == "credit_api_token"
    assert "visible ASCII" in answer.json()["errors"][0]["message"]
    assert flow.stack.admin("GET", f"/internal/integrations/rise/stores/{flow.store_id}").status == 404


# -- one rule for PUT, PATCH for some fields -------------------------------------------------------------------------


def test_put_replaces_the_settings_and_needs_every_secret_while_patch_changes_only_what_it_names(flow):
    team = "6f1c1b7e-3a51-4a2b-9f0e-1d2c3b4a5f60"
    flow.configure_richpanel(default_team_id=team)
    path = f"/internal/integrations/richpanel/stores/{flow.store_id}"

    put_without_key = flow.stack.admin("PUT", path, {"default_team_id": team})
    patched_key = flow.stack.admin("PATCH", path, {"api_key": flow.richpanel_key})
    after_patch = flow.stack.admin("GET", path).json()
    put_only_key = flow.stack.admin("PUT", path, {"api_key": flow.richpanel_key})
    after_put = flow.stack.admin("GET", path).json()

    assert put_without_key.status == 422
    assert put_without_key.json()["errors"][0]["field"] == "api_key"
    assert patched_key.status == 200 and after_patch["default_team_id"] == team  # PATCH kept what it did not name
    assert put_only_key.status == 200 and after_put["default_team_id"] is None  # PUT replaced the whole settings


def test_a_store_patch_keeps_its_secrets_and_a_put_without_webhook_secrets_is_refused(flow):
    path = f"/internal/stores/{flow.store_id}"

    renamed = flow.stack.admin("PATCH", path, {"name": "Renamed"})
    put = flow.stack.admin("PUT", path, {"name": "Again", "shop_domain": f"{flow.store_id}.myshopify.com"})
    read = flow.stack.admin("GET", path).json()

    assert renamed.status == 200 and read["name"] == "Renamed"
    assert read["webhook_secrets"] and read["widget_secret"]  # kept by the PATCH
    assert put.status == 422 and put.json()["errors"][0]["field"] == "webhook_secrets"
    assert flow.webhook("message.created", {"claim_id": "c1", "message": "x"}, event_id="kept").status == 202


def test_patch_on_what_does_not_exist_is_404_and_creates_nothing(stack, store_id):
    answer = stack.admin("PATCH", f"/internal/stores/{store_id}", {"name": "Ghost"})

    assert answer.status == 404
    assert table_items(store_id) == []


# -- money limits ------------------------------------------------------------------------------------------------------


def test_a_bonus_over_the_default_cap_of_a_store_without_one_is_422_and_nothing_is_queued(money):
    money.stack.admin("PATCH", f"/internal/stores/{money.store_id}", {"max_credit_amount": None})
    body = {"customer": {"email": "ann@example.com"}, "order_number": "1001", "amount": "500.01", "reason": "big"}

    answer = money.stack.admin("POST", f"/internal/integrations/rise/stores/{money.store_id}/bonus-credits", body)

    assert answer.status == 422
    assert "over the default per-credit cap of 500.00" in answer.json()["errors"][0]["message"]
    assert money.messages("CreditQueue") == 0


def test_bonuses_past_the_stores_daily_limit_are_422_and_a_repeat_takes_no_more_room(money):
    money.stack.admin("PATCH", f"/internal/stores/{money.store_id}", {"max_credit_amount": "1000.00"})
    path = f"/internal/integrations/rise/stores/{money.store_id}/bonus-credits"

    def bonus(order: str, amount: str) -> Any:
        body = {"customer": {"email": "ann@example.com"}, "order_number": order, "amount": amount, "reason": "r"}
        return money.stack.admin("POST", path, body)

    answers = [bonus("1", "1000.00"), bonus("2", "999.00"), bonus("1", "1000.00"), bonus("3", "1.01"), bonus("3", "1")]

    assert [a.status for a in answers] == [202, 202, 200, 422, 202]
    assert "past the daily limit of 2000.00 (1999.00 used)" in answers[3].json()["errors"][0]["message"]
    from claimbridge.runtime import table_store

    rows = [table_store().get(f"STORE#{money.store_id}#BONUS#{order}", "LEDGER#bonus#r") for order in "123"]
    assert [row["amount"] for row in rows if row] == [1000, 999, 1]  # the refused one wrote nothing
    day = [i for i in table_items(money.store_id) if i["SK"].startswith("BONUSDAY#")]
    assert [i["day_total"] for i in day] == [2000]  # the repeat took no more room


def test_a_claims_credit_over_the_default_cap_is_held_naming_it(money, sandbox):
    money.stack.admin("PATCH", f"/internal/stores/{money.store_id}", {"max_credit_amount": None})
    money.configure_richpanel()
    money.webhook("claim.created", claim_created("big-1"), event_id="big-c")
    approval = {
        "claim_id": "big-1",
        "order_id": "order-big-1",
        "resolutions": [{"type": "STORE_CREDIT", "details": {"currency": "USD", "total_refund_amount": 750.0}}],
    }
    money.webhook("claim.approved", approval, event_id="big-a", route="resolutions")
    money.work()
    money.work("CreditWorkerFunction")

    (row,) = money.claim_view("big-1")["ledger"]
    assert row["state"] == "HELD" and row["hold_code"] == "cap"
    assert "over the default per-credit cap of 500.00" in row["state_reason"]
    assert sandbox["rise"].calls("/v2/gift-cards") == []


# -- gift-card codes are sealed ----------------------------------------------------------------------------------------


def test_an_issued_cards_code_is_sealed_in_the_table_and_only_masked_in_views(money, sandbox):
    from claimbridge.config import get_settings
    from claimbridge.crypto import SecretBox
    from claimbridge.runtime import aws_client, table_store

    body = {"customer": {"email": "bea@example.com"}, "order_number": "77", "amount": "5.00", "reason": "seal"}
    money.stack.admin("POST", f"/internal/integrations/rise/stores/{money.store_id}/bonus-credits", body)
    money.work("CreditWorkerFunction")
    row = table_store().get(f"STORE#{money.store_id}#BONUS#77", "LEDGER#bonus#seal")
    assert row is not None and row["state"] == "ISSUED"
    code = sandbox["rise"].state()["cards"][row["card_id"]]["code"]
    view = money.stack.admin("GET", f"/internal/stores/{money.store_id}/ledger/{row['ledger_id']}")
    opened = SecretBox(aws_client("kms"), get_settings().kms_key_id or "").open(
        row["card_code_sealed"], store_id=money.store_id, purpose=f"card_code:{row['ledger_id']}"
    )

    assert code not in json.dumps(row, default=str)  # nowhere in the item in plain text
    assert opened == {"code": code}
    assert view.json()["card_code"] == row["card_code_masked"] == f"****{code[-4:]}"
    assert code not in view.body.decode()


def test_a_row_written_before_codes_were_sealed_shows_its_code_masked_only(money):
    from claimbridge.runtime import table_store

    pk, sk = f"STORE#{money.store_id}#BONUS#legacy", "LEDGER#bonus#old"
    table_store().put(
        {
            "PK": pk,
            "SK": sk,
            "ledger_id": "bonus:legacy:bonus:old",
            "state": "ISSUED",
            "store_id": money.store_id,
            "card_code": "LEGACY-CODE-9Z8Y",
            "amount": 5,
            "currency": "USD",
        }
    )

    view = money.stack.admin("GET", f"/internal/stores/{money.store_id}/ledger/bonus:legacy:bonus:old")

    assert view.status == 200 and view.json()["card_code"] == "****9Z8Y"
    assert b"LEGACY-CODE" not in view.body


def test_a_card_is_settled_issued_even_when_its_code_cannot_be_sealed(money, sandbox, monkeypatch):
    from claimbridge.crypto import SecretBox
    from claimbridge.runtime import table_store

    body = {"customer": {"email": "bea@example.com"}, "order_number": "78", "amount": "5.00", "reason": "kms"}
    money.stack.admin("POST", f"/internal/integrations/rise/stores/{money.store_id}/bonus-credits", body)
    real_seal = SecretBox.seal

    def seal(self, plaintext, *, store_id, purpose):
        if purpose.startswith("card_code:"):
            raise RuntimeError("KMS throttled")
        return real_seal(self, plaintext, store_id=store_id, purpose=purpose)

    monkeypatch.setattr(SecretBox, "seal", seal)
    money.work("CreditWorkerFunction")
    row = table_store().get(f"STORE#{money.store_id}#BONUS#78", "LEDGER#bonus#kms")

    assert row is not None and row["state"] == "ISSUED" and row.get("card_code_sealed") is None
    code = sandbox["rise"].state()["cards"][row["card_id"]]["code"]
    assert row["card_code_masked"] == f"****{code[-4:]}" and code not in str(row)
    assert len(sandbox["rise"].calls("/v2/gift-cards/issue")) == 1


def test_a_reservation_released_after_midnight_gives_back_its_own_days_room(flow):
    from decimal import Decimal

    from claimbridge.limits import BonusBudget, MoneyLimits
    from claimbridge.runtime import table_store

    now = [1_795_046_399.0]  # 23:59:59 UTC
    budget = BonusBudget(table_store(), MoneyLimits(bonus_daily=Decimal("100")), clock=lambda: now[0])
    reservation = budget.reserve(flow.store_id, Decimal("60"))
    now[0] += 2  # the next UTC day
    assert reservation is not None and reservation.key is not None

    budget.release(reservation)

    assert budget.used_today(flow.store_id) == 0  # the new day was never touched (no negative room carried over)
    assert table_store().get(*reservation.key)["day_total"] == 0
    assert budget.reserve(flow.store_id, Decimal("100.01")) is None and budget.reserve(flow.store_id, Decimal("100"))


def test_a_save_from_a_stale_read_is_refused_and_loses_nothing(flow):
    from claimbridge.runtime import table_store
    from claimbridge.store import ConditionFailedError

    store = table_store()
    stale = store.get_store_profile(flow.store_id)
    renamed = flow.stack.admin("PATCH", f"/internal/stores/{flow.store_id}", {"name": "First save"})
    assert stale is not None and renamed.status == 200

    with pytest.raises(ConditionFailedError):  # a second save that read before the first one wrote
        store.put_store_profile(flow.store_id, {**stale, "name": "Second save"}, was=stale)

    assert flow.stack.admin("GET", f"/internal/stores/{flow.store_id}").json()["name"] == "First save"


def test_a_patch_racing_a_delete_does_not_bring_the_integration_back(flow, monkeypatch):
    from claimbridge.store import Store

    flow.configure_richpanel()
    path = f"/internal/integrations/richpanel/stores/{flow.store_id}"
    before = Store.get_integration
    seen: list[Any] = []

    def read_then_deleted(self, store_id, name):
        item = before(self, store_id, name)
        if not seen:  # the PATCH has read it; the DELETE lands before the PATCH writes
            seen.append(item)
            assert flow.stack.admin("DELETE", path).status == 204
        return item

    monkeypatch.setattr(Store, "get_integration", read_then_deleted)
    patched = flow.stack.admin("PATCH", path, {"default_channel": "message"})
    monkeypatch.setattr(Store, "get_integration", before)

    assert patched.status == 409 and "read it again" in patched.json()["message"]
    assert flow.stack.admin("GET", path).status == 404
