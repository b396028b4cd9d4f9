"""The job runner: SQS batches through Powertools' BatchProcessor, with retries that count only failures.

A record handler raises to ask for its job again. The runner then sends the job back to its queue as a new message,
delayed (``DelaySeconds``, at most SQS's 15 minutes; a longer wait simply comes round again), and lets the original
go. The message carries how many times the job *failed* (``failures``): waiting is not failing, so a deferral
(a lease held elsewhere, a customer not known yet) and a partner's ``Retry-After`` send it back with the count
unchanged, and a backlog never pushes healthy jobs into the DLQ. A failure worth retrying (a 5xx, a timeout, a refused
connection) counts one, backs off exponentially with full jitter, and at the queue's limit goes to the DLQ with its
reason. Anything else (a bug, an AWS outage) raises through: Lambda's own receive count and the queue's redrive
policy take it from there.

The runner also stops taking records when the function's remaining time is shorter than one record's budget: the rest
of the batch goes back at once, uncounted, so a slow partner never times out a batch and costs every record a try.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from claimbridge.clients.http import IntegrationError, RateLimitError
from claimbridge.observability import NAMESPACE, logger, metrics

MAX_DELAY_S = 900  # SQS's ceiling for DelaySeconds
MAX_DEFERRALS = 2000  # a job that waited this often (days of 429s, a lease never freed) goes to the DLQ to be seen
BACKOFF_BASE_S = 5
BACKOFF_CAP_S = 900
FAILURES = "failures"
PACE = "pace"
ENQUEUED_AT = "enqueued_at"
DEFERRALS = "deferrals"


class PaceReservations:
    """The pacer slots a job holds, by pacer key: reserved when its account was busy and the job deferred to its
    slot, carried on its message (``pace``) so that it comes back to a slot already its own. ``used`` counts the
    slots this invocation took per key."""

    def __init__(self, held: dict[str, list[str]] | None = None) -> None:
        self.held: dict[str, list[Decimal]] = {k: [Decimal(v) for v in vs] for k, vs in (held or {}).items()}
        self.used: dict[str, int] = {}
        # The calls this pass will surely make to the same account after the one being paced (``calls_after``):
        # deferred at that call, the job reserves their slots too, and comes back to make them all in one pass.
        self.after = 0

    @classmethod
    def from_record(cls, record: SQSRecord) -> PaceReservations:
        kept = record.message_attributes[PACE]
        try:
            return cls(json.loads(kept.string_value) if kept is not None and kept.string_value else None)
        except (ValueError, TypeError, ArithmeticError):
            return cls()

    def take(self, key: str) -> Decimal | None:
        slots = self.held.get(key)
        return slots.pop(0) if slots else None

    def hold(self, key: str, slots: list[Decimal]) -> None:
        self.held[key] = sorted([*slots, *self.held.get(key, [])])

    def attribute(self) -> str | None:
        held = {k: [str(v) for v in vs] for k, vs in self.held.items() if vs}
        return json.dumps(held) if held else None


# The running job's reservations (set by the runner around each record; None outside a job: the admin API's calls).
PACE_RESERVATIONS: ContextVar[PaceReservations | None] = ContextVar("pace_reservations", default=None)


class JobDeferredError(Exception):
    """Come back to this job after ``delay_s`` seconds (a lease held elsewhere, something not known yet)."""

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


def backoff_delay(failures: int, *, rng: random.Random | None = None) -> int:
    """Full jitter: uniform in [base, min(cap, base * 2^(n-1))]."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return math.ceil((rng or random).uniform(BACKOFF_BASE_S, ceiling))


def _counter(record: SQSRecord, name: str) -> int:
    found = record.message_attributes[name]
    value = found.string_value if found is not None else None
    return int(value) if value and value.isdigit() else 0


def failures_of(record: SQSRecord) -> int:
    """How many times this job failed before: the message's count, plus Lambda's redeliveries of this message."""
    redelivered = int(record.attributes.approximate_receive_count or 1) - 1
    return _counter(record, FAILURES) + redelivered


