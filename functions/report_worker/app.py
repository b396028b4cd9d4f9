"""The Order Protection queue's worker: resolutions reported back to Order Protection (issued credits, reships,
refunds) and the store's inventory pushed a chunk at a time, each with its own retries and once."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.clients.order_protection import OrderProtectionClient
from claimbridge.config import get_settings
from claimbridge.inventory import Inventory
from claimbridge.jobs import SqsJobRunner
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.pacing import TablePacer, account_key
from claimbridge.protection import ProtectionCancels
from claimbridge.reports import ReportService
from claimbridge.runtime import send_reports, store_directory, table_store

tracer = get_tracer()
REPORT_TIMEOUT = (3.05, 10.0)
OP_INTERVAL_S = 0.2  # inventory chunks: 5 a second per token (a choice: Order Protection publishes no limit)


@lru_cache(maxsize=1)
def runner() -> SqsJobRunner:
    return SqsJobRunner.for_queue("order_protection", record_budget_s=sum(REPORT_TIMEOUT))


@lru_cache(maxsize=1)
def service() -> ReportService:
    settings = get_settings().require("table_name", "kms_key_id")
    store = table_store()
    return ReportService(
        store=store,
        directory=store_directory(),
        order_protection=lambda token, observer: OrderProtectionClient(
            api_token=token, base_url=settings.order_protection_api_base_url, observer=observer, timeout=REPORT_TIMEOUT
        ),
    )


@lru_cache(maxsize=1)
def inventory() -> Inventory:
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url")
    store = table_store()
    return Inventory(
        store=store,
        directory=store_directory(),
        enqueue=lambda jobs: send_reports(settings, jobs),
        order_protection=lambda token: OrderProtectionClient(
            api_token=token,
            base_url=settings.order_protection_api_base_url,
            timeout=REPORT_TIMEOUT,
            pacer=TablePacer(store, account_key("order_protection", token), interval_s=OP_INTERVAL_S),
        ),
    )


@lru_cache(maxsize=1)
def cancels() -> ProtectionCancels:
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url")
    return ProtectionCancels(
        store=table_store(),
        directory=store_directory(),
        enqueue=lambda job: send_reports(settings, [job]),
        order_protection=lambda token: OrderProtectionClient(
            api_token=token, base_url=settings.order_protection_api_base_url, timeout=REPORT_TIMEOUT
        ),
    )


def handle_record(record: SQSRecord) -> None:
    job = json.loads(record.body)
    logger.append_keys(store_id=job.get("store_id"))
    if job.get("task") == "inventory":
        inventory().push_chunk(job["store_id"], job["push_id"], job["chunk"])
        return
    if job.get("task") == "cancel":
        cancels().send(job["store_id"], job["pk"], job["sk"])
        return
    service().handle(job["store_id"], job["pk"], job["sk"])


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_report_jobs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runner().run(event, context, handle_record)
