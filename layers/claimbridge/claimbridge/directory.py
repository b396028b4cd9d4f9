"""A store's profile and integrations as the workers need them: secrets opened, cached for a few minutes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from claimbridge.crypto import SecretBox
from claimbridge.store import Store

CACHE_S = 120.0


@dataclass(frozen=True)
class StoreInfo:
    store_id: str
    profile: dict[str, Any]
    secrets: dict[str, Any]

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


class StoreDirectory:
    def __init__(self, *, store: Store, secret_box: SecretBox, clock: Any = time.monotonic) -> None:
        self._store = store
        self._box = secret_box
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    def _cached(self, key: tuple[str, str], load: Any) -> Any:
        hit = self._cache.get(key)
        if hit is not None and self._clock() - hit[0] < CACHE_S:
            return hit[1]
        value = load()
        self._cache[key] = (self._clock(), value)
        return value

    def forget(self, store_id: str, name: str) -> None:
        self._cache.pop((store_id, name), None)

    def store(self, store_id: str) -> StoreInfo | None:
        def load() -> StoreInfo | None:
            profile = self._store.get_store_profile(store_id)
            if profile is None:
                return None
            secrets = self._box.open(profile["secrets"], store_id=store_id, purpose="store")
            return StoreInfo(store_id, profile, secrets)

        result: StoreInfo | None = self._cached((store_id, "PROFILE"), load)
        return result

    def integration(self, store_id: str, name: str) -> Integration | None:
        def load() -> Integration | None:
            item = self._store.get_integration(store_id, name)
            if item is None:
                return None
            secrets = self._box.open(item["secrets"], store_id=store_id, purpose=f"integration:{name}")
            return Integration(
                name=name,
                settings=dict(item.get("settings", {})),
                secrets=secrets,
                valid=item.get("status", "valid") != "invalid",
                reason=item.get("status_reason") or "",
            )

        result: Integration | None = self._cached((store_id, name), load)
        return result

    def mark_invalid(self, store_id: str, name: str, reason: str) -> None:
        self._store.set_integration_status(store_id, name, valid=False, reason=reason)
        self.forget(store_id, name)
