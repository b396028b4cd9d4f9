"""The credit queue's worker: gift cards and loyalty-card top-ups through Rise.ai, exactly once."""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.clients.rise import RiseClient
from claimbridge.config import get_settings
from claimbridge.credits import CreditService
from claimbridge.jobs import SqsJobRunner
from claimbridge.models.credits import CreditJob
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.pacing import LocalPacer, account_key
from claimbridge.runtime import aws_client, store_directory, table_store

tracer = get_tracer()
RISE_RATE_PER_S = 2.0
QUEUE_MAX_CONCURRENCY = 2  # the template's ScalingConfig.MaximumConcurrency for this function
RISE_INTERVAL_S = QUEUE_MAX_CONCURRENCY / RISE_RATE_PER_S * 1.1  # each execution environment's share, 10% spare

# One pacer per Rise token per execution environment. Lambda runs one invocation at a time in an environment; the
# local stack runs concurrent pollers as threads of one process, so the key includes the thread.
_pacers: dict[tuple[int, str], LocalPacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(token: str) -> LocalPacer:
    key = (threading.get_ident(), account_key("rise", token))
    with _pacers_lock:
        return _pacers.setdefault(key, LocalPacer(RISE_INTERVAL_S))


@lru_cache(maxsize=1)
def runner() -> SqsJobRunner:
    return SqsJobRunner.for_queue("credit_queue_url")


@lru_cache(maxsize=1)
def service() -> CreditService:
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url")
    store = table_store()
    sqs = aws_client("sqs")
    return CreditService(
        store=store,
        directory=store_directory(),
        rise=lambda token, observer: RiseClient(
            token=token, base_url=settings.rise_api_base_url, pacer=pacer_for(token), observer=observer
        ),
        enqueue_report=lambda report: sqs.send_message(
            QueueUrl=settings.order_protection_queue_url, MessageBody=json.dumps(report)
        ),
    )


def handle_record(record: SQSRecord) -> None:
    job = CreditJob.model_validate_json(record.body)
    logger.append_keys(store_id=job.store_id, claim_id=job.claim_id)
    service().handle(job)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_credit_jobs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runner().run(event, context, handle_record)
