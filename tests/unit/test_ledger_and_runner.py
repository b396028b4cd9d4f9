"""The ledger's transition table, money at the boundary, and the job runner's retry accounting (in-memory fakes)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import pytest

from claimbridge.clients.http import IntegrationTimeoutError, RateLimitError, ServerError
from claimbridge.jobs import JobDeferredError, SqsJobRunner
from claimbridge.ledger import FINAL, TRANSITIONS, IllegalTransitionError, Outcome, State, next_state
from claimbridge.money import MoneyError, parse_amount, wire_number, wire_text

# -- the table -----------------------------------------------------------------------------------------------------


def test_no_move_leaves_a_final_state():
    assert not [key for key in TRANSITIONS if key[0] in FINAL]


def test_every_state_but_the_final_ones_has_a_way_out():
    movable = {state for state, _ in TRANSITIONS}
    assert movable == set(State) - FINAL


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("outcome", list(Outcome))
def test_a_move_is_the_tables_or_it_is_refused(state, outcome):
    if (state, outcome) in TRANSITIONS:
        assert next_state(state.value, outcome) == TRANSITIONS[(state, outcome)]
    else:
        with pytest.raises(IllegalTransitionError):
            next_state(state.value, outcome)


def test_only_evidence_or_a_person_settles_an_unknown_outcome():
    from_unknown = {outcome: target for (state, outcome), target in TRANSITIONS.items() if state == State.UNKNOWN}
    assert from_unknown[Outcome.FOUND] == State.ISSUED
    assert from_unknown[Outcome.ABSENT] == State.QUEUED  # only on conclusive proof of absence
    assert from_unknown[Outcome.NO_EVIDENCE] == State.HELD
    assert Outcome.NOT_SENT not in from_unknown and Outcome.TAKE not in from_unknown  # never re-sent blindly


def test_a_call_that_may_have_reached_the_partner_never_goes_back_to_queued():
    assert TRANSITIONS[(State.PENDING, Outcome.UNCERTAIN)] == State.UNKNOWN
    assert TRANSITIONS[(State.PENDING, Outcome.ABANDONED)] == State.UNKNOWN
    assert TRANSITIONS[(State.PENDING, Outcome.NOT_SENT)] == State.QUEUED


# -- money ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("10", "USD", "10.00"),
        (10.5, "USD", "10.50"),
        ("1e2", "USD", "100.00"),
        ("1000", "JPY", "1000"),
        ("1.234", "KWD", "1.234"),
        (Decimal("7.10"), "EUR", "7.10"),
    ],
)
def test_amounts_are_quantized_to_their_currencys_minor_unit(value, currency, expected):
    amount = parse_amount(value, currency)
    assert str(amount) == expected and wire_text(amount, currency) == expected


@pytest.mark.parametrize(
    ("value", "currency", "problem"),
    [
        ("10.005", "USD", "more precision than USD"),
        ("1.5", "JPY", "more precision than JPY"),
        ("1.2345", "KWD", "more precision than KWD"),
        ("NaN", "USD", "finite"),
        ("Infinity", "USD", "finite"),
        ("ten", "USD", "not a number"),
        (None, "USD", "missing"),
        (True, "USD", "missing"),
        ("1e12", "USD", "less than"),
    ],
)
def test_amounts_that_cannot_be_money_are_refused_with_the_reason(value, currency, problem):
    with pytest.raises(MoneyError, match=problem):
        parse_amount(value, currency)


def test_a_wire_number_prints_as_the_amount_itself():
    assert repr(wire_number(Decimal("19.99"))) == "19.99"
    assert repr(wire_number(Decimal("0.10"))) == "0.1"


# -- the runner ----------------------------------------------------------------------------------------------------


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"MessageId": str(len(self.sent))}


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def record(body: str = "{}", *, failures: int = 0, receive_count: int = 1, message_id: str = "m1") -> dict[str, Any]:
    attributes = {"store_id": {"stringValue": "s1", "dataType": "String"}}
    if failures:
        attributes["failures"] = {"stringValue": str(failures), "dataType": "Number"}
    return {
        "messageId": message_id,
        "receiptHandle": "rh-" + message_id,
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0"},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def run(handler: Any, *records: dict[str, Any], remaining_ms: int = 60_000, budget_s: float = 0) -> tuple[Any, FakeSqs]:
    sqs = FakeSqs()
    runner = SqsJobRunner(sqs=sqs, queue_url="q", dlq_url="dlq", max_failures=8, record_budget_s=budget_s)
    result = runner.run({"Records": list(records)}, Context(remaining_ms), handler)
    return result, sqs


def raising(error: Exception) -> Any:
    def handler(_: Any) -> None:
        raise error

    return handler


def test_a_deferral_sends_the_job_back_delayed_without_counting_a_failure():
    result, sqs = run(raising(JobDeferredError(42, "lease held elsewhere")), record(failures=3))

    (sent,) = sqs.sent
    assert result == {"batchItemFailures": []}  # the original goes; its copy comes back in 42 s
    assert sent["QueueUrl"] == "q" and sent["DelaySeconds"] == 42 and sent["MessageBody"] == "{}"
    assert sent["MessageAttributes"]["failures"]["StringValue"] == "3"
    assert sent["MessageAttributes"]["deferrals"]["StringValue"] == "1"
    assert sent["MessageAttributes"]["store_id"]["StringValue"] == "s1"


def test_a_rate_limit_waits_its_retry_after_and_is_not_a_failure():
    _, sqs = run(
        raising(RateLimitError("richpanel: HTTP 429", retry_after=7, partner="richpanel", status=429)), record()
    )

    (sent,) = sqs.sent
    assert sent["DelaySeconds"] == 7 and sent["MessageAttributes"]["failures"]["StringValue"] == "0"


def test_a_wait_longer_than_sqs_allows_comes_round_again_at_fifteen_minutes():
    _, sqs = run(raising(JobDeferredError(3600, "customer unknown")), record())

    assert sqs.sent[0]["DelaySeconds"] == 900


def test_a_retryable_failure_counts_one_and_backs_off():
    _, sqs = run(raising(ServerError("rise: HTTP 503", status=503, partner="rise")), record(failures=2))

    (sent,) = sqs.sent
    assert sent["MessageAttributes"]["failures"]["StringValue"] == "3"
    assert 5 <= sent["DelaySeconds"] <= 20
    assert sent["MessageAttributes"]["reason"]["StringValue"] == "rise: HTTP 503"


def test_the_eighth_failure_goes_to_the_dlq_with_its_reason():
    _, sqs = run(raising(IntegrationTimeoutError("rise: read timeout", sent=True, partner="rise")), record(failures=7))

    (sent,) = sqs.sent
    assert sent["QueueUrl"] == "dlq" and "DelaySeconds" not in sent
    assert sent["MessageAttributes"]["failed_before"]["StringValue"] == "8"
    assert sent["MessageAttributes"]["failures"]["StringValue"] == "0"  # moved back after a fix, it starts afresh
    assert sent["MessageAttributes"]["reason"]["StringValue"] == "rise: read timeout"


def test_lambdas_own_redeliveries_count_as_failures_too():
    _, sqs = run(raising(ServerError("x", status=500)), record(failures=1, receive_count=7))

    assert sqs.sent[0]["QueueUrl"] == "dlq"  # 1 counted + 6 crashes + this one


def test_a_bug_is_not_swallowed_the_record_fails_and_lambda_redelivers_it(caplog):
    with caplog.at_level(logging.ERROR):
        result, sqs = run(raising(KeyError("bug")), record())

    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert sqs.sent == []
    (logged,) = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert logged.levelno == logging.ERROR and logged.exc_info is not None  # said, with its traceback, not only noted


def test_no_record_starts_with_less_time_left_than_its_budget_and_none_is_counted():
    handled: list[str] = []
    records = [record(message_id=f"m{i}") for i in range(3)]

    result, sqs = run(lambda r: handled.append(r.message_id), *records, remaining_ms=20_000, budget_s=28)

    assert handled == []
    assert result == {"batchItemFailures": []}
    assert [s["DelaySeconds"] for s in sqs.sent] == [0, 0, 0]
    assert {s["MessageAttributes"]["failures"]["StringValue"] for s in sqs.sent} == {"0"}


def grouped(store_id: str, *, sent_ms: int, enqueued_ms: int | None = None) -> dict[str, Any]:
    message = record()
    message["attributes"] |= {"MessageGroupId": store_id, "SentTimestamp": str(sent_ms)}
    if enqueued_ms is not None:
        message["messageAttributes"]["enqueued_at"] = {"stringValue": str(enqueued_ms), "dataType": "Number"}
    return message


def test_a_job_sent_back_stays_in_its_stores_group_and_keeps_when_it_was_first_queued():
    _, sqs = run(raising(JobDeferredError(3, "the account's pace is full")), grouped("store-a", sent_ms=1_700_000))
    _, again = run(
        raising(JobDeferredError(3, "still full")), grouped("store-a", sent_ms=1_900_000, enqueued_ms=1_700_000)
    )

    assert sqs.sent[0]["MessageGroupId"] == "store-a"
    assert sqs.sent[0]["MessageAttributes"]["enqueued_at"]["StringValue"] == "1700000"
    assert again.sent[0]["MessageAttributes"]["enqueued_at"]["StringValue"] == "1700000"  # not the re-send's time


def test_the_per_store_metrics_are_silent_where_metrics_are_disabled(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # as the local stack sets it: no EMF line per job

    run(lambda _: None, grouped("store-b", sent_ms=1_700_000))
    run(raising(JobDeferredError(3, "the account's pace is full")), grouped("store-b", sent_ms=1_700_000))

    printed = capsys.readouterr().out
    assert '"JobDwell"' not in printed and '"JobDeferred"' not in printed


def test_a_done_job_records_its_dwell_per_store_from_when_it_was_first_queued(capsys, monkeypatch):
    import time as clock

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # deployed; a local stack started earlier disables them

    first_queued = int(clock.time() * 1000) - 4_000
    run(lambda _: None, grouped("store-b", sent_ms=first_queued + 3_000, enqueued_ms=first_queued))

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"JobDwell"' in line]
    (dwell,) = lines
    assert dwell["store_id"] == "store-b" and dwell["queue"] == "unknown"
    assert 4_000 <= dwell["JobDwell"][0] < 60_000  # from the first queueing, not the last send
    (dimensions,) = dwell["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert {"queue", "store_id"} <= set(dimensions)


def test_a_deferred_job_carries_the_slots_it_reserved_and_gets_them_back():
    from decimal import Decimal

    from claimbridge.jobs import PACE_RESERVATIONS

    def reserve_then_defer(_: Any) -> None:
        reservations = PACE_RESERVATIONS.get()
        assert reservations is not None
        reservations.hold("PACER#rise#k", [Decimal("1003.5")])
        raise JobDeferredError(3, "the account is busy")

    seen: list[Any] = []

    def look(_: Any) -> None:
        reservations = PACE_RESERVATIONS.get()
        seen.append(reservations.take("PACER#rise#k") if reservations else None)

    _, sqs = run(reserve_then_defer, record())
    back = record()
    carried = sqs.sent[0]["MessageAttributes"]["pace"]["StringValue"]
    back["messageAttributes"]["pace"] = {"stringValue": carried, "dataType": "String"}
    run(look, back)

    assert json.loads(sqs.sent[0]["MessageAttributes"]["pace"]["StringValue"]) == {"PACER#rise#k": ["1003.5"]}
    assert seen == [Decimal("1003.5")] and PACE_RESERVATIONS.get() is None  # and none outside the job
