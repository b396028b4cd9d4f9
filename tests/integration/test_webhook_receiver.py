"""The receivers over the emulators: every bad input writes and sends nothing; duplicates enqueue once."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from claimbridge.receiver import WebhookReceiver
from claimbridge.runtime import table_store
from tests.integration.conftest import WEBHOOK_SECRET, claim_created


def assert_nothing_written_or_sent(flow, event_id: str) -> None:
    assert flow.event_record(event_id) is None
    assert flow.messages("RichpanelQueue") == 0


def test_a_new_event_is_recorded_enqueued_once_and_answered_202(flow):
    answer = flow.webhook("claim.created", claim_created("c1"), event_id="evt-1")

    assert answer.status == 202
    assert answer.json() == {"status": "accepted", "event_id": "evt-1"}
    assert flow.event_record("evt-1")["state"] == "ENQUEUED"
    (message,) = flow.receive("RichpanelWorkerFunction")
    assert message["MessageAttributes"]["topic"]["StringValue"] == "claim.created"
    assert json.loads(message["Body"])["body"]["claim_id"] == "c1"


@pytest.mark.parametrize("secret", [None, "", "wrong-secret-0123456789", WEBHOOK_SECRET + "x"])
def test_a_missing_or_wrong_secret_gets_401_and_nothing_is_written_or_sent(flow, secret):
    answer = flow.webhook("claim.created", claim_created("c1"), event_id="evt-401", secret=secret)

    assert answer.status == 401
    assert "x-webhook-secret" in answer.json()["message"]
    assert_nothing_written_or_sent(flow, "evt-401")


def test_an_unknown_store_gets_the_same_401(flow):
    answer = flow.stack.api.invoke(
        "POST",
        "/stores/no-such-store/webhooks/claims",
        {"x-webhook-secret": WEBHOOK_SECRET},
        json.dumps({"id": "e", "topic": "claim.created", "body": {}}),
    )

    assert answer.status == 401
    assert answer.json() == {"message": "missing or wrong x-webhook-secret"}
    assert flow.messages("RichpanelQueue") == 0


def test_either_of_two_rotating_secrets_is_accepted(flow):
    flow.create_store(webhook_secrets=[WEBHOOK_SECRET, "whsec_next_0123456789abcd"])

    old = flow.webhook("claim.created", claim_created("c1"), event_id="evt-old")
    new = flow.webhook("claim.created", claim_created("c2"), event_id="evt-new", secret="whsec_next_0123456789abcd")

    assert (old.status, new.status) == (202, 202)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("not json at all", "not valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        (json.dumps({"topic": "claim.created", "body": {}}), "missing field: id"),
        (json.dumps({"id": "evt-bad", "body": {}}), "missing field: topic"),
        (json.dumps({"id": "evt-bad", "topic": "claim.created"}), "missing field: body"),
        (json.dumps({"id": "evt-bad", "topic": "claim.created", "body": "text"}), "body must be a JSON object"),
    ],
)
def test_a_malformed_envelope_gets_400_naming_the_problem_and_nothing_is_written_or_sent(flow, raw, named):
    answer = flow.stack.api.invoke(
        "POST", f"/stores/{flow.store_id}/webhooks/claims", {"x-webhook-secret": WEBHOOK_SECRET}, raw
    )

    assert answer.status == 400
    assert named in answer.json()["message"]
    assert_nothing_written_or_sent(flow, "evt-bad")


def test_a_body_over_256_kb_gets_413_and_nothing_is_written_or_sent(flow):
    body = claim_created("c1", claim_description="x" * (256 * 1024))

    answer = flow.webhook("claim.created", body, event_id="evt-big")

    assert answer.status == 413
    assert_nothing_written_or_sent(flow, "evt-big")


def test_an_unknown_topic_gets_202_and_nothing_is_written_or_sent(flow):
    answer = flow.webhook("order.shipped", {"order_id": "o1"}, event_id="evt-unknown")

    assert answer.status == 202
    assert answer.json()["status"] == "ignored"
    assert_nothing_written_or_sent(flow, "evt-unknown")


def test_slash_topics_are_normalised_and_either_route_accepts_every_topic(flow):
    answer = flow.webhook("claim/approved", {"claim_id": "c1"}, event_id="evt-slash", route="claims")
    other = flow.webhook("claim/created", claim_created("c2"), event_id="evt-other", route="resolutions")

    assert (answer.status, other.status) == (202, 202)
    topics = sorted(m["MessageAttributes"]["topic"]["StringValue"] for m in flow.receive("RichpanelWorkerFunction"))
    assert topics == ["claim.approved", "claim.created"]


def test_a_duplicate_gets_202_and_enqueues_nothing(flow):
    first = flow.webhook("claim.created", claim_created("c1"), event_id="evt-dup")
    second = flow.webhook("claim.created", claim_created("c1"), event_id="evt-dup")

    assert (first.status, second.status) == (202, 202)
    assert second.json()["status"] == "duplicate"
    assert flow.messages("RichpanelQueue") == 1


def test_twenty_concurrent_deliveries_of_one_event_enqueue_one_job(flow):
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda _: flow.webhook("claim.created", claim_created("c1"), event_id="evt-20"), range(20))
        )

    assert [a.status for a in answers] == [202] * 20
    assert sum(a.json()["status"] == "accepted" for a in answers) == 1
    assert flow.messages("RichpanelQueue") == 1


class FailingOnceSqs:
    """The real SQS client, except that the first send fails (as a throttled or unreachable SQS would)."""

    def __init__(self, real):
        self.real = real
        self.failures = 1

    def send_message(self, **kwargs):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("SQS unreachable")
        return self.real.send_message(**kwargs)


def test_a_failed_send_releases_the_event_so_the_senders_retry_is_enqueued_not_dropped(flow):
    receiver = WebhookReceiver(
        store=table_store(), sqs=FailingOnceSqs(flow.sqs), queue_url=flow.queue_url("RichpanelQueue")
    )
    raw = json.dumps({"id": "evt-retry", "topic": "claim.created", "body": claim_created("c1")})

    failed = receiver.receive(flow.store_id, WEBHOOK_SECRET, raw)
    assert failed.status == 503
    assert flow.event_record("evt-retry") is None
    retried = receiver.receive(flow.store_id, WEBHOOK_SECRET, raw)

    assert retried.status == 202 and retried.body["status"] == "accepted"
    assert flow.messages("RichpanelQueue") == 1


def test_a_pending_event_is_never_a_duplicate_its_retry_gets_503_then_enqueues_after_the_lease(flow):
    # given an event recorded but never enqueued (the send timed out, or the function died between write and send)
    clock = [1_800_000_000.0]
    receiver = WebhookReceiver(
        store=table_store(), sqs=flow.sqs, queue_url=flow.queue_url("RichpanelQueue"), clock=lambda: clock[0]
    )
    raw = json.dumps({"id": "evt-lease", "topic": "claim.created", "body": claim_created("c1")})
    table_store().put(
        {
            "PK": f"EVENT#{flow.store_id}#evt-lease",
            "SK": "EVENT",
            "state": "PENDING",
            "lease": "dead",
            "lease_until": int(clock[0]) + 10,
        }
    )

    within = receiver.receive(flow.store_id, WEBHOOK_SECRET, raw)
    sent_within = flow.messages("RichpanelQueue")
    clock[0] += 11
    after = receiver.receive(flow.store_id, WEBHOOK_SECRET, raw)
    again = receiver.receive(flow.store_id, WEBHOOK_SECRET, raw)

    assert within.status == 503 and within.headers["Retry-After"] == "10"  # retryable: the sender comes back
    assert sent_within == 0
    assert after.status == 202 and after.body["status"] == "accepted"
    assert flow.event_record("evt-lease")["state"] == "ENQUEUED"
    assert again.status == 202 and again.body["status"] == "duplicate"
    assert flow.messages("RichpanelQueue") == 1


class SlowSendSqs:
    """Holds the send until told: a delivery caught between its write and its send."""

    def __init__(self, sqs, release) -> None:
        self._sqs = sqs
        self._release = release

    def send_message(self, **kwargs):
        self._release.wait(5)
        return self._sqs.send_message(**kwargs)


def test_a_duplicate_arriving_while_the_first_delivery_sends_waits_for_it_and_is_a_202(flow):

    release = threading.Event()
    slow = WebhookReceiver(
        store=table_store(), sqs=SlowSendSqs(flow.sqs, release), queue_url=flow.queue_url("RichpanelQueue")
    )
    raw = json.dumps({"id": "evt-race", "topic": "claim.created", "body": claim_created("c1")})
    answers: dict[str, object] = {}
    first = threading.Thread(
        target=lambda: answers.setdefault("first", slow.receive(flow.store_id, WEBHOOK_SECRET, raw))
    )
    first.start()
    # when the first delivery has written its record and is still sending
    deadline = time.monotonic() + 5
    while flow.event_record("evt-race") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    threading.Timer(0.3, release.set).start()
    second = flow.webhook("claim.created", claim_created("c1"), event_id="evt-race")
    first.join()

    assert answers["first"].status == 202  # type: ignore[attr-defined]
    assert second.status == 202 and second.json()["status"] == "duplicate"
    assert flow.messages("RichpanelQueue") == 1


def test_a_handled_event_is_never_enqueued_again(flow, sandbox):
    flow.configure_richpanel()
    flow.webhook("claim.created", claim_created("c1"), event_id="evt-done")
    flow.work()

    again = flow.webhook("claim.created", claim_created("c1"), event_id="evt-done")

    assert flow.event_record("evt-done")["state"] == "DONE"
    assert again.json()["status"] == "duplicate"
    assert flow.messages("RichpanelQueue") == 0
