"""Scheduled syncs (EventBridge): the sweeper and the PostCo fan-out every 5 minutes, the integration health check
every hour; and the PostCo queue's jobs, one store's returns sync each (claimbridge.returns)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.admin import AdminService
from claimbridge.clients.order_protection import OrderProtectionClient
from claimbridge.clients.postco import PostcoClient
from claimbridge.clients.richpanel import RichpanelClient
from claimbridge.clients.rise import RiseClient
from claimbridge.clients.rivo import RivoClient
from claimbridge.config import get_settings
from claimbridge.crypto import SecretBox
from claimbridge.directory import Integration, StoreInfo
from claimbridge.health import IntegrationHealth
from claimbridge.inventory import STORES_WITH_INVENTORY, Inventory
from claimbridge.jobs import JobDeferredError, SqsJobRunner
from claimbridge.models.returns import SyncJob
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.pacing import PacerChain, TablePacer, account_key
from claimbridge.returns import ReturnSync
from claimbridge.runtime import (
    aws_client,
    credit_message,
    group,
    reconcile_message,
    report_message,
    send_reports,
    store_directory,
    sync_message,
    table_store,
)
from claimbridge.sweeper import Sweeper

tracer = get_tracer()
CHECK_TIMEOUT = (3.05, 5.0)
HEALTH_CHECK_CUSTOMER = "claimbridge-health-check"  # a customer id no shop has: Rise answers 404 to a good key
POSTCO_TIMEOUT = (3.05, 10.0)
POSTCO_KEY_INTERVAL_S = 60 / 100 * 1.02  # PostCo: 100 requests a minute per key (2% spare)
POSTCO_SHOP_INTERVAL_S = 60 / 500 * 1.02  # and 500 a minute per shop
# A sync record's worst case is the function's whole time: the run watches the clock itself and saves its place.
SYNC_RECORD_BUDGET_S = 30


@lru_cache(maxsize=1)
def sweeper() -> Sweeper:
    settings = get_settings().require("table_name", "credit_queue_url", "richpanel_queue_url")
    sqs = aws_client("sqs")

    def enqueue_event(event: dict[str, Any]) -> None:
        sqs.send_message(
            QueueUrl=settings.richpanel_queue_url,
            MessageBody=event["body"],
            MessageAttributes={
                **{
                    name: {"DataType": "String", "StringValue": str(event[name])}
                    for name in ("store_id", "event_id", "topic")
                },
                # when the receiver took it: the event's time if its envelope has none (never the re-send's time)
                "received_at": {"DataType": "Number", "StringValue": str(int(event["received_at"]) * 1000)},
            },
            **group(str(event["store_id"])),
        )

    return Sweeper(
        store=table_store(),
        enqueue_credit=lambda job: sqs.send_message(**credit_message(settings, job)),
        enqueue_event=enqueue_event,
        enqueue_claim=lambda store_id, claim_id: sqs.send_message(**reconcile_message(settings, store_id, claim_id)),
        enqueue_report=lambda report: sqs.send_message(**report_message(settings, report)),
    )


@lru_cache(maxsize=1)
def health() -> IntegrationHealth:
    settings = get_settings().require("table_name", "kms_key_id", "credit_queue_url", "richpanel_queue_url")
    sqs = aws_client("sqs")
    admin = AdminService(
        store=table_store(),
        secret_box=SecretBox(aws_client("kms"), settings.kms_key_id or ""),
        richpanel=lambda key: RichpanelClient(api_key=key, base_url=settings.richpanel_api_base_url),
        directory=store_directory(),
        enqueue_credit=lambda job: sqs.send_message(**credit_message(settings, job)),
        enqueue_claim=lambda store_id, claim_id: sqs.send_message(**reconcile_message(settings, store_id, claim_id)),
        enqueue_sync=lambda store_id, reason: sqs.send_message(**sync_message(settings, store_id, reason)),
    )
    common: dict[str, Any] = {"timeout": CHECK_TIMEOUT}
    return IntegrationHealth(
        store=table_store(),
        directory=store_directory(),
        checks={
            "richpanel": lambda info, secrets: RichpanelClient(
                api_key=secrets["api_key"], base_url=settings.richpanel_api_base_url, **common
            ).list_teams(),
            "rise": lambda info, secrets: RiseClient(
                token=secrets["credit_api_token"], base_url=settings.rise_api_base_url, **common
            ).customer_card(shop_url=info.profile["shop_domain"], customer_id=HEALTH_CHECK_CUSTOMER),
            "rivo": lambda info, secrets: RivoClient(
                api_key=secrets["api_key"], base_url=settings.rivo_api_base_url, **common
            ).customer(f"{HEALTH_CHECK_CUSTOMER}@example.invalid"),
            "order_protection": lambda info, secrets: OrderProtectionClient(
                api_token=secrets["api_token"], base_url=settings.order_protection_api_base_url, **common
            ).check_token(),
            "postco": lambda info, secrets: PostcoClient(
                api_key=secrets["api_key"], base_url=settings.postco_api_base_url, **common
            ).check_key(),
        },
        valid_again=admin.redrive_repaired,
    )


@lru_cache(maxsize=1)
def return_sync() -> ReturnSync:
    settings = get_settings().require("table_name", "kms_key_id", "credit_queue_url")
    store, sqs = table_store(), aws_client("sqs")

    def postco(info: StoreInfo, integration: Integration) -> PostcoClient:
        key = integration.secrets["api_key"]
        pacer = PacerChain(
            TablePacer(store, account_key("postco", key), interval_s=POSTCO_KEY_INTERVAL_S),
            TablePacer(
                store, account_key("postco-shop", info.profile["shop_domain"]), interval_s=POSTCO_SHOP_INTERVAL_S
            ),
        )
        return PostcoClient(api_key=key, base_url=settings.postco_api_base_url, timeout=POSTCO_TIMEOUT, pacer=pacer)

    return ReturnSync(
        store=store,
        directory=store_directory(),
        postco=postco,
        enqueue_credit=lambda job: sqs.send_message(**credit_message(settings, job)),
    )


@lru_cache(maxsize=1)
def sync_runner() -> SqsJobRunner:
    return SqsJobRunner.for_queue("postco", record_budget_s=SYNC_RECORD_BUDGET_S)


def fan_out_postco() -> dict[str, int]:
    """One sync job per store with a valid PostCo integration (the jobs run in parallel, one store each)."""
    settings = get_settings().require("table_name", "postco_queue_url")
    sqs, store = aws_client("sqs"), table_store()
    totals = {"queued": 0, "skipped_invalid": 0}
    cursor: str | None = None
    while True:
        items, cursor = store.query_index("StateIndex", "store_state", "INTEGRATION#postco", limit=100, after=cursor)
        for item in items:
            if item.get("status") == "invalid":  # no calls with a refused key; a valid key again re-drives it
                totals["skipped_invalid"] += 1
                continue
            sqs.send_message(**sync_message(settings, item["store_id"], "schedule"))
            totals["queued"] += 1
        if not cursor:
            break
    logger.info("postco syncs queued", totals=totals)
    return totals


def resend_inventory() -> dict[str, int]:
    """The daily push of every store's last inventory snapshot (Order Protection never works from stale stock)."""
    settings = get_settings().require("table_name", "kms_key_id", "order_protection_queue_url")
    store = table_store()
    stock = Inventory(store=store, directory=store_directory(), enqueue=lambda jobs: send_reports(settings, jobs))
    totals = {"pushed": 0, "skipped": 0}
    cursor: str | None = None
    while True:
        items, cursor = store.query_index("StateIndex", "store_state", STORES_WITH_INVENTORY, limit=100, after=cursor)
        for item in items:
            pushed = stock.resend(item["store_id"], reason="daily")
            totals["pushed" if pushed else "skipped"] += 1
        if not cursor:
            break
    logger.info("inventory pushed again", totals=totals)
    return totals


def handle_sync_job(record: SQSRecord, context: LambdaContext | None) -> None:
    job = SyncJob.model_validate_json(record.body)
    logger.append_keys(store_id=job.store_id)

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 if context is not None else float("inf")

    run = return_sync().run(job.store_id, reason=job.reason, time_left=time_left)
    if run.error is not None:
        raise run.error  # the runner sends it back: after Retry-After for a 429, with backoff for a 5xx
    if run.again_s is not None:
        raise JobDeferredError(run.again_s, run.detail)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_sync(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return sync_runner().run(event, context, lambda record: handle_sync_job(record, context))
    task = event.get("task")
    if task == "sweep":
        return sweeper().sweep().as_dict()
    if task == "health":
        return health().run()
    if task == "postco":
        return fan_out_postco()
    if task == "inventory":
        return resend_inventory()
    logger.error("unknown scheduled task", task=json.dumps(task)[:100])
    return {"error": f"unknown task {task!r}"}
