"""The webhook receive path: authenticate, parse what routing needs, de-duplicate, enqueue, answer 202.

Kept light on purpose (no pydantic, no requests, no KMS): it runs inside Order Protection's 5 s deadline and its cold
start is measured. The worker validates the whole payload.

De-duplication without losing events: the event record is written PENDING with a condition (new, or a PENDING record
whose short lease ran out), the job is sent, and the record is marked ENQUEUED. Only an ENQUEUED (or DONE) record makes
a retry a duplicate. A failed send deletes the record and answers 503, so the sender's retry is not dropped; a crash or
a timeout between the write and the send leaves a PENDING record, and a retry that finds one waits a moment for it to
be marked (a concurrent delivery) and otherwise answers 503, so the sender comes back and, once the lease has run out,
enqueues it. The claims worker marks the record DONE when it has handled the job.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claimbridge.bounds import MAX_ID_CHARS, id_problem, is_store_id
from claimbridge.crypto import matches_any_digest
from claimbridge.observability import logger
from claimbridge.store import ConditionFailedError, Store, due_shard

MAX_BODY_BYTES = 256 * 1024
EVENT_TTL_S = 8 * 24 * 3600  # senders retry for days; keep de-duplication records at least 7 days
LEASE_S = 10  # how long a PENDING record blocks a retry from enqueueing: longer than the receiver's 5 s timeout
EVENT_DUE_S = 60  # a PENDING event the sender did not retry is enqueued by the sweeper this long after its lease
ENQUEUED_DUE_S = 30 * 60  # an enqueued event no worker finished in this long is enqueued again by the sweeper
IN_FLIGHT_WAIT_S = 1.5  # how long a duplicate waits for a concurrent delivery to mark its record ENQUEUED
IN_FLIGHT_POLL_S = 0.05
ROUTED_IDS = ("claim_id", "order_id", "source_order_id")  # the body's ids the worker keys rows by

KNOWN_TOPICS = frozenset(
    {
        "claim.created",
        "claim.approved",
        "claim.resolved",
        "claim.updated",
        "claim.denied",
        "message.created",
        "protection.added",
        "protection.removed",
    }
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def event_pk(store_id: str, event_id: str) -> str:
    return f"EVENT#{store_id}#{event_id}"


class WebhookReceiver:
    def __init__(self, *, store: Store, sqs: Any, queue_url: str, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._sqs = sqs
        self._queue_url = queue_url
        self._clock = clock

    def receive(self, store_id: str, secret: str | None, raw_body: str) -> Answer:
        if len(raw_body.encode()) > MAX_BODY_BYTES:
            return Answer(413, {"message": f"body is larger than {MAX_BODY_BYTES // 1024} KB"})
        if not secret or not self._authentic(store_id, secret):
            return Answer(401, {"message": "missing or wrong x-webhook-secret"})

        envelope, problem = parse_envelope(raw_body)
        if envelope is None:
            return Answer(400, {"message": problem})
        event_id, topic = envelope["id"], envelope["topic"]
        if topic not in KNOWN_TOPICS:
            logger.info("webhook topic ignored", store_id=store_id, event_id=event_id, topic=topic)
            return Answer(202, {"status": "ignored", "reason": f"unknown topic {topic}"})

        now = self._clock()
        lease = secrets.token_hex(8)
        try:
            self._store.put(
                {
                    "PK": event_pk(store_id, event_id),
                    "SK": "EVENT",
                    "state": "PENDING",
                    "lease": lease,
                    "lease_until": int(now + LEASE_S),
                    "topic": topic,
                    "store_id": store_id,
                    "event_id": event_id,
                    "received_at": int(now),
                    "ttl": int(now + EVENT_TTL_S),
                    # Kept until the worker is done, so the sweeper can enqueue it again if nothing else does.
                    "body": raw_body,
                    "item_type": "event",
                    "due_shard": due_shard(f"{store_id}/{event_id}"),
                    "due_at": int(now + LEASE_S + EVENT_DUE_S),
                },
                condition="attribute_not_exists(PK) OR (#state = :pending AND lease_until < :now)",
                names={"#state": "state"},
                values={":pending": "PENDING", ":now": int(now)},
            )
        except ConditionFailedError:
            return self._duplicate(store_id, event_id, topic)

        try:
            self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=raw_body,
                MessageAttributes={
                    "store_id": {"DataType": "String", "StringValue": store_id},
                    "event_id": {"DataType": "String", "StringValue": event_id},
                    "topic": {"DataType": "String", "StringValue": topic},
                    # When the event came: its time if its envelope has none (kept when the job is sent back).
                    "received_at": {"DataType": "Number", "StringValue": str(int(now * 1000))},
                },
                MessageGroupId=store_id,  # fair queues: one store's flood never delays another's
            )
        except Exception as error:  # noqa: BLE001 - any failure to enqueue must release the event
            self._release(store_id, event_id, lease)
            logger.warning(
                "webhook not enqueued; released for retry",
                store_id=store_id,
                event_id=event_id,
                error=type(error).__name__,
            )
            return Answer(503, {"message": "could not accept the event now; retry later"}, {"Retry-After": "10"})
        try:
            self._store.update(
                event_pk(store_id, event_id),
                "EVENT",
                expression="SET #state = :enqueued, enqueued_at = :at, due_at = :due",
                names={"#state": "state"},
                values={
                    ":enqueued": "ENQUEUED",
                    ":at": int(self._clock()),
                    ":due": int(self._clock()) + ENQUEUED_DUE_S,
                    ":lease": lease,
                    ":pending": "PENDING",
                },
                condition="lease = :lease AND #state = :pending",
            )
        except Exception:  # noqa: BLE001 - the job is on the queue; a retry after the lease only enqueues it again
            logger.warning("webhook enqueued but not marked", store_id=store_id, event_id=event_id)
        logger.info("webhook accepted", store_id=store_id, event_id=event_id, topic=topic)
        return Answer(202, {"status": "accepted", "event_id": event_id})

    def _duplicate(self, store_id: str, event_id: str, topic: str) -> Answer:
        """An event seen before: a duplicate once it is on the queue; otherwise the sender must come back."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT_S
        while True:
            record = self._store.get(event_pk(store_id, event_id), "EVENT") or {}
            if record.get("state") in ("ENQUEUED", "DONE"):
                logger.info("webhook duplicate", store_id=store_id, event_id=event_id, topic=topic)
                return Answer(202, {"status": "duplicate", "event_id": event_id})
            if not record or time.monotonic() >= deadline:
                break
            time.sleep(IN_FLIGHT_POLL_S)
        logger.warning("webhook not yet enqueued by an earlier delivery", store_id=store_id, event_id=event_id)
        return Answer(
            503,
            {"message": "an earlier delivery of this event is not enqueued yet; retry later"},
            {"Retry-After": "10"},
        )

    def _authentic(self, store_id: str, secret: str) -> bool:
        """Against the store's secrets as they are now (one consistent read, no cache): a secret rotated out is
        refused from the next request on, one rotated in is accepted at once."""
        if not is_store_id(store_id):
            return False
        if len(secret) > 512 or not secret.isascii():  # no stored secret is longer or other (models.settings)
            return False
        profile = self._store.get_store_profile(store_id)
        return matches_any_digest(secret, list(profile.get("webhook_secret_digests", [])) if profile else [])

    def _release(self, store_id: str, event_id: str, lease: str) -> None:
        try:
            self._store.delete(
                event_pk(store_id, event_id), "EVENT", condition="lease = :lease", values={":lease": lease}
            )
        except ConditionFailedError:
            pass  # another delivery holds it now
        except Exception:  # noqa: BLE001 - the lease still expires; a retry after it is accepted
            logger.exception("could not release a webhook event", store_id=store_id, event_id=event_id)


