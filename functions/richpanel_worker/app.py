"""The Richpanel queue's worker: every Order Protection event recorded; tickets opened and snoozed."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.claims import ClaimsService, EventJob
from claimbridge.clients.order_protection import OrderProtectionClient
from claimbridge.clients.richpanel import RichpanelClient
from claimbridge.config import get_settings
from claimbridge.jobs import PACE_RESERVATIONS, SqsJobRunner
from claimbridge.models.credits import CreditJob
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.pacing import PACE_WAIT_S, TablePacer, account_key
from claimbridge.runtime import aws_client, group, store_directory, table_store

tracer = get_tracer()
RICHPANEL_INTERVAL_S = 30 / 50 * 1.02  # 50 requests per 30 s per account, with 2% to spare
RICHPANEL_TIMEOUT = (3.05, 5.0)
RECORD_BUDGET_S = PACE_WAIT_S + 2 * sum(RICHPANEL_TIMEOUT)  # the pacer's longest wait, then two calls


@lru_cache(maxsize=1)
def runner() -> SqsJobRunner:
    # A record's worst case: a pacer wait, a create and its read-back, a snooze (each within its timeout).
    return SqsJobRunner.for_queue("richpanel", record_budget_s=RECORD_BUDGET_S)


@lru_cache(maxsize=1)
def service() -> ClaimsService:
    settings = get_settings().require("table_name", "kms_key_id", "credit_queue_url")
    store = table_store()
    sqs = aws_client("sqs")

    def enqueue_credits(jobs: list[CreditJob]) -> None:
        for start in range(0, len(jobs), 10):
            answer = sqs.send_message_batch(
                QueueUrl=settings.credit_queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": job.model_dump_json(), **group(job.store_id)}
                    for i, job in enumerate(jobs[start : start + 10])
                ],
            )
            if answer.get("Failed"):  # the event is retried; the ledger makes a second send harmless
                raise RuntimeError(f"{len(answer['Failed'])} credit job(s) not enqueued")

    return ClaimsService(
        store=store,
        directory=store_directory(),
        richpanel=lambda api_key, observer: RichpanelClient(
            api_key=api_key,
            base_url=settings.richpanel_api_base_url,
            pacer=TablePacer(store, account_key("richpanel", api_key), interval_s=RICHPANEL_INTERVAL_S),
            observer=observer,
            timeout=RICHPANEL_TIMEOUT,
        ),
        order_protection=lambda token, observer: OrderProtectionClient(
            api_token=token, base_url=settings.order_protection_api_base_url, observer=observer
        ),
        dashboard_claim_url_template=settings.dashboard_claim_url_template,
        enqueue_credits=enqueue_credits,
    )


def job_of(record: SQSRecord) -> EventJob:
    def attribute(name: str) -> str:
        value = record.message_attributes[name]
        return (value.string_value if value is not None else None) or ""

    received = record.message_attributes["received_at"]
    sent_ms = (received.string_value if received is not None else None) or record.attributes.sent_timestamp
    return EventJob(
        store_id=attribute("store_id"),
        event_id=attribute("event_id"),
        topic=attribute("topic"),
        raw=record.body,
        sent_at_us=int(sent_ms) * 1000 if sent_ms and str(sent_ms).isdigit() else None,
        resumed=bool(reservations.held) if (reservations := PACE_RESERVATIONS.get()) is not None else False,
    )


def handle_record(record: SQSRecord) -> None:
    job = job_of(record)
    logger.append_keys(store_id=job.store_id, event_id=job.event_id, topic=job.topic)
    service().handle(job)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_richpanel_jobs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runner().run(event, context, handle_record)
