"""DynamoDB access for the whole application: the single table's keys and every read and write.

Keys (one table, ``PK``/``SK``, plus ``GSI1`` for a store's customer and ``ttl`` for expiring items):

| item | PK | SK |
| --- | --- | --- |
| store profile | ``STORE#<store>`` | ``PROFILE`` |
| integration settings | ``STORE#<store>`` | ``INTEGRATION#<name>`` |
| webhook event (dedup, TTL) | ``EVENT#<store>#<event id>`` | ``EVENT`` |

Later flows add their items here, next to these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def from_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in attributes.items()}


def store_pk(store_id: str) -> str:
    return f"STORE#{store_id}"


class ConditionFailedError(Exception):
    """A conditional write lost: the item was already there, or changed under us."""


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

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"TableName": self._table, "Item": to_attributes(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = to_attributes(values)
        try:
            self._client.put_item(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConditionFailedError(item["PK"]) from exc
            raise

    def delete(self, pk: str, sk: str) -> bool:
        answer = self._client.delete_item(
            TableName=self._table, Key=to_attributes({"PK": pk, "SK": sk}), ReturnValues="ALL_OLD"
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
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": to_attributes({"PK": pk, "SK": sk}),
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = to_attributes(values)
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            return from_attributes(self._client.update_item(**kwargs)["Attributes"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConditionFailedError(pk) from exc
            raise

    def query_partition(self, pk: str, *, sk_prefix: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": to_attributes({":pk": pk}),
            "ConsistentRead": True,
        }
        if sk_prefix:
            kwargs["KeyConditionExpression"] += " AND begins_with(SK, :sk)"
            kwargs["ExpressionAttributeValues"].update(to_attributes({":sk": sk_prefix}))
        items: list[dict[str, Any]] = []
        while True:
            answer = self._client.query(**kwargs)
            items.extend(from_attributes(item) for item in answer["Items"])
            if "LastEvaluatedKey" not in answer:
                return items
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # -- stores and integrations ---------------------------------------------------------------------------------

    def get_store_profile(self, store_id: str) -> dict[str, Any] | None:
        return self.get(store_pk(store_id), "PROFILE")

    def put_store_profile(self, store_id: str, attributes: Mapping[str, Any]) -> None:
        self.put({"PK": store_pk(store_id), "SK": "PROFILE", "store_id": store_id, **attributes})

    def get_integration(self, store_id: str, name: str) -> dict[str, Any] | None:
        return self.get(store_pk(store_id), f"INTEGRATION#{name}")

    def put_integration(self, store_id: str, name: str, attributes: Mapping[str, Any]) -> None:
        self.put(
            {
                "PK": store_pk(store_id),
                "SK": f"INTEGRATION#{name}",
                "store_id": store_id,
                "integration": name,
                **attributes,
            }
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
