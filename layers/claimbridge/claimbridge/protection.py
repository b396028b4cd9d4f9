"""Cancelling an order's protection from the merchant's platform (seeds/003): once, through the report queue.

A cancel is a row keyed by the platform's order id (``STORE#<store>#PROTECTION#<sourceOrderId>`` / ``CANCEL``), so a
second request for the same order is the same cancel. The report worker takes it under a lease and sends
``PUT /v1/orders/{sourceOrderId}`` (idempotent: it sets a state), retried on a 5xx or a timeout; once sent, the order's
protection state becomes ``CANCELLED`` (when claimbridge knows the order: an alias from the platform's id to Order
Protection's, written whenever an event names both). A ``protection.removed`` webhook that follows confirms it and
changes nothing further.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from claimbridge.bounds import check_id, check_store_id
from claimbridge.clients.http import AuthError, IntegrationError
from claimbridge.directory import StoreDirectory
from claimbridge.errors import ResourceNotFoundError, problems_from_validation
from claimbridge.models.order_protection import ProtectionCancelIn
from claimbridge.observability import logger, metrics
from claimbridge.store import ConditionFailedError, Store, due_shard, now_iso, store_pk

CANCEL_LEASE_S = 60
CANCEL_DUE_S = 600
CANCELLED_RANK = 3  # above protection.added (1) and .removed (2) at the same instant


def cancel_pk(store_id: str, source_order_id: str) -> str:
    return f"{store_pk(store_id)}#PROTECTION#{source_order_id}"


def source_alias_pk(store_id: str, source_order_id: str) -> str:
    """Where the platform's order id leads to Order Protection's (``order_id``)."""
    return f"{store_pk(store_id)}#SOURCE#{source_order_id}"


def cancel_job(row: dict[str, Any]) -> dict[str, Any]:
    return {"task": "cancel", "store_id": row["store_id"], "pk": row["PK"], "sk": row["SK"]}


class ProtectionCancels:
    def __init__(
        self,
        *,
        store: Store,
        directory: StoreDirectory,
        enqueue: Callable[[dict[str, Any]], None],
        order_protection: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._enqueue = enqueue
        self._order_protection = order_protection
        self._clock = clock

    # -- the admin's side --------------------------------------------------------------------------------------------

    def request(self, store_id: str, source_order_id: str, body: Any, who: str) -> tuple[dict[str, Any], bool]:
        """The cancel row and whether it was queued now (False: this order's cancel was asked for before)."""
        check_store_id(store_id)
        check_id("sourceOrderId", source_order_id)
        try:
            asked = ProtectionCancelIn.model_validate(body)
        except ValidationError as error:
            raise problems_from_validation(error) from error
        self._directory.usable(store_id, "order_protection")
        alias = self._store.get(source_alias_pk(store_id, source_order_id), "ORDER") or {}
        row: dict[str, Any] = {
            "PK": cancel_pk(store_id, source_order_id),
            "SK": "CANCEL",
            "item_type": "protection_cancel",
            "store_id": store_id,
            "source_order_id": source_order_id,
            "order_id": alias.get("order_id"),
            "reason": asked.reason,
            "requested_by": who,
            "requested_at": now_iso(),
            "cancel_state": "QUEUED",
            "due_shard": due_shard(f"{store_id}/cancel/{source_order_id}"),
            "due_at": int(self._clock()) + CANCEL_DUE_S,
        }
        row = {k: v for k, v in row.items() if v is not None}
        try:
            self._store.put(row, condition="attribute_not_exists(PK)")
        except ConditionFailedError:
            existing = self._store.get(cancel_pk(store_id, source_order_id), "CANCEL") or row
            if existing.get("cancel_state") in ("QUEUED", "RETRY"):  # not sent yet: its job may be lost
                self._send_job(existing)
            return public_cancel(existing), False
        self._send_job(row)
        logger.info("protection cancel queued", store_id=store_id, source_order_id=source_order_id, who=who)
        return public_cancel(row), True

    def view(self, store_id: str, source_order_id: str) -> dict[str, Any]:
        check_store_id(store_id)
        check_id("sourceOrderId", source_order_id)
        row = self._store.get(cancel_pk(store_id, source_order_id), "CANCEL")
        if row is None:
            raise ResourceNotFoundError(f"no protection cancel for order {source_order_id}")
        return public_cancel(row)

    def _send_job(self, row: dict[str, Any]) -> None:
        try:
            self._enqueue(cancel_job(row))
        except Exception as error:  # noqa: BLE001 - the row is due: the sweeper queues it
            logger.error("protection cancel not queued; the sweeper will", error=type(error).__name__)

    # -- the worker's side -------------------------------------------------------------------------------------------

    def send(self, store_id: str, pk: str, sk: str) -> None:
        """One ``PUT /v1/orders/{sourceOrderId}`` under a lease; a retryable failure raises (sent again later)."""
        assert self._order_protection is not None
        row = self._store.get(pk, sk)
        if row is None or row.get("cancel_state") in ("SENT", "FAILED"):
            return
        now = int(self._clock())
        try:
            self._store.update(
                pk,
                sk,
                expression="SET cancel_state = :sending, lease_until = :until, "
                "attempts = if_not_exists(attempts, :zero) + :one",
                values={
                    ":sending": "SENDING",
                    ":until": now + CANCEL_LEASE_S,
                    ":zero": 0,
                    ":one": 1,
                    ":queued": "QUEUED",
                    ":retry": "RETRY",
                    ":now": now,
                },
                condition="cancel_state IN (:queued, :retry) OR (cancel_state = :sending AND lease_until < :now)",
            )
        except ConditionFailedError:
            return  # another delivery holds it or sent it
        op = self._directory.integration(store_id, "order_protection")
        if op is None or not op.valid:
            self._mark(row, "FAILED", "Order Protection is not configured or invalid")
            return
        try:
            self._order_protection(op.secrets["api_token"]).cancel_protection(row["source_order_id"], row["reason"])
        except AuthError:
            self._directory.mark_invalid(store_id, "order_protection", "Order Protection refused the API token")
            self._mark(row, "FAILED", "Order Protection refused the API token")
            return
        except IntegrationError as error:
            if error.retryable:
                self._mark(row, "RETRY", f"{error}; sent again later")
                raise
            self._mark(row, "FAILED", f"Order Protection refused the cancel: {error}")
            return
        self._mark(row, "SENT", "")
        self._follow(row)
        metrics.add_metric(name="ProtectionCancelled", unit="Count", value=1)

    def _mark(self, row: dict[str, Any], state: str, reason: str) -> None:
        settled = state in ("SENT", "FAILED")
        self._store.update(
            row["PK"],
            row["SK"],
            expression="SET cancel_state = :state, cancel_reason = :reason, settled_at = :at REMOVE lease_until"
            + (", due_shard, due_at" if settled else ""),
            values={":state": state, ":reason": reason, ":at": now_iso()},
        )

    def _follow(self, row: dict[str, Any]) -> None:
        """The order's protection state follows the cancel (when the order is known by the platform's id)."""
        alias = self._store.get(source_alias_pk(row["store_id"], row["source_order_id"]), "ORDER") or {}
        order_id = row.get("order_id") or alias.get("order_id")
        if not order_id:
            logger.info("cancelled an order claimbridge has not seen", source_order_id=row["source_order_id"])
            return
        self._store.set_protection(
            row["store_id"],
            str(order_id),
            state="CANCELLED",
            changed_at=now_iso(),
            at_us=int(self._clock() * 1_000_000),
            rank=CANCELLED_RANK,
            amount=None,
            currency=None,
            source_order_id=row["source_order_id"],
        )


def public_cancel(row: dict[str, Any]) -> dict[str, Any]:
    hidden = ("PK", "SK", "due_shard", "due_at", "lease_until", "item_type")
    return {k: v for k, v in row.items() if k not in hidden}
