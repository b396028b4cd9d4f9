"""Rivo's sixteen actions through the action API, against the sandbox's Rivo over HTTP: each one's wire shape, its bad
inputs (422 naming the field, nothing sent, nothing written), and the writes Rivo does not make idempotent (points
events, redemptions, points redemptions) made once per Idempotency-Key through the credit flow's ledger: repeated,
concurrent, another body, a lost answer, a 429, a revoked key. The sandbox's record of calls is the proof."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from claimbridge.models.credits import CreditJob
from claimbridge.runtime import table_store
from tests.integration.conftest import Flow, module_of

RIVO_KEY = "rivo_actions_key_0123456789"
ANN = "ann@example.com"
SPEC = {  # seeds/002: every row of the table, by its name
    "create_points_event",
    "create_redemption",
    "get_customer",
    "list_customers",
    "list_earning_rules",
    "list_points_events",
    "list_customer_points_events",
    "list_customer_redemptions",
    "list_rewards",
    "list_rewards_by_purchase_type",
    "get_vip_tier",
    "list_vip_tiers",
    "redeem_points",
    "update_customer_dob",
    "cancel_membership",
    "get_membership",
}


@pytest.fixture
def rivo(flow: Flow, sandbox: Any) -> Flow:
    flow.create_store(currency="USD", max_credit_amount="100.00")
    flow.configure("rivo", {"api_key": RIVO_KEY + flow.store_id})
    sandbox["rivo"].seed(
        {
            "customers": {
                ANN: {
                    "customer_id": 7001,
                    "email": ANN,
                    "points_tally": 500,
                    "credits_tally": "20.00",
                    "vip_tier": {"name": "Gold"},
                    "points_expire_at": "2027-03-01T00:00:00Z",
                },
                "bob@example.com": {"customer_id": 7002, "email": "bob@example.com", "points_tally": 0},
                "cy@example.com": {"customer_id": 7003, "email": "cy@example.com", "points_tally": 0},
            },
            "rewards": [
                {"id": 11, "name": "$5 off", "purchase_type": "points", "points_amount": 100},
                {"id": 12, "name": "Free shipping", "purchase_type": "credits", "points_amount": 0},
            ],
            "earning_rules": [{"id": 21, "name": "Birthday", "points_amount": 50}],
            "vip_tiers": [{"id": 31, "name": "Silver"}, {"id": 32, "name": "Gold"}],
            "memberships": {ANN: {"membership": {"status": "active"}, "subscription": {"interval": "month"}}},
        }
    )
    sandbox["rivo"].faults(no_rate_limit=True)
    return flow


def call(flow: Flow, method: str, action: str = "", body: Any = None, *, key: str | None = None, **query: Any):
    path = f"/internal/integrations/rivo/stores/{flow.store_id}/actions" + (f"/{action}" if action else "")
    headers = {"x-api-key": flow.stack.admin_api_key, "content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    target = path + ("?" + urlencode(query) if query else "")
    return flow.stack.api.invoke(method, target, headers, json.dumps(body) if body is not None else None)


def form(record: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(record["body"], keep_blank_values=True).items()}


def rivo_calls(sandbox: Any, path: str = "", method: str | None = None) -> list[dict[str, Any]]:
    return [c for c in sandbox["rivo"].calls(path, method) if not c["path"].startswith("/__")]


def action_row(flow: Flow, key: str) -> dict[str, Any] | None:
    return table_store().get(f"STORE#{flow.store_id}#RIVO#{key}", "LEDGER#action")


# -- the catalogue ------------------------------------------------------------------------------------------------


def test_the_catalogue_lists_every_action_of_the_specification_with_its_json_schema(rivo):
    answer = call(rivo, "GET")

    actions = {a["name"]: a for a in answer.json()["actions"]}
    assert answer.status == 200 and set(actions) == SPEC
    assert actions["create_points_event"]["method"] == "POST"
    assert actions["create_points_event"]["idempotency_key"] == "required"
    assert "customer_email" in actions["create_points_event"]["schema"]["required"]
    assert actions["list_rewards_by_purchase_type"]["input"] == "query"
    assert actions["get_vip_tier"]["schema"]["properties"]["vip_tier_id"]["type"] == "integer"
    assert all(a["path"].endswith("/actions/" + a["name"]) for a in actions.values())


# -- reads: the wire and the answer -------------------------------------------------------------------------------

READS = [
    # action, query, Rivo's path, what Rivo's query must carry
    ("get_customer", {"customer_email": ANN}, f"/customers/{ANN}", {}),
    ("list_customers", {"limit": 2}, "/customers", {"pagination[limit]": "2"}),
    ("list_earning_rules", {}, "/earning_rules", {"pagination[limit]": "25"}),
    ("list_points_events", {"since_id": 5}, "/points_events", {"pagination[since_id]": "5"}),
    ("list_customer_points_events", {"customer_email": ANN}, "/points_events", {"filters[customer_identifier]": ANN}),
    (
        "list_customer_redemptions",
        {"customer_email": ANN},
        "/points_redemptions",
        {"filters[customer_identifier]": ANN},
    ),
    ("list_rewards", {}, "/rewards", {}),
    ("list_rewards_by_purchase_type", {"purchase_type": "points"}, "/rewards", {"filters[purchase_type]": "points"}),
    ("get_vip_tier", {"vip_tier_id": 32}, "/vip_tiers/32", {}),
    ("list_vip_tiers", {}, "/vip_tiers", {}),
    ("get_membership", {"customer_email": ANN}, f"/memberships/{ANN}", {}),
]


@pytest.mark.parametrize(("action", "query", "path", "sent"), READS, ids=[r[0] for r in READS])
def test_each_read_sends_its_path_filters_and_raw_key_and_answers_rivos_data_in_our_shape(
    rivo, sandbox, action, query, path, sent
):
    answer = call(rivo, "GET", action, **query)

    assert answer.status == 200, answer.body
    (made,) = rivo_calls(sandbox)
    assert made["method"] == "GET" and made["path"] == path
    assert made["query"].items() >= sent.items()
    assert made["headers"]["authorization"] == RIVO_KEY + rivo.store_id  # the raw key, no "Bearer"
    body = answer.json()
    assert body["action"] == action and "data" in body
    if action.startswith("list_"):
        assert isinstance(body["data"], list) and "next_since_id" in body


def test_the_reads_answer_rivos_records_unwrapped(rivo, sandbox):
    customer = call(rivo, "GET", "get_customer", customer_email=ANN).json()["data"]
    tier = call(rivo, "GET", "get_vip_tier", vip_tier_id=32).json()["data"]
    rewards = call(rivo, "GET", "list_rewards_by_purchase_type", purchase_type="credits").json()["data"]
    membership = call(rivo, "GET", "get_membership", customer_email=ANN).json()["data"]

    assert customer["email"] == ANN and customer["points_tally"] == 500 and customer["vip_tier"] == "Gold"
    assert customer["credits_tally"] == "20.00" and customer["points_expire_at"] == "2027-03-01T00:00:00Z"
    assert tier == {"id": "32", "name": "Gold", "threshold": None}
    assert [r["name"] for r in rewards] == ["Free shipping"]
    assert membership["membership"]["status"] == "active"


def test_a_list_pages_with_since_id_until_rivo_says_there_is_no_more(rivo, sandbox):
    first = call(rivo, "GET", "list_customers", limit=2).json()
    second = call(rivo, "GET", "list_customers", limit=2, since_id=first["next_since_id"]).json()

    assert [c["email"] for c in first["data"]] == [ANN, "bob@example.com"] and first["next_since_id"] == 7002
    assert [c["email"] for c in second["data"]] == ["cy@example.com"] and second["next_since_id"] is None
    assert rivo_calls(sandbox)[1]["query"]["pagination[since_id]"] == "7002"


def test_what_rivo_does_not_have_is_404_naming_it(rivo, sandbox):
    customer = call(rivo, "GET", "get_customer", customer_email="nobody@example.com")
    tier = call(rivo, "GET", "get_vip_tier", vip_tier_id=99)
    membership = call(rivo, "GET", "get_membership", customer_email="bob@example.com")

    assert customer.status == 404 and "nobody@example.com" in customer.json()["message"]
    assert tier.status == 404 and "99" in tier.json()["message"]
    assert membership.status == 404


# -- the two writes Rivo makes idempotent by nature ---------------------------------------------------------------


def test_a_date_of_birth_is_put_form_encoded_and_a_membership_cancelled(rivo, sandbox):
    dob = call(rivo, "POST", "update_customer_dob", {"customer_email": ANN, "dob": "1990-04-01"})
    cancelled = call(rivo, "POST", "cancel_membership", {"customer_email": ANN})

    assert dob.status == 200 and dob.json()["data"]["dob"] == "1990-04-01"
    (put,) = rivo_calls(sandbox, "/customers", "PUT")
    assert put["path"] == f"/customers/{ANN}" and form(put) == {"dob": "1990-04-01"}
    assert put["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert cancelled.status == 200 and cancelled.json()["data"]["status"] == "pending"
    (delete,) = rivo_calls(sandbox, "/memberships", "DELETE")
    assert delete["path"] == f"/memberships/{ANN}/cancel"
    assert sandbox["rivo"].state()["memberships"][ANN]["membership"]["queued_for_cancellation_at"]


# -- bad input: named, and nothing sent or written ----------------------------------------------------------------

BAD = [
    ("GET", "get_customer", {"customer_email": "not-an-email"}, None, "customer_email"),
    ("GET", "list_customers", {"limit": "500"}, None, "limit"),
    ("GET", "list_customers", {"page": "2"}, None, "page"),
    ("GET", "list_points_events", {"since_id": "-1"}, None, "since_id"),
    ("GET", "list_customer_points_events", {}, None, "customer_email"),
    ("GET", "list_customer_redemptions", {"customer_email": "a@b"}, None, "customer_email"),
    ("GET", "list_rewards_by_purchase_type", {"purchase_type": "Points!"}, None, "purchase_type"),
    ("GET", "get_vip_tier", {"vip_tier_id": "gold"}, None, "vip_tier_id"),
    ("GET", "get_membership", {}, None, "customer_email"),
    ("GET", "list_rewards", {"limit": "0"}, None, "limit"),
    ("GET", "list_earning_rules", {"limit": "x"}, None, "limit"),
    ("GET", "list_vip_tiers", {"since_id": "1.5"}, None, "since_id"),
    ("POST", "update_customer_dob", {}, {"customer_email": ANN, "dob": "2999-01-01"}, "dob"),
    ("POST", "cancel_membership", {}, {"customer_email": ANN, "now": True}, "now"),
    ("POST", "create_points_event", {}, {"customer_email": ANN}, "credits_amount"),
    ("POST", "create_points_event", {}, {"customer_email": ANN, "points_amount": "ten"}, "points_amount"),
    ("POST", "create_points_event", {}, {"customer_email": ANN, "credits_amount": "1.234"}, "credits_amount"),
    ("POST", "create_points_event", {}, {"customer_email": ANN, "credits_amount": "100.01"}, "credits_amount"),
    (
        "POST",
        "create_points_event",
        {},
        {"customer_email": ANN, "points_amount": 5, "external_note": "a\nb"},
        "external_note",
    ),
    ("POST", "create_redemption", {}, {"customer_email": ANN, "reward_id": 0}, "reward_id"),
    ("POST", "redeem_points", {}, {"customer_email": ANN, "points_amount": -5}, "points_amount"),
    ("POST", "redeem_points", {}, ["not", "an", "object"], "body"),
]


@pytest.mark.parametrize(("method", "action", "query", "body", "field"), BAD, ids=[f"{b[1]}-{b[4]}" for b in BAD])
def test_a_bad_input_is_422_naming_the_field_and_nothing_is_sent_or_written(
    rivo, sandbox, method, action, query, body, field
):
    answer = call(rivo, method, action, body, key="key-for-a-bad-input", **query)

    assert answer.status == 422, answer.body
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert rivo_calls(sandbox) == []
    assert action_row(rivo, "key-for-a-bad-input") is None


@pytest.mark.parametrize(
    ("key", "why"), [(None, "missing"), ("short", "too short"), ("a:b:c:d:e:f", "':' would break the ledger id")]
)
def test_a_write_without_a_good_idempotency_key_is_422_naming_the_header(rivo, sandbox, key, why):
    answer = call(rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 10}, key=key)

    assert answer.status == 422 and answer.json()["errors"][0]["field"] == "Idempotency-Key", why
    assert rivo_calls(sandbox) == []


def test_an_unknown_action_is_404_and_the_wrong_method_405_naming_the_right_one(rivo, sandbox):
    unknown = call(rivo, "GET", "delete_everything")
    read_as_write = call(rivo, "POST", "get_customer", {"customer_email": ANN})
    write_as_read = call(rivo, "GET", "create_points_event", customer_email=ANN)

    assert unknown.status == 404 and "delete_everything" in unknown.json()["message"]
    assert read_as_write.status == 405 and read_as_write.headers.get("Allow") == "GET"
    assert write_as_read.status == 405 and write_as_read.headers.get("Allow") == "POST"
    assert rivo_calls(sandbox) == []


def test_a_store_without_rivo_is_404_and_nothing_is_sent(flow, sandbox):
    answer = call(flow, "GET", "get_customer", customer_email=ANN)

    assert answer.status == 404 and "rivo is not configured" in answer.json()["message"]
    assert rivo_calls(sandbox) == []


# -- writes made once through the ledger --------------------------------------------------------------------------


def test_a_points_event_is_sent_once_form_encoded_with_the_ledger_id_as_its_note(rivo, sandbox):
    body = {"customer_email": ANN, "points_amount": 250, "credits_amount": "5.00", "external_note": "Sorry!"}
    answer = call(rivo, "POST", "create_points_event", body, key="ticket-4711-goodwill")

    assert answer.status == 201, answer.body
    made = answer.json()
    assert made["state"] == "ISSUED" and made["ledger_id"] == f"rivo:{rivo.store_id}:ticket-4711-goodwill"
    (post,) = rivo_calls(sandbox, "/points_events", "POST")
    sent = form(post)
    assert post["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert sent["customer_identifier"] == ANN and sent["points_amount"] == "250" and sent["credits_amount"] == "5.00"
    assert sent["internal_note"] == made["ledger_id"] and sent["external_note"] == "Sorry!"
    assert made["data"]["points_amount"] == 250 and made["data"]["internal_note"] == made["ledger_id"]
    customer = sandbox["rivo"].state()["customers"][ANN]
    assert customer["points_tally"] == 750 and Decimal(customer["credits_tally"]) == Decimal("25.00")
    entry = rivo.stack.admin("GET", made["entry"]).json()
    assert entry["state"] == "ISSUED" and entry["provider"] == "rivo" and entry["kind"] == "rivo_points_event"


def test_a_redemption_is_made_once_and_its_code_is_never_shown_whole(rivo, sandbox):
    answer = call(
        rivo,
        "POST",
        "create_redemption",
        {"customer_email": ANN, "reward_id": 11, "points_amount": 100},
        key="redeem-0001-abc",
    )

    assert answer.status == 201, answer.body
    (post,) = rivo_calls(sandbox, "/points_redemptions", "POST")
    assert form(post) == {
        "customer_identifier": ANN,
        "reward_id": "11",
        "points_amount": "100",
        "credits_amount": "0.00",
    }
    code = sandbox["rivo"].state()["redemptions"][0]["code"]
    row = action_row(rivo, "redeem-0001-abc") or {}
    assert code not in answer.body.decode() and code not in json.dumps(row, default=str)
    assert answer.json()["data"]["code"].endswith(code[-4:]) and row["card_code_sealed"]
    assert sandbox["rivo"].state()["customers"][ANN]["points_tally"] == 400


def test_points_are_redeemed_once(rivo, sandbox):
    first = call(rivo, "POST", "redeem_points", {"customer_email": ANN, "points_amount": 120}, key="take-points-01")
    again = call(rivo, "POST", "redeem_points", {"customer_email": ANN, "points_amount": 120}, key="take-points-01")

    assert (first.status, again.status) == (201, 200)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["data"] == first.json()["data"]
    (post,) = rivo_calls(sandbox, "/points_redemptions", "POST")
    assert form(post) == {"customer_identifier": ANN, "points_amount": "120"}
    assert sandbox["rivo"].state()["customers"][ANN]["points_tally"] == 380


def test_the_same_key_twice_answers_the_first_result_and_sends_once(rivo, sandbox):
    body = {"customer_email": ANN, "points_amount": 40}
    first = call(rivo, "POST", "create_points_event", body, key="same-key-twice")
    again = call(rivo, "POST", "create_points_event", {**body, "points_amount": "40"}, key="same-key-twice")

    assert (first.status, again.status) == (201, 200)
    assert again.json()["replayed"] is True and again.json()["data"] == first.json()["data"]
    assert len(rivo_calls(sandbox, "/points_events", "POST")) == 1


def test_the_same_key_with_another_body_is_409_and_nothing_is_sent(rivo, sandbox):
    call(rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 40}, key="same-key-other")
    other = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 41}, key="same-key-other"
    )
    other_action = call(
        rivo, "POST", "redeem_points", {"customer_email": ANN, "points_amount": 40}, key="same-key-other"
    )

    assert other.status == 409 and "same-key-other" in other.json()["message"]
    assert other_action.status == 409
    assert len(rivo_calls(sandbox, "/points_")) == 1
    assert sandbox["rivo"].state()["customers"][ANN]["points_tally"] == 540


def test_the_same_key_six_times_at_once_makes_one_points_event(rivo, sandbox):
    body = {"customer_email": ANN, "points_amount": 75}
    answers: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        answer = call(rivo, "POST", "create_points_event", body, key="six-at-once-0001")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == 6 and {a.status for a in answers} <= {200, 201, 202}
    assert {a.json()["ledger_id"] for a in answers} == {f"rivo:{rivo.store_id}:six-at-once-0001"}
    assert len(rivo_calls(sandbox, "/points_events", "POST")) == 1
    assert sandbox["rivo"].state()["customers"][ANN]["points_tally"] == 575


def test_rivo_refusing_a_write_is_422_with_its_words_and_the_key_keeps_that_answer(rivo, sandbox):
    body = {"customer_email": ANN, "reward_id": 99, "points_amount": 100}
    refused = call(rivo, "POST", "create_redemption", body, key="unknown-reward-1")
    again = call(rivo, "POST", "create_redemption", body, key="unknown-reward-1")

    assert refused.status == 422 and refused.json()["state"] == "FAILED"
    assert "Reward not found" in refused.json()["reason"]
    assert again.status == 422 and again.json()["replayed"] is True
    assert len(rivo_calls(sandbox, "/points_redemptions", "POST")) == 1


# -- a lost answer ------------------------------------------------------------------------------------------------


@pytest.fixture
def short_timeout(rivo, monkeypatch) -> Any:
    """The admin's and the credit worker's Rivo calls time out after a second; the worker's module."""
    monkeypatch.setattr(module_of(rivo, "AdminFunction"), "RIVO_TIMEOUT", (2.0, 1.0))
    worker = module_of(rivo, "CreditWorkerFunction")
    monkeypatch.setattr(worker, "RIVO_TIMEOUT", (2.0, 1.0))
    return worker


