"""Webhook receiver: warm latency and the duplicate path against a bare boto3 floor; cold start against boto3's."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from bench.common import WEBHOOK_SECRET, make_store, median_ms, quiet_stack, report, timed
from local.functions import LocalFunction

RUNS = 300
COLD_RUNS = 7

COLD_RECEIVER = r"""
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, "layers/claimbridge")
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/webhook_receiver/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
from local.functions import LocalContext
event = json.loads(sys.argv[1])
answer = app.handle_receive_webhook(event, LocalContext("WebhookReceiverFunction", "arn", 5))
assert answer["statusCode"] == 202, answer
print(time.perf_counter() - started)
"""

COLD_FLOOR = r"""
import time
started = time.perf_counter()
import boto3
boto3.client("dynamodb"); boto3.client("sqs")
print(time.perf_counter() - started)
"""


def event_for(store_id: str, event_id: str) -> dict:
    body = {
        "id": event_id,
        "topic": "claim.created",
        "body": {"claim_id": f"c-{event_id}", "order_id": "o-1", "claim_type": "DAMAGED"},
    }
    return {
        "resource": "/stores/{storeId}/webhooks/claims",
        "path": f"/stores/{store_id}/webhooks/claims",
        "httpMethod": "POST",
        "headers": {"x-webhook-secret": WEBHOOK_SECRET, "content-type": "application/json"},
        "pathParameters": {"storeId": store_id},
        "queryStringParameters": None,
        "isBase64Encoded": False,
        "requestContext": {"requestId": event_id, "stage": "local"},
        "body": json.dumps(body),
    }


def run() -> None:
    with quiet_stack(run_pollers=False, inline=True) as stack:  # the handler's own cost, not the IPC
        make_store(stack, "bench-recv")
        receiver: LocalFunction = stack.functions["WebhookReceiverFunction"]
        dynamodb = stack.emulators.client("dynamodb")
        sqs = stack.emulators.client("sqs")
        table, queue = stack.resources.ref("MainTable"), stack.resources.ref("RichpanelQueue")
        receiver.invoke(event_for("bench-recv", "warmup"))  # warm: caches filled, connections open

        def floor_once() -> str:
            key = uuid.uuid4().hex
            dynamodb.put_item(
                TableName=table,
                Item={"PK": {"S": f"EVENT#floor#{key}"}, "SK": {"S": "EVENT"}},
                ConditionExpression="attribute_not_exists(PK)",
            )
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event_for("bench-recv", key)["body"]))
            return key

        def marked_floor_once() -> None:
            # the receiver's minimum: a consistent read of the store's secrets (rotation is in force on the next
            # request), then write, send, and the conditional mark ENQUEUED after the send
            dynamodb.get_item(
                TableName=table, Key={"PK": {"S": "STORE#bench-recv"}, "SK": {"S": "PROFILE"}}, ConsistentRead=True
            )
            key = floor_once()
            dynamodb.update_item(
                TableName=table,
                Key={"PK": {"S": f"EVENT#floor#{key}"}, "SK": {"S": "EVENT"}},
                UpdateExpression="SET #s = :e",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":e": {"S": "ENQUEUED"}},
            )

        new_ids = iter(uuid.uuid4().hex for _ in range(RUNS * 3))
        # interleave so that drift in the emulators touches both sides alike
        floor, marked, new = [], [], []
        for _ in range(RUNS):
            floor += timed(floor_once, 1)
            marked += timed(marked_floor_once, 1)
            new += timed(lambda: receiver.invoke(event_for("bench-recv", next(new_ids))), 1)
        duplicate_event = event_for("bench-recv", "dup-1")
        receiver.invoke(duplicate_event)
        duplicate = timed(lambda: receiver.invoke(duplicate_event), RUNS)
        report(
            "receiver warm latency, new event vs read + write + send + mark",
            median_ms(new),
            median_ms(marked),
            "<= 1.2",
        )
        report("receiver warm latency, new event vs write + send alone", median_ms(new), median_ms(floor), "info")
        report("receiver duplicate path vs new-event path (median)", median_ms(duplicate), median_ms(new), "<= 0.6")

        env = {**os.environ, "PYTHONPATH": "."}
        subprocess.run([sys.executable, "-m", "compileall", "-q", "layers", "functions", "local"], check=True)
        cold, bare = [], []
        for index in range(COLD_RUNS):
            event = json.dumps(event_for("bench-recv", f"cold-{index}-{time.time()}"))
            cold.append(
                float(
                    subprocess.run(
                        [sys.executable, "-c", COLD_RECEIVER, event],
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
            )
            bare.append(
                float(
                    subprocess.run(
                        [sys.executable, "-c", COLD_FLOOR], env=env, check=True, capture_output=True, text=True
                    ).stdout.strip()
                )
            )
        report(
            "receiver cold start: import + init + first request (median)",
            statistics.median(cold) * 1000,
            statistics.median(bare) * 1000,
            "<= 1.5",
        )
