"""DynamoDB access for the whole application: the single table's keys and every read and write.

Keys (one table, ``PK``/``SK``, plus ``GSI1`` for a store's customer and ``ttl`` for expiring items):

| item | PK | SK |
| --- | --- | --- |
| store profile | ``STORE#<store>`` | ``PROFILE`` |
| integration settings | ``STORE#<store>`` | ``INTEGRATION#<name>`` |
| webhook event (dedup, TTL) | ``EVENT#<store>#<event id>`` | ``EVENT`` |
| claim | ``STORE#<store>#CLAIM#<claim>`` | ``CLAIM`` (``GSI1``: the customer, ``CLAIM#<created>``) |
| timeline entry of a claim | ``STORE#<store>#CLAIM#<claim>`` | ``TL#<when>#<random>`` |
| order | ``STORE#<store>#ORDER#<order>`` | ``ORDER`` (``GSI1``: the customer, ``ORDER#<ordered>``) |
| pacer slot of a partner account | ``PACER#<partner>#<credential hash>`` | ``PACER`` |

A claim's partition holds the claim, its timeline and (with credits) its ledger rows: one query reads them all.
``GSI1PK`` is ``STORE#<store>#CUST#<keyed hash of the email>``: the widget finds a customer's items in one query.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def iso_at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def from_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in attributes.items()}


def store_pk(store_id: str) -> str:
    return f"STORE#{store_id}"


def claim_pk(store_id: str, claim_id: str) -> str:
    return f"STORE#{store_id}#CLAIM#{claim_id}"


def order_pk(store_id: str, order_id: str) -> str:
    return f"STORE#{store_id}#ORDER#{order_id}"


DUE_SHARDS = 4


def due_shard(key: str) -> str:
    """One of a few ``DueIndex`` partitions, by a stable hash of the item's key (spreads the sweeper's reads)."""
    return f"DUE#{zlib.crc32(key.encode()) % DUE_SHARDS}"


def customer_pk(store_id: str, customer_hash: str) -> str:
    return f"STORE#{store_id}#CUST#{customer_hash}"


PacerState = Literal["free", "near", "far"]


def _expressions(
    condition: str | None, names: dict[str, str] | None, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    request: dict[str, Any] = {}
    if condition:
        request["ConditionExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = to_attributes(values)
    return request


class ConditionFailedError(Exception):
    """A conditional write lost: the item was already there, or changed under us. ``item``: the item as the condition
    found it, where the write asked for it (None when it was not there)."""

    def __init__(self, pk: str, *, item: dict[str, Any] | None = None) -> None:
        super().__init__(pk)
        self.item = item


class Store:
    """The table. Takes a boto3 DynamoDB client (injected; the emulator's in tests and locally)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    @property
    def table_name(self) -> str:
        return self._table

    # -- generic -------------------------------------------------------------------------------------------------

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        answer = self._client.get_item(
            TableName=self._table, Key=to_attributes({"PK": pk, "SK": sk}), ConsistentRead=consistent
        )
        return from_attributes(answer["Item"]) if "Item" in answer else None

    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Several items in one consistent BatchGetItem (at most 100 keys): those that exist, by (PK, SK)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        request = {
            self._table: {"Keys": [to_attributes({"PK": pk, "SK": sk}) for pk, sk in keys], "ConsistentRead": True}
        }
        while request:
            answer = self._client.batch_get_item(RequestItems=request)
            for attributes in answer["Responses"].get(self._table, []):
                item = from_attributes(attributes)
                found[(item["PK"], item["SK"])] = item
            request = answer.get("UnprocessedKeys") or {}
        return found

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self._write("put_item", item["PK"], Item=to_attributes(item), **_expressions(condition, names, values))

    def delete(
        self,
        pk: str,
        sk: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        answer = self._write(
            "delete_item",
            pk,
            Key=to_attributes({"PK": pk, "SK": sk}),
            ReturnValues="ALL_OLD",
            **_expressions(condition, names, values),
        )
        return "Attributes" in answer

    def update(
        self,
        pk: str,
        sk: str,
        *,
        expression: str,
        names: dict[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        condition: str | None = None,
    ) -> dict[str, Any]:
        answer = self._write(
            "update_item",
            pk,
            Key=to_attributes({"PK": pk, "SK": sk}),
            UpdateExpression=expression,
            ReturnValues="ALL_NEW",
            **_expressions(condition, names, values),
        )
        return from_attributes(answer["Attributes"])

    def set_fields(
        self,
        pk: str,
        sk: str,
        fields: Mapping[str, Any],
        *,
        keep: frozenset[str] = frozenset(),
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """SET every field that is not None (one in ``keep`` only where the item lacks it); return the whole item."""
        present = {key: value for key, value in fields.items() if value is not None}
        sets = [
            f"#f{i} = if_not_exists(#f{i}, :v{i})" if key in keep else f"#f{i} = :v{i}" for i, key in enumerate(present)
        ]
        return self.update(
            pk,
            sk,
            expression="SET " + ", ".join(sets),
            names={f"#f{i}": key for i, key in enumerate(present)},
            values={f":v{i}": value for i, value in enumerate(present.values())} | dict(values or {}),
            condition=condition,
        )

    def _write(self, operation: str, pk: str, **request: Any) -> dict[str, Any]:
        """One write; a lost condition becomes ``ConditionFailedError``, every other error stays boto's."""
        from botocore.exceptions import ClientError

        try:
            answer: dict[str, Any] = getattr(self._client, operation)(TableName=self._table, **request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                found = exc.response.get("Item")
                raise ConditionFailedError(pk, item=from_attributes(found) if found else None) from exc
            raise
        return answer

    def query_partition(
        self, pk: str, *, sk_prefix: str | None = None, sk_between: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": to_attributes({":pk": pk}),
            "ConsistentRead": True,
        }
        if sk_prefix:
            kwargs["KeyConditionExpression"] += " AND begins_with(SK, :sk)"
            kwargs["ExpressionAttributeValues"].update(to_attributes({":sk": sk_prefix}))
        elif sk_between:
            kwargs["KeyConditionExpression"] += " AND SK BETWEEN :low AND :high"
            kwargs["ExpressionAttributeValues"].update(to_attributes({":low": sk_between[0], ":high": sk_between[1]}))
        items: list[dict[str, Any]] = []
        while True:
            answer = self._client.query(**kwargs)
            items.extend(from_attributes(item) for item in answer["Items"])
            if "LastEvaluatedKey" not in answer:
                return items
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # -- pacers --------------------------------------------------------------------------------------------------

    def advance_pacer(
        self, pk: str, *, state: PacerState, now: Decimal, limit: Decimal, step: Decimal, ttl: int
    ) -> Decimal:
        """Take the pacer's next free slot and move it on by ``step``, in one conditional write that holds only while
        the pacer is in ``state`` at ``now``: "free" (no slot after ``now``: the slot is ``now``), "near" (the next
        slot is after ``now``, by ``limit`` at the latest) or "far" (after ``limit``). Two workers never take one slot
        (the move is the server's own arithmetic). Returns the slot taken; ``ConditionFailedError.item`` is the pacer
        as it was when ``state`` did not hold."""
        moves = {
            "free": (
                "SET next_at = :moved",
                "attribute_not_exists(next_at) OR next_at <= :now",
                {":moved": now + step},
            ),
            "near": ("SET next_at = next_at + :step", "next_at > :now AND next_at <= :limit", {":step": step}),
            "far": ("SET next_at = next_at + :step", "next_at > :limit", {":step": step}),
        }
        expression, condition, values = moves[state]
        bounds = {name: value for name, value in ((":now", now), (":limit", limit)) if name in condition}
        answer = self._write(
            "update_item",
            pk,
            Key=to_attributes({"PK": pk, "SK": "PACER"}),
            UpdateExpression=expression + ", #ttl = :ttl",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues=to_attributes({**values, **bounds, ":ttl": ttl}),
            ReturnValues="UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        moved: Decimal = from_attributes(answer["Attributes"])["next_at"]
        return moved - step

    # -- stores and integrations ---------------------------------------------------------------------------------

    def get_store_profile(self, store_id: str) -> dict[str, Any] | None:
        return self.get(store_pk(store_id), "PROFILE")

    def put_versioned(self, item: Mapping[str, Any], was: Mapping[str, Any] | None) -> None:
        """Write ``item`` as the next version of ``was`` (None: it must not exist yet). ConditionFailedError if the
        item changed, appeared or went since ``was`` was read: two saves at once never lose one silently."""
        if was is None:
            condition = "attribute_not_exists(PK)"
        elif "version" in was:
            condition = "version = :was"
        else:  # written before items had versions
            condition = "attribute_exists(PK) AND attribute_not_exists(version)"
        self.put(
            {**item, "version": int((was or {}).get("version", 0)) + 1},
            condition=condition,
            values={":was": was["version"]} if was is not None and "version" in was else None,
        )

    def put_store_profile(
        self, store_id: str, attributes: Mapping[str, Any], *, was: Mapping[str, Any] | None = None
    ) -> None:
        self.put_versioned({"PK": store_pk(store_id), "SK": "PROFILE", "store_id": store_id, **attributes}, was)

    def get_integration(self, store_id: str, name: str) -> dict[str, Any] | None:
        return self.get(store_pk(store_id), f"INTEGRATION#{name}")

    def put_integration(
        self, store_id: str, name: str, attributes: Mapping[str, Any], *, was: Mapping[str, Any] | None = None
    ) -> None:
        self.put_versioned(
            {
                "PK": store_pk(store_id),
                "SK": f"INTEGRATION#{name}",
                "store_id": store_id,
                "integration": name,
                **attributes,
            },
            was,
        )

    def delete_integration(self, store_id: str, name: str) -> bool:
        return self.delete(store_pk(store_id), f"INTEGRATION#{name}")

    def list_integrations(self, store_id: str) -> list[dict[str, Any]]:
        return self.query_partition(store_pk(store_id), sk_prefix="INTEGRATION#")

    def set_integration_status(self, store_id: str, name: str, *, valid: bool, reason: str | None) -> None:
        """Record the outcome of a key check; a no-op when the integration was deleted meanwhile."""
        with contextlib.suppress(ConditionFailedError):
            self.update(
                store_pk(store_id),
                f"INTEGRATION#{name}",
                expression="SET #status = :status, status_reason = :reason, status_checked_at = :at",
                names={"#status": "status"},
                values={":status": "valid" if valid else "invalid", ":reason": reason or "", ":at": now_iso()},
                condition="attribute_exists(PK)",
            )

    # -- webhook events ------------------------------------------------------------------------------------------

    def mark_event_done(self, store_id: str, event_id: str) -> None:
        with contextlib.suppress(ConditionFailedError):  # expired or released meanwhile: nothing to mark
            self.update(
                f"EVENT#{store_id}#{event_id}",
                "EVENT",
                expression="SET #state = :done, done_at = :at REMOVE lease, lease_until, due_shard, due_at, body",
                names={"#state": "state"},
                values={":done": "DONE", ":at": now_iso()},
                condition="attribute_exists(PK)",
            )

    # -- claims and orders ---------------------------------------------------------------------------------------

    def get_claim(self, store_id: str, claim_id: str) -> dict[str, Any] | None:
        return self.get(claim_pk(store_id, claim_id), "CLAIM")

    def get_claim_and_ledger(self, store_id: str, claim_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The claim and its ledger rows in one query ("CLAIM" and "LEDGER#..." sort together, before the timeline's
        "TL#...")."""
        items = self.query_partition(claim_pk(store_id, claim_id), sk_between=("CLAIM", "LEDGER$"))  # "$" follows "#"
        claim = next((item for item in items if item["SK"] == "CLAIM"), None)
        return claim, [item for item in items if item["SK"].startswith("LEDGER#")]

    def upsert_claim(
        self,
        store_id: str,
        claim_id: str,
        values: Mapping[str, Any],
        *,
        keep: frozenset[str] = frozenset(),
        newer_than: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """Set the given fields on the claim (created if absent), except those in ``keep`` that it already has;
        return the whole claim. With ``newer_than`` (an event's time in microseconds and its state's rank), only when
        the claim's state was set by an older event (or an equal time and a lower rank): else ConditionFailedError."""
        created = values.get("created_at")
        fields = {
            "store_id": store_id,
            "claim_id": claim_id,
            "first_seen_at": now_iso(),
            **values,
            # The customer index sorts by creation; until the claim.created event arrives, by first sight.
            "GSI1SK": f"CLAIM#{created or now_iso()}#{claim_id}",
        }
        kept = keep | {"first_seen_at", "created_at"} | (frozenset() if created else {"GSI1SK"})
        if newer_than is None:
            return self.set_fields(claim_pk(store_id, claim_id), "CLAIM", fields, keep=kept)
        at, rank = newer_than
        return self.set_fields(
            claim_pk(store_id, claim_id),
            "CLAIM",
            fields | {"state_at_us": at, "state_rank": rank},
            keep=kept,
            condition="attribute_not_exists(state_at_us) OR state_at_us < :at OR "
            "(state_at_us = :at AND state_rank < :rank)",
            values={":at": at, ":rank": rank},
        )

    def settle_claim(self, store_id: str, claim_id: str) -> None:
        """What the claim's events asked for is done: out of the sweeper's index."""
        self.update(claim_pk(store_id, claim_id), "CLAIM", expression="REMOVE due_shard, due_at")

    def snoozed(self, store_id: str, claim_id: str, *, for_event: str) -> None:
        """The ticket is snoozed for this state-setting event; the claim is no longer a skipped one."""
        self.update(
            claim_pk(store_id, claim_id),
            "CLAIM",
            expression="SET ticket_snoozed_at = :at, ticket_snoozed_for = :for REMOVE store_state, state_since",
            values={":at": now_iso(), ":for": for_event},
        )

    def set_ticket(self, store_id: str, claim_id: str, *, ticket_id: str) -> None:
        """Record the claim's one ticket; ConditionFailedError if the claim already names another."""
        self.update(
            claim_pk(store_id, claim_id),
            "CLAIM",
            expression="SET ticket_id = :ticket, ticket_opened_at = if_not_exists(ticket_opened_at, :at) "
            "REMOVE ticket_uncertain_at, store_state, state_since",
            values={":ticket": ticket_id, ":at": now_iso()},
            condition="attribute_not_exists(ticket_id) OR ticket_id = :ticket",
        )

    def upsert_order(self, store_id: str, order_id: str, values: Mapping[str, Any]) -> None:
        ordered = values.get("ordered_at")
        fields = {
            "store_id": store_id,
            "order_id": order_id,
            **values,
            "GSI1SK": f"ORDER#{ordered or now_iso()}#{order_id}",
        }
        self.set_fields(
            order_pk(store_id, order_id), "ORDER", fields, keep=frozenset() if ordered else frozenset({"GSI1SK"})
        )

    def note_source_order(self, store_id: str, source_order_id: str, order_id: str) -> None:
        """The platform's order id leads to Order Protection's (a protection cancel names the platform's)."""
        self.put({"PK": f"{store_pk(store_id)}#SOURCE#{source_order_id}", "SK": "ORDER", "order_id": order_id})

    def set_protection(
        self,
        store_id: str,
        order_id: str,
        *,
        state: str,
        changed_at: str,
        at_us: int,
        rank: int,
        amount: Any,
        currency: str | None,
        source_order_id: str | None,
    ) -> bool:
        """Last writer wins on the event's time (parsed; microseconds), then ``rank`` for equal times: an older event
        never overwrites a newer state. True when applied."""
        fields = {
            "store_id": store_id,
            "order_id": order_id,
            "protection_state": state,
            "protection_changed_at": changed_at,
            "protection_at_us": at_us,
            "protection_rank": rank,
            "protection_amount": amount,
            "protection_currency": currency,
            "source_order_id": source_order_id,
        }
        if source_order_id:
            self.note_source_order(store_id, source_order_id, order_id)
        try:
            self.set_fields(
                order_pk(store_id, order_id),
                "ORDER",
                fields,
                keep=frozenset({"source_order_id"}),
                condition="attribute_not_exists(protection_at_us) OR protection_at_us < :at OR "
                "(protection_at_us = :at AND protection_rank < :rank)",
                values={":at": at_us, ":rank": rank},
            )
        except ConditionFailedError:
            return False
        return True

    def add_timeline(self, store_id: str, claim_id: str, *, note: str, call: Any = None) -> None:
        self.add_note(claim_pk(store_id, claim_id), note=note, call=call)

    def add_note(self, pk: str, *, note: str, call: Any = None, at: str | None = None) -> None:
        """A timeline entry (``TL#<when>#<random>``) in a claim's or a return's partition."""
        import secrets

        at = at or now_iso()
        item: dict[str, Any] = {
            "PK": pk,
            "SK": f"TL#{at}#{secrets.token_hex(4)}",
            "at": at,
            "note": note,
        }
        if call is not None:
            item.update(call.fields())
        self.put(item)

    def claim_partition(self, store_id: str, claim_id: str) -> list[dict[str, Any]]:
        return self.query_partition(claim_pk(store_id, claim_id))

    def query_index(
        self, index: str, key: str, value: str, *, limit: int = 50, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of a sparse index's partition, oldest first; the cursor of the next page ("" at the end)."""
        import base64
        import json

        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key},
            "ExpressionAttributeValues": to_attributes({":v": value}),
            "Limit": limit,
        }
        if after:
            start = json.loads(base64.urlsafe_b64decode(after.encode()))
            if not isinstance(start, dict) or start.get(key) != {"S": value}:
                raise ValueError("not a cursor of this listing")
            kwargs["ExclusiveStartKey"] = start
        answer = self._client.query(**kwargs)
        last = answer.get("LastEvaluatedKey")
        cursor = base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else ""
        return [from_attributes(item) for item in answer["Items"]], cursor

    def query_due(self, shard: str, now: int, *, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
        """Everything in one ``DueIndex`` shard whose ``due_at`` has passed, oldest first; and the pages it took."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "DueIndex",
            "KeyConditionExpression": "due_shard = :shard AND due_at <= :now",
            "ExpressionAttributeValues": to_attributes({":shard": shard, ":now": now}),
            "Limit": limit,
        }
        items: list[dict[str, Any]] = []
        pages = 0
        while True:
            answer = self._client.query(**kwargs)
            pages += 1
            items.extend(from_attributes(item) for item in answer["Items"])
            if "LastEvaluatedKey" not in answer:
                return items, pages
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def nudge(self, pk: str, sk: str, *, due_at: int, was: int) -> int | None:
        """Push an item's due time on (the sweeper re-drives it); how often it was; None when it moved meanwhile."""
        try:
            item = self.update(
                pk,
                sk,
                expression="SET due_at = :next, redrives = if_not_exists(redrives, :zero) + :one",
                values={":next": due_at, ":was": was, ":zero": 0, ":one": 1},
                condition="due_at = :was",
            )
        except ConditionFailedError:
            return None
        return int(item["redrives"])

    def query_customer(self, index_pk: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """A customer's orders, claims and credits, newest first: one query of the customer index."""
        answer = self._client.query(
            TableName=self._table,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues=to_attributes({":pk": index_pk}),
            ScanIndexForward=False,
            Limit=limit,
        )
        items = [from_attributes(item) for item in answer["Items"]]
        # GSI1SK is "<KIND>#<when>#..."; newest first across kinds
        return sorted(items, key=lambda item: item["GSI1SK"].split("#", 1)[1], reverse=True)
