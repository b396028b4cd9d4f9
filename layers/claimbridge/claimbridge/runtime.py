"""Collaborators built once per execution environment, from the settings; handlers may pass replacements.

Nothing here runs at import time: the first call builds, later calls reuse (Lambda keeps the process warm).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from claimbridge.config import get_settings
from claimbridge.store import Store

if TYPE_CHECKING:
    from claimbridge.clients.http import CallObserver
    from claimbridge.clients.rivo import RivoClient
    from claimbridge.directory import StoreDirectory
    from claimbridge.queues import JobQueue


@cache
def aws_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # Short timeouts and standard retries: a receiver must answer within Order Protection's 5 s.
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client(service, config=config)


@lru_cache(maxsize=1)
def table_store() -> Store:
    return Store(aws_client("dynamodb"), get_settings().require("table_name").table_name or "")


@lru_cache(maxsize=1)
def store_directory() -> StoreDirectory:
    """Stores' profiles and integrations with their secrets opened (KMS), cached for a couple of minutes."""
    from claimbridge.crypto import SecretBox
    from claimbridge.directory import StoreDirectory

    settings = get_settings().require("table_name", "kms_key_id")
    return StoreDirectory(store=table_store(), secret_box=SecretBox(aws_client("kms"), settings.kms_key_id or ""))


RIVO_INTERVAL_S = 1 / 15 * 1.05  # Rivo: 15 requests a second per key, shared through the table (5% spare)


def rivo_client(
    api_key: str,
    *,
    timeout: tuple[float, float],
    observer: CallObserver | None = None,
    max_wait_s: float | None = None,
) -> RivoClient:
    """A Rivo client paced per key through the table, so every function's calls together stay under 15/s; a call
    with no slot within ``max_wait_s`` raises JobDeferredError instead of sleeping."""
    from claimbridge.clients.rivo import RivoClient
    from claimbridge.pacing import PACE_WAIT_S, TablePacer, account_key

    wait = PACE_WAIT_S if max_wait_s is None else max_wait_s
    return RivoClient(
        api_key=api_key,
        base_url=get_settings().rivo_api_base_url,
        pacer=TablePacer(table_store(), account_key("rivo", api_key), interval_s=RIVO_INTERVAL_S, max_wait_s=wait),
        observer=observer,
        timeout=timeout,
    )


def group(store_id: str) -> dict[str, str]:
    """Every job names its store as its ``MessageGroupId``: on a standard queue that makes SQS fair queues keep one
    store's backlog from raising every other store's dwell time (the local pollers emulate it)."""
    return {"MessageGroupId": store_id}


def job_queues(settings: Any) -> list[JobQueue]:
    from claimbridge.queues import JobQueue

    return [
        JobQueue(name, getattr(settings, f"{name}_queue_url") or "", getattr(settings, f"{name}_dlq_url") or "")
        for name in ("richpanel", "credit", "order_protection", "postco")
    ]


def oldest_message_age(queue_url: str) -> int | None:
    """SQS's ApproximateAgeOfOldestMessage for the last five minutes (CloudWatch); None where there is none."""
    from datetime import UTC, datetime, timedelta

    try:
        answer = aws_client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_url.rsplit("/", 1)[-1]}],
            StartTime=datetime.now(UTC) - timedelta(minutes=5),
            EndTime=datetime.now(UTC),
            Period=300,
            Statistics=["Maximum"],
        )
    except Exception:  # noqa: BLE001 - an age we cannot read is shown as unknown, never as an error
        return None
    points = answer.get("Datapoints") or []
    return int(max(point["Maximum"] for point in points)) if points else None


def reconcile_message(settings: Any, store_id: str, claim_id: str) -> dict[str, Any]:
    """The Richpanel queue's message that makes the claims worker do again what a claim's state asks for."""
    import json
    import time

    event_id = f"reconcile-{claim_id}-{int(time.time())}"
    return {
        "QueueUrl": settings.richpanel_queue_url,
        "MessageBody": json.dumps({"id": event_id, "topic": "claim.reconcile", "body": {"claim_id": claim_id}}),
        "MessageAttributes": {
            "store_id": {"DataType": "String", "StringValue": store_id},
            "event_id": {"DataType": "String", "StringValue": event_id},
            "topic": {"DataType": "String", "StringValue": "claim.reconcile"},
        },
        **group(store_id),
    }


def credit_message(settings: Any, job: Any, delay_s: int = 0) -> dict[str, Any]:
    """The credit queue's message for a job that names one ledger row (``CreditJob``), after ``delay_s``."""
    message = {"QueueUrl": settings.credit_queue_url, "MessageBody": job.model_dump_json(), **group(job.store_id)}
    return message | ({"DelaySeconds": min(900, delay_s)} if delay_s > 0 else {})


def report_message(settings: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The Order Protection queue's message: a report (``store_id``, ``pk``, ``sk``), or another ``task`` for it."""
    import json

    return {"QueueUrl": settings.order_protection_queue_url, "MessageBody": json.dumps(job), **group(job["store_id"])}


def send_reports(settings: Any, jobs: list[dict[str, Any]]) -> None:
    """Jobs for the Order Protection queue, ten to a batch; raises if SQS refused any."""
    import json

    sqs = aws_client("sqs")
    for start in range(0, len(jobs), 10):
        batch = [
            {"Id": str(n), "MessageBody": json.dumps(job), **group(job["store_id"])}
            for n, job in enumerate(jobs[start : start + 10])
        ]
        answer = sqs.send_message_batch(QueueUrl=settings.order_protection_queue_url, Entries=batch)
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} of {len(batch)} jobs")


def sync_message(settings: Any, store_id: str, reason: str) -> dict[str, Any]:
    """The PostCo queue's message that runs one store's returns sync (``reason``: schedule, admin, repaired)."""
    import json

    return {
        "QueueUrl": settings.postco_queue_url,
        "MessageBody": json.dumps({"store_id": store_id, "reason": reason}),
        **group(store_id),
    }
