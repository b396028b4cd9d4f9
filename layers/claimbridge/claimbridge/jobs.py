"""The job runner: SQS batches through Powertools' BatchProcessor, with retries that never sleep.

A record handler raises to keep its message. Before it does, the runner sets the message's visibility: the partner's
``Retry-After`` for a rate limit, exponential backoff with full jitter for a failure worth retrying, the delay a
``JobDeferredError`` asks for. Permanent failures are the domain's to record; it returns normally and the message goes.
After the queue's maxReceiveCount the message moves to the DLQ, and the runner says so in the log.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from claimbridge.clients.http import IntegrationError, RateLimitError
from claimbridge.observability import logger

MAX_VISIBILITY_S = 12 * 3600  # SQS's ceiling for a message's visibility timeout
BACKOFF_BASE_S = 5
BACKOFF_CAP_S = 900


class JobDeferredError(Exception):
    """Come back to this message after ``delay_s`` seconds (a lock held elsewhere, a pacer slot far away)."""

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


def backoff_delay(receive_count: int, *, rng: random.Random | None = None) -> int:
    """Full jitter: uniform in [base, min(cap, base * 2^(n-1))]."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, receive_count - 1))
    return math.ceil((rng or random).uniform(BACKOFF_BASE_S, ceiling))


def receive_count(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


class SqsJobRunner:
    @classmethod
    def for_queue(cls, setting: str) -> SqsJobRunner:
        """The runner of the queue named by a settings field (e.g. ``richpanel_queue_url``), from the environment."""
        from claimbridge.config import get_settings
        from claimbridge.runtime import aws_client

        settings = get_settings().require(setting)
        return cls(
            sqs=aws_client("sqs"), queue_url=getattr(settings, setting), max_receives=int(settings.job_max_receives)
        )

    def __init__(self, *, sqs: Any, queue_url: str, max_receives: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._max_receives = max_receives

    def run(self, event: dict[str, Any], context: Any, handle: Callable[[SQSRecord], None]) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        def record_handler(record: SQSRecord) -> None:
            try:
                handle(record)
            except JobDeferredError as deferred:
                self._retry_later(record, deferred.delay_s, str(deferred))
                raise
            except RateLimitError as error:
                delay = error.retry_after if error.retry_after is not None else backoff_delay(receive_count(record))
                self._retry_later(record, delay, f"{error.partner} rate limit")
                raise
            except IntegrationError as error:
                if error.retryable:
                    self._retry_later(record, backoff_delay(receive_count(record)), str(error))
                else:
                    logger.exception("job failed", message_id=record.message_id, attempt=receive_count(record))
                raise
            except Exception:
                # A bug or an AWS failure: the message comes back after its visibility timeout, then the DLQ.
                logger.exception("job failed", message_id=record.message_id, attempt=receive_count(record))
                raise

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    def _retry_later(self, record: SQSRecord, delay_s: float, reason: str) -> None:
        attempt = receive_count(record)
        visibility = max(0, min(MAX_VISIBILITY_S, math.ceil(delay_s)))
        if attempt >= self._max_receives:
            logger.error(
                "job failed for the last time; it moves to the DLQ",
                message_id=record.message_id,
                attempt=attempt,
                reason=reason,
            )
        else:
            logger.warning(
                "job will be retried",
                message_id=record.message_id,
                attempt=attempt,
                reason=reason,
                retry_in_s=visibility,
            )
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=visibility
        )