def lose_answers(sandbox: Any, path: str, *, applied: bool) -> None:
    """Rivo's POSTs to ``path`` hang past the client's timeout: after acting (``applied``) or before."""
    fault = "apply_timeout" if applied else "timeout"
    knobs = {f"{fault}_rate": 1.0, f"{fault}_path": path, f"{fault}_method": "POST", "hang_s": 1.5}
    sandbox["rivo"].faults(no_rate_limit=True, **knobs)


def reconcile(flow: Flow, worker: Any, key: str) -> None:
    """What the credit worker does with the job the action API queued (delayed 30 s: run here at once)."""
    worker.service().handle(
        CreditJob(store_id=flow.store_id, pk=f"STORE#{flow.store_id}#RIVO#{key}", sk="LEDGER#action")
    )


def test_a_points_event_rivo_applied_then_lost_is_found_by_its_note_and_never_sent_again(rivo, sandbox, short_timeout):
    lose_answers(sandbox, "/points_events", applied=True)
    body = {"customer_email": ANN, "points_amount": 300}
    lost = call(rivo, "POST", "create_points_event", body, key="lost-answer-0001")
    sandbox["rivo"].faults(no_rate_limit=True)
    while_unknown = call(rivo, "POST", "create_points_event", body, key="lost-answer-0001")

    reconcile(rivo, short_timeout, "lost-answer-0001")
    settled = call(rivo, "POST", "create_points_event", body, key="lost-answer-0001")

    assert lost.status == 202 and lost.json()["state"] == "UNKNOWN"
    assert while_unknown.status == 202  # a repeat while unknown sends nothing
    assert settled.status == 200 and settled.json()["state"] == "ISSUED"
    assert len(rivo_calls(sandbox, "/points_events", "POST")) == 1
    made = sandbox["rivo"].state()["points_events"]
    assert len(made) == 1 and settled.json()["data"]["id"] == str(made[0]["id"])
    assert (action_row(rivo, "lost-answer-0001") or {}).get("reconciled") is True
    assert sandbox["rivo"].state()["customers"][ANN]["points_tally"] == 800


