"""The store's inventory, pushed to Order Protection so it offers reships only for items in stock (seeds/003).

A ``PUT`` replaces the store's snapshot: its rows are kept in chunks (``SNAP#<snapshot>#<n>``, 500 rows each, so 10,000
rows fit items under DynamoDB's 400 KB) and a push (``PUSH``) records each chunk's state. Each chunk is one job on the
Order Protection queue and one ``PUT /v1/inventory`` with an ``Idempotency-Key`` naming the push and the chunk, taken
under a lease and marked sent: a chunk redelivered, or sent again after a 5xx or a timeout, is the same chunk to Order
Protection. A newer push supersedes an older one (its queued chunks are dropped); a daily schedule pushes the last
snapshot again, so Order Protection never works from stale stock for long.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from claimbridge.bounds import check_store_id
from claimbridge.clients.http import AuthError, IntegrationError
from claimbridge.directory import StoreDirectory
from claimbridge.errors import ResourceNotFoundError, invalid, problems_from_validation
from claimbridge.models.order_protection import InventoryIn
from claimbridge.observability import logger, metrics
from claimbridge.store import ConditionFailedError, Store, now_iso, store_pk

CHUNK_ROWS = 500
CHUNK_LEASE_S = 60
STORES_WITH_INVENTORY = "INVENTORY"  # the StateIndex key that lists the stores with a snapshot (the daily resend)


def inventory_pk(store_id: str) -> str:
    return f"{store_pk(store_id)}#INVENTORY"


def chunk_name(n: int) -> str:
    return f"{n:03d}"


class Inventory:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        enqueue: Callable[[list[dict[str, Any]]], None],
        order_protection: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._enqueue = enqueue  # jobs for the Order Protection queue, sent in batches
        self._order_protection = order_protection  # the client for a token (the worker's side)
        self._clock = clock

    # -- the admin's side --------------------------------------------------------------------------------------------

    def replace(self, store_id: str, body: Any, who: str) -> dict[str, Any]:
        """Validate every row (422 naming the row and field, nothing saved), save the snapshot, push it."""
        check_store_id(store_id)
        try:
            given = InventoryIn.model_validate(body)
        except ValidationError as error:
            raise problems_from_validation(error) from error
        seen: dict[str, int] = {}
        for n, row in enumerate(given.items):
            if row.variant_id in seen:
                raise invalid(f"items.{n}.variant_id", f"repeats row {seen[row.variant_id]}: one row per variant")
            seen[row.variant_id] = n
        self._directory.usable(store_id, "order_protection")
        snapshot = f"{int(self._clock())}-{secrets.token_hex(4)}"
        rows = [row.model_dump() for row in given.items]
        chunks = [rows[i : i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
        for n, chunk in enumerate(chunks):
            self._store.put({"PK": inventory_pk(store_id), "SK": f"SNAP#{snapshot}#{chunk_name(n)}", "rows": chunk})
        previous = self._store.get(inventory_pk(store_id), "PUSH")
        push = self._push(store_id, snapshot, len(chunks), len(rows), reason=f"put by {who}")
        if previous is not None and previous.get("snapshot_id") != snapshot:
            self._forget(store_id, previous)
        return public_push(push)

    def last(self, store_id: str) -> dict[str, Any]:
        check_store_id(store_id)
        push = self._store.get(inventory_pk(store_id), "PUSH")
        if push is None:
            raise ResourceNotFoundError(f"store {store_id} has pushed no inventory")
        return public_push(push)

    def resend(self, store_id: str, reason: str) -> dict[str, Any] | None:
        """Push the last snapshot again (the daily schedule); None when the store has none or cannot push now."""
        previous = self._store.get(inventory_pk(store_id), "PUSH")
        op = self._directory.integration(store_id, "order_protection")
        if previous is None or op is None or not op.valid:
            return None
        push = self._push(
            store_id, previous["snapshot_id"], int(previous["chunk_count"]), int(previous["rows"]), reason
        )
        return public_push(push)

    def _push(self, store_id: str, snapshot: str, chunk_count: int, rows: int, reason: str) -> dict[str, Any]:
        push_id = f"{int(self._clock())}-{secrets.token_hex(4)}"
        push: dict[str, Any] = {
            "PK": inventory_pk(store_id),
            "SK": "PUSH",
            "store_id": store_id,
            "push_id": push_id,
            "snapshot_id": snapshot,
            "chunk_count": chunk_count,
            "rows": rows,
            "reason": reason,
            "started_at": now_iso(),
            "chunks": {chunk_name(n): {"state": "QUEUED", "attempts": 0} for n in range(chunk_count)},
            "outcome": "pushing",
            "store_state": STORES_WITH_INVENTORY,
            "state_since": f"{store_id}",
        }
        self._store.put(push)
        jobs = [
            {"task": "inventory", "store_id": store_id, "push_id": push_id, "chunk": chunk_name(n)}
            for n in range(chunk_count)
        ]
        try:
            self._enqueue(jobs)
        except Exception as error:  # noqa: BLE001 - the push says what is left; the next PUT or the daily push redoes it
            logger.error("inventory chunks not queued", store_id=store_id, error=type(error).__name__)
            self._store.update(
                inventory_pk(store_id), "PUSH", expression="SET outcome = :o", values={":o": "not queued: push again"}
            )
            push["outcome"] = "not queued: push again"
        logger.info("inventory push queued", store_id=store_id, push_id=push_id, rows=rows, chunks=chunk_count)
        return push

    def _forget(self, store_id: str, previous: dict[str, Any]) -> None:
        for n in range(int(previous.get("chunk_count") or 0)):
            self._store.delete(inventory_pk(store_id), f"SNAP#{previous['snapshot_id']}#{chunk_name(n)}")

    # -- the worker's side -------------------------------------------------------------------------------------------

    def push_chunk(self, store_id: str, push_id: str, chunk: str) -> None:
        """Send one chunk of one push, once: a superseded push or a chunk already sent is left; a lease keeps two
        deliveries of the same job apart; a retryable failure raises (the runner sends the job back)."""
        assert self._order_protection is not None
        pk = inventory_pk(store_id)
        push = self._store.get(pk, "PUSH")
        if push is None or push["push_id"] != push_id:
            logger.info("inventory chunk of a superseded push; dropped", store_id=store_id, push_id=push_id)
            return
        if (push["chunks"].get(chunk) or {}).get("state") in ("SENT", "FAILED"):
            return
        now = int(self._clock())
        try:
            self._store.update(
                pk,
                "PUSH",
                expression="SET chunks.#c.#s = :sending, chunks.#c.lease_until = :until, "
                "chunks.#c.attempts = chunks.#c.attempts + :one",
                names={"#c": chunk, "#s": "state"},
                values={
                    ":sending": "SENDING",
                    ":until": now + CHUNK_LEASE_S,
                    ":one": 1,
                    ":push": push_id,
                    ":queued": "QUEUED",
                    ":retry": "RETRY",
                    ":now": now,
                },
                condition="push_id = :push AND (chunks.#c.#s IN (:queued, :retry) OR "
                "(chunks.#c.#s = :sending AND chunks.#c.lease_until < :now))",
            )
        except ConditionFailedError:
            return  # another delivery holds it, sent it, or a newer push came
        rows = (self._store.get(pk, f"SNAP#{push['snapshot_id']}#{chunk}") or {}).get("rows")
        op = self._directory.integration(store_id, "order_protection")
        if rows is None or op is None or not op.valid:
            why = "its snapshot is gone" if rows is None else "Order Protection is not configured or invalid"
            self._mark(store_id, push_id, chunk, "FAILED", why)
            return
        client = self._order_protection(op.secrets["api_token"])
        try:
            client.push_inventory(rows, idempotency_key=f"claimbridge:{store_id}:inventory:{push_id}:{chunk}")
        except AuthError:
            self._directory.mark_invalid(store_id, "order_protection", "Order Protection refused the API token")
            self._mark(store_id, push_id, chunk, "FAILED", "Order Protection refused the API token")
            return
        except IntegrationError as error:
            if error.retryable:
                self._mark(store_id, push_id, chunk, "RETRY", f"{error}; the same chunk goes again")
                raise
            self._mark(store_id, push_id, chunk, "FAILED", f"Order Protection refused the chunk: {error}")
            return
        self._mark(store_id, push_id, chunk, "SENT", "")
        metrics.add_metric(name="InventoryChunkPushed", unit="Count", value=1)

    def _mark(self, store_id: str, push_id: str, chunk: str, state: str, reason: str) -> None:
        pk = inventory_pk(store_id)
        try:
            self._store.update(
                pk,
                "PUSH",
                expression="SET chunks.#c.#s = :state, chunks.#c.reason = :reason, chunks.#c.#at = :at "
                "REMOVE chunks.#c.lease_until",
                names={"#c": chunk, "#s": "state", "#at": "at"},
                values={":state": state, ":reason": reason, ":at": now_iso(), ":push": push_id},
                condition="push_id = :push",
            )
        except ConditionFailedError:
            return  # a newer push replaced this one meanwhile
        push = self._store.get(pk, "PUSH") or {}
        states = [c.get("state") for c in (push.get("chunks") or {}).values()]
        if states and all(s in ("SENT", "FAILED") for s in states) and push.get("push_id") == push_id:
            outcome = "pushed" if all(s == "SENT" for s in states) else f"{states.count('FAILED')} chunks failed"
            self._store.update(
                pk,
                "PUSH",
                expression="SET outcome = :o, finished_at = :at",
                values={":o": outcome, ":at": now_iso(), ":push": push_id},
                condition="push_id = :push",
            )
            logger.info("inventory push finished", store_id=store_id, push_id=push_id, outcome=outcome)


def public_push(push: dict[str, Any]) -> dict[str, Any]:
    """The push as the admin API shows it: when, how many rows, each chunk's state, the outcome."""
    chunks = push.get("chunks") or {}
    counts: dict[str, int] = {}
    for chunk in chunks.values():
        counts[chunk.get("state", "?")] = counts.get(chunk.get("state", "?"), 0) + 1
    return {
        "push_id": push["push_id"],
        "reason": push.get("reason"),
        "started_at": push.get("started_at"),
        "finished_at": push.get("finished_at"),
        "rows": int(push.get("rows") or 0),
        "chunk_count": int(push.get("chunk_count") or 0),
        "chunks": counts,
        "outcome": push.get("outcome"),
        "failed": {name: c.get("reason") for name, c in sorted(chunks.items()) if c.get("state") == "FAILED"},
    }