class SqsJobRunner:
    @classmethod
    def for_queue(cls, queue: str, *, record_budget_s: float = 0) -> SqsJobRunner:
        """The runner of a job queue by its settings' prefix (``richpanel``, ``credit``, ``order_protection``)."""
        from claimbridge.config import get_settings
        from claimbridge.runtime import aws_client

        settings = get_settings().require(f"{queue}_queue_url", f"{queue}_dlq_url")
        return cls(
            sqs=aws_client("sqs"),
            name=queue,
            queue_url=getattr(settings, f"{queue}_queue_url"),
            dlq_url=getattr(settings, f"{queue}_dlq_url"),
            max_failures=int(settings.job_max_receives),
            record_budget_s=record_budget_s,
        )

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        dlq_url: str,
        max_failures: int,
        record_budget_s: float = 0,
        name: str = "",
    ) -> None:
        self._sqs = sqs
        self._name = name
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._max_failures = max_failures
        self._budget_ms = record_budget_s * 1000

    def run(self, event: dict[str, Any], context: Any, handle: Callable[[SQSRecord], None]) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        def record_handler(record: SQSRecord) -> None:
            remaining = context.get_remaining_time_in_millis() if context is not None else None
            if remaining is not None and remaining < self._budget_ms:
                self._again(record, 0, "the function's time is nearly out; not started", failed=False)
                return
            pace = PaceReservations.from_record(record)
            token = PACE_RESERVATIONS.set(pace)
            try:
                handle(record)
                self._done(record)
            except JobDeferredError as deferred:
                self._again(record, deferred.delay_s, str(deferred), failed=False, pace=pace.attribute())
            except RateLimitError as error:
                delay = error.retry_after if error.retry_after is not None else BACKOFF_BASE_S
                self._again(record, delay, f"{error.partner} rate limit", failed=False)
            except IntegrationError as error:
                if not error.retryable:
                    logger.exception("job failed", message_id=record.message_id, failures=failures_of(record))
                    raise
                self._again(record, backoff_delay(failures_of(record) + 1), str(error), failed=True)
            except Exception:
                # Said here: the batch processor would only note it at debug level, and the job would come back after
                # its visibility timeout with nothing in the log to say why it waited.
                logger.exception(
                    "job failed unexpectedly; it comes back after the queue's visibility timeout",
                    message_id=record.message_id,
                    failures=failures_of(record),
                )
                raise
            finally:
                PACE_RESERVATIONS.reset(token)

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    def _again(self, record: SQSRecord, delay_s: float, reason: str, *, failed: bool, pace: str | None = None) -> None:
        """Send the job back, delayed; a failure counts one, and the last one goes to the DLQ instead."""
        failures = failures_of(record) + (1 if failed else 0)
        deferrals = _counter(record, DEFERRALS) + (not failed)
        if deferrals > MAX_DEFERRALS:
            reason = f"deferred {deferrals} times; last: {reason}"
            failures = self._max_failures
        attributes = {
            name: {"DataType": value.data_type, "StringValue": value.string_value}
            for name, value in record.message_attributes.items()
            if value.string_value is not None and name not in (FAILURES, DEFERRALS, ENQUEUED_AT, PACE, "reason")
        }
        # When the job was first queued, kept across sends back: its dwell time is measured from there.
        attributes[ENQUEUED_AT] = {"DataType": "Number", "StringValue": str(enqueued_at_ms(record))}
        if pace:  # the slots it was deferred to: its own when it comes back
            attributes[PACE] = {"DataType": "String", "StringValue": pace}
        attributes[FAILURES] = {"DataType": "Number", "StringValue": str(failures)}
        attributes[DEFERRALS] = {"DataType": "Number", "StringValue": str(deferrals)}
        attributes["reason"] = {"DataType": "String", "StringValue": reason[:500] or "-"}
        if failures >= self._max_failures:
            logger.error(
                "job failed for the last time; it moves to the DLQ",
                message_id=record.message_id,
                failures=failures,
                reason=reason,
            )
            metrics.add_metric(name="JobDeadLettered", unit="Count", value=1)
            # Moved back after a fix, it starts afresh; how often it failed stays readable as failed_before.
            dead = attributes | {
                FAILURES: {"DataType": "Number", "StringValue": "0"},
                DEFERRALS: {"DataType": "Number", "StringValue": "0"},
                "failed_before": {"DataType": "Number", "StringValue": str(failures)},
            }
            group = record.attributes.message_group_id
            self._sqs.send_message(
                QueueUrl=self._dlq_url,
                MessageBody=record.body,
                MessageAttributes=dead,
                **({"MessageGroupId": group} if group else {}),
            )
            return
        delay = max(0, min(MAX_DELAY_S, math.ceil(delay_s)))
        log = logger.warning if failed else logger.info
        log(
            "job sent back",
            message_id=record.message_id,
            failed=failed,
            failures=failures,
            reason=reason,
            retry_in_s=delay,
        )
        group = record.attributes.message_group_id  # the store: a job sent back stays in its store's group
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=record.body,
            MessageAttributes=attributes,
            DelaySeconds=delay,
            **({"MessageGroupId": group} if group else {}),
        )
        if not failed and group:
            _store_metric("JobDeferred", MetricUnit.Count, 1, self._name, group)

    def _done(self, record: SQSRecord) -> None:
        """How long the job waited, from when it was first queued to when it was done: per store, so an operator
        sees who is flooding (the two metrics with a ``store_id`` dimension: JobDwell, whose sample count is the jobs
        done, and JobDeferred)."""
        group = record.attributes.message_group_id
        if not group:
            return
        dwell_ms = max(0, int(time.time() * 1000) - enqueued_at_ms(record))
        _store_metric("JobDwell", MetricUnit.Milliseconds, dwell_ms, self._name, group)


def enqueued_at_ms(record: SQSRecord) -> int:
    """When the job was first queued (ms): carried as a message attribute across sends back, else this message's."""
    kept = record.message_attributes[ENQUEUED_AT]
    if kept is not None and kept.string_value and kept.string_value.isdigit():
        return int(kept.string_value)
    sent = record.attributes.sent_timestamp
    return int(sent) if sent and str(sent).isdigit() else int(time.time() * 1000)


def _store_metric(name: str, unit: MetricUnit, value: float, queue: str, store_id: str) -> None:
    if is_metrics_disabled():  # as the functions' own metrics are (single_metric prints its line regardless)
        return
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="queue", value=queue or "unknown")
        metric.add_dimension(name="store_id", value=store_id[:250])