def test_a_points_event_that_never_reached_rivo_is_proven_absent_and_sent_once(rivo, sandbox, short_timeout):
    lose_answers(sandbox, "/points_events", applied=False)
    lost = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 60}, key="never-reached-01"
    )
    sandbox["rivo"].faults(no_rate_limit=True)

    reconcile(rivo, short_timeout, "never-reached-01")  # read back: absent, so queued again
    reconcile(rivo, short_timeout, "never-reached-01")  # and sent

    assert lost.json()["state"] == "UNKNOWN"
    row = action_row(rivo, "never-reached-01") or {}
    assert row["state"] == "ISSUED" and "UNKNOWN>QUEUED" in [f"{s['from']}>{s['to']}" for s in row["history"]]
    assert len(sandbox["rivo"].state()["points_events"]) == 1


def test_a_redemption_rivo_applied_then_lost_is_held_for_an_operator_with_the_candidates(rivo, sandbox, short_timeout):
    lose_answers(sandbox, "/points_redemptions", applied=True)
    body = {"customer_email": ANN, "reward_id": 11, "points_amount": 100}
    lost = call(rivo, "POST", "create_redemption", body, key="lost-redemption-1")
    sandbox["rivo"].faults(no_rate_limit=True)

    reconcile(rivo, short_timeout, "lost-redemption-1")
    held = call(rivo, "POST", "create_redemption", body, key="lost-redemption-1")

    assert lost.json()["state"] == "UNKNOWN"
    assert held.status == 202 and held.json()["state"] == "HELD"
    (candidate,) = held.json()["evidence"]["candidates"]
    made = sandbox["rivo"].state()["redemptions"]
    assert len(made) == 1 and candidate["id"] == str(made[0]["id"]) and candidate["reward_id"] == 11
    assert made[0]["code"] not in held.body.decode()
    assert len(rivo_calls(sandbox, "/points_redemptions", "POST")) == 1  # never re-sent on a guess


