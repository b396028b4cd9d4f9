"""The job queues as an operator sees them: depth, in flight, delayed, the oldest message's age, the DLQ's depth; and
one call that moves a DLQ's messages back to their queue after an outage.

A move uses SQS's own ``StartMessageMoveTask`` where the engine has it; where it does not (the local emulator), the
messages are moved here, each sent to the queue before it is deleted from the DLQ (a crash in between duplicates a
job, which the workers absorb, and never loses one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from claimbridge.errors import ResourceNotFoundError, UnavailableError
from claimbridge.observability import logger

# What an engine without the move task answers: moto answers an unknown action with a bare HTTP 500 whose body names
# no error code, so botocore's code is "500" (AWS's own errors always carry a named code). Anything else is a refusal.
UNSUPPORTED = frozenset({"InvalidAction", "UnsupportedOperation", "NotImplemented", "500", "501"})
COUNTS = {
    "ApproximateNumberOfMessages": "depth",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


@dataclass(frozen=True)
class JobQueue:
    name: str  # richpanel | credit | order_protection | postco
    url: str
    dlq_url: str


class QueueAdmin:
    def __init__(
        self, *, sqs: Any, queues: list[JobQueue], oldest_age: Callable[[str], int | None] | None = None
    ) -> None:
        self._sqs = sqs
        self._queues = {queue.name: queue for queue in queues}
        self._oldest_age = oldest_age or (lambda url: None)

    def overview(self) -> dict[str, Any]:
        return {"queues": [self._describe(queue) for queue in self._queues.values()]}

    def _describe(self, queue: JobQueue) -> dict[str, Any]:
        own = self._counts(queue.url)
        dead = self._counts(queue.dlq_url)
        return {
            "name": queue.name,
            **own,
            "oldest_age_s": self._oldest_age(queue.url),
            "dlq_depth": dead["depth"] + dead["in_flight"],
        }

    def _counts(self, url: str) -> dict[str, int]:
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(COUNTS))["Attributes"]
        return {label: int(attributes.get(name, 0)) for name, label in COUNTS.items()}

    def redrive(self, name: str) -> dict[str, Any]:
        queue = self._queues.get(name)
        if queue is None:
            raise ResourceNotFoundError(f"unknown queue {name!r}; known: {', '.join(self._queues)}")
        from botocore.exceptions import ClientError

        arns = {
            url: self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for url in (queue.url, queue.dlq_url)
        }
        try:
            task = self._sqs.start_message_move_task(SourceArn=arns[queue.dlq_url], DestinationArn=arns[queue.url])
        except (ClientError, AttributeError, NotImplementedError) as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
            if isinstance(error, ClientError) and code not in UNSUPPORTED:
                raise UnavailableError(f"SQS refused the move ({code}); nothing was moved") from error
            logger.info("StartMessageMoveTask unavailable here; moving the messages one by one", code=code)
            moved = self._move(queue)
            return {"queue": name, "moved": moved, "how": "moved by claimbridge (the engine has no move task)"}
        logger.info("DLQ redrive started", queue=name, task=task.get("TaskHandle"))
        return {"queue": name, "task": task.get("TaskHandle"), "how": "SQS StartMessageMoveTask"}

    def _move(self, queue: JobQueue, *, deadline_s: float = 10.0) -> int:
        moved = 0
        stop = time.monotonic() + deadline_s
        while time.monotonic() < stop:
            answer = self._sqs.receive_message(
                QueueUrl=queue.dlq_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["MessageGroupId"],
                WaitTimeSeconds=0,
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            for message in messages:
                attributes = {
                    key: value
                    for key, value in (message.get("MessageAttributes") or {}).items()
                    if key not in ("failures", "deferrals", "reason", "failed_before")  # a fresh start after the fix
                }
                group = (message.get("Attributes") or {}).get("MessageGroupId")  # the store, kept
                self._sqs.send_message(
                    QueueUrl=queue.url,
                    MessageBody=message["Body"],
                    MessageAttributes=attributes,
                    **({"MessageGroupId": group} if group else {}),
                )
                self._sqs.delete_message(QueueUrl=queue.dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        logger.info("DLQ redriven", queue=queue.name, moved=moved)
        return moved
