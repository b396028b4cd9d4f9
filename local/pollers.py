"""Lambda's SQS event source, locally: long-poll, batch, invoke, delete what succeeded, leave the failures.

Semantics kept from Lambda: batch size from the template; with ``ReportBatchItemFailures`` only the reported records
stay on the queue, otherwise a raised handler leaves the whole batch; a record left on the queue comes back after its
visibility timeout, and the queue's own redrive policy moves it to the DLQ after maxReceiveCount receives;
``ScalingConfig.MaximumConcurrency`` bounds the concurrent invocations.

**Fair queues, emulated.** Every job carries its store as ``MessageGroupId``; on a standard queue SQS fair queues
then keep a store with a large backlog from raising the dwell time of the others. moto has no fair queues, so one
fetcher per queue reads ahead into a buffer by group, and each free invoker takes a batch from the group with the
fewest messages in flight (the oldest first among equals): a store with many messages in flight yields to quiet
stores. This is an emulation of the service's behaviour, not its algorithm.

**Deletes, batched across invocations.** What an invocation finished is deleted by one deleter per queue, in batches of
up to ten that gather while the previous batch is in flight: under load several invocations share a request to the
emulator (each SQS request costs the shared CPU far more than on AWS), and alone a batch goes at once. A message is
deleted a few milliseconds after its invocation rather than at its end; a delete that fails leaves it to come back
after its visibility timeout, as a failed delete does on Lambda.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any

from local.functions import LocalFunction
from local.template import Resolver, resources_of


@dataclass(frozen=True)
class SqsSource:
    function: str
    queue_url: str
    queue_arn: str
    batch_size: int
    window_s: float
    concurrency: int
    report_failures: bool


def sqs_sources(template: dict[str, Any], resolver: Resolver) -> list[SqsSource]:
    arn_to_url = {
        resolver.attrs[(logical_id, "Arn")]: resolver.refs[logical_id]
        for logical_id in resources_of(template, "AWS::SQS::Queue")
    }
    sources = []
    for function_id, spec in resources_of(template, "AWS::Serverless::Function").items():
        for event in (spec["Properties"].get("Events") or {}).values():
            if event["Type"] != "SQS":
                continue
            props = resolver.resolve(event["Properties"])
            sources.append(
                SqsSource(
                    function=function_id,
                    queue_url=arn_to_url[props["Queue"]],
                    queue_arn=props["Queue"],
                    batch_size=int(props.get("BatchSize", 10)),
                    window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    concurrency=int((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 2)),
                    report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                )
            )
    return sources


def to_record(message: dict[str, Any], source: SqsSource) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "local"),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", ""),
            **({"MessageGroupId": attributes["MessageGroupId"]} if attributes.get("MessageGroupId") else {}),
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "dataType": value.get("DataType", "String"),
                "stringListValues": [],
                "binaryListValues": [],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": "us-east-1",
    }


class Poller:
    """One queue's invokers (``concurrency`` of them) fed by one fetcher that reads ahead, fairly by store."""

    READ_AHEAD_PER_INVOKER = 10  # messages held per invoker, at most; they stay invisible while held

    def __init__(self, source: SqsSource, function: LocalFunction, sqs: Any, stop: threading.Event) -> None:
        self.source = source
        self._function = function
        self.sqs = sqs
        self._stop = stop
        self.invocations = 0
        self._ready = threading.Condition()
        self._groups: dict[str, deque[tuple[float, dict[str, Any]]]] = {}
        self._in_flight: dict[str, int] = {}
        self._held = 0
        self._hold_s = 300.0  # refreshed from the queue's visibility timeout at start
        self._finished: deque[str] = deque()  # receipt handles of records done, for the deleter
        self._finished_ready = threading.Condition()
        self._deleting = False  # whether the deleter runs (``start``)

    def start(self) -> list[threading.Thread]:
        with contextlib.suppress(Exception):
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.source.queue_url, AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
            self._hold_s = max(5.0, float(attributes["VisibilityTimeout"]) - 30)
        self._deleting = True
        threads = [
            threading.Thread(target=self._fetch, name=f"poller-{self.source.function}-fetch", daemon=True),
            threading.Thread(target=self._delete, name=f"poller-{self.source.function}-delete", daemon=True),
        ]
        threads += [
            threading.Thread(target=self._run, name=f"poller-{self.source.function}-{i}", daemon=True)
            for i in range(self.source.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _fetch(self) -> None:
        limit = max(self.source.batch_size, self.READ_AHEAD_PER_INVOKER * self.source.concurrency)
        while not self._stop.is_set():
            try:
                with self._ready:
                    while self._held >= limit and not self._stop.is_set():
                        self._ready.wait(0.5)
                # A long poll, as Lambda's: it answers at once when messages are there and otherwise waits for one,
                # where polling again every few milliseconds made the emulator scan the queue for nothing.
                answer = self.sqs.receive_message(
                    QueueUrl=self.source.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                messages = answer.get("Messages", [])
                if not messages:
                    continue
                now = time.monotonic()
                with self._ready:
                    for message in messages:
                        group = (message.get("Attributes") or {}).get("MessageGroupId") or "-"
                        self._groups.setdefault(group, deque()).append((now, message))
                        self._held += 1
                    self._ready.notify_all()
            except Exception:  # noqa: BLE001 - a fetcher must outlive any one failure, as Lambda's does
                if not self._stop.is_set():
                    traceback.print_exc()
                    time.sleep(1)

    def _take(self) -> tuple[str, list[dict[str, Any]]] | None:
        """A batch of one store's messages: the store with the fewest in flight, its oldest message first among
        equals. Messages held past the visibility timeout are dropped here (they are visible on the queue again)."""
        with self._ready:
            while not self._stop.is_set():
                now = time.monotonic()
                for held in self._groups.values():
                    while held and now - held[0][0] > self._hold_s:
                        held.popleft()
                        self._held -= 1
                waiting = [(self._in_flight.get(g, 0), held[0][0], g) for g, held in self._groups.items() if held]
                if waiting:
                    _, _, group = min(waiting)
                    held = self._groups[group]
                    batch = [held.popleft()[1] for _ in range(min(self.source.batch_size, len(held)))]
                    self._held -= len(batch)
                    self._in_flight[group] = self._in_flight.get(group, 0) + len(batch)
                    if not held:
                        del self._groups[group]
                    self._ready.notify_all()
                    return group, batch
                self._ready.wait(0.5)
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            taken = self._take()
            if taken is None:
                return
            group, messages = taken
            try:
                self.poll_once(messages)
            except Exception:  # noqa: BLE001 - an invoker must outlive any one failure, as Lambda's does
                if not self._stop.is_set():
                    traceback.print_exc()
                    time.sleep(1)
            finally:
                with self._ready:
                    self._in_flight[group] -= len(messages)
                    if not self._in_flight[group]:
                        del self._in_flight[group]

    def poll_once(self, messages: list[dict[str, Any]]) -> None:
        records = [to_record(message, self.source) for message in messages]
        self.invocations += 1
        try:
            result = self._function.invoke({"Records": records})
        except Exception:  # noqa: BLE001 - Lambda keeps the whole batch on a raised handler
            traceback.print_exc()
            return
        failed: set[str] = set()
        if self.source.report_failures and isinstance(result, dict):
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        handles = [r["receiptHandle"] for r in records if r["messageId"] not in failed]
        if not self._deleting:  # a poller driven by hand (the integration tests): deleted now, as before
            for start in range(0, len(handles), 10):
                self._delete_batch(handles[start : start + 10])
            return
        with self._finished_ready:
            self._finished.extend(handles)
            self._finished_ready.notify()

    def _delete(self) -> None:
        while not self._stop.is_set():
            with self._finished_ready:
                while not self._finished and not self._stop.is_set():
                    self._finished_ready.wait(0.5)
                handles = [self._finished.popleft() for _ in range(min(10, len(self._finished)))]
            if not handles:
                continue
            try:
                self._delete_batch(handles)
            except Exception:  # noqa: BLE001 - not deleted: the messages come back after their visibility timeout
                if not self._stop.is_set():
                    traceback.print_exc()

    def _delete_batch(self, handles: list[str]) -> None:
        self.sqs.delete_message_batch(
            QueueUrl=self.source.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(handles)],
        )