def test_a_redemption_that_never_reached_rivo_is_proven_absent_and_made_once(rivo, sandbox, short_timeout):
    lose_answers(sandbox, "/points_redemptions", applied=False)
    call(rivo, "POST", "redeem_points", {"customer_email": ANN, "points_amount": 50}, key="redeem-never-01")
    sandbox["rivo"].faults(no_rate_limit=True)

    reconcile(rivo, short_timeout, "redeem-never-01")
    reconcile(rivo, short_timeout, "redeem-never-01")

    assert (action_row(rivo, "redeem-never-01") or {})["state"] == "ISSUED"
    assert len(sandbox["rivo"].state()["redemptions"]) == 1
    assert sandbox["rivo"].state()["customers"][ANN]["points_tally"] == 450


# -- 429, 5xx, a revoked key --------------------------------------------------------------------------------------


def test_a_read_rivo_rate_limits_is_429_with_retry_after(rivo, sandbox):
    sandbox["rivo"].faults(
        script=[{"status": 429, "body": {"errors": [{"title": "Too Many"}]}, "headers": {"Retry-After": "3"}}]
    )

    answer = call(rivo, "GET", "get_customer", customer_email=ANN)

    assert answer.status == 429 and answer.headers.get("Retry-After") == "3"
    assert "rate limit" in answer.json()["message"]


