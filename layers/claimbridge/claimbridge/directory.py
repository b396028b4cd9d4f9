"""A store's profile and integrations as the functions need them, secrets opened.

Each look-up reads the item (one consistent read), so a secret rotated, a key replaced or an integration removed in
the admin is seen by every function's next request, in every process; only the opening of a sealed value is cached,
keyed by the sealed value itself, so KMS is asked once per secret version, not per request. A job that will need one of
the store's integrations reads it with the store, in the same request (``store(..., with_integration=...)``)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from claimbridge.crypto import SecretBox
from claimbridge.errors import ConflictError, ResourceNotFoundError
from claimbridge.store import Store, store_pk

OPENED_CACHE_SIZE = 256


@dataclass(frozen=True)
class StoreInfo:
    store_id: str
    profile: dict[str, Any]
    secrets: dict[str, Any]
    # integrations read with the store, by name (None: not configured); ``StoreDirectory.integration_of`` uses them
    integrations: dict[str, Integration | None] = field(default_factory=dict, compare=False)

    @property
    def customer_hash_key(self) -> bytes:
        return bytes.fromhex(self.secrets["customer_hash_key"])


@dataclass(frozen=True)
class Integration:
    name: str
    settings: dict[str, Any]
    secrets: dict[str, Any]
    valid: bool
    reason: str
    created_at: str = ""  # when it was first configured


class StoreDirectory:
    def __init__(self, *, store: Store, secret_box: SecretBox) -> None:
        self._store = store
        self._box = secret_box
        self._opened: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()

    def _open(self, sealed: str, *, store_id: str, purpose: str) -> dict[str, Any]:
        key = (store_id, purpose, sealed)
        opened = self._opened.get(key)
        if opened is None:
            opened = self._box.open(sealed, store_id=store_id, purpose=purpose)
            self._opened[key] = opened
            while len(self._opened) > OPENED_CACHE_SIZE:
                self._opened.popitem(last=False)
        else:
            self._opened.move_to_end(key)
        return opened

    def store(self, store_id: str, *, with_integration: str | None = None) -> StoreInfo | None:
        """The store; with ``with_integration``, that integration read in the same request (``integration_of``)."""
        if with_integration is None:
            return self._info(store_id, self._store.get_store_profile(store_id))
        info, _ = self.store_with(store_id, with_integration)
        return info

    def store_with(self, store_id: str, name: str) -> tuple[StoreInfo | None, Integration | None]:
        """The store and one of its integrations in one read (a batch get of the two items)."""
        pk = store_pk(store_id)
        items = self._store.get_many([(pk, "PROFILE"), (pk, f"INTEGRATION#{name}")])
        integration = self._integration(store_id, name, items.get((pk, f"INTEGRATION#{name}")))
        info = self._info(store_id, items.get((pk, "PROFILE")), {name: integration})
        return info, integration

    def usable(self, store_id: str, name: str) -> tuple[StoreInfo, Integration]:
        """The store and its integration ``name`` when a call may be made with it now: 404 when either does not
        exist, 409 while the integration's key is invalid (an admin route's refusal, before anything is written)."""
        info, integration = self.store_with(store_id, name)
        if info is None:
            raise ResourceNotFoundError(f"store {store_id} not found")
        if integration is None:
            raise ResourceNotFoundError(f"{name} is not configured for store {store_id}")
        if not integration.valid:
            raise ConflictError(
                f"the {name} integration is invalid ({integration.reason}); save a working key; nothing sent"
            )
        return info, integration

    def integration(self, store_id: str, name: str) -> Integration | None:
        return self._integration(store_id, name, self._store.get_integration(store_id, name))

    def integration_of(self, info: StoreInfo, name: str) -> Integration | None:
        """The store's integration ``name``: as read with the store when it was, else read now."""
        if name in info.integrations:
            return info.integrations[name]
        return self.integration(info.store_id, name)

    def _info(
        self, store_id: str, profile: dict[str, Any] | None, integrations: dict[str, Integration | None] | None = None
    ) -> StoreInfo | None:
        if profile is None:
            return None
        secrets = self._open(profile["secrets"], store_id=store_id, purpose="store")
        return StoreInfo(store_id, profile, secrets, integrations or {})

    def _integration(self, store_id: str, name: str, item: dict[str, Any] | None) -> Integration | None:
        if item is None:
            return None
        return Integration(
            name=name,
            settings=dict(item.get("settings", {})),
            secrets=self._open(item["secrets"], store_id=store_id, purpose=f"integration:{name}"),
            valid=item.get("status", "valid") != "invalid",
            reason=item.get("status_reason") or "",
            created_at=str(item.get("created_at") or ""),
        )

    def mark_invalid(self, store_id: str, name: str, reason: str) -> None:
        self._store.set_integration_status(store_id, name, valid=False, reason=reason)
