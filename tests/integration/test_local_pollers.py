"""The local stack's SQS event source (``local/pollers.py``) on the emulator's queues: what it deletes, and when."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from local.pollers import Poller, SqsSource


class RecordingFunction:
    """A function that records each invocation's records (the poller's side of the contract is under test here); every
    invocation after the first waits for ``gate``."""

    def __init__(self, gate: threading.Event) -> None:
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.gate = gate

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            first = not self.records
            self.records.extend(event["Records"])
        if not first:
            self.gate.wait(30)
        return {"batchItemFailures": []}


class HeldDeletes:
    """The emulator's SQS client, its first delete held until released: the deletes that finish meanwhile gather."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.release = threading.Event()
        self.entered = threading.Event()
        self.deletes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def delete_message_batch(self, **request: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
        self.deletes.append(len(request["Entries"]))
        return self._sqs.delete_message_batch(**request)


def _wait(done: Any, what: str, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _left(sqs: Any, url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    return sum(int(v) for v in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"].values())


def test_what_invocations_finish_while_a_delete_is_in_flight_is_deleted_together_and_nothing_comes_back(stack):
    sqs = stack.emulators.client("sqs")
    url = sqs.create_queue(QueueName=f"t-pollers-{secrets.token_hex(4)}", Attributes={"VisibilityTimeout": "60"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for n in range(20):
        sqs.send_message(QueueUrl=url, MessageBody=f"job-{n}", MessageGroupId="store-a")
    client, stop = HeldDeletes(sqs), threading.Event()
    function = RecordingFunction(gate=client.entered)  # the first invocation's delete is in flight before the rest end
    source = SqsSource("Recording", url, arn, batch_size=1, window_s=0, concurrency=4, report_failures=True)
    poller = Poller(source, function, client, stop)  # type: ignore[arg-type]
    poller.start()
    try:
        _wait(lambda: len(poller._finished) >= 19, "the nineteen later invocations finished while the first's delete")
        client.release.set()
        _wait(lambda: _left(sqs, url) == 0, "every message deleted")
    finally:
        stop.set()

    assert sorted(r["body"] for r in function.records) == sorted(f"job-{n}" for n in range(20))  # each once
    assert client.deletes == [
        1,
        10,
        9,
    ]  # twenty invocations, three requests: the first alone, the rest as they gathered