def test_a_write_rivo_rate_limits_is_queued_for_after_retry_after_and_made_once(rivo, sandbox):
    sandbox["rivo"].faults(
        script=[{"status": 429, "body": {"errors": [{"title": "Too Many"}]}, "headers": {"Retry-After": "3"}}]
    )
    queued = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 5}, key="limited-write-01"
    )
    at_once = rivo.receive("CreditWorkerFunction")

    reconcile(rivo, module_of(rivo, "CreditWorkerFunction"), "limited-write-01")
    done = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 5}, key="limited-write-01"
    )

    assert queued.status == 202 and queued.json()["state"] == "QUEUED"
    assert at_once == []  # sent to the credit queue with Retry-After as its delay
    assert rivo.messages("CreditQueue") == 1
    assert done.status == 200 and len(sandbox["rivo"].state()["points_events"]) == 1


def test_rivo_failing_a_read_is_503_and_nothing_changes(rivo, sandbox):
    sandbox["rivo"].faults(script=[{"status": 503, "body": {"errors": [{"title": "Unavailable"}]}}])

    answer = call(rivo, "GET", "list_vip_tiers")

    assert answer.status == 503 and "nothing was changed" in answer.json()["message"]


def test_a_revoked_key_marks_rivo_invalid_and_later_actions_are_refused_before_any_call(rivo, sandbox):
    sandbox["rivo"].seed({"revoked_keys": [RIVO_KEY + rivo.store_id]})
    read = call(rivo, "GET", "get_customer", customer_email=ANN)
    status = rivo.stack.admin("GET", f"/internal/integrations/rivo/stores/{rivo.store_id}").json()["status"]
    sent = len(rivo_calls(sandbox))
    write = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 5}, key="after-revoked-1"
    )

    assert read.status == 409 and "marked invalid" in read.json()["message"]
    assert status["state"] == "invalid"
    assert write.status == 409 and len(rivo_calls(sandbox)) == sent  # refused here: nothing sent, nothing written
    assert action_row(rivo, "after-revoked-1") is None


