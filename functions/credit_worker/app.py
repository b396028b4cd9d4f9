"""The credit queue's worker: store credit through the store's provider (Rise.ai or Rivo), exactly once through the
ledger: claims' credits, bonus credits, and PostCo returns' credits and bonuses (always Rise's)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.clients.rise import RiseClient
from claimbridge.config import get_settings
from claimbridge.credits import CreditService
from claimbridge.crypto import SecretBox
from claimbridge.jobs import SqsJobRunner
from claimbridge.models.credits import CreditJob
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.pacing import PACE_WAIT_S, TablePacer, account_key
from claimbridge.providers.rise import RiseProvider
from claimbridge.providers.rivo import RivoProvider
from claimbridge.runtime import aws_client, credit_message, report_message, rivo_client, store_directory, table_store

tracer = get_tracer()
RISE_INTERVAL_S = 1 / 2 * 1.05  # Rise: 2 requests a second per token, shared through the table (5% spare)
RISE_TIMEOUT = (3.05, 10.0)
RIVO_TIMEOUT = (3.05, 10.0)
# A record's worst case: two paced calls (a look-up, then the credit), each within its timeout; a pacer never waits
# more than PACE_WAIT_S (the job is deferred instead). The runner starts no record with less time left than this, so
# a batch never outruns the function's timeout (60 s).
RECORD_BUDGET_S = 2 * (PACE_WAIT_S + sum(RISE_TIMEOUT))


def rise_pacer(token: str) -> TablePacer:
    """One pacer per Rise token, shared by every worker through the table: the token's 2/s holds whatever the
    concurrency, and a job whose token has no slot within PACE_WAIT_S gives its worker back (deferred)."""
    return TablePacer(table_store(), account_key("rise", token), interval_s=RISE_INTERVAL_S, max_wait_s=PACE_WAIT_S)


@lru_cache(maxsize=1)
def runner() -> SqsJobRunner:
    return SqsJobRunner.for_queue("credit", record_budget_s=RECORD_BUDGET_S)


@lru_cache(maxsize=1)
def service() -> CreditService:
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url", "credit_queue_url")
    sqs = aws_client("sqs")
    return CreditService(
        store=table_store(),
        directory=store_directory(),
        providers={
            "rise": RiseProvider.factory(
                lambda token, observer: RiseClient(
                    token=token,
                    base_url=settings.rise_api_base_url,
                    pacer=rise_pacer(token),
                    observer=observer,
                    timeout=RISE_TIMEOUT,
                )
            ),
            "rivo": RivoProvider.factory(
                lambda key, observer: rivo_client(key, observer=observer, timeout=RIVO_TIMEOUT)
            ),
        },
        enqueue_report=lambda report: sqs.send_message(**report_message(settings, report)),
        # a return's bonus follows its credit: queued when the credit is issued
        enqueue_credit=lambda job: sqs.send_message(**credit_message(settings, job)),
        secret_box=SecretBox(aws_client("kms"), settings.kms_key_id or ""),
        limits=settings.money_limits(),
        customer_wait_s=float(settings.credit_customer_wait_s),
    )


def handle_record(record: SQSRecord) -> None:
    job = CreditJob.model_validate_json(record.body)
    logger.append_keys(store_id=job.store_id, ledger=job.sk)
    service().handle(job)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_credit_jobs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runner().run(event, context, handle_record)
