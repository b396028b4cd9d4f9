"""Scheduled syncs (EventBridge): the sweeper every 5 minutes, the integration health check every hour."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from claimbridge.admin import AdminService
from claimbridge.clients.order_protection import OrderProtectionClient
from claimbridge.clients.postco import PostcoClient
from claimbridge.clients.richpanel import RichpanelClient
from claimbridge.clients.rise import RiseClient
from claimbridge.clients.rivo import RivoClient
from claimbridge.config import get_settings
from claimbridge.crypto import SecretBox
from claimbridge.health import IntegrationHealth
from claimbridge.observability import get_tracer, logger, metrics
from claimbridge.runtime import aws_client, reconcile_message, store_directory, table_store
from claimbridge.sweeper import Sweeper

tracer = get_tracer()
CHECK_TIMEOUT = (3.05, 5.0)
HEALTH_CHECK_CUSTOMER = "claimbridge-health-check"  # a customer id no shop has: Rise answers 404 to a good key


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
        )

    return Sweeper(
        store=table_store(),
        enqueue_credit=lambda job: sqs.send_message(
            QueueUrl=settings.credit_queue_url, MessageBody=job.model_dump_json()
        ),
        enqueue_event=enqueue_event,
        enqueue_claim=lambda store_id, claim_id: sqs.send_message(**reconcile_message(settings, store_id, claim_id)),
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
        enqueue_credit=lambda job: sqs.send_message(
            QueueUrl=settings.credit_queue_url, MessageBody=job.model_dump_json()
        ),
        enqueue_claim=lambda store_id, claim_id: sqs.send_message(**reconcile_message(settings, store_id, claim_id)),
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


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handle_scheduled_task(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = event.get("task")
    if task == "sweep":
        return sweeper().sweep().as_dict()
    if task == "health":
        return health().run()
    logger.error("unknown scheduled task", task=json.dumps(task)[:100])
    return {"error": f"unknown task {task!r}"}