def test_a_write_whose_key_rivo_refuses_is_409_and_not_made_later_when_a_key_is_saved(rivo, sandbox):
    sandbox["rivo"].seed({"revoked_keys": [RIVO_KEY + rivo.store_id]})
    refused = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 5}, key="held-for-key-01"
    )

    rivo.configure("rivo", {"api_key": RIVO_KEY + rivo.store_id + "_new"})
    rivo.work("CreditWorkerFunction")
    again = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 5}, key="held-for-key-01"
    )

    assert refused.status == 409 and refused.json()["state"] == "FAILED"
    assert "refused the credential" in refused.json()["reason"] and "ask again" in refused.json()["reason"]
    assert again.status == 409 and again.json()["replayed"] is True  # the key keeps its answer
    assert sandbox["rivo"].state()["points_events"] == []  # nothing made behind the caller's back


def test_credits_granted_by_hand_draw_on_the_daily_limit_and_amounts_follow_the_currency(rivo, sandbox, monkeypatch):
    from claimbridge.limits import MoneyLimits

    limits = MoneyLimits(bonus_daily=Decimal("30.00"))
    monkeypatch.setattr(module_of(rivo, "AdminFunction").loyalty()._budget, "_limits", limits)
    first = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "credits_amount": "20.00"}, key="daily-room-0001"
    )
    over = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "credits_amount": "20.00"}, key="daily-room-0002"
    )

    assert first.status == 201
    assert over.status == 422 and "daily limit" in over.json()["errors"][0]["message"]
    assert action_row(rivo, "daily-room-0002") is None and len(sandbox["rivo"].state()["points_events"]) == 1


