"""Lambda's SQS event source, locally: long-poll, batch, invoke, delete what succeeded, leave the failures.

Semantics kept from Lambda: batch size and batching window from the template; with ``ReportBatchItemFailures`` only
the reported records stay on the queue, otherwise a raised handler leaves the whole batch; a record left on the queue
comes back after its visibility timeout (which the worker may have changed to defer it), and the queue's own redrive
policy moves it to the DLQ after maxReceiveCount receives; ``ScalingConfig.MaximumConcurrency`` bounds the pollers.
"""

from __future__ import annotations

import hashlib
import threading
import time
import traceback
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
    def __init__(self, source: SqsSource, function: LocalFunction, sqs: Any, stop: threading.Event) -> None:
        self.source = source
        self._function = function
        self._sqs = sqs
        self._stop = stop
        self.invocations = 0

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._run, name=f"poller-{self.source.function}-{i}", daemon=True)
            for i in range(self.source.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.source.window_s
        while len(messages) < self.source.batch_size and not self._stop.is_set():
            answer = self._sqs.receive_message(
                QueueUrl=self.source.queue_url,
                MaxNumberOfMessages=min(10, self.source.batch_size - len(messages)),
                WaitTimeSeconds=1 if not messages else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            messages.extend(batch)
            if not batch or time.monotonic() >= deadline:
                break
        return messages

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._receive()
                if messages:
                    self.poll_once(messages)
            except Exception:  # noqa: BLE001 - a poller must outlive any one failure, as Lambda's does
                if not self._stop.is_set():
                    traceback.print_exc()
                    time.sleep(1)

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
        done = [r for r in records if r["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