def parse_envelope(raw_body: str) -> tuple[dict[str, Any] | None, str]:
    """The envelope's routing fields, or None and a message naming the problem. Every id the worker keys a row by is
    bounded here, so nothing is accepted that would fail in the worker on every retry."""
    try:
        envelope = json.loads(raw_body)
    except ValueError:
        return None, "body is not valid JSON"
    except RecursionError:
        return None, "body nests too deeply"
    if not isinstance(envelope, dict):
        return None, "body must be a JSON object"
    for name in ("id", "topic", "body"):
        if name not in envelope or envelope[name] in (None, ""):
            return None, f"missing field: {name}"
    for name, limit in (("id", MAX_ID_CHARS), ("topic", 64)):
        if not isinstance(envelope[name], str):
            return None, f"field {name} must be a string"
        problem = id_problem(f"field {name}", envelope[name], limit=limit)
        if problem is not None:
            return None, problem
    if not isinstance(envelope["body"], dict):
        return None, "field body must be a JSON object"
    for name in ROUTED_IDS:
        if envelope["body"].get(name) is not None:
            problem = id_problem(f"body.{name}", envelope["body"][name])
            if problem is not None:
                return None, problem
    envelope["topic"] = envelope["topic"].strip().lower().replace("/", ".")
    return envelope, ""