def test_the_same_amount_written_two_ways_is_one_request(rivo, sandbox):
    first = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "credits_amount": "5"}, key="two-ways-00001"
    )
    again = call(
        rivo, "POST", "create_points_event", {"customer_email": ANN, "credits_amount": 5.0}, key="two-ways-00001"
    )

    assert (first.status, again.status) == (201, 200)


def test_a_read_only_admin_key_may_read_but_not_write(rivo, sandbox):
    made = rivo.stack.admin(
        "POST", "/internal/admin-keys", {"name": "helpdesk-read", "scope": "read", "stores": [rivo.store_id]}
    ).json()
    path = f"/internal/integrations/rivo/stores/{rivo.store_id}/actions"
    headers = {"x-api-key": made["key"], "content-type": "application/json", "Idempotency-Key": "read-key-write-1"}

    read = rivo.stack.api.invoke("GET", path + f"/get_customer?customer_email={ANN}", headers)
    write = rivo.stack.api.invoke(
        "POST", path + "/create_points_event", headers, json.dumps({"customer_email": ANN, "points_amount": 5})
    )

    assert read.status == 200 and write.status == 403
    assert rivo_calls(sandbox, "/points_events") == []


def test_a_write_whose_key_has_no_pacing_slot_goes_back_to_queued_unsent(rivo, sandbox, monkeypatch):
    from claimbridge.jobs import JobDeferredError
    from claimbridge.pacing import TablePacer

    def full(self: Any) -> None:
        raise JobDeferredError(4, "waiting for a pacer slot")

    monkeypatch.setattr(TablePacer, "acquire", full)
    answer = call(rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 5}, key="no-slot-00001")

    row = action_row(rivo, "no-slot-00001") or {}
    assert answer.status == 202 and row["state"] == "QUEUED"  # not PENDING: nothing left, nothing to reconcile
    assert [f"{s['from']}>{s['to']}" for s in row["history"]] == ["QUEUED>PENDING", "PENDING>QUEUED"]
    assert rivo_calls(sandbox) == [] and rivo.messages("CreditQueue") == 1


def test_a_lost_answer_is_not_looked_up_on_another_account_after_the_key_changed(rivo, sandbox, short_timeout):
    lose_answers(sandbox, "/points_events", applied=True)
    call(rivo, "POST", "create_points_event", {"customer_email": ANN, "points_amount": 9}, key="key-changed-0001")
    sandbox["rivo"].faults(no_rate_limit=True)
    rivo.configure("rivo", {"api_key": RIVO_KEY + rivo.store_id + "_other_account"})

    reconcile(rivo, short_timeout, "key-changed-0001")

    row = action_row(rivo, "key-changed-0001") or {}
    assert row["state"] == "HELD" and row["hold_code"] == "outcome_unknown"
    assert "credential was changed" in row["evidence"]["why_not_looked"]
    assert len(rivo_calls(sandbox, "/points_events")) == 1  # no look-up on the new account, nothing re-sent
