"""The Order Protection queue's worker: report issued credits back to Order Protection (its own retries)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.clients.order_protection import OrderProtectionClient
from claimbridge.config import get_settings
from claimbridge.jobs import SqsJobRunner
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.reports import ReportService
from claimbridge.runtime import store_directory, table_store

tracer = get_tracer()
REPORT_TIMEOUT = (3.05, 10.0)


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


def handle_record(record: SQSRecord) -> None:
    report = json.loads(record.body)
    service().handle(report["store_id"], report["pk"], report["sk"])


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_report_jobs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runner().run(event, context, handle_record)
